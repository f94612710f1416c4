//! Batches against single calls: `Db::get_many`, `Db::view_many`,
//! `Db::write_batch` and pipelines of HSETs answer and change exactly what
//! the same commands one call at a time do (a property test over random
//! data with key and field TTLs, a moving clock, both encodings, packed hex
//! and integer values, and reopens that replay both logs).

use std::collections::BTreeMap;

use hashkv::{Db, FsyncPolicy, ManualClock, Options, WriteBatch};
use proptest::prelude::*;

#[path = "common/small_data.rs"]
mod small_data;

use small_data::{opts, FIELDS, KEYS, VALUES};

#[derive(Debug, Clone)]
enum Op {
    /// HSETs: (key, pairs) by index; `how` picks write_batch, a pipeline or
    /// write_batch_with.
    Write(Vec<(usize, Vec<(usize, usize)>)>, u8),
    Expire(usize, i64),
    FieldExpire(usize, usize, i64),
    Advance(i64),
    GetMany(Vec<usize>, usize),
    ViewMany(Vec<usize>),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let pair = (0..FIELDS.len(), 0..VALUES.len());
    prop_oneof![
        4 => (
            prop::collection::vec((key.clone(), prop::collection::vec(pair, 1..4)), 1..10),
            0..3u8
        )
            .prop_map(|(w, how)| Op::Write(w, how)),
        1 => (key.clone(), 1..20i64).prop_map(|(k, ms)| Op::Expire(k, ms)),
        1 => (key.clone(), 0..FIELDS.len(), 1..20i64).prop_map(|(k, f, ms)| Op::FieldExpire(k, f, ms)),
        1 => (0..15i64).prop_map(Op::Advance),
        3 => (prop::collection::vec(key.clone(), 0..20), 0..FIELDS.len())
            .prop_map(|(k, f)| Op::GetMany(k, f)),
        3 => prop::collection::vec(key, 0..20).prop_map(Op::ViewMany),
        1 => Just(Op::Reopen),
    ]
}

type Hash = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything a client can see of the keyspace, expired-but-unreclaimed
/// keys and fields included (DBSIZE, HLEN), without changing it.
fn state(db: &Db) -> (i64, BTreeMap<String, (i64, Hash)>) {
    let dbsize = db.dbsize().unwrap();
    let mut m = BTreeMap::new();
    for k in KEYS {
        let len = db.hlen(k).unwrap();
        m.insert(k.to_owned(), (len, db.hgetall(k).unwrap()));
    }
    (dbsize, m)
}

