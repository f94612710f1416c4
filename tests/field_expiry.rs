//! Field expiration with an injected clock: the cases of Redis's
//! HEXPIRE-family documentation, lazy and active expiry, the
//! encodings, and durability of field TTLs through the log and snapshots.

use std::sync::Arc;

use hashkv::{Db, FsyncPolicy, ManualClock, Options, Reply};

const NOW: i64 = 1_700_000_000_000;

fn opts(clock: &Arc<ManualClock>) -> Options {
    Options::default().clock(clock.clone()).active_expiry(false)
}

fn db() -> (Db, Arc<ManualClock>) {
    let clock = ManualClock::new(NOW);
    (Db::in_memory(opts(&clock)), clock)
}

fn run(db: &Db, line: &str) -> Result<Reply, String> {
    let argv: Vec<&str> = line.split_whitespace().collect();
    db.execute(&argv).map_err(|e| e.to_string())
}

fn ints(db: &Db, line: &str) -> Vec<i64> {
    match run(db, line).unwrap() {
        Reply::Array(items) => items
            .into_iter()
            .map(|r| r.as_integer().expect("integer"))
            .collect(),
        other => panic!("{line}: {other:?}"),
    }
}

fn int(db: &Db, line: &str) -> i64 {
    run(db, line).unwrap().as_integer().expect("integer")
}

fn err(db: &Db, line: &str) -> String {
    run(db, line).expect_err(line)
}

fn bulks(db: &Db, line: &str) -> Vec<Option<String>> {
    match run(db, line).unwrap() {
        Reply::Array(items) => items
            .into_iter()
            .map(|r| match r {
                Reply::Bulk(b) => Some(String::from_utf8(b).unwrap()),
                Reply::Nil => None,
                other => panic!("{line}: {other:?}"),
            })
            .collect(),
        other => panic!("{line}: {other:?}"),
    }
}

fn encoding(db: &Db, key: &str) -> String {
    db.object_encoding(key).unwrap().unwrap_or_default()
}

#[test]
fn missing_keys_answer_minus_two_for_every_field() {
    let (db, _) = db();
    for (cmd, n) in [
        ("HEXPIRE k 1000 FIELDS 1 a", 1),
        ("HPEXPIRE k 1000 FIELDS 2 a b", 2),
        ("HPEXPIREAT k 1000 FIELDS 1 a", 1),
        ("HTTL k FIELDS 2 a b", 2),
        ("HPEXPIRETIME k FIELDS 1 a", 1),
        ("HPERSIST k FIELDS 2 a b", 2),
    ] {
        assert_eq!(ints(&db, cmd), vec![-2; n], "{cmd}");
    }
    assert_eq!(bulks(&db, "HGETDEL k FIELDS 2 a b"), vec![None, None]);
    assert_eq!(bulks(&db, "HGETEX k PX 10 FIELDS 1 a"), vec![None]);
    assert_eq!(int(&db, "EXISTS k"), 0, "nothing created");
}

#[test]
fn time_and_argument_errors_in_redis_order() {
    let (db, _) = db();
    db.hset("k", &[("a", "1")]).unwrap();
    let neg = "ERR invalid expire time, must be >= 0";
    assert_eq!(err(&db, "HEXPIRE k -1 FIELDS 1 a"), neg);
    assert_eq!(err(&db, "HEXPIRE k -9223372036854775808 FIELDS 1 a"), neg);
    let too_big = |c: &str| format!("ERR invalid expire time in '{c}' command");
    assert_eq!(
        err(&db, "HEXPIRE k 281474976710 FIELDS 1 a"),
        too_big("hexpire")
    );
    assert_eq!(
        err(&db, "HPEXPIRE k 281474976710656 FIELDS 1 a"),
        too_big("hpexpire")
    );
    let max = (1i64 << 46) - 1;
    // 2^46 - now - 1000 ms from now is fine, 100 ms past the limit is not.
    assert_eq!(
        ints(&db, &format!("HPEXPIRE k {} FIELDS 1 a", max - NOW - 1000)),
        [1]
    );
    assert_eq!(
        err(&db, &format!("HPEXPIRE k {} FIELDS 1 a", max - NOW + 100)),
        too_big("hpexpire")
    );
    // The time is checked before FIELDS, even when only the clock shows it
    // is too far.
    assert_eq!(
        err(&db, &format!("HPEXPIRE k {} FIELDS 0 a", max - NOW + 100)),
        too_big("hpexpire")
    );
    assert_eq!(
        err(&db, "HEXPIRE k abc FIELDS 1 a"),
        "ERR value is not an integer or out of range"
    );
    let fields = "ERR Mandatory argument FIELDS is missing or not at the right position";
    assert_eq!(err(&db, "HEXPIRE k 100 NX XX FIELDS 1 a"), fields);
    assert_eq!(err(&db, "HEXPIRE k 100 FOO FIELDS 1 a"), fields);
    assert_eq!(err(&db, "HEXPIRE k 100 a b c"), fields);
    assert_eq!(
        err(&db, "HPEXPIRE k 100 NX FIELDS 0 f1 f2 f3"),
        "ERR Parameter `numFields` should be greater than 0"
    );
    assert_eq!(
        err(&db, "HEXPIRE k 100 FIELDS x a"),
        "ERR Parameter `numFields` should be greater than 0"
    );
    let mismatch = "ERR The `numfields` parameter must match the number of arguments";
    assert_eq!(err(&db, "HPEXPIRE k 100 FIELDS 4 f1 f2 f3"), mismatch);
    assert_eq!(err(&db, "HPEXPIRE k 100 FIELDS 2 f1 f2 f3"), mismatch);
    assert_eq!(
        err(&db, "HTTL k FIELDS 0 a"),
        "ERR Number of fields must be a positive integer"
    );
    assert_eq!(err(&db, "HTTL k FIELDX 1 a"), fields);
    assert_eq!(err(&db, "HPERSIST k FIELDS 2 a"), mismatch);
    assert_eq!(
        err(&db, "HPERSIST k FIELDS 1"),
        "ERR wrong number of arguments for 'hpersist' command"
    );
}

