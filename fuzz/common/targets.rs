//! The bodies of the fuzz targets, shared by `fuzz/fuzz_targets/*` (run by
//! cargo-fuzz) and `tests/fuzz_corpus.rs` (which replays every corpus file
//! and every crash ever found under plain `cargo test`).
#![allow(dead_code)]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use hashkv::admin::Format;
use hashkv::Reply;

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("listpack", listpack),
    ("log_replay", log_replay),
    ("snapshot_load", snapshot_load),
    ("shell_parse", shell_parse),
    ("import", import),
    ("commands", commands),
];

/// Arbitrary bytes into the compact-encoding (listpack-style) validator and
/// decoder: an error or a pair count, never a panic or a big allocation; a
/// valid buffer re-encodes to exactly the same bytes.
pub fn listpack(data: &[u8]) {
    hashkv::fuzzing::compact_round_trip(data);
}

/// Arbitrary bytes as the last log segment: replay gives a clean error
/// naming an offset, or a consistent state.
pub fn log_replay(data: &[u8]) {
    if let Ok(db) = hashkv::fuzzing::replay_log(data) {
        hashkv::fuzzing::assert_consistent(&db, true);
    }
}

/// Snapshot files: arbitrary bytes (first byte even), or, structure-aware
/// (first byte odd), a valid snapshot of a small dataset the input builds,
/// then mutated at positions the input picks and (unless bit 1 of the first
/// byte is set) re-signed so the damage reaches the entry parser; bit 2
/// turns section compression off, so mutations hit entries directly. Loading
/// gives an error naming an offset or a consistent state.
pub fn snapshot_load(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        // Dataset: lines of commands up to the first 0xFF; then mutations
        // as (position: u16 LE, xor: u8) triples.
        let cut = rest.iter().position(|&b| b == 0xFF).unwrap_or(rest.len());
        let (script, muts) = rest.split_at(cut);
        let db = hashkv::Db::in_memory(
            hashkv::Options::default()
                .active_expiry(false)
                .hash_max_listpack_entries(4)
                .hash_max_listpack_value(8)
                .snapshot_compression(mode & 4 == 0),
        );
        let mut out = Vec::new();
        for line in script.split(|&b| b == b'\n').take(32) {
            let _ = hashkv::shell::run_line(&db, line, &mut out);
        }
        let mut snap = hashkv::fuzzing::snapshot_bytes(&db);
        if snap.is_empty() {
            return;
        }
        for m in muts.get(1..).unwrap_or(&[]).chunks_exact(3) {
            let at = u16::from_le_bytes([m[0], m[1]]) as usize % snap.len();
            snap[at] ^= m[2];
        }
        if mode & 2 == 0 {
            hashkv::fuzzing::resign_snapshot(&mut snap);
        }
        snap
    };
    if let Ok(db) = hashkv::fuzzing::load_snapshot(&bytes) {
        hashkv::fuzzing::assert_consistent(&db, true);
    }
}

fn quote(w: &[u8]) -> Vec<u8> {
    let mut q = vec![b'"'];
    for &b in w {
        q.extend_from_slice(format!("\\x{b:02x}").as_bytes());
    }
    q.push(b'"');
    q
}

/// The shell's line parser (redis-cli's `sdssplitargs`) and every command
/// behind it: any line gives words or "Invalid argument(s)"; words quoted
/// back and parsed again give the same words; and the input's lines (up to
/// 64), run as commands on an in-memory database with small listpack
/// limits, each give a reply or a Redis error, never a panic or a hang.
pub fn shell_parse(data: &[u8]) {
    if let Ok(words) = hashkv::shell::split_args(data) {
        let line: Vec<u8> = words
            .iter()
            .map(|w| quote(w))
            .collect::<Vec<_>>()
            .join(&b' ');
        assert_eq!(hashkv::shell::split_args(&line).as_ref(), Ok(&words));
    }
    let db = fuzz_db();
    let mut out = Vec::new();
    for line in data.split(|&b| b == b'\n').take(64) {
        out.clear();
        if !hashkv::shell::run_line(&db, line, &mut out) {
            break;
        }
    }
    hashkv::fuzzing::assert_consistent(&db, false);
}

