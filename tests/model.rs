//! Model test: random command sequences run on hashkv and on a deliberately
//! simple model (a BTreeMap of insertion-ordered field lists), with the same
//! replies required after every step and the encoding invariant checked:
//! a hash is `listpack` until some write passes the thresholds (a long
//! argument converts up front; the entries limit counts real fields, so
//! repeated fields in one HSET do not count twice, as in Redis 7.0),
//! `hashtable` from then on until the key goes away.
//! Run with the thresholds forced to all-compact, all-dict and in between,
//! each with shared field lists and packed hex values (the defaults) and
//! without them (`Options::shapes(false).pack_hex(false)`): both must match
//! the model, so they behave identically. Some values are hex runs (packed),
//! and some writes set the same fields in the same order on several keys
//! (shared).

use std::collections::BTreeMap;

use hashkv::{Db, Options, Reply};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    HSet(u8, Vec<(u8, u8)>),
    HDel(u8, Vec<u8>),
    HIncrBy(u8, u8, i8),
    HGet(u8, u8),
    HLen(u8),
    HExists(u8, u8),
    HGetAll(u8),
    Del(u8),
    Rename(u8, u8),
}

#[derive(Default, Clone)]
struct MHash {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    dict: bool,
}

struct Model {
    keys: BTreeMap<Vec<u8>, MHash>,
    entries: usize,
    value: usize,
}

fn key(k: u8) -> Vec<u8> {
    format!("key{}", k % 4).into_bytes()
}

fn field(f: u8) -> Vec<u8> {
    // Some fields are long enough to pass small value limits.
    if f % 7 == 6 {
        format!("long-field-name-{}", f % 5).into_bytes()
    } else {
        format!("f{}", f % 12).into_bytes()
    }
}

fn value(v: u8) -> Vec<u8> {
    match v % 8 {
        0 => (i64::from(v) - 100).to_string().into_bytes(),
        1 => vec![b'x'; usize::from(v % 40)],
        // Hex runs: lower case of 8 to 40 digits, upper case, digits with
        // leading zeros (not an integer), and an odd-length run (not packed).
        2 => format!("{:040x}", u128::from(v) * 0x9e37_79b9_7f4a_7c15).as_bytes()
            [..8 + usize::from(v % 5) * 8]
            .to_vec(),
        3 => format!("{:016X}", u64::from(v) * 0xdead_beef).into_bytes(),
        4 => format!("{v:08}").into_bytes(),
        5 => format!("{:09x}", u64::from(v) * 77_777).into_bytes(),
        _ => format!("v{v}").into_bytes(),
    }
}

impl Model {
    fn set(&mut self, k: &[u8], f: Vec<u8>, v: Vec<u8>) -> bool {
        let (entries, limit) = (self.entries, self.value);
        let h = self.keys.entry(k.to_vec()).or_default();
        if f.len() > limit || v.len() > limit {
            h.dict = true;
        }
        let new = match h.pairs.iter_mut().find(|(ff, _)| *ff == f) {
            Some(p) => {
                p.1 = v;
                false
            }
            None => {
                h.pairs.push((f, v));
                true
            }
        };
        if h.pairs.len() > entries {
            h.dict = true;
        }
        new
    }