#[test]
fn conditions_codes_and_past_times() {
    let (db, _) = db();
    db.hset("h", &[("field1", "a"), ("field2", "b"), ("field3", "c")])
        .unwrap();
    assert_eq!(ints(&db, "HPEXPIRE h 1000 NX FIELDS 1 field1"), [1]);
    assert_eq!(
        ints(&db, "HPEXPIRE h 1000 NX FIELDS 2 field1 field2"),
        [0, 1]
    );
    assert_eq!(
        ints(&db, "HPEXPIRE h 1000 XX FIELDS 2 field1 field3"),
        [1, 0]
    );
    assert_eq!(ints(&db, "HPEXPIRE h 2000 FIELDS 1 field2"), [1]);
    assert_eq!(
        ints(&db, "HPEXPIRE h 1500 GT FIELDS 3 field1 field2 field3"),
        [1, 0, 0]
    );
    assert_eq!(
        ints(&db, "HPEXPIRE h 1800 LT FIELDS 3 field1 field2 field3"),
        [0, 1, 1]
    );
    // Equal times fail both GT and LT; duplicates see the earlier result.
    assert_eq!(ints(&db, "HPEXPIRE h 1800 GT FIELDS 1 field2"), [0]);
    assert_eq!(ints(&db, "HPEXPIRE h 1800 LT FIELDS 1 field2"), [0]);
    db.hset("n", &[("x", "1")]).unwrap();
    assert_eq!(ints(&db, "HPEXPIRE n 100 NX FIELDS 2 x x"), [1, 0]);
    // A time not in the future deletes (after the condition passed).
    db.hset("p", &[("f1", "1"), ("f2", "2"), ("f4", "4")])
        .unwrap();
    assert_eq!(ints(&db, "HPEXPIRE p 5000 FIELDS 1 f4"), [1]);
    let past = (NOW / 1000 - 1) * 1000;
    assert_eq!(
        ints(&db, &format!("HPEXPIREAT p {past} NX FIELDS 4 f1 f2 f3 f4")),
        [2, 2, -2, 0]
    );
    assert_eq!(int(&db, "HLEN p"), 1);
    assert_eq!(ints(&db, "HPEXPIRE p 0 FIELDS 1 f4"), [2]);
    assert_eq!(int(&db, "EXISTS p"), 0, "the last field took the key");
}

#[test]
fn ttl_views_and_persist() {
    let (db, clock) = db();
    db.hset("h", &[("a", "1"), ("b", "2")]).unwrap();
    assert_eq!(ints(&db, "HPEXPIRE h 2000 FIELDS 1 a"), [1]);
    assert_eq!(ints(&db, "HTTL h FIELDS 3 a b nope"), [2, -1, -2]);
    assert_eq!(ints(&db, "HPTTL h FIELDS 1 a"), [2000]);
    assert_eq!(ints(&db, "HPEXPIRETIME h FIELDS 1 a"), [NOW + 2000]);
    assert_eq!(
        ints(&db, "HEXPIRETIME h FIELDS 1 a"),
        [(NOW + 2000 + 999) / 1000]
    );
    clock.advance(1);
    assert_eq!(ints(&db, "HTTL h FIELDS 1 a"), [2], "rounded up");
    assert_eq!(ints(&db, "HPERSIST h FIELDS 3 a b nope"), [1, -1, -2]);
    assert_eq!(ints(&db, "HPERSIST h FIELDS 1 a"), [-1]);
    clock.advance(5000);
    assert_eq!(
        db.hget("h", "a").unwrap(),
        Some(b"1".to_vec()),
        "persisted field survives"
    );
    assert_eq!(
        encoding(&db, "h"),
        "listpackex",
        "stays listpackex after HPERSIST"
    );
}

