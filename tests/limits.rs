//! Inputs that would make a reply or an allocation grow without bound are
//! refused with a clear error, and the engine stays usable.

use hashkv::{Db, Options};

#[test]
fn huge_hrandfield_counts_are_refused_not_allocated() {
    let db = Db::in_memory(Options::default());
    db.hset("h", &[("a", "1")]).unwrap();
    let err = db
        .execute(&["HRANDFIELD", "h", "-9223372036854775807"])
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("ERR HRANDFIELD reply of 9223372036854775807 picks would take about"),
        "{err}"
    );
    // The bound is on the reply's memory, so it depends on what is picked:
    // ten million picks of a one-field hash with values (20 million
    // elements, 2.6 GB built once) are refused, a hundred thousand pass...
    let err = db
        .execute(&["HRANDFIELD", "h", "-10000000", "WITHVALUES"])
        .unwrap_err();
    assert!(err.to_string().contains("allows 256 MB"), "{err}");
    let r = db
        .execute(&["HRANDFIELD", "h", "-100000", "WITHVALUES"])
        .unwrap();
    assert!(matches!(r, hashkv::Reply::Array(ref v) if v.len() == 200_000));
    // ... and a thousand picks of a 1 MB value are refused too.
    db.hset("big", &[("f", "x".repeat(1 << 20))]).unwrap();
    let err = db
        .execute(&["HRANDFIELD", "big", "-1000", "WITHVALUES"])
        .unwrap_err();
    assert!(err.to_string().contains("about 1000 MB"), "{err}");
    // Within the limit it works and repeats the only field.
    let r = db.execute(&["HRANDFIELD", "h", "-3"]).unwrap();
    assert_eq!(r.to_cli_string(), "1) \"a\"\n2) \"a\"\n3) \"a\"\n");
    // Positive counts are bounded by the hash itself.
    let r = db.execute(&["HRANDFIELD", "h", "9223372036854775807", "WITHVALUES"]);
    assert_eq!(r.unwrap_err().to_string(), "ERR value is out of range");
    let r = db
        .execute(&["HRANDFIELD", "h", "9223372036854775807"])
        .unwrap();
    assert_eq!(r.to_cli_string(), "1) \"a\"\n");
}

#[test]
fn novalues_of_redis_7_4_and_cursor_rules_of_redis_7_0() {
    let db = Db::in_memory(Options::default());
    db.hset("h", &[("a", "1"), ("b", "2")]).unwrap();
    let r = db.execute(&["HSCAN", "h", "0", "NOVALUES"]).unwrap();
    assert_eq!(r.to_cli_string(), "1) \"0\"\n2) 1) \"a\"\n   2) \"b\"\n");
    // The cursor is parsed as Redis 7.0's strtoul does: -1 wraps (a compact
    // hash answers whole whatever the cursor), a space is refused.
    let r = db.execute(&["HSCAN", "h", "-1"]).unwrap();
    assert_eq!(
        r.to_cli_string(),
        "1) \"0\"\n2) 1) \"a\"\n   2) \"1\"\n   3) \"b\"\n   4) \"2\"\n"
    );
    assert_eq!(
        db.execute(&["HSCAN", "h", " 1"]).unwrap_err().to_string(),
        "ERR invalid cursor"
    );
    assert_eq!(
        db.execute(&["SCAN", "0", "NOVALUES"])
            .unwrap_err()
            .to_string(),
        "ERR NOVALUES option can only be used in HSCAN"
    );
    // A missing key answers before the options are looked at.
    let r = db.execute(&["HSCAN", "nokey", "0", "BADOPT"]).unwrap();
    assert_eq!(r.to_cli_string(), "1) \"0\"\n2) (empty array)\n");
}