    fn apply(&mut self, op: &Op) -> Reply {
        match op {
            Op::HSet(k, pairs) => {
                let k = key(*k);
                let max = pairs
                    .iter()
                    .map(|(f, v)| field(*f).len().max(value(*v).len()))
                    .max()
                    .unwrap_or(0);
                let pre = max > self.value;
                let h = self.keys.entry(k.clone()).or_default();
                if pre {
                    h.dict = true;
                }
                let mut n = 0;
                for (f, v) in pairs {
                    n += i64::from(self.set(&k, field(*f), value(*v)));
                }
                Reply::Integer(n)
            }
            Op::HDel(k, fs) => {
                let k = key(*k);
                let Some(h) = self.keys.get_mut(&k) else {
                    return Reply::Integer(0);
                };
                let mut n = 0;
                for f in fs {
                    let f = field(*f);
                    if let Some(i) = h.pairs.iter().position(|(ff, _)| *ff == f) {
                        h.pairs.remove(i);
                        n += 1;
                    }
                }
                if h.pairs.is_empty() {
                    self.keys.remove(&k);
                }
                Reply::Integer(n)
            }
            Op::HIncrBy(k, f, d) => {
                let k = key(*k);
                let f = field(*f);
                let old = self
                    .keys
                    .get(&k)
                    .and_then(|h| h.pairs.iter().find(|(ff, _)| *ff == f))
                    .map(|(_, v)| v.clone());
                let cur = match old {
                    None => 0i64,
                    Some(v) => match std::str::from_utf8(&v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                    {
                        Some(n) if n.to_string().as_bytes() == v.as_slice() => n,
                        _ => return Reply::Bulk(b"error".to_vec()),
                    },
                };
                let new = cur + i64::from(*d);
                self.set(&k, f, new.to_string().into_bytes());
                Reply::Integer(new)
            }
            Op::HGet(k, f) => {
                let f = field(*f);
                self.keys
                    .get(&key(*k))
                    .and_then(|h| h.pairs.iter().find(|(ff, _)| *ff == f))
                    .map_or(Reply::Nil, |(_, v)| Reply::Bulk(v.clone()))
            }
            Op::HLen(k) => {
                Reply::Integer(self.keys.get(&key(*k)).map_or(0, |h| h.pairs.len() as i64))
            }
            Op::HExists(k, f) => {
                let f = field(*f);
                Reply::Integer(i64::from(
                    self.keys
                        .get(&key(*k))
                        .is_some_and(|h| h.pairs.iter().any(|(ff, _)| *ff == f)),
                ))
            }
            Op::HGetAll(k) => Reply::Array(
                self.keys
                    .get(&key(*k))
                    .map(|h| {
                        h.pairs
                            .iter()
                            .flat_map(|(f, v)| [Reply::Bulk(f.clone()), Reply::Bulk(v.clone())])
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            Op::Del(k) => Reply::Integer(i64::from(self.keys.remove(&key(*k)).is_some())),
            Op::Rename(a, b) => {
                let (a, b) = (key(*a), key(*b));
                match self.keys.remove(&a) {
                    None => Reply::Bulk(b"no such key".to_vec()),
                    Some(h) => {
                        self.keys.insert(b, h);
                        Reply::ok_status()
                    }
                }
            }
        }
    }
}

trait OkStatus {
    fn ok_status() -> Reply;
}
impl OkStatus for Reply {
    fn ok_status() -> Reply {
        Reply::Status("OK".into())
    }
}

fn run_db(db: &Db, op: &Op) -> Reply {
    let r = match op {
        Op::HSet(k, pairs) => {
            let mut argv = vec![b"HSET".to_vec(), key(*k)];
            for (f, v) in pairs {
                argv.push(field(*f));
                argv.push(value(*v));
            }
            db.execute(&argv)
        }
        Op::HDel(k, fs) => {
            let mut argv = vec![b"HDEL".to_vec(), key(*k)];
            argv.extend(fs.iter().map(|f| field(*f)));
            db.execute(&argv)
        }
        Op::HIncrBy(k, f, d) => db.execute(&[
            b"HINCRBY".to_vec(),
            key(*k),
            field(*f),
            d.to_string().into_bytes(),
        ]),
        Op::HGet(k, f) => db.execute(&[b"HGET".to_vec(), key(*k), field(*f)]),
        Op::HLen(k) => db.execute(&[b"HLEN".to_vec(), key(*k)]),
        Op::HExists(k, f) => db.execute(&[b"HEXISTS".to_vec(), key(*k), field(*f)]),
        Op::HGetAll(k) => db.execute(&[b"HGETALL".to_vec(), key(*k)]),
        Op::Del(k) => db.execute(&[b"DEL".to_vec(), key(*k)]),
        Op::Rename(a, b) => db.execute(&[b"RENAME".to_vec(), key(*a), key(*b)]),
    };
    match r {
        Ok(r) => r,
        Err(hashkv::Error::Command(e)) if e.message() == "ERR no such key" => {
            Reply::Bulk(b"no such key".to_vec())
        }
        Err(_) => Reply::Bulk(b"error".to_vec()),
    }
}

fn sorted_pairs(r: &Reply) -> Vec<Vec<Reply>> {
    let Reply::Array(items) = r else {
        return vec![];
    };
    let mut v: Vec<Vec<Reply>> = items.chunks(2).map(<[Reply]>::to_vec).collect();
    v.sort_by_key(|p| format!("{p:?}"));
    v
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), prop::collection::vec((any::<u8>(), any::<u8>()), 1..6)).prop_map(|(k, p)| Op::HSet(k, p)),
        // The same four fields in the same order: a shared field list.
        2 => (any::<u8>(), prop::collection::vec(any::<u8>(), 4)).prop_map(|(k, v)| {
            Op::HSet(k, (0u8..4).zip(v).collect())
        }),
        2 => (any::<u8>(), prop::collection::vec(any::<u8>(), 1..4)).prop_map(|(k, f)| Op::HDel(k, f)),
        1 => (any::<u8>(), any::<u8>(), any::<i8>()).prop_map(|(k, f, d)| Op::HIncrBy(k, f, d)),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(k, f)| Op::HGet(k, f)),
        1 => any::<u8>().prop_map(Op::HLen),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(k, f)| Op::HExists(k, f)),
        1 => any::<u8>().prop_map(Op::HGetAll),
        1 => any::<u8>().prop_map(Op::Del),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Rename(a, b)),
    ]
}