#[test]
fn lazy_expiry_per_command() {
    let (db, clock) = db();
    db.hset("h", &[("f1", "1"), ("f2", "2"), ("f3", "3")])
        .unwrap();
    assert_eq!(ints(&db, "HPEXPIRE h 1 NX FIELDS 3 f1 f2 f3"), [1, 1, 1]);
    clock.advance(2);
    assert_eq!(int(&db, "EXISTS h"), 1);
    assert_eq!(int(&db, "HLEN h"), 3, "HLEN counts without skipping");
    assert_eq!(int(&db, "HEXISTS h f1"), 0);
    assert_eq!(int(&db, "HLEN h"), 2, "HEXISTS removed the expired field");
    assert_eq!(db.hget("h", "f2").unwrap(), None);
    assert_eq!(int(&db, "HLEN h"), 1);
    assert_eq!(int(&db, "HSTRLEN h f3"), 0);
    assert_eq!(
        int(&db, "EXISTS h"),
        0,
        "the last lazy removal took the key"
    );

    // HDEL counts an expired field; HSET counts it as an update; HINCRBY
    // restarts it at 0; HGETALL/HKEYS/HVALS skip without removing.
    db.hset("g", &[("a", "1"), ("b", "99"), ("c", "x"), ("d", "y")])
        .unwrap();
    assert_eq!(ints(&db, "HPEXPIRE g 1 FIELDS 4 a b c d"), [1, 1, 1, 1]);
    db.hset("g", &[("keep", "k")]).unwrap();
    clock.advance(2);
    assert_eq!(int(&db, "HDEL g a"), 1);
    assert_eq!(int(&db, "HINCRBY g b 1"), 1);
    assert_eq!(ints(&db, "HTTL g FIELDS 1 b"), [-1], "a fresh field");
    assert_eq!(
        bulks(&db, "HKEYS g"),
        vec![Some("keep".into()), Some("b".into())],
        "b re-created at the end"
    );
    assert_eq!(int(&db, "HLEN g"), 4, "c and d still stored");
    assert_eq!(int(&db, "HSET g c new"), 0, "an update, as in Redis");
    assert_eq!(ints(&db, "HTTL g FIELDS 1 c"), [-1]);
    assert_eq!(
        bulks(&db, "HMGET g c d keep"),
        vec![Some("new".into()), None, Some("k".into())]
    );
}

