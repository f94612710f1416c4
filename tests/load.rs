//! Bulk loads against single calls: `Db::load` leaves exactly what the
//! same HSETs one call at a time leave, in memory, after a reopen (replay
//! of its batch records), and on a read-only handle following the log
//! (a property test over random data with repeated keys and fields, keys
//! that exist, expired keys, both encodings, pairs-less items; a load of
//! many batches).

use std::collections::BTreeMap;
use std::sync::Arc;

use hashkv::{Db, ManualClock, Options};
use proptest::prelude::*;

#[path = "common/small_data.rs"]
mod small_data;

use small_data::{FIELDS, KEYS, VALUES};

/// The shared options; a reader follows only when asked.
fn opts(clock: Arc<ManualClock>) -> Options {
    small_data::opts(clock).follow(None)
}

#[derive(Debug, Clone)]
enum Op {
    /// (key, pairs) by index.
    Load(Vec<(usize, Vec<(usize, usize)>)>),
    Expire(usize, i64),
    Advance(i64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let pair = (0..FIELDS.len(), 0..VALUES.len());
    prop_oneof![
        5 => prop::collection::vec((key.clone(), prop::collection::vec(pair, 0..6)), 1..12)
            .prop_map(Op::Load),
        1 => (key, 1..20i64).prop_map(|(k, ms)| Op::Expire(k, ms)),
        1 => (0..15i64).prop_map(Op::Advance),
        1 => Just(Op::Reopen),
    ]
}

type Hash = Vec<(Vec<u8>, Vec<u8>)>;

/// What a client sees of every key (encoding included), without changing
/// anything.
fn state(db: &Db) -> BTreeMap<String, (i64, Hash, String)> {
    let mut m = BTreeMap::new();
    for k in KEYS {
        let enc = match db.execute(&["OBJECT", "ENCODING", k]) {
            Ok(r) => format!("{r:?}"),
            Err(e) => e.to_string(),
        };
        m.insert(
            k.to_owned(),
            (db.hlen(k).unwrap(), db.hgetall(k).unwrap(), enc),
        );
    }
    m
}

fn run(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let open = |name: &str| Db::open_with(dir.path().join(name), opts(clock.clone())).unwrap();
    let (mut loaded, mut single) = (open("loaded"), open("single"));
    let reader = Db::open_read_only_with(dir.path().join("loaded"), opts(clock.clone())).unwrap();
    for op in ops {
        match op {
            Op::Load(items) => {
                let items: Vec<(&str, Vec<(&str, &str)>)> = items
                    .iter()
                    .map(|(k, pairs)| {
                        let pairs = pairs.iter().map(|&(f, v)| (FIELDS[f], VALUES[v]));
                        (KEYS[*k], pairs.collect())
                    })
                    .collect();
                let mut refused = 0;
                for (k, pairs) in &items {
                    let mut argv = vec!["HSET", k];
                    argv.extend(pairs.iter().flat_map(|&(f, v)| [f, v]));
                    if single.execute(&argv).is_err() {
                        refused += 1;
                    }
                }
                let t = loaded.load(items.iter().cloned()).unwrap();
                assert_eq!(t.items, items.len() as u64);
                let fields: usize = items.iter().map(|(_, p)| p.len()).sum();
                assert_eq!(t.fields, fields as u64);
                assert_eq!(t.errors.len(), refused, "{:?}", t.errors);
            }
            Op::Expire(k, ms) => {
                for db in [&loaded, &single] {
                    db.execute(&["PEXPIRE", KEYS[*k], &ms.to_string()]).unwrap();
                }
            }
            Op::Advance(ms) => clock.advance(*ms),
            Op::Reopen => {
                drop(loaded);
                drop(single);
                loaded = open("loaded");
                single = open("single");
            }
        }
        let want = state(&single);
        assert_eq!(state(&loaded), want, "after {op:?}");
        loaded.sync().unwrap();
        single.sync().unwrap();
        reader.catch_up().unwrap();
        // Data only (pairs in any order): an open fits small dicts back
        // into the compact encoding, so a reader that did not reload may
        // hold a dict (and its order) where the reopened writer does not.
        let data = |m: BTreeMap<String, (i64, Hash, String)>| -> Vec<(String, i64, Hash)> {
            m.into_iter()
                .map(|(k, (n, mut h, _))| {
                    h.sort();
                    (k, n, h)
                })
                .collect()
        };
        assert_eq!(data(state(&reader)), data(want), "reader, after {op:?}");
    }
    drop(loaded);
    drop(single);
    assert_eq!(
        state(&open("loaded")),
        state(&open("single")),
        "reopened at the end"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn prop_load_leaves_what_single_hsets_leave(ops in prop::collection::vec(op(), 1..30)) {
        run(&ops);
    }
}

/// A load of many batches: every key comes back after a reopen and on a
/// reader, each batch of about 1,000 fields is one record.
#[test]
fn a_load_of_many_batches_survives_reopen_and_reaches_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let o = || Options::default().no_auto_snapshots().follow(None);
    let db = Db::open_with(dir.path(), o()).unwrap();
    let reader = Db::open_read_only_with(dir.path(), o()).unwrap();
    let before = db.log_position();
    let n = 5_000u32;
    let t = db
        .load((0..n).map(|i| {
            (
                format!("user:{i:012}"),
                vec![
                    ("name".to_owned(), format!("n{i}")),
                    ("id".to_owned(), i.to_string()),
                    ("bio".to_owned(), "x".repeat((i % 100) as usize)),
                ],
            )
        }))
        .unwrap();
    assert_eq!((t.items, t.fields), (u64::from(n), 3 * u64::from(n)));
    let records = reader.catch_up().unwrap();
    // 15,000 fields in batches of about 1,000: one record each.
    assert!((15..=16).contains(&records), "{records} records");
    let check = |db: &Db| {
        assert_eq!(db.dbsize().unwrap(), i64::from(n));
        for i in (0..n).step_by(97) {
            let k = format!("user:{i:012}");
            assert_eq!(db.hget(&k, "id").unwrap(), Some(i.to_string().into_bytes()));
            assert_eq!(db.hlen(&k).unwrap(), 3);
        }
    };
    check(&db);
    check(&reader);
    assert!(db.log_position() > before);
    drop(db);
    check(&Db::open_with(dir.path(), o()).unwrap());
}

/// Shaped hashes of several field lists, interleaved in every shard, come
/// back from a snapshot with their own lists, as many shapes as before
/// and the same answers (one hash's list changed by an HSET too).
#[test]
fn interleaved_shapes_come_back_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let o = || Options::default().no_auto_snapshots();
    let lists: [&[&str]; 3] = [&["a", "b"], &["b", "a"], &["a", "b", "c"]];
    let key = |i: usize| format!("k{i}");
    let db = Db::open_with(dir.path(), o()).unwrap();
    db.load((0..3_000).map(|i| {
        let pairs: Vec<(&str, String)> = lists[i % 3]
            .iter()
            .map(|&f| (f, format!("{f}{i}")))
            .collect();
        (key(i), pairs)
    }))
    .unwrap();
    db.hset(key(7), &[("z", "1")]).unwrap();
    let all = |db: &Db| -> Vec<Hash> { (0..3_000).map(|i| db.hgetall(key(i)).unwrap()).collect() };
    let (want, info) = (all(&db), db.info().unwrap());
    // The first hash of a list in a shard stays plain (a list is shared
    // from its second).
    assert!(info.shapes >= 3 && info.shaped_hashes >= 2_700, "{info:?}");
    db.snapshot().unwrap();
    drop(db);
    let db = Db::open_with(dir.path(), o()).unwrap();
    assert_eq!(all(&db), want);
    let got = db.info().unwrap();
    // A list's first hash in a shard, stored plain, finds the list's shape
    // already there when it loads: more hashes shaped, never fewer.
    assert_eq!(got.shapes, info.shapes);
    assert!(got.shaped_hashes >= info.shaped_hashes, "{got:?}");
}