fn check(ops: &[Op], entries: usize, value: usize) -> Result<(), TestCaseError> {
    let opts = Options::default()
        .hash_max_listpack_entries(entries)
        .hash_max_listpack_value(value);
    check_with(ops, entries, value, opts.clone())?;
    check_with(ops, entries, value, opts.shapes(false).pack_hex(false))
}

fn check_with(
    ops: &[Op],
    entries: usize,
    value: usize,
    opts: Options,
) -> Result<(), TestCaseError> {
    let db = Db::in_memory(opts);
    let mut m = Model {
        keys: BTreeMap::new(),
        entries,
        value,
    };
    for (i, op) in ops.iter().enumerate() {
        let want = m.apply(op);
        let got = run_db(&db, op);
        let dict = match op {
            Op::HGetAll(k) => m.keys.get(&key(*k)).is_some_and(|h| h.dict),
            _ => false,
        };
        if dict {
            prop_assert_eq!(
                sorted_pairs(&got),
                sorted_pairs(&want),
                "step {}: {:?}",
                i,
                op
            );
        } else {
            prop_assert_eq!(&got, &want, "step {}: {:?}", i, op);
        }
        for k in 0..4u8 {
            let want_enc = m
                .keys
                .get(&key(k))
                .map(|h| if h.dict { "hashtable" } else { "listpack" });
            let got_enc = db.object_encoding(key(k)).unwrap();
            prop_assert_eq!(
                got_enc.as_deref(),
                want_enc,
                "encoding of key{} after step {}: {:?}",
                k,
                i,
                op
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn prop_engine_matches_model_small_thresholds(ops in prop::collection::vec(op_strategy(), 1..300)) {
        check(&ops, 4, 10)?;
    }

    #[test]
    fn prop_engine_matches_model_all_dict(ops in prop::collection::vec(op_strategy(), 1..200)) {
        check(&ops, 0, 64)?;
    }

    #[test]
    fn prop_engine_matches_model_all_compact(ops in prop::collection::vec(op_strategy(), 1..200)) {
        check(&ops, 100_000, 100_000)?;
    }
}
