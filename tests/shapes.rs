//! Shared field lists ("shapes") and packed hex values change memory only.
//!
//! - A property test runs random commands (every hash command, key TTLs,
//!   field TTLs with a moving clock, RENAME/COPY, conversions at small
//!   thresholds, snapshots with a reopen, reopens that replay the log) on
//!   two databases in directories: one with shapes and packing (the
//!   defaults) and one without. Every reply must be the same.
//! - Deterministic tests: profiles share their field list and take less
//!   memory, snapshots store it once and reopen shaped, a hash leaving its
//!   shape (new field, removed field, conversion, field TTL) behaves as a
//!   plain one, and a version 1 snapshot written by the previous format
//!   loads.

use std::path::Path;
use std::sync::Arc;

use hashkv::{Db, ManualClock, Options, Reply};
use proptest::prelude::*;

const T0: i64 = 1_900_000_000_000;

fn opts(clock: &Arc<ManualClock>, entries: usize, value: usize) -> Options {
    Options::default()
        .clock(clock.clone())
        .active_expiry(false)
        .no_auto_snapshots()
        .hash_max_listpack_entries(entries)
        .hash_max_listpack_value(value)
}

#[derive(Debug, Clone)]
enum Op {
    Cmd(Vec<Vec<u8>>),
    Advance(u16),
    Snapshot,
    Reopen,
}

fn key(k: u8) -> Vec<u8> {
    format!("k{}", k % 6).into_bytes()
}

/// A small pool; 0..4 are the "profile" fields written together.
fn field(f: u8) -> Vec<u8> {
    match f % 10 {
        0 => b"name".to_vec(),
        1 => b"email".to_vec(),
        2 => b"sha".to_vec(),
        3 => b"joined".to_vec(),
        4 => b"17".to_vec(),
        5 => b"a-somewhat-long-field-name".to_vec(),
        n => format!("x{n}").into_bytes(),
    }
}

fn value(v: u8) -> Vec<u8> {
    match v % 9 {
        0 => (i64::from(v) * 37 - 2000).to_string().into_bytes(),
        1 => format!("{:040x}", u128::from(v) * 0x1234_5678_9abc_def1).into_bytes(),
        2 => format!("{:032X}", u128::from(v) * 0xfeed_f00d).into_bytes(),
        3 => format!("{v:010}").into_bytes(),
        4 => format!("{:07x}", v).into_bytes(),
        5 => format!("{v}.25").into_bytes(),
        6 => format!("user{v}@example.com").into_bytes(),
        7 => vec![b'z'; usize::from(v % 70)],
        _ => format!("{:08x}", u32::from(v) * 0x0101_0101).into_bytes(),
    }
}

