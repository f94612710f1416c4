//! Key expiry with an injected clock: lazy deletion on access, active
//! deletion without reads, TTL arithmetic, and the background sweeper.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashkv::{Db, ManualClock, Options, Reply};

fn db_at(now: i64, active: bool) -> (Db, Arc<ManualClock>) {
    let clock = ManualClock::new(now);
    let db = Db::in_memory(
        Options::default()
            .clock(clock.clone())
            .active_expiry(active),
    );
    (db, clock)
}

fn int(db: &Db, argv: &[&str]) -> i64 {
    db.execute(argv)
        .unwrap()
        .as_integer()
        .unwrap_or_else(|| panic!("{argv:?} did not return an integer"))
}

#[test]
fn expired_keys_are_invisible_and_lazily_deleted() {
    let (db, clock) = db_at(1_000_000, false);
    db.hset("s", &[("a", "1")]).unwrap();
    assert_eq!(int(&db, &["PEXPIRE", "s", "1500"]), 1);
    assert_eq!(int(&db, &["PTTL", "s"]), 1500);
    assert_eq!(int(&db, &["TTL", "s"]), 2); // 1.5 s rounds to nearest
    assert_eq!(int(&db, &["PEXPIRETIME", "s"]), 1_001_500);
    assert_eq!(int(&db, &["EXPIRETIME", "s"]), 1002);
    clock.advance(1500);
    // Expired when now > expire time, not at equality.
    assert_eq!(int(&db, &["EXISTS", "s"]), 1);
    clock.advance(1);
    assert_eq!(int(&db, &["DBSIZE"]), 1, "still stored until touched");
    assert_eq!(db.hget("s", "a").unwrap(), None);
    assert_eq!(int(&db, &["DBSIZE"]), 0, "the read deleted it");
    assert_eq!(int(&db, &["TTL", "s"]), -2);
}

#[test]
fn writes_to_an_expired_key_start_from_empty() {
    let (db, clock) = db_at(5_000, false);
    db.hset("h", &[("old", "1")]).unwrap();
    db.execute(&["PEXPIRE", "h", "10"]).unwrap();
    clock.advance(11);
    assert_eq!(db.hset("h", &[("new", "2")]).unwrap(), 1);
    assert_eq!(
        db.hgetall("h").unwrap(),
        vec![(b"new".to_vec(), b"2".to_vec())]
    );
    assert_eq!(int(&db, &["TTL", "h"]), -1, "the new key has no TTL");
}

#[test]
fn expire_conditions_and_immediate_deletion() {
    let (db, _clock) = db_at(10_000, false);
    db.hset("k", &[("f", "v")]).unwrap();
    assert_eq!(int(&db, &["EXPIRE", "k", "100", "XX"]), 0);
    assert_eq!(int(&db, &["EXPIRE", "k", "100", "GT"]), 0);
    assert_eq!(int(&db, &["EXPIRE", "k", "100", "LT"]), 1);
    assert_eq!(int(&db, &["EXPIRE", "k", "50", "GT"]), 0);
    assert_eq!(int(&db, &["EXPIRE", "k", "200", "GT"]), 1);
    assert_eq!(int(&db, &["TTL", "k"]), 200);
    assert_eq!(int(&db, &["EXPIRE", "k", "300", "NX"]), 0);
    assert_eq!(int(&db, &["PERSIST", "k"]), 1);
    assert_eq!(int(&db, &["PERSIST", "k"]), 0);
    assert_eq!(int(&db, &["TTL", "k"]), -1);
    assert_eq!(int(&db, &["EXPIRE", "k", "-1"]), 1);
    assert_eq!(int(&db, &["EXISTS", "k"]), 0);
    assert_eq!(
        db.execute(&["EXPIRE", "k", "9223372036854775807"])
            .unwrap_err()
            .to_string(),
        "ERR invalid expire time in 'expire' command"
    );
}

#[test]
fn rename_and_copy_carry_the_ttl() {
    let (db, _clock) = db_at(0, false);
    db.hset("a", &[("f", "v")]).unwrap();
    db.execute(&["PEXPIRE", "a", "5000"]).unwrap();
    db.execute(&["COPY", "a", "b"]).unwrap();
    db.execute(&["RENAME", "a", "c"]).unwrap();
    assert_eq!(int(&db, &["PTTL", "b"]), 5000);
    assert_eq!(int(&db, &["PTTL", "c"]), 5000);
    assert_eq!(int(&db, &["EXISTS", "a"]), 0);
}

#[test]
fn active_expiry_reclaims_keys_nobody_reads() {
    let (db, clock) = db_at(1_000, false);
    for i in 0..5_000 {
        let k = format!("session:{i}");
        db.hset(&k, &[("user", "u"), ("csrf", "token")]).unwrap();
        if i % 2 == 0 {
            db.execute(&["PEXPIRE", k.as_str(), "100"]).unwrap();
        }
    }
    assert_eq!(int(&db, &["DBSIZE"]), 5_000);
    clock.advance(101);
    let mut cycles = 0;
    while int(&db, &["DBSIZE"]) > 2_500 {
        db.expire_cycle().unwrap();
        cycles += 1;
        assert!(cycles < 1_000, "active expiry made no progress");
    }
    assert_eq!(int(&db, &["DBSIZE"]), 2_500);
    assert_eq!(int(&db, &["EXISTS", "session:1"]), 1);
}

#[test]
fn background_sweeper_deletes_without_reads() {
    let db = Db::in_memory(Options::default());
    for i in 0..200 {
        let k = format!("tmp:{i}");
        db.hset(&k, &[("f", "v")]).unwrap();
        db.execute(&["PEXPIRE", k.as_str(), "20"]).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.execute(&["DBSIZE"]).unwrap() != Reply::Integer(0) {
        assert!(
            Instant::now() < deadline,
            "sweeper did not reclaim expired keys"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