/// A load stores the compact hashes and shapes single HSETs store, in
/// about the memory they take (the memory per field of
/// docs/PERFORMANCE.md holds for it).
#[test]
fn a_load_takes_the_memory_single_hsets_take() {
    let profile = |i: u32| -> Vec<(String, String)> {
        vec![
            ("username".into(), format!("user{i}")),
            ("email".into(), format!("user{i}@example.com")),
            ("joined".into(), (1_600_000_000 + i * 37).to_string()),
            (
                "sha".into(),
                format!("{:040x}", u128::from(i) * 0x9e37_79b9),
            ),
        ]
    };
    let loaded = Db::in_memory(Options::default());
    let single = Db::in_memory(Options::default());
    loaded
        .load((0..5_000).map(|i| (format!("user:{i:012}"), profile(i))))
        .unwrap();
    for i in 0..5_000 {
        single.hset(format!("user:{i:012}"), &profile(i)).unwrap();
    }
    let (a, b) = (loaded.info().unwrap(), single.info().unwrap());
    assert_eq!(
        (a.keys, a.fields, a.shaped_hashes, a.shapes),
        (b.keys, b.fields, b.shaped_hashes, b.shapes)
    );
    // The key tables sized up front (a little room for an uneven spread)
    // and where the per-process hash seed puts keys move the total by a
    // few percent either way.
    let (m, n) = (a.memory_bytes as f64, b.memory_bytes as f64);
    assert!((m / n - 1.0).abs() < 0.1, "{m} against {n} bytes");
}