fn argv(parts: &[&[u8]]) -> Op {
    Op::Cmd(parts.iter().map(|p| p.to_vec()).collect())
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let k = any::<u8>();
    let f = any::<u8>();
    let v = any::<u8>();
    prop_oneof![
        6 => (k, prop::collection::vec(v, 4)).prop_map(|(k, vs)| {
            // The profile fields, in order: a shared list.
            let mut a = vec![b"HSET".to_vec(), key(k)];
            for (i, v) in vs.into_iter().enumerate() {
                a.push(field(i as u8));
                a.push(value(v));
            }
            Op::Cmd(a)
        }),
        4 => (k, prop::collection::vec((f, v), 1..4)).prop_map(|(k, pairs)| {
            let mut a = vec![b"HSET".to_vec(), key(k)];
            for (f, v) in pairs {
                a.push(field(f));
                a.push(value(v));
            }
            Op::Cmd(a)
        }),
        1 => (k, f, v).prop_map(|(k, f, v)| argv(&[b"HSETNX", &key(k), &field(f), &value(v)])),
        2 => (k, f).prop_map(|(k, f)| argv(&[b"HDEL", &key(k), &field(f)])),
        1 => (k, f, any::<i8>()).prop_map(|(k, f, d)| argv(&[b"HINCRBY", &key(k), &field(f), d.to_string().as_bytes()])),
        1 => (k, f).prop_map(|(k, f)| argv(&[b"HINCRBYFLOAT", &key(k), &field(f), b"1.5"])),
        2 => (k, f).prop_map(|(k, f)| argv(&[b"HGET", &key(k), &field(f)])),
        1 => (k, f, f).prop_map(|(k, a, b)| argv(&[b"HMGET", &key(k), &field(a), &field(b)])),
        2 => k.prop_map(|k| argv(&[b"HGETALL", &key(k)])),
        1 => k.prop_map(|k| argv(&[b"HKEYS", &key(k)])),
        1 => k.prop_map(|k| argv(&[b"HVALS", &key(k)])),
        1 => k.prop_map(|k| argv(&[b"HLEN", &key(k)])),
        1 => (k, f).prop_map(|(k, f)| argv(&[b"HSTRLEN", &key(k), &field(f)])),
        1 => (k, f).prop_map(|(k, f)| argv(&[b"HEXISTS", &key(k), &field(f)])),
        1 => k.prop_map(|k| argv(&[b"HSCAN", &key(k), b"0", b"COUNT", b"1000"])),
        1 => k.prop_map(|k| argv(&[b"HRANDFIELD", &key(k), b"1000", b"WITHVALUES"])),
        1 => k.prop_map(|k| argv(&[b"OBJECT", b"ENCODING", &key(k)])),
        1 => k.prop_map(|k| argv(&[b"DEL", &key(k)])),
        1 => (k, k).prop_map(|(a, b)| argv(&[b"RENAME", &key(a), &key(b)])),
        1 => (k, k).prop_map(|(a, b)| argv(&[b"COPY", &key(a), &key(b)])),
        1 => (k, 1u16..500).prop_map(|(k, ms)| argv(&[b"PEXPIRE", &key(k), ms.to_string().as_bytes()])),
        1 => k.prop_map(|k| argv(&[b"PERSIST", &key(k)])),
        1 => k.prop_map(|k| argv(&[b"PTTL", &key(k)])),
        2 => (k, f, 1u16..500).prop_map(|(k, f, ms)| argv(&[b"HPEXPIRE", &key(k), ms.to_string().as_bytes(), b"FIELDS", b"1", &field(f)])),
        1 => (k, f).prop_map(|(k, f)| argv(&[b"HPERSIST", &key(k), b"FIELDS", b"1", &field(f)])),
        1 => (k, f).prop_map(|(k, f)| argv(&[b"HPTTL", &key(k), b"FIELDS", b"1", &field(f)])),
        2 => (1u16..400).prop_map(Op::Advance),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Reopen),
    ]
}

fn reply(db: &Db, a: &[Vec<u8>]) -> Reply {
    match db.execute(a) {
        Ok(r) => r,
        Err(e) => Reply::Error(e.to_string()),
    }
}

struct Pair {
    with: Db,
    without: Db,
}

fn open(dir: &Path, o: Options) -> Db {
    Db::open_with(dir, o).expect("open")
}

