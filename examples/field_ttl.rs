//! Per-field expiry (Redis 7.4+): one hash per user holding cached API
//! responses, each field expiring on its own (`HSETEX ... PX`), one-time
//! login codes read and consumed at once (`HGETDEL`), a remember-me flag
//! made permanent (`HPERSIST`). Time is injected (`ManualClock`) so the
//! minutes pass in an instant. Ends with what field TTLs cost in memory: a
//! compact hash stays compact (`listpackex`), one without TTLs pays nothing
//! and shares its field names with the hashes that have the same ones,
//! which a hash with field TTLs does not.
//!
//! Run: `cargo run --example field_ttl`

use hashkv::{Db, ManualClock, Options, Reply};

const MINUTE: i64 = 60_000;

fn memory(db: &Db, keys: &[String]) -> hashkv::Result<i64> {
    let mut total = 0;
    for k in keys {
        total += db.memory_usage(k)?.unwrap_or(0);
    }
    Ok(total)
}

fn run() -> hashkv::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let clock = ManualClock::new(1_700_000_000_000);
    let opts = || Options::default().clock(clock.clone());
    let db = Db::open_with(dir.path(), opts())?;

    // Cached responses: the profile for 10 minutes, the feed for 1.
    db.hsetex_px(
        "cache:alice",
        10 * MINUTE,
        &[("profile", "{\"name\":\"Alice\"}")],
    )?;
    db.hsetex_px("cache:alice", MINUTE, &[("feed", "[1,2,3]")])?;
    db.hset("cache:alice", &[("remember_me", "1")])?;
    db.hsetex_px("cache:alice", 5 * MINUTE, &[("login_code", "493021")])?;
    println!(
        "cache:alice fields {:?}, ms left {:?}",
        ["profile", "feed", "remember_me", "login_code"],
        db.hpttl(
            "cache:alice",
            &["profile", "feed", "remember_me", "login_code"]
        )?
    );
    println!(
        "OBJECT ENCODING cache:alice -> {}",
        db.object_encoding("cache:alice")?.unwrap_or_default()
    );

    // The one-time code is read and removed in one command.
    let code = db.hgetdel("cache:alice", &["login_code"])?;
    println!(
        "HGETDEL login_code -> {:?}; again -> {:?}",
        code[0].as_deref().map(String::from_utf8_lossy),
        db.hgetdel("cache:alice", &["login_code"])?[0]
    );
    assert_eq!(code[0].as_deref(), Some(&b"493021"[..]));

    clock.advance(2 * MINUTE);
    println!("2 minutes later:");
    println!(
        "  feed -> {:?}, profile -> {:?}",
        db.hget("cache:alice", "feed")?,
        db.hget("cache:alice", "profile")?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    );
    assert_eq!(db.hget("cache:alice", "feed")?, None);

    // A field given a TTL by mistake can be made permanent again.
    db.hpexpire("cache:alice", MINUTE, &["remember_me"])?;
    println!(
        "HPERSIST remember_me -> {:?}",
        db.hpersist("cache:alice", &["remember_me"])?
    );

    // Field TTLs are stored as absolute times: after a restart and 9 more
    // minutes the profile has expired, remember_me has not.
    drop(db);
    let db = Db::open_with(dir.path(), opts())?;
    clock.advance(9 * MINUTE);
    let left = db.hgetall("cache:alice")?;
    println!(
        "after a restart and 9 more minutes: {:?}",
        left.iter()
            .map(|(f, v)| format!(
                "{}={}",
                String::from_utf8_lossy(f),
                String::from_utf8_lossy(v)
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(left, vec![(b"remember_me".to_vec(), b"1".to_vec())]);

    // What TTLs cost: 10,000 hashes of 8 fields, without TTLs, and with a
    // TTL on 2 of the fields (still compact: `listpackex`).
    let plain: Vec<String> = (0..10_000).map(|i| format!("plain:{i}")).collect();
    let timed: Vec<String> = (0..10_000).map(|i| format!("timed:{i}")).collect();
    for (p, t) in plain.iter().zip(&timed) {
        let pairs: Vec<(String, String)> = (0..8)
            .map(|f| (format!("f{f}"), format!("value-{f}")))
            .collect();
        db.hset(p, &pairs)?;
        db.hset(t, &pairs)?;
        db.hpexpire(t, 60 * MINUTE, &["f0", "f1"])?;
    }
    let (a, b) = (memory(&db, &plain)?, memory(&db, &timed)?);
    println!(
        "MEMORY USAGE, 10,000 hashes x 8 fields: {} bytes/hash without TTLs (field names shared), {} with 2 field TTLs ({})",
        a / 10_000,
        b / 10_000,
        db.object_encoding(&timed[0])?.unwrap_or_default()
    );
    // The plain hashes alone in a database of their own, with and without
    // shared field names (tables fill whole 32 KiB pages, so hashes are
    // compared in databases of the same contents).
    let alone = |shapes: bool| -> hashkv::Result<i64> {
        let d = Db::in_memory(Options::default().shapes(shapes));
        for p in &plain {
            let pairs: Vec<(String, String)> = (0..8)
                .map(|f| (format!("f{f}"), format!("value-{f}")))
                .collect();
            d.hset(p, &pairs)?;
        }
        memory(&d, &plain)
    };
    let (shared, unshared) = (alone(true)?, alone(false)?);
    println!(
        "  alone in a database: {} bytes/hash with shared field names, {} without (Options::shapes(false))",
        shared / 10_000,
        unshared / 10_000
    );
    assert!(shared < unshared && a < b, "{a} {b} {shared} {unshared}");
    assert_eq!(
        db.object_encoding(&timed[0])?.as_deref(),
        Some("listpackex")
    );
    match db.execute(&["HTTL", &timed[0], "FIELDS", "2", "f0", "f2"])? {
        Reply::Array(v) => println!("HTTL {} FIELDS 2 f0 f2 -> {:?}", timed[0], v),
        other => println!("{other:?}"),
    }
    Ok(())
}

fn main() -> hashkv::Result<()> {
    run()
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs() {
        super::run().unwrap();
    }
}