#[test]
fn hrandfield_purges_and_hscan_skips() {
    let (db, clock) = db();
    db.hset(
        "h",
        &[
            ("f1", "1"),
            ("f2", "2"),
            ("f3", "3"),
            ("f4", "4"),
            ("f5", "5"),
        ],
    )
    .unwrap();
    ints(&db, "HPEXPIRE h 1 FIELDS 2 f1 f2");
    clock.advance(2);
    let mut got = bulks(&db, "HRANDFIELD h 5");
    got.sort();
    assert_eq!(
        got,
        vec![Some("f3".into()), Some("f4".into()), Some("f5".into())]
    );
    assert_eq!(int(&db, "HLEN h"), 3, "purged");

    // A dict with 999 of 1000 fields expired: pages hold only the survivor.
    let pairs: Vec<(String, String)> = (1..=1000)
        .map(|i| (format!("field{i}"), format!("value{i}")))
        .collect();
    db.hset("big", &pairs).unwrap();
    assert_eq!(encoding(&db, "big"), "hashtable");
    for i in 2..=1000 {
        ints(&db, &format!("HPEXPIRE big 1 FIELDS 1 field{i}"));
    }
    clock.advance(2);
    let mut cursor = "0".to_string();
    let mut seen = Vec::new();
    loop {
        let Reply::Array(parts) = run(&db, &format!("HSCAN big {cursor}")).unwrap() else {
            panic!()
        };
        let Reply::Bulk(c) = &parts[0] else { panic!() };
        let Reply::Array(items) = &parts[1] else {
            panic!()
        };
        seen.extend(items.iter().cloned());
        cursor = String::from_utf8(c.clone()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(
        seen,
        vec![
            Reply::Bulk(b"field1".to_vec()),
            Reply::Bulk(b"value1".to_vec())
        ]
    );
    assert_eq!(int(&db, "HLEN big"), 1000);
    assert_eq!(db.hgetall("big").unwrap().len(), 1);
}

#[test]
fn active_expiry_reclaims_fields_and_keeps_persistent_ones() {
    let clock = ManualClock::new(NOW);
    let db = Db::in_memory(Options::default().clock(clock.clone()).active_expiry(false));
    for n in [1usize, 15, 16, 17, 31, 32, 33, 40] {
        let vol: Vec<(String, String)> = (0..n).map(|i| (format!("f{i}"), "v".into())).collect();
        db.hset(format!("all{n}"), &vol).unwrap();
        db.hset(format!("mix{n}"), &vol).unwrap();
        let keep: Vec<(String, String)> = (0..n).map(|i| (format!("p{i}"), "v".into())).collect();
        db.hset(format!("mix{n}"), &keep).unwrap();
        let names: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
        assert!(db
            .hpexpire(format!("all{n}"), 10, &names)
            .unwrap()
            .iter()
            .all(|&c| c == 1));
        assert!(db
            .hpexpire(format!("mix{n}"), 10, &names)
            .unwrap()
            .iter()
            .all(|&c| c == 1));
    }
    clock.advance(11);
    // No reads: only the sweep (bounded per call) reclaims.
    for _ in 0..100 {
        db.expire_cycle().unwrap();
    }
    for n in [1usize, 15, 16, 17, 31, 32, 33, 40] {
        assert_eq!(db.exists(&[format!("all{n}")]).unwrap(), 0, "all{n}");
        assert_eq!(
            db.hlen(format!("mix{n}")).unwrap(),
            n as i64,
            "mix{n} keeps its persistent half"
        );
    }
}

#[test]
fn encodings_follow_redis() {
    let clock = ManualClock::new(NOW);
    let db = Db::in_memory(opts(&clock).hash_max_listpack_entries(10));
    db.hset(
        "h",
        &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")],
    )
    .unwrap();
    assert_eq!(encoding(&db, "h"), "listpack");
    // Even a command that changes nothing switches the layout.
    assert_eq!(ints(&db, "HPEXPIRE h 100 XX FIELDS 1 a"), [0]);
    assert_eq!(encoding(&db, "h"), "listpackex");
    ints(&db, "HPEXPIRE h 100 FIELDS 2 a b");
    db.hset(
        "h",
        &[("f", "6"), ("g", "7"), ("h", "8"), ("i", "9"), ("j", "10")],
    )
    .unwrap();
    assert_eq!(encoding(&db, "h"), "listpackex");
    db.hset("h", &[("k", "11")]).unwrap();
    assert_eq!(encoding(&db, "h"), "hashtable", "past 10 entries");
    assert_eq!(
        ints(&db, "HPTTL h FIELDS 3 a b c"),
        [100, 100, -1],
        "TTLs carried over"
    );
    clock.advance(101);
    assert_eq!(db.hgetall("h").unwrap().len(), 9);

    // Listpackex order: HGETALL lists TTL'd fields by expiry first.
    db.hset("o", &[("x", "1"), ("y", "2"), ("z", "3")]).unwrap();
    ints(&db, "HPEXPIRE o 500 FIELDS 1 z");
    ints(&db, "HPEXPIRE o 300 FIELDS 1 y");
    let keys: Vec<String> = db
        .hkeys("o")
        .unwrap()
        .into_iter()
        .map(|k| String::from_utf8(k).unwrap())
        .collect();
    assert_eq!(keys, ["y", "z", "x"]);
}

#[test]
fn hincrby_keeps_ttl_and_hset_clears_it() {
    let (db, _) = db();
    db.hset("h", &[("f1", "10"), ("f2", "x")]).unwrap();
    ints(&db, "HPEXPIRE h 20 FIELDS 2 f1 f2");
    assert_eq!(int(&db, "HINCRBY h f1 2"), 12);
    assert_eq!(ints(&db, "HPTTL h FIELDS 1 f1"), [20]);
    assert_eq!(
        run(&db, "HINCRBYFLOAT h f1 2.5").unwrap(),
        Reply::Bulk(b"14.5".to_vec())
    );
    assert_eq!(ints(&db, "HPTTL h FIELDS 1 f1"), [20]);
    assert_eq!(int(&db, "HSET h f2 y"), 0);
    assert_eq!(ints(&db, "HPTTL h FIELDS 2 f1 f2"), [20, -1]);
}

#[test]
fn hgetdel_hgetex_hsetex() {
    let (db, clock) = db();
    assert_eq!(int(&db, "HSETEX h1 PX 5 FIELDS 1 f1 10"), 1);
    clock.advance(6);
    assert_eq!(bulks(&db, "HGETDEL h1 FIELDS 1 f1"), vec![None]);
    assert_eq!(int(&db, "EXISTS h1"), 0);

    db.hset("h", &[("f1", "10"), ("f2", "20"), ("f3", "30")])
        .unwrap();
    assert_eq!(
        bulks(&db, "HGETDEL h FIELDS 4 f1 f1 nope f3"),
        vec![Some("10".into()), None, None, Some("30".into())]
    );
    assert_eq!(
        bulks(&db, "HGETALL h"),
        vec![Some("f2".into()), Some("20".into())]
    );

    // HGETEX: values before the change; PX sets, PERSIST clears, a past
    // time deletes after reading.
    db.hset("g", &[("a", "1"), ("b", "2"), ("c", "3")]).unwrap();
    assert_eq!(
        bulks(&db, "HGETEX g FIELDS 2 a nope"),
        vec![Some("1".into()), None]
    );
    assert_eq!(ints(&db, "HTTL g FIELDS 1 a"), [-1]);
    assert_eq!(
        bulks(&db, "HGETEX g PX 5000 FIELDS 2 a b"),
        vec![Some("1".into()), Some("2".into())]
    );
    assert_eq!(ints(&db, "HPTTL g FIELDS 3 a b c"), [5000, 5000, -1]);
    assert_eq!(encoding(&db, "g"), "listpackex");
    // Each listed field sets its TTL again, moving it before the fields
    // that already have that expiry: b, a, then a again.
    db.hset("o", &[("a", "1"), ("b", "2"), ("c", "3")]).unwrap();
    bulks(&db, "HGETEX o PX 1000 FIELDS 3 a b a");
    assert_eq!(
        bulks(&db, "HKEYS o"),
        vec![Some("a".into()), Some("b".into()), Some("c".into())]
    );
    assert_eq!(
        bulks(&db, "HGETEX g PERSIST FIELDS 1 a"),
        vec![Some("1".into())]
    );
    assert_eq!(ints(&db, "HPTTL g FIELDS 2 a b"), [-1, 5000]);
    assert_eq!(
        bulks(&db, "HGETEX g PXAT 1 FIELDS 3 a b c"),
        vec![Some("1".into()), Some("2".into()), Some("3".into())]
    );
    assert_eq!(int(&db, "EXISTS g"), 0);
    assert_eq!(
        err(&db, "HGETEX g PERSIST 1 FIELDS 1 a"),
        "ERR Mandatory argument FIELDS is missing or not at the right position"
    );
    assert_eq!(
        err(&db, "HGETEX g PXAT 1 1"),
        "ERR Mandatory argument FIELDS is missing or not at the right position"
    );
    assert_eq!(
        err(&db, "HGETEX g EX bla FIELDS 1 a"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&db, "HGETEX g PX -1 FIELDS 1 a"),
        "ERR invalid expire time, must be >= 0"
    );
    assert_eq!(
        err(&db, "HGETEX g FIELDS 0 a"),
        "ERR Number of fields must be a positive integer"
    );

    // HSETEX: FNX / FXX, KEEPTTL, units, past times, and parse errors.
    assert_eq!(int(&db, "HSETEX s FXX FIELDS 1 a 1"), 0);
    assert_eq!(
        int(&db, "EXISTS s"),
        0,
        "FXX on a missing key creates nothing"
    );
    assert_eq!(int(&db, "HSETEX s FNX FIELDS 1 a 1"), 1);
    assert_eq!(int(&db, "HSETEX s FNX FIELDS 2 a 2 b 2"), 0);
    assert_eq!(int(&db, "HSETEX s FXX FIELDS 2 a 2 b 2"), 0);
    assert_eq!(int(&db, "HSETEX s PX 5000 FNX FIELDS 1 b 2"), 1);
    assert_eq!(ints(&db, "HPTTL s FIELDS 2 a b"), [-1, 5000]);
    assert_eq!(int(&db, "HSETEX s KEEPTTL FIELDS 1 b 22"), 1);
    assert_eq!(ints(&db, "HPTTL s FIELDS 1 b"), [5000]);
    assert_eq!(int(&db, "HSETEX s FIELDS 1 b 23"), 1);
    assert_eq!(
        ints(&db, "HPTTL s FIELDS 1 b"),
        [-1],
        "no option drops the TTL"
    );
    assert_eq!(int(&db, "HSETEX s EX 100 FIELDS 1 a 3"), 1);
    assert_eq!(ints(&db, "HTTL s FIELDS 1 a"), [100]);
    assert_eq!(
        int(
            &db,
            &format!("HSETEX s EXAT {} FIELDS 2 a 4 c 4", NOW / 1000 - 1)
        ),
        1
    );
    assert_eq!(bulks(&db, "HMGET s a c"), vec![None, None]);
    assert_eq!(int(&db, "HSETEX e PX 0 FIELDS 1 a 1"), 1);
    assert_eq!(int(&db, "EXISTS e"), 0);
    let arity = "ERR wrong number of arguments for 'hsetex' command";
    for bad in [
        "HSETEX k FIELDS 2 a b",
        "HSETEX k FIELDS 3 a b c d",
        "HSETEX k FIELDS 1 a b unknown",
    ] {
        assert_eq!(err(&db, bad), arity, "{bad}");
    }
    assert_eq!(
        err(&db, "HSETEX k nx FIELDS 1 a b"),
        "ERR unknown argument: nx"
    );
    assert_eq!(
        err(&db, "HSETEX k FXX FNX FIELDS 1 a b"),
        "ERR Only one of FXX or FNX arguments can be specified"
    );
    assert_eq!(
        err(&db, "HSETEX k EX 1 PX 1 FIELDS 1 a b"),
        "ERR Only one of EX, PX, EXAT, PXAT or KEEPTTL arguments can be specified"
    );
    assert_eq!(
        err(&db, "HSETEX k KEEPTTL KEEPTTL FIELDS 1 a b"),
        "ERR Only one of EX, PX, EXAT, PXAT or KEEPTTL arguments can be specified"
    );
    assert_eq!(
        err(&db, "HSETEX k EX FIELDS 1 a b"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(&db, "HSETEX k FIELDS x a b"),
        "ERR invalid number of fields"
    );
    assert_eq!(
        err(&db, "HSETEX k EXAT -1 FIELDS 1 a b"),
        "ERR invalid expire time, must be >= 0"
    );
    assert_eq!(err(&db, "HSETEX k FIELDS 1 a b EX"), arity);
    // A relative time valid on its own but past 2^46 ms once the clock is
    // added is reported where it stands, before the errors after it.
    let far = (1i64 << 46) - NOW + 100;
    assert_eq!(
        err(&db, &format!("HSETEX k PX {far} FNX FNX FIELDS 1 a b")),
        "ERR invalid expire time in 'hsetex' command"
    );
    assert_eq!(
        err(&db, &format!("HSETEX k FNX FNX PX {far} FIELDS 1 a b")),
        "ERR Only one of FXX or FNX arguments can be specified"
    );
    assert_eq!(
        err(
            &db,
            &format!("HSETEX k PX {} FNX FNX FIELDS 1 a b", far - 1000)
        ),
        "ERR Only one of FXX or FNX arguments can be specified"
    );
}

#[test]
fn rename_and_copy_carry_field_ttls() {
    let (db, clock) = db();
    db.hset("a", &[("x", "1"), ("y", "2")]).unwrap();
    ints(&db, "HPEXPIRE a 20 FIELDS 1 x");
    run(&db, "RENAME a b").unwrap();
    assert_eq!(ints(&db, "HPTTL b FIELDS 2 x y"), [20, -1]);
    run(&db, "COPY b c").unwrap();
    assert_eq!(ints(&db, "HPTTL c FIELDS 2 x y"), [20, -1]);
    clock.advance(21);
    assert_eq!(
        db.hgetall("b").unwrap(),
        vec![(b"y".to_vec(), b"2".to_vec())]
    );
    assert_eq!(
        db.hgetall("c").unwrap(),
        vec![(b"y".to_vec(), b"2".to_vec())]
    );
}

#[test]
fn field_ttls_survive_the_log_and_snapshots_as_absolute_times() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let o = || opts(&clock).fsync(FsyncPolicy::Always);
    {
        let db = Db::open_with(dir.path(), o()).unwrap();
        db.hset("small", &[("a", "1"), ("b", "2"), ("c", "3")])
            .unwrap();
        ints(&db, "HPEXPIRE small 1000 FIELDS 1 a");
        ints(&db, "HEXPIRE small 5 FIELDS 1 b");
        let pairs: Vec<(String, String)> = (0..600)
            .map(|i| (format!("f{i}"), format!("v{i}")))
            .collect();
        db.hset("big", &pairs).unwrap();
        ints(&db, "HPEXPIRE big 1000 FIELDS 2 f1 f2");
        int(&db, "HSETEX s PX 2000 FIELDS 1 q 1");
        bulks(&db, "HGETEX s PERSIST FIELDS 1 q");
        db.snapshot().unwrap();
        // After the snapshot, in the log only.
        ints(&db, "HPEXPIRE big 3000 FIELDS 1 f3");
        int(&db, "HINCRBY small a 5");
    }
    let check = |db: &Db| {
        assert_eq!(
            ints(db, "HPEXPIRETIME small FIELDS 3 a b c"),
            [NOW + 1000, NOW + 5000, -1]
        );
        assert_eq!(
            ints(db, "HPEXPIRETIME big FIELDS 4 f1 f2 f3 f4"),
            [NOW + 1000, NOW + 1000, NOW + 3000, -1]
        );
        assert_eq!(ints(db, "HPEXPIRETIME s FIELDS 1 q"), [-1]);
        assert_eq!(db.hget("small", "a").unwrap(), Some(b"6".to_vec()));
        assert_eq!(encoding(db, "small"), "listpackex");
        assert_eq!(encoding(db, "big"), "hashtable");
    };
    {
        let db = Db::open_with(dir.path(), o()).unwrap();
        check(&db);
        db.snapshot().unwrap();
    }
    {
        let db = Db::open_with(dir.path(), o()).unwrap();
        check(&db);
        // Reopened after the times passed: the same visible state as if the
        // process had stayed up.
        clock.advance(1001);
        assert_eq!(db.hget("small", "a").unwrap(), None);
        assert_eq!(db.hlen("big").unwrap(), 600);
        assert_eq!(db.hgetall("big").unwrap().len(), 598);
    }
    clock.advance(5000);
    let db = Db::open_with(dir.path(), o()).unwrap();
    assert_eq!(
        db.hgetall("small").unwrap(),
        vec![(b"c".to_vec(), b"3".to_vec())]
    );
    assert_eq!(db.hgetall("big").unwrap().len(), 597);
}

#[test]
fn key_ttl_and_field_ttls_fire_independently() {
    // The key's TTL first: the key goes, HTTL answers -2.
    let (db, clock) = db();
    db.hset("k", &[("a", "1"), ("b", "2")]).unwrap();
    ints(&db, "HPEXPIRE k 500 FIELDS 1 a");
    int(&db, "PEXPIRE k 100");
    assert_eq!(ints(&db, "HPTTL k FIELDS 1 a"), [500]);
    assert_eq!(int(&db, "PTTL k"), 100);
    clock.advance(101);
    assert_eq!(ints(&db, "HTTL k FIELDS 1 a"), [-2]);
    assert_eq!(int(&db, "EXISTS k"), 0);
    // The only field first: the key goes with it, its TTL too.
    db.hset("j", &[("a", "1")]).unwrap();
    ints(&db, "HPEXPIRE j 50 FIELDS 1 a");
    int(&db, "PEXPIRE j 1000");
    clock.advance(51);
    assert_eq!(db.hget("j", "a").unwrap(), None);
    assert_eq!(int(&db, "EXISTS j"), 0);
    assert_eq!(int(&db, "PTTL j"), -2);
}

#[test]
fn hset_discards_a_ttl_set_by_hgetex_and_expired_fields_read_as_nil() {
    let (db, clock) = db();
    db.hset("h", &[("f1", "1"), ("f2", "2")]).unwrap();
    bulks(&db, "HGETEX h PX 100 FIELDS 2 f1 f2");
    db.hset("h", &[("f1", "new")]).unwrap();
    assert_eq!(ints(&db, "HPTTL h FIELDS 2 f1 f2"), [-1, 100]);
    assert_eq!(int(&db, "HSETEX t PX 1 FIELDS 2 a 1 b 2"), 1);
    clock.advance(2);
    assert_eq!(bulks(&db, "HGETEX t FIELDS 2 a b"), vec![None, None]);
    assert_eq!(int(&db, "EXISTS t"), 0, "lazily emptied");
}

#[test]
fn a_big_dict_whose_fields_all_expire_goes_away_without_reads() {
    let (db, clock) = db();
    for chunk in 0..4 {
        let pairs: Vec<(String, String)> = (0..1024)
            .map(|i| (format!("f{}", chunk * 1024 + i), "v".to_string()))
            .collect();
        db.hset("big", &pairs).unwrap();
        let names: Vec<String> = pairs.into_iter().map(|(f, _)| f).collect();
        assert!(db
            .hpexpire("big", 10, &names)
            .unwrap()
            .iter()
            .all(|&c| c == 1));
    }
    assert_eq!(encoding(&db, "big"), "hashtable");
    assert_eq!(db.hlen("big").unwrap(), 4096);
    clock.advance(11);
    // The sweep works in bounded batches (200 fields under a shard's lock)
    // but repeats them while fields are due, for up to 25 ms a pass.
    let mut calls = 0;
    while db.exists(&["big"]).unwrap() == 1 {
        db.expire_cycle().unwrap();
        calls += 1;
        assert!(calls < 1000, "the sweep never finished");
    }
    assert!(calls <= 10, "4,096 fields took {calls} sweep calls");
}

/// HGETEX with a time not in the future deletes each field after its
/// reply: a field named twice reads as missing the second time (Redis 8;
/// Valkey 9.1 answers the same), and the deletion is logged once.
#[test]
fn hgetex_into_the_past_deletes_a_repeated_field_after_its_first_reply() {
    let (db, _clock) = db();
    int(&db, "HSET k a 1 b 2");
    assert_eq!(
        bulks(&db, "HGETEX k EX 0 FIELDS 3 a a b"),
        [Some("1".into()), None, Some("2".into())]
    );
    assert_eq!(int(&db, "EXISTS k"), 0);
    // With a future time every occurrence answers (and sets the TTL).
    int(&db, "HSET k a 1 b 2");
    assert_eq!(
        bulks(&db, "HGETEX k PX 100000 FIELDS 3 a a b"),
        [Some("1".into()), Some("1".into()), Some("2".into())]
    );
}

/// Redis 8's conversions (its `t_hash.c`): every HGETEX option makes a
/// listpack a `listpackex` (PERSIST too), and HSETEX converts to a
/// `hashtable` up front, whatever its TTL option, when more pairs are
/// given than the entries limit or an argument passes the value limit,
/// also when its fields are deleted at once by a time in the past.
#[test]
fn hgetex_and_hsetex_convert_as_redis_8_does() {
    let (db, _clock) = db();
    int(&db, "HSET p a 1");
    bulks(&db, "HGETEX p PERSIST FIELDS 1 a");
    assert_eq!(encoding(&db, "p"), "listpackex");
    let mut argv: Vec<String> = "HSETEX n FIELDS 513"
        .split(' ')
        .map(str::to_owned)
        .collect();
    for _ in 0..513 {
        argv.push("f".into());
        argv.push("1".into());
    }
    db.execute(&argv).unwrap();
    assert_eq!(encoding(&db, "n"), "hashtable");
    assert_eq!(int(&db, "HLEN n"), 1);
    let long = "v".repeat(70);
    int(&db, "HSET d a 1");
    assert_eq!(int(&db, &format!("HSETEX d EX 0 FIELDS 1 b {long}")), 1);
    assert_eq!(encoding(&db, "d"), "hashtable");
    assert_eq!(int(&db, "HLEN d"), 1);
    for (key, opt) in [("x", "FNX"), ("y", "FXX")] {
        int(&db, &format!("HSET {key} a 1"));
        let field = if opt == "FXX" { "a" } else { "b" };
        assert_eq!(
            int(&db, &format!("HSETEX {key} {opt} FIELDS 1 {field} {long}")),
            1
        );
        assert_eq!(encoding(&db, key), "hashtable", "{opt}");
    }
    // Without a reason to convert, HSETEX without a time keeps a listpack.
    int(&db, "HSET s a 1");
    assert_eq!(int(&db, "HSETEX s FIELDS 1 b 2"), 1);
    assert_eq!(encoding(&db, "s"), "listpack");
}

/// Active expiry works harder when expired fields abound, as Redis's does:
/// 4,096 fields past their TTL go in one pass (a pass that stopped at 200
/// fields of a hash would keep the key about two seconds; Redis's own test
/// waits about one).
#[test]
fn active_expiry_removes_thousands_of_expired_fields_in_one_pass() {
    let (db, clock) = db();
    let mut argv: Vec<String> = "HSET big".split(' ').map(str::to_owned).collect();
    for i in 0..4096 {
        argv.push(format!("f{i}"));
        argv.push("v".into());
    }
    db.execute(&argv).unwrap();
    let mut argv: Vec<String> = "HPEXPIRE big 10 FIELDS 4096"
        .split(' ')
        .map(str::to_owned)
        .collect();
    argv.extend((0..4096).map(|i| format!("f{i}")));
    db.execute(&argv).unwrap();
    clock.advance(20);
    // One pass on a quiet machine; a pass stops after 25 ms, so a busy one
    // may need a few (200-field batches alone took 21).
    let mut passes = 0;
    while db.dbsize().unwrap() > 0 {
        db.expire_cycle().unwrap();
        passes += 1;
        assert!(
            passes <= 10,
            "4,096 expired fields took more than 10 passes"
        );
    }
}

/// `Db::info` counts what expiry removed, lazily or by the sweep: keys
/// (Redis's `expired_keys`) and fields (its `expired_subkeys`).
#[test]
fn info_counts_expired_keys_and_fields() {
    let (db, clock) = db();
    int(&db, "HSET a f 1");
    int(&db, "HSET b f 1");
    int(&db, "PEXPIRE a 10");
    int(&db, "PEXPIRE b 10");
    int(&db, "HSET h x 1 y 2 z 3");
    ints(&db, "HPEXPIRE h 10 FIELDS 2 x y");
    clock.advance(20);
    assert_eq!(db.hget("a", "f").unwrap(), None); // lazily
    assert_eq!(db.hget("h", "x").unwrap(), None); // lazily, one field
    db.expire_cycle().unwrap(); // b and y
    let info = db.info().unwrap();
    assert_eq!((info.expired_keys, info.expired_fields), (2, 2));
    assert_eq!(info.to_json()["expired_fields"], 2);
}