fn run(ops: &[Op], entries: usize, value: usize) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let (da, db_) = (tmp.path().join("with"), tmp.path().join("without"));
    let clock = ManualClock::new(T0);
    let on = opts(&clock, entries, value);
    let off = opts(&clock, entries, value).shapes(false).pack_hex(false);
    let mut p = Some(Pair {
        with: open(&da, on.clone()),
        without: open(&db_, off.clone()),
    });
    for (i, op) in ops.iter().enumerate() {
        let pair = p.as_ref().expect("open");
        match op {
            Op::Cmd(a) => {
                let (x, y) = (reply(&pair.with, a), reply(&pair.without, a));
                prop_assert_eq!(
                    &x,
                    &y,
                    "step {}: {:?}",
                    i,
                    String::from_utf8_lossy(&a.concat())
                );
            }
            Op::Advance(ms) => clock.advance(i64::from(*ms)),
            Op::Snapshot | Op::Reopen => {
                if matches!(op, Op::Snapshot) {
                    pair.with.snapshot().unwrap();
                    pair.without.snapshot().unwrap();
                }
                // Reopening replays the log after the snapshot (if any).
                let old = p.take().expect("open");
                old.with.close().unwrap();
                old.without.close().unwrap();
                p = Some(Pair {
                    with: open(&da, on.clone()),
                    without: open(&db_, off.clone()),
                });
            }
        }
    }
    // Finally every key, read back the same way.
    let pair = p.as_ref().expect("open");
    for k in 0..6u8 {
        for cmd in [&b"HGETALL"[..], b"PTTL", b"OBJECT"] {
            let a: Vec<Vec<u8>> = if cmd == b"OBJECT" {
                vec![cmd.to_vec(), b"ENCODING".to_vec(), key(k)]
            } else {
                vec![cmd.to_vec(), key(k)]
            };
            prop_assert_eq!(reply(&pair.with, &a), reply(&pair.without, &a));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn prop_same_replies_with_and_without_shapes_and_packing(
        ops in prop::collection::vec(op_strategy(), 1..120)
    ) {
        run(&ops, 512, 64)?;
    }

    #[test]
    fn prop_same_replies_at_small_thresholds(
        ops in prop::collection::vec(op_strategy(), 1..120)
    ) {
        // Conversions: 5 fields or a 20-byte value make a dict.
        run(&ops, 5, 20)?;
    }
}

fn profile(i: u32) -> Vec<(String, String)> {
    vec![
        ("username".into(), format!("user{i}")),
        ("email".into(), format!("user{i}@example.com")),
        ("joined".into(), (1_600_000_000 + i).to_string()),
        (
            "sha".into(),
            format!("{:040x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15),
        ),
    ]
}

fn memory(db: &Db, n: u32) -> i64 {
    (0..n)
        .map(|i| db.memory_usage(format!("user:{i}")).unwrap().unwrap())
        .sum()
}

#[test]
fn profiles_share_their_field_list_and_take_less_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let n = 5000;
    let shaped = open(&tmp.path().join("a"), opts(&clock, 512, 64));
    let plain = open(
        &tmp.path().join("b"),
        opts(&clock, 512, 64).shapes(false).pack_hex(false),
    );
    for db in [&shaped, &plain] {
        for i in 0..n {
            db.hset(format!("user:{i}"), &profile(i)).unwrap();
        }
    }
    let info = shaped.info().unwrap();
    // All but the first hash of each shard share the list.
    assert!(info.shaped_hashes >= u64::from(n) - 64, "{info:?}");
    assert!(info.shapes >= 1 && info.shapes <= 64, "{info:?}");
    assert_eq!(plain.info().unwrap().shaped_hashes, 0);
    let (a, b) = (memory(&shaped, n), memory(&plain, n));
    // Field names (30 bytes) and 20 of the digest's 40 bytes are saved.
    assert!(a * 100 < b * 75, "shaped {a} vs plain {b}");
    for i in [0, 1, 77, n - 1] {
        let k = format!("user:{i}");
        assert_eq!(
            shaped.execute(&["HGETALL", &k]).unwrap(),
            plain.execute(&["HGETALL", &k]).unwrap()
        );
        assert_eq!(
            shaped.object_encoding(&k).unwrap().as_deref(),
            Some("listpack")
        );
    }
    // The snapshot stores the list once: much smaller than without shapes
    // even after LZ4 (which finds the repeated names too).
    let sa = shaped.snapshot().unwrap();
    let sb = plain.snapshot().unwrap();
    assert!(sa.bytes < sb.bytes, "{} vs {}", sa.bytes, sb.bytes);
    drop(shaped);
    let again = open(&tmp.path().join("a"), opts(&clock, 512, 64));
    // Loading interns each shape first: the hashes that were the first of
    // their list in a shard join it now.
    let after = again.info().unwrap();
    assert!(after.shaped_hashes >= info.shaped_hashes, "{after:?}");
    // (Table overheads differ after a load, which sizes the key table.)
    let c = memory(&again, n);
    assert!(c * 100 < b * 75, "reopened {c} vs plain {b}");
    // Opened without shapes, the same snapshot gives plain hashes.
    drop(again);
    let unshaped = open(&tmp.path().join("a"), opts(&clock, 512, 64).shapes(false));
    assert_eq!(unshaped.info().unwrap().shaped_hashes, 0);
    assert_eq!(
        unshaped.execute(&["HGETALL", "user:77"]).unwrap(),
        plain.execute(&["HGETALL", "user:77"]).unwrap()
    );
}

#[test]
fn a_hash_leaves_its_shape_and_the_shape_goes_with_its_last_hash() {
    let clock = ManualClock::new(T0);
    let db = Db::in_memory(opts(&clock, 512, 64));
    for i in 0..200 {
        db.hset(format!("user:{i}"), &profile(i)).unwrap();
    }
    let shaped = db.info().unwrap().shaped_hashes;
    assert!(shaped >= 136, "{shaped}");
    // A new field, a removed field, a field TTL, a long value: each hash
    // leaves the shared list and keeps its fields in order.
    db.execute(&["HSET", "user:1", "extra", "1"]).unwrap();
    db.execute(&["HDEL", "user:2", "email"]).unwrap();
    db.execute(&["HEXPIRE", "user:3", "100", "FIELDS", "1", "sha"])
        .unwrap();
    db.execute(&["HSET", "user:4", "email", &"x".repeat(100)])
        .unwrap();
    let keys = |k: &str| db.execute(&["HKEYS", k]).unwrap();
    let names = |v: &[&str]| {
        Reply::Array(
            v.iter()
                .map(|s| Reply::Bulk(s.as_bytes().to_vec()))
                .collect(),
        )
    };
    assert_eq!(
        keys("user:1"),
        names(&["username", "email", "joined", "sha", "extra"])
    );
    assert_eq!(keys("user:2"), names(&["username", "joined", "sha"]));
    assert_eq!(
        keys("user:3"),
        names(&["sha", "username", "email", "joined"])
    );
    assert_eq!(
        db.object_encoding("user:3").unwrap().as_deref(),
        Some("listpackex")
    );
    assert_eq!(
        db.object_encoding("user:4").unwrap().as_deref(),
        Some("hashtable")
    );
    // Values change in place and out of place; the fields stay shared.
    db.execute(&["HSET", "user:5", "joined", "1"]).unwrap();
    db.execute(&["HINCRBY", "user:5", "joined", "41"]).unwrap();
    db.execute(&["HSET", "user:5", "username", "a much longer user name"])
        .unwrap();
    assert_eq!(
        db.execute(&["HGET", "user:5", "joined"]).unwrap(),
        Reply::Bulk(b"42".to_vec())
    );
    assert_eq!(
        keys("user:5"),
        names(&["username", "email", "joined", "sha"])
    );
    // Every hash gone: no shape is left.
    for i in 0..200 {
        db.execute(&["DEL", &format!("user:{i}")]).unwrap();
    }
    let info = db.info().unwrap();
    assert_eq!((info.keys, info.shaped_hashes, info.shapes), (0, 0, 0));
}

#[test]
fn hashes_that_gain_or_lose_a_field_the_same_way_share_the_new_shape() {
    let clock = ManualClock::new(T0);
    let shaped = Db::in_memory(opts(&clock, 512, 64));
    let plain = Db::in_memory(opts(&clock, 512, 64).shapes(false).pack_hex(false));
    let n = 6000;
    for db in [&shaped, &plain] {
        for i in 0..n {
            db.hset(format!("user:{i}"), &profile(i)).unwrap();
        }
        // Every shard sees each move many times: after the first, the
        // hashes follow the remembered move to the shape it led to.
        for i in 0..n {
            let k = format!("user:{i}");
            match i % 6 {
                0 => drop(db.execute(&["HDEL", &k, "email"]).unwrap()),
                1 => drop(db.execute(&["HSET", &k, "plan", "pro"]).unwrap()),
                2 => drop(db.execute(&["HDEL", &k, "email", "sha"]).unwrap()),
                3 => drop(db.execute(&["HSET", &k, "plan", "pro", "x", "1"]).unwrap()),
                // Out and back: the original shape again.
                4 => {
                    db.execute(&["HDEL", &k, "sha"]).unwrap();
                    db.execute(&["HSET", &k, "sha", "0123456789abcdef"])
                        .unwrap();
                }
                _ => {
                    db.execute(&["HSET", &k, "plan", "pro"]).unwrap();
                    db.execute(&["HDEL", &k, "plan", "username"]).unwrap();
                }
            }
        }
    }
    for i in 0..n {
        let k = format!("user:{i}");
        assert_eq!(
            shaped.execute(&["HGETALL", &k]).unwrap(),
            plain.execute(&["HGETALL", &k]).unwrap(),
            "{k}"
        );
    }
    let info = shaped.info().unwrap();
    // Six lists of 1,000 hashes each: all but the first of a list in a
    // shard are shaped (the 4th case is its original list again).
    assert!(info.shaped_hashes >= u64::from(n) - 6 * 64, "{info:?}");
    assert!(info.shapes >= 6, "{info:?}");
    // Another round, and each hash leaves its shape: the references moved
    // along add up, so no shape is left once the hashes are gone.
    for i in 0..n {
        shaped
            .execute(&["HDEL", &format!("user:{i}"), "joined"])
            .unwrap();
    }
    for i in 0..n {
        shaped.execute(&["DEL", &format!("user:{i}")]).unwrap();
    }
    let info = shaped.info().unwrap();
    assert_eq!((info.keys, info.shaped_hashes, info.shapes), (0, 0, 0));
}

/// A snapshot in format version 1 (before shapes and packed hex), written
/// by hashkv at commit a44cbe1 from [`v1_contents`]; see
/// tests/data/snapshots/README.md.
#[test]
fn a_version_1_snapshot_still_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let clock = ManualClock::new(T0);
    Db::restore(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/snapshots/v1.hks"),
        &dir,
        &opts(&clock, 512, 64),
    )
    .unwrap();
    let db = open(&dir, opts(&clock, 512, 64));
    let want = Db::in_memory(opts(&clock, 512, 64).shapes(false).pack_hex(false));
    v1_contents(&want);
    assert_eq!(db.dbsize().unwrap(), want.dbsize().unwrap());
    let Reply::Array(keys) = want.execute(&["KEYS", "*"]).unwrap() else {
        panic!("KEYS");
    };
    let keys: Vec<String> = keys
        .into_iter()
        .map(|k| match k {
            Reply::Bulk(b) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(keys.len(), 103);
    for k in keys {
        // A dict's order is its table's: compare its pairs sorted.
        assert_eq!(pairs_of(&db, &k), pairs_of(&want, &k), "{k}");
        for cmd in ["PTTL", "HLEN"] {
            assert_eq!(
                db.execute(&[cmd, &k]).unwrap(),
                want.execute(&[cmd, &k]).unwrap(),
                "{cmd} {k}"
            );
        }
        assert_eq!(
            db.object_encoding(&k).unwrap(),
            want.object_encoding(&k).unwrap(),
            "{k}"
        );
        assert_eq!(
            db.execute(&["HPEXPIRETIME", &k, "FIELDS", "2", "f1", "sha"])
                .unwrap(),
            want.execute(&["HPEXPIRETIME", &k, "FIELDS", "2", "f1", "sha"])
                .unwrap()
        );
    }
}

/// HGETALL of `k` as pairs, sorted unless the hash is compact (whose
/// order is part of what must match).
fn pairs_of(db: &Db, k: &str) -> Vec<(Reply, Reply)> {
    let Reply::Array(items) = db.execute(&["HGETALL", k]).unwrap() else {
        panic!("HGETALL {k}");
    };
    let mut pairs: Vec<(Reply, Reply)> = items
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    if db.object_encoding(k).unwrap().as_deref() == Some("hashtable") {
        pairs.sort_by_key(|p| format!("{p:?}"));
    }
    pairs
}

/// What tests/data/snapshots/v1.hks holds (the program that wrote it ran
/// this against a Db with a ManualClock at [`T0`]).
fn v1_contents(db: &Db) {
    for i in 0..100u32 {
        db.hset(format!("user:{i}"), &profile(i)).unwrap();
    }
    let big: Vec<(String, String)> = (0..600)
        .map(|i| (format!("f{i}"), format!("{:016x}", i * 7919)))
        .collect();
    db.hset("big", &big).unwrap();
    db.execute(&["HSET", "ex", "f1", "a", "f2", "b", "sha", "DEADBEEF00"])
        .unwrap();
    db.execute(&["HPEXPIRE", "ex", "500000", "FIELDS", "1", "f1"])
        .unwrap();
    db.execute(&["HPEXPIRE", "big", "600000", "FIELDS", "1", "f1"])
        .unwrap();
    db.execute(&["PEXPIRE", "user:7", "900000"]).unwrap();
    db.execute(&[
        "HSET",
        "nums",
        "a",
        "1",
        "b",
        "-5",
        "c",
        "0042",
        "d",
        "12345678901",
    ])
    .unwrap();
}