fn run(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let open = |name: &str| Db::open_with(dir.path().join(name), opts(clock.clone())).unwrap();
    let (mut batched, mut single) = (open("batched"), open("single"));
    for op in ops {
        match op {
            Op::Write(items, how) => {
                let mut expect = Vec::new();
                for (k, pairs) in items {
                    let pairs: Vec<(&str, &str)> =
                        pairs.iter().map(|&(f, v)| (FIELDS[f], VALUES[v])).collect();
                    expect.push(single.hset(KEYS[*k], &pairs).unwrap());
                }
                let mut batch = WriteBatch::new();
                let mut p = batched.pipeline();
                for (k, pairs) in items {
                    let pairs: Vec<(&str, &str)> =
                        pairs.iter().map(|&(f, v)| (FIELDS[f], VALUES[v])).collect();
                    batch.hset(KEYS[*k], &pairs);
                    p.hset(KEYS[*k], &pairs);
                }
                let got: Vec<i64> = match how {
                    0 => {
                        drop(p);
                        let total = batched.write_batch(&batch).unwrap();
                        assert_eq!(total, expect.iter().sum::<i64>());
                        expect.clone()
                    }
                    1 => p
                        .run()
                        .into_iter()
                        .map(|r| match r.unwrap() {
                            hashkv::Reply::Integer(n) => n,
                            other => panic!("HSET answered {other:?}"),
                        })
                        .collect(),
                    _ => {
                        drop(p);
                        let mut got = Vec::new();
                        batched
                            .write_batch_with(&batch, |i, r| {
                                assert_eq!(i, got.len());
                                got.push(r.unwrap());
                            })
                            .unwrap();
                        got
                    }
                };
                assert_eq!(got, expect, "{items:?}");
            }
            Op::Expire(k, ms) => {
                for db in [&batched, &single] {
                    db.execute(&["PEXPIRE", KEYS[*k], &ms.to_string()]).unwrap();
                }
            }
            Op::FieldExpire(k, f, ms) => {
                for db in [&batched, &single] {
                    db.execute(&[
                        "HPEXPIRE",
                        KEYS[*k],
                        &ms.to_string(),
                        "FIELDS",
                        "1",
                        FIELDS[*f],
                    ])
                    .unwrap();
                }
            }
            Op::Advance(ms) => clock.advance(*ms),
            Op::GetMany(keys, f) => {
                let names: Vec<&str> = keys.iter().map(|&k| KEYS[k]).collect();
                let mut got = Vec::new();
                batched
                    .get_many(&names, FIELDS[*f], |i, v| {
                        assert_eq!(i, got.len());
                        got.push(v.map(<[u8]>::to_vec));
                    })
                    .unwrap();
                let expect: Vec<_> = names
                    .iter()
                    .map(|k| single.hget(k, FIELDS[*f]).unwrap())
                    .collect();
                assert_eq!(got, expect, "get_many {names:?} {}", FIELDS[*f]);
            }
            Op::ViewMany(keys) => {
                let names: Vec<&str> = keys.iter().map(|&k| KEYS[k]).collect();
                let mut got = Vec::new();
                batched
                    .view_many(&names, |i, v| {
                        assert_eq!(i, got.len());
                        got.push(v.map(|mut h| {
                            let mut pairs = Vec::new();
                            h.for_each(|f, v| pairs.push((f.to_vec(), v.to_vec())));
                            assert_eq!(h.len(), pairs.len());
                            assert_eq!(h.is_empty(), pairs.is_empty());
                            for (f, v) in &pairs {
                                assert!(h.contains(f));
                                assert_eq!(h.get(f), Some(&v[..]));
                            }
                            for f in FIELDS {
                                let want = pairs.iter().find(|(x, _)| x == f.as_bytes());
                                assert_eq!(h.get(f).map(<[u8]>::to_vec), want.map(|p| p.1.clone()));
                            }
                            pairs
                        }));
                    })
                    .unwrap();
                // HGETALL: the same pairs in the same order; a missing key
                // (or an expired one) is None, never an empty hash.
                let expect: Vec<Option<Hash>> = names
                    .iter()
                    .map(|k| Some(single.hgetall(k).unwrap()).filter(|h| !h.is_empty()))
                    .collect();
                assert_eq!(got, expect, "view_many {names:?}");
            }
            Op::Reopen => {
                drop(batched);
                drop(single);
                batched = open("batched");
                single = open("single");
            }
        }
        assert_eq!(state(&batched), state(&single), "after {op:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn prop_batches_answer_and_change_what_single_calls_do(
        ops in prop::collection::vec(op(), 1..40)
    ) {
        run(&ops);
    }
}

/// A batch of HSETs is one append: the log's records are the single
/// calls' own (readers and subscribers see each one), and they all come
/// back on reopen.
#[test]
fn a_batch_is_logged_as_the_single_calls_records_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), Options::default().fsync(FsyncPolicy::Always)).unwrap();
    let mut sub = db.subscribe();
    let mut batch = WriteBatch::new();
    for i in 0..1000 {
        batch.hset(
            format!("user:{i}"),
            &[("name", format!("n{i}")), ("id", i.to_string())],
        );
    }
    assert_eq!(db.write_batch(&batch).unwrap(), 2000);
    for i in 0..1000 {
        let c = sub.try_recv().expect("one change per HSET");
        match c.kind {
            hashkv::ChangeKind::HSet { key, pairs, .. } => {
                assert_eq!(key, format!("user:{i}").as_bytes());
                assert_eq!(pairs.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }
    drop(db);
    let db = Db::open(dir.path()).unwrap();
    assert_eq!(db.dbsize().unwrap(), 1000);
    let keys: Vec<String> = (0..1000).map(|i| format!("user:{i}")).collect();
    let mut n = 0;
    db.get_many(&keys, "id", |i, v| {
        assert_eq!(v, Some(i.to_string().as_bytes()));
        n += 1;
    })
    .unwrap();
    assert_eq!(n, 1000);
}

/// A read-only handle answers batches and deletes nothing that expired.
#[test]
fn a_reader_answers_batches_without_deleting_expired_keys() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let db = Db::open_with(dir.path(), opts(clock.clone())).unwrap();
    db.hset("a", &[("f", "1")]).unwrap();
    db.hset("b", &[("f", "2")]).unwrap();
    db.execute(&["PEXPIRE", "a", "5"]).unwrap();
    db.sync().unwrap();
    let reader = Db::open_read_only_with(dir.path(), opts(clock.clone())).unwrap();
    clock.advance(10);
    let mut got = Vec::new();
    reader
        .get_many(&["a", "b"], "f", |_, v| got.push(v.map(<[u8]>::to_vec)))
        .unwrap();
    assert_eq!(got, [None, Some(b"2".to_vec())]);
    reader
        .view_many(&["a"], |_, v| assert!(v.is_none()))
        .unwrap();
    // Still there, invisible: the writer's deletion has not come.
    assert_eq!(reader.dbsize().unwrap(), 2);
    assert!(reader
        .write_batch(WriteBatch::new().hset("c", &[("f", "3")]))
        .is_err());
    // The writer deletes it lazily on the batch read.
    db.get_many(&["a"], "f", |_, v| assert!(v.is_none()))
        .unwrap();
    assert_eq!(db.dbsize().unwrap(), 1);
}