fn fuzz_db() -> hashkv::Db {
    hashkv::Db::in_memory(
        hashkv::Options::default()
            .active_expiry(false)
            .hash_max_listpack_entries(4)
            .hash_max_listpack_value(8),
    )
}

/// Import of RESP command streams and JSON lines (first byte picks): an
/// error naming where, or an import whose export imports again to the same
/// state.
pub fn import(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let format = if mode % 2 == 0 {
        Format::Resp
    } else {
        Format::Json
    };
    // Both databases read one stopped clock, so relative TTLs (JSON
    // `ttl_ms`) mean the same on both sides however long the run takes.
    let clock = hashkv::ManualClock::new(1_700_000_000_000);
    let db = || {
        hashkv::Db::in_memory(
            hashkv::Options::default()
                .active_expiry(false)
                .hash_max_listpack_entries(4)
                .hash_max_listpack_value(8)
                .clock(clock.clone()),
        )
    };
    let a = db();
    let mut input = rest;
    if a.import(format, &mut input, &mut |_, _| {}).is_err() {
        return;
    }
    let mut out = Vec::new();
    a.export(format, &mut out, &mut |_, _| {})
        .expect("export to memory");
    let b = db();
    let mut input = &out[..];
    let t = b
        .import(format, &mut input, &mut |_, _| {})
        .expect("an export imports");
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    // Same keys, fields, values and TTLs; encodings may differ, since a
    // hash of `a` that outgrew the compact limits stays a dict (as in
    // Redis) while `b` builds each hash afresh in the encoding that fits.
    let contents = |db: &hashkv::Db| {
        hashkv::fuzzing::dump(db)
            .into_iter()
            .map(|(k, pairs, ttl, _)| (k, pairs, ttl))
            .collect::<Vec<_>>()
    };
    assert_eq!(contents(&a), contents(&b));
    hashkv::fuzzing::assert_consistent(&a, false);
    hashkv::fuzzing::assert_consistent(&b, true);
}

const KEYS: [&str; 3] = ["a", "b", "c"];
const FIELDS: [&str; 6] = ["f", "g", "h", "i", "j", "long-field"];
const VALUES: [&str; 9] = [
    "0",
    "1",
    "-7",
    "12",
    "x",
    "007",
    "a longer value",
    "9223372036854775807",
    "",
];

#[derive(Arbitrary, Debug)]
enum Op {
    HSet(u8, Vec<(u8, u8)>),
    HSetNx(u8, u8, u8),
    HGet(u8, u8),
    HDel(u8, Vec<u8>),
    HLen(u8),
    HExists(u8, u8),
    HIncrBy(u8, u8, i8),
    HStrlen(u8, u8),
    HGetAll(u8),
    Del(u8),
    Exists(u8),
    Rename(u8, u8),
}

fn pick<'a>(set: &[&'a str], i: u8) -> &'a str {
    set[i as usize % set.len()]
}

type Model = BTreeMap<String, Vec<(String, String)>>;

/// Redis's string2ll: optional '-', digits, no leading zero, no "-0".
fn int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if (digits.len() > 1 && digits.starts_with('0')) || s == "-0" {
        return None;
    }
    s.parse().ok()
}

fn err(s: &str) -> Result<Reply, String> {
    Err(s.to_owned())
}

