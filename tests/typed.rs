//! The typed API beyond the serde mapping (which `src/typed/tests.rs`
//! covers): iterators over keys and fields, alone and beside writers, and
//! `Db::sync` as a durability point under `FsyncPolicy::No`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hashkv::{Db, FsyncPolicy, ManualClock, Options};

fn opts() -> Options {
    Options::default().active_expiry(false).no_auto_snapshots()
}

#[test]
fn iter_keys_returns_each_key_once_and_skips_expired_ones() {
    let clock = ManualClock::new(1_000_000);
    let db = Db::in_memory(opts().clock(clock.clone()));
    for i in 0..10_000 {
        db.hset(format!("k:{i:05}"), &[("f", "v")]).unwrap();
    }
    for i in 0..100 {
        db.pexpire(format!("k:{i:05}"), 10).unwrap();
    }
    clock.advance(20);
    let keys: Vec<Vec<u8>> = db.iter_keys().collect();
    let distinct: HashSet<&Vec<u8>> = keys.iter().collect();
    assert_eq!(keys.len(), 9_900, "each key once, expired ones left out");
    assert_eq!(distinct.len(), 9_900);
    assert!(!distinct.contains(&b"k:00050".to_vec()));
    let matching: HashSet<Vec<u8>> = db.iter_keys_matching("k:099*").collect();
    let expected: HashSet<Vec<u8>> = (9_900..10_000)
        .map(|i| format!("k:{i:05}").into_bytes())
        .collect();
    assert_eq!(matching, expected);
    assert_eq!(Db::in_memory(opts()).iter_keys().count(), 0);
}

#[test]
fn iter_fields_walks_compact_and_dict_hashes_and_skips_expired_fields() {
    let clock = ManualClock::new(1_000_000);
    let db = Db::in_memory(opts().clock(clock.clone()));
    db.hset("small", &[("a", "1"), ("b", "2")]).unwrap();
    let big: Vec<(String, String)> = (0..3_000)
        .map(|i| (format!("f{i}"), format!("v{i}")))
        .collect();
    db.hset("big", &big).unwrap();
    assert_eq!(
        db.object_encoding("big").unwrap().as_deref(),
        Some("hashtable")
    );
    db.hpexpire("big", 10, &["f0", "f1"]).unwrap();
    clock.advance(20);
    let mut small: Vec<_> = db.iter_fields("small").collect();
    small.sort();
    assert_eq!(
        small,
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec())
        ]
    );
    let got: Vec<(Vec<u8>, Vec<u8>)> = db.iter_fields("big").collect();
    let distinct: HashSet<&Vec<u8>> = got.iter().map(|(f, _)| f).collect();
    assert_eq!(got.len(), 2_998);
    assert_eq!(distinct.len(), 2_998);
    assert!(!distinct.contains(&b"f0".to_vec()));
    assert!(got
        .iter()
        .all(|(f, v)| f[1..] == v[1..] && f[0] == b'f' && v[0] == b'v'));
    assert_eq!(db.iter_fields("missing").count(), 0);
}

/// Keys (fields) present throughout a walk are all returned while other
/// threads add and remove others (growing and shrinking the tables).
#[test]
fn iterators_beside_writers_miss_nothing_present_throughout() {
    let db = Db::in_memory(opts());
    for i in 0..5_000 {
        db.hset(format!("stable:{i}"), &[("f", "v")]).unwrap();
    }
    let stable_fields: Vec<(String, String)> = (0..2_000)
        .map(|i| (format!("stable{i}"), "v".to_owned()))
        .collect();
    db.hset("wide", &stable_fields).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("churn:{}", n % 20_000);
                if n % 3 == 2 {
                    db.del(&[&k]).unwrap();
                    db.hdel("wide", &[format!("churn{}", n % 8_000)]).unwrap();
                } else {
                    db.hset(&k, &[("f", "v")]).unwrap();
                    db.hset("wide", &[(format!("churn{}", n % 8_000), "v")])
                        .unwrap();
                }
                n += 1;
            }
            n
        })
    };
    for _ in 0..5 {
        let seen: HashSet<Vec<u8>> = db.iter_keys().collect();
        for i in 0..5_000 {
            assert!(
                seen.contains(format!("stable:{i}").as_bytes()),
                "stable:{i} missed"
            );
        }
        let fields: HashSet<Vec<u8>> = db.iter_fields("wide").map(|(f, _)| f).collect();
        for i in 0..2_000 {
            assert!(
                fields.contains(format!("stable{i}").as_bytes()),
                "stable{i} missed"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 0);
}

/// The child half of `sync_then_sigkill_keeps_what_was_synced`: writes
/// under `FsyncPolicy::No`, calls `Db::sync` every 50 writes and says so.
#[test]
fn sync_child() {
    let Ok(dir) = std::env::var("HASHKV_SYNC_CHILD_DIR") else {
        return; // only as the child
    };
    let db = Db::open_with(&dir, opts().fsync(FsyncPolicy::No)).unwrap();
    for i in 0.. {
        db.hset(format!("k{i}"), &[("n", i.to_string())]).unwrap();
        if i % 50 == 49 {
            db.sync().unwrap();
            println!("synced {i}");
        }
    }
}

#[test]
fn sync_then_sigkill_keeps_what_was_synced() {
    for round in 0..5 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "sync_child", "--nocapture", "--test-threads=1"])
            .env("HASHKV_SYNC_CHILD_DIR", &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut last = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("synced ") {
                last = Some(n.parse::<u64>().unwrap());
                if last >= Some(1_000 + round * 500) {
                    break;
                }
            }
        }
        // SIGKILL (Child::kill sends it on Unix).
        child.kill().unwrap();
        child.wait().unwrap();
        let last = last.expect("the child synced");
        let db = Db::open_with(&dir, opts()).unwrap();
        for i in 0..=last {
            assert_eq!(
                db.hget(format!("k{i}"), "n").unwrap(),
                Some(i.to_string().into_bytes()),
                "round {round}: k{i} was synced (up to {last}) but is missing"
            );
        }
    }
}