/// The model's reply (Ok) or error text (Err), and the argv.
fn step(m: &mut Model, op: &Op) -> (Vec<String>, Result<Reply, String>) {
    use Op::*;
    let bulk = |s: &str| Reply::Bulk(s.as_bytes().to_vec());
    match op {
        HSet(k, pairs) => {
            let k = pick(&KEYS, *k);
            let mut argv = vec!["HSET".to_owned(), k.to_owned()];
            if pairs.is_empty() {
                return (
                    argv,
                    err("ERR wrong number of arguments for 'hset' command"),
                );
            }
            let h = m.entry(k.to_owned()).or_default();
            let mut new = 0;
            for (f, v) in pairs {
                let (f, v) = (pick(&FIELDS, *f), pick(&VALUES, *v));
                argv.push(f.to_owned());
                argv.push(v.to_owned());
                match h.iter_mut().find(|(x, _)| x == f) {
                    Some(p) => p.1 = v.to_owned(),
                    None => {
                        h.push((f.to_owned(), v.to_owned()));
                        new += 1;
                    }
                }
            }
            (argv, Ok(Reply::Integer(new)))
        }
        HSetNx(k, f, v) => {
            let (k, f, v) = (pick(&KEYS, *k), pick(&FIELDS, *f), pick(&VALUES, *v));
            let argv = vec!["HSETNX".into(), k.into(), f.into(), v.into()];
            let h = m.entry(k.to_owned()).or_default();
            if h.iter().any(|(x, _)| x == f) {
                return (argv, Ok(Reply::Integer(0)));
            }
            h.push((f.to_owned(), v.to_owned()));
            (argv, Ok(Reply::Integer(1)))
        }
        HGet(k, f) => {
            let (k, f) = (pick(&KEYS, *k), pick(&FIELDS, *f));
            let r = m
                .get(k)
                .and_then(|h| h.iter().find(|(x, _)| x == f))
                .map_or(Reply::Nil, |(_, v)| bulk(v));
            (vec!["HGET".into(), k.into(), f.into()], Ok(r))
        }
        HDel(k, fs) => {
            let k = pick(&KEYS, *k);
            let mut argv = vec!["HDEL".to_owned(), k.to_owned()];
            if fs.is_empty() {
                return (
                    argv,
                    err("ERR wrong number of arguments for 'hdel' command"),
                );
            }
            let mut gone = 0;
            for f in fs {
                let f = pick(&FIELDS, *f);
                argv.push(f.to_owned());
                if let Some(h) = m.get_mut(k) {
                    let before = h.len();
                    h.retain(|(x, _)| x != f);
                    gone += (before - h.len()) as i64;
                }
            }
            (argv, Ok(Reply::Integer(gone)))
        }
        HLen(k) => {
            let k = pick(&KEYS, *k);
            let n = m.get(k).map_or(0, Vec::len) as i64;
            (vec!["HLEN".into(), k.into()], Ok(Reply::Integer(n)))
        }
        HExists(k, f) => {
            let (k, f) = (pick(&KEYS, *k), pick(&FIELDS, *f));
            let e = m.get(k).is_some_and(|h| h.iter().any(|(x, _)| x == f));
            (
                vec!["HEXISTS".into(), k.into(), f.into()],
                Ok(Reply::Integer(e.into())),
            )
        }
        HIncrBy(k, f, d) => {
            let (k, f) = (pick(&KEYS, *k), pick(&FIELDS, *f));
            let argv = vec!["HINCRBY".into(), k.into(), f.into(), d.to_string()];
            let h = m.entry(k.to_owned()).or_default();
            let cur = match h.iter().find(|(x, _)| x == f) {
                Some((_, v)) => match int(v) {
                    Some(n) => n,
                    None => return (argv, err("ERR hash value is not an integer")),
                },
                None => 0,
            };
            let Some(next) = cur.checked_add(i64::from(*d)) else {
                return (argv, err("ERR increment or decrement would overflow"));
            };
            match h.iter_mut().find(|(x, _)| x == f) {
                Some(p) => p.1 = next.to_string(),
                None => h.push((f.to_owned(), next.to_string())),
            }
            (argv, Ok(Reply::Integer(next)))
        }
        HStrlen(k, f) => {
            let (k, f) = (pick(&KEYS, *k), pick(&FIELDS, *f));
            let n = m
                .get(k)
                .and_then(|h| h.iter().find(|(x, _)| x == f))
                .map_or(0, |(_, v)| v.len() as i64);
            (
                vec!["HSTRLEN".into(), k.into(), f.into()],
                Ok(Reply::Integer(n)),
            )
        }
        HGetAll(k) => {
            let k = pick(&KEYS, *k);
            // Compared sorted (dict order is unspecified).
            let mut pairs = m.get(k).cloned().unwrap_or_default();
            pairs.sort();
            let r = pairs.iter().flat_map(|(f, v)| [bulk(f), bulk(v)]).collect();
            (vec!["HGETALL".into(), k.into()], Ok(Reply::Array(r)))
        }
        Del(k) => {
            let k = pick(&KEYS, *k);
            let n = i64::from(m.remove(k).is_some());
            (vec!["DEL".into(), k.into()], Ok(Reply::Integer(n)))
        }
        Exists(k) => {
            let k = pick(&KEYS, *k);
            (
                vec!["EXISTS".into(), k.into()],
                Ok(Reply::Integer(m.contains_key(k).into())),
            )
        }
        Rename(a, b) => {
            let (a, b) = (pick(&KEYS, *a), pick(&KEYS, *b));
            let argv = vec!["RENAME".into(), a.into(), b.into()];
            match m.remove(a) {
                None => (argv, err("ERR no such key")),
                Some(h) => {
                    m.insert(b.to_owned(), h);
                    (argv, Ok(Reply::Status("OK".into())))
                }
            }
        }
    }
}

fn sorted_pairs(r: Reply) -> Reply {
    let Reply::Array(flat) = r else { return r };
    let mut pairs: Vec<(Reply, Reply)> = flat
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    pairs.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
    Reply::Array(pairs.into_iter().flat_map(|(a, b)| [a, b]).collect())
}

/// Structured command sequences (decoded with `arbitrary`) run on the
/// engine and on a deliberately simple model: identical replies, allowed
/// encodings after every step, and the same state again after replaying the
/// engine's log and after loading a snapshot of it.
pub fn commands(data: &[u8]) {
    let Ok(ops) = Vec::<Op>::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let (db, log) = hashkv::fuzzing::logged_db();
    let mut model = Model::new();
    for op in ops.iter().take(64) {
        let (argv, want) = step(&mut model, op);
        // Keys emptied in the model are gone, as in Redis.
        model.retain(|_, h| !h.is_empty());
        let got = match db.execute(&argv) {
            Ok(r) => Ok(if matches!(op, Op::HGetAll(_)) {
                sorted_pairs(r)
            } else {
                r
            }),
            Err(hashkv::Error::Command(e)) => Err(e.to_string()),
            Err(e) => panic!("{argv:?}: {e}"),
        };
        let want = want.map(|r| {
            if matches!(op, Op::HGetAll(_)) {
                sorted_pairs(r)
            } else {
                r
            }
        });
        assert_eq!(got, want, "{argv:?}");
        hashkv::fuzzing::assert_consistent(&db, false);
    }
    // The log replays, and a snapshot loads, to the same state.
    let live = hashkv::fuzzing::dump(&db);
    let replayed = hashkv::fuzzing::replay_log(&log.bytes()).expect("the engine's own log replays");
    let state = |d: &hashkv::fuzzing::Dump| -> Vec<_> {
        d.iter()
            .map(|(k, p, t, _)| (k.clone(), p.clone(), *t))
            .collect()
    };
    assert_eq!(state(&hashkv::fuzzing::dump(&replayed)), state(&live));
    hashkv::fuzzing::assert_consistent(&replayed, true);
    let snap = hashkv::fuzzing::snapshot_bytes(&db);
    let loaded = hashkv::fuzzing::load_snapshot(&snap).expect("a snapshot loads");
    assert_eq!(state(&hashkv::fuzzing::dump(&loaded)), state(&live));
}
