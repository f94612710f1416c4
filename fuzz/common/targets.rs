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
    ("manifest", manifest),
    ("open_dir", open_dir),
    ("rdb_import", rdb_import),
    ("follow_tail", follow_tail),
];

/// An in-memory database with tiny compact limits (so conversions happen
/// on small inputs), no active expiry, reading `clock`.
fn small_db(clock: &std::sync::Arc<hashkv::ManualClock>) -> hashkv::Db {
    hashkv::Db::in_memory(
        hashkv::Options::default()
            .active_expiry(false)
            .hash_max_listpack_entries(4)
            .hash_max_listpack_value(8)
            .clock(clock.clone()),
    )
}

/// Arbitrary bytes as a Redis RDB file: the import fails and changes
/// nothing, or it succeeds with a consistent keyspace whose contents an
/// RDB 12 export carries to a second database unchanged.
pub fn rdb_import(data: &[u8]) {
    let clock = hashkv::ManualClock::new(1_700_000_000_000);
    let db = || small_db(&clock);
    let dir = tempfile::Builder::new()
        .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        })
        .expect("a temporary directory");
    let file = dir.path().join("dump.rdb");
    std::fs::write(&file, data).expect("write the input");
    let a = db();
    let opts = hashkv::interop::RdbImportOptions::default();
    if a.import_rdb_with(&file, &opts, &mut |_, _| {}).is_err() {
        assert_eq!(a.dbsize().unwrap(), 0, "a refused file imported keys");
        return;
    }
    hashkv::fuzzing::assert_consistent(&a, true);
    let mut out = Vec::new();
    a.export_rdb_to(
        &mut out,
        &hashkv::interop::RdbExportOptions {
            version: hashkv::interop::RdbVersion::V12,
            ..Default::default()
        },
    )
    .expect("export to memory");
    std::fs::write(&file, &out).expect("write the export");
    let b = db();
    b.import_rdb_with(&file, &opts, &mut |_, _| {})
        .expect("an export imports");
    // Same keys, fields, values and TTLs. Encodings may differ: the export
    // writes a hash that fits Redis's default limits as a listpack, and a
    // listpack loads as one whatever its elements' length (as in Redis
    // 7.0), so `b` may keep as a listpack what `a`, under small limits,
    // holds as a dict.
    let contents = |db: &hashkv::Db| {
        hashkv::fuzzing::dump(db)
            .into_iter()
            .map(|(k, pairs, ttl, _, fttl)| (k, pairs, ttl, fttl))
            .collect::<Vec<_>>()
    };
    assert_eq!(contents(&a), contents(&b));
}

/// A read-only handle over a real writer's segment (cut at any byte) that
/// grows by appended chunks (raw bytes, frames with good checksums, valid
/// records, sync marks, seals, zeros, the writer's own rest): after each
/// catch-up the reader is at the end of the whole frames, with the state
/// of replaying them, or reports damage (and keeps answering reads); after
/// a wait it decides as a strict replay of the same bytes does.
pub fn follow_tail(data: &[u8]) {
    hashkv::fuzzing::follow_tail(data);
}

/// MANIFEST bytes: a parse error, or a list that keeps MANIFEST's rules and
/// round-trips.
pub fn manifest(data: &[u8]) {
    hashkv::fuzzing::manifest_round_trip(data);
}

/// A whole directory built from commands, then damaged file by file
/// (MANIFEST, snapshot, segments, an unlisted segment): open fails without
/// changing a file, or gives a consistent state.
pub fn open_dir(data: &[u8]) {
    hashkv::fuzzing::open_damaged_dir(data);
}

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
    let db = || small_db(&clock);
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
            .map(|(k, pairs, ttl, _, fttl)| (k, pairs, ttl, fttl))
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
    /// Move the clock forward by this many milliseconds.
    Advance(u8),
    /// HPEXPIRE key ms [NX|XX|GT|LT] FIELDS n field...
    HPExpire(u8, u8, u8, Vec<u8>),
    HPersist(u8, Vec<u8>),
    HPTtl(u8, Vec<u8>),
    HGetDel(u8, Vec<u8>),
    /// HGETEX key [PX ms | PERSIST] FIELDS n field...
    HGetEx(u8, u8, u8, Vec<u8>),
    /// HSETEX key [FNX|FXX] [PX ms | KEEPTTL] FIELDS n field value...
    HSetEx(u8, u8, u8, u8, Vec<(u8, u8)>),
}

fn pick<'a>(set: &[&'a str], i: u8) -> &'a str {
    set[i as usize % set.len()]
}

/// The model: each key's fields in no particular order, with a field TTL
/// (absolute ms, 0 = none), and the clock.
#[derive(Default)]
struct Model {
    keys: BTreeMap<String, Vec<(String, String, i64)>>,
    now: i64,
}

/// The fuzzing clock's start (any fixed time works).
const START_MS: i64 = 1_000_000;

fn expired(t: i64, now: i64) -> bool {
    t != 0 && t < now
}

impl Model {
    fn retain_nonempty(&mut self) {
        self.keys.retain(|_, h| !h.is_empty());
    }

    /// Lazy expiry of `fields` of `k` (commands that address fields).
    fn lazy(&mut self, k: &str, fields: &[&str]) {
        let now = self.now;
        if let Some(h) = self.keys.get_mut(k) {
            h.retain(|(f, _, t)| !(fields.contains(&f.as_str()) && expired(*t, now)));
            if h.is_empty() {
                self.keys.remove(k);
            }
        }
    }

    /// The live entry of `f` in `k`.
    fn live(&self, k: &str, f: &str) -> Option<&(String, String, i64)> {
        self.keys
            .get(k)?
            .iter()
            .find(|(x, _, t)| x == f && !expired(*t, self.now))
    }
}

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

/// Field names for a field-TTL command (never empty).
fn field_list(fs: &[u8]) -> Vec<&'static str> {
    let mut out: Vec<&str> = fs.iter().take(6).map(|&f| pick(&FIELDS, f)).collect();
    if out.is_empty() {
        out.push(FIELDS[0]);
    }
    out
}

fn with_fields(mut argv: Vec<String>, fields: &[&str]) -> Vec<String> {
    argv.push("FIELDS".into());
    argv.push(fields.len().to_string());
    argv.extend(fields.iter().map(|f| f.to_string()));
    argv
}

fn ints(v: Vec<i64>) -> Result<Reply, String> {
    Ok(Reply::Array(v.into_iter().map(Reply::Integer).collect()))
}

/// The model's reply (Ok) or error text (Err), and the argv. `listpackex`
/// says whether `k` is a compact hash with field TTLs (HPTTL reports a
/// field expiring this very millisecond as gone there).
fn step(m: &mut Model, op: &Op, listpackex: bool) -> (Vec<String>, Result<Reply, String>) {
    use Op::*;
    let bulk = |s: &str| Reply::Bulk(s.as_bytes().to_vec());
    let now = m.now;
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
            let h = m.keys.entry(k.to_owned()).or_default();
            let mut new = 0;
            for (f, v) in pairs {
                let (f, v) = (pick(&FIELDS, *f), pick(&VALUES, *v));
                argv.push(f.to_owned());
                argv.push(v.to_owned());
                // An expired but stored field is updated (and loses its TTL).
                match h.iter_mut().find(|(x, _, _)| x == f) {
                    Some(p) => {
                        p.1 = v.to_owned();
                        p.2 = 0;
                    }
                    None => {
                        h.push((f.to_owned(), v.to_owned(), 0));
                        new += 1;
                    }
                }
            }
            (argv, Ok(Reply::Integer(new)))
        }
        HSetNx(k, f, v) => {
            let (k, f, v) = (pick(&KEYS, *k), pick(&FIELDS, *f), pick(&VALUES, *v));
            let argv = vec!["HSETNX".into(), k.into(), f.into(), v.into()];
            m.lazy(k, &[f]);
            let h = m.keys.entry(k.to_owned()).or_default();
            if h.iter().any(|(x, _, _)| x == f) {
                return (argv, Ok(Reply::Integer(0)));
            }
            h.push((f.to_owned(), v.to_owned(), 0));
            (argv, Ok(Reply::Integer(1)))
        }
        HGet(k, f) => {
            let (k, f) = (pick(&KEYS, *k), pick(&FIELDS, *f));
            m.lazy(k, &[f]);
            let r = m.live(k, f).map_or(Reply::Nil, |(_, v, _)| bulk(v));
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
                // Expired but stored fields count, as in Redis.
                if let Some(h) = m.keys.get_mut(k) {
                    let before = h.len();
                    h.retain(|(x, _, _)| x != f);
                    gone += (before - h.len()) as i64;
                }
            }
            (argv, Ok(Reply::Integer(gone)))
        }
        HLen(k) => {
            let k = pick(&KEYS, *k);
            // Counts expired fields not yet removed.
            let n = m.keys.get(k).map_or(0, Vec::len) as i64;
            (vec!["HLEN".into(), k.into()], Ok(Reply::Integer(n)))
        }
        HExists(k, f) => {
            let (k, f) = (pick(&KEYS, *k), pick(&FIELDS, *f));
            m.lazy(k, &[f]);
            let e = m.live(k, f).is_some();
            (
                vec!["HEXISTS".into(), k.into(), f.into()],
                Ok(Reply::Integer(e.into())),
            )
        }
        HIncrBy(k, f, d) => {
            let (k, f) = (pick(&KEYS, *k), pick(&FIELDS, *f));
            let argv = vec!["HINCRBY".into(), k.into(), f.into(), d.to_string()];
            m.lazy(k, &[f]);
            let h = m.keys.entry(k.to_owned()).or_default();
            let cur = match h.iter().find(|(x, _, _)| x == f) {
                Some((_, v, _)) => match int(v) {
                    Some(n) => n,
                    None => return (argv, err("ERR hash value is not an integer")),
                },
                None => 0,
            };
            let Some(next) = cur.checked_add(i64::from(*d)) else {
                return (argv, err("ERR increment or decrement would overflow"));
            };
            // The field keeps its TTL.
            match h.iter_mut().find(|(x, _, _)| x == f) {
                Some(p) => p.1 = next.to_string(),
                None => h.push((f.to_owned(), next.to_string(), 0)),
            }
            (argv, Ok(Reply::Integer(next)))
        }
        HStrlen(k, f) => {
            let (k, f) = (pick(&KEYS, *k), pick(&FIELDS, *f));
            m.lazy(k, &[f]);
            let n = m.live(k, f).map_or(0, |(_, v, _)| v.len() as i64);
            (
                vec!["HSTRLEN".into(), k.into(), f.into()],
                Ok(Reply::Integer(n)),
            )
        }
        HGetAll(k) => {
            let k = pick(&KEYS, *k);
            // Compared sorted (dict order is unspecified); expired fields
            // are skipped, not removed.
            let mut pairs: Vec<(String, String)> = m
                .keys
                .get(k)
                .map(|h| {
                    h.iter()
                        .filter(|(_, _, t)| !expired(*t, now))
                        .map(|(f, v, _)| (f.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            pairs.sort();
            let r = pairs.iter().flat_map(|(f, v)| [bulk(f), bulk(v)]).collect();
            (vec!["HGETALL".into(), k.into()], Ok(Reply::Array(r)))
        }
        Del(k) => {
            let k = pick(&KEYS, *k);
            let n = i64::from(m.keys.remove(k).is_some());
            (vec!["DEL".into(), k.into()], Ok(Reply::Integer(n)))
        }
        Exists(k) => {
            let k = pick(&KEYS, *k);
            (
                vec!["EXISTS".into(), k.into()],
                Ok(Reply::Integer(m.keys.contains_key(k).into())),
            )
        }
        Rename(a, b) => {
            let (a, b) = (pick(&KEYS, *a), pick(&KEYS, *b));
            let argv = vec!["RENAME".into(), a.into(), b.into()];
            match m.keys.remove(a) {
                None => (argv, err("ERR no such key")),
                Some(h) => {
                    m.keys.insert(b.to_owned(), h);
                    (argv, Ok(Reply::Status("OK".into())))
                }
            }
        }
        Advance(d) => {
            m.now += i64::from(*d);
            // The harness moves the engine's clock; PING stands for the step.
            (vec!["PING".into()], Ok(Reply::Status("PONG".into())))
        }
        HPExpire(k, ms, cond, fs) => {
            let k = pick(&KEYS, *k);
            let ms = i64::from(*ms % 50);
            let fields = field_list(fs);
            let mut argv = vec!["HPEXPIRE".to_owned(), k.to_owned(), ms.to_string()];
            let c = ["", "NX", "XX", "GT", "LT"][*cond as usize % 5];
            if !c.is_empty() {
                argv.push(c.into());
            }
            let argv = with_fields(argv, &fields);
            let at = now + ms;
            let Some(h) = m.keys.get_mut(k) else {
                return (argv, ints(vec![-2; fields.len()]));
            };
            // No lazy expiry here: an expired field still counts.
            let mut codes = Vec::new();
            for f in &fields {
                let Some(i) = h.iter().position(|(x, _, _)| x == f) else {
                    codes.push(-2);
                    continue;
                };
                let cur = h[i].2;
                let ok = match c {
                    "NX" => cur == 0,
                    "XX" => cur != 0,
                    "GT" => cur != 0 && at > cur,
                    "LT" => cur == 0 || at < cur,
                    _ => true,
                };
                if !ok {
                    codes.push(0);
                } else if at <= now {
                    h.remove(i);
                    codes.push(2);
                } else {
                    h[i].2 = at;
                    codes.push(1);
                }
            }
            (argv, ints(codes))
        }
        HPersist(k, fs) => {
            let k = pick(&KEYS, *k);
            let fields = field_list(fs);
            let argv = with_fields(vec!["HPERSIST".into(), k.into()], &fields);
            let mut codes = Vec::new();
            for f in &fields {
                let code = match m
                    .keys
                    .get_mut(k)
                    .and_then(|h| h.iter_mut().find(|(x, _, t)| x == f && !expired(*t, now)))
                {
                    None => -2,
                    Some(p) if p.2 == 0 => -1,
                    Some(p) => {
                        p.2 = 0;
                        1
                    }
                };
                codes.push(code);
            }
            (argv, ints(codes))
        }
        HPTtl(k, fs) => {
            let k = pick(&KEYS, *k);
            let fields = field_list(fs);
            let argv = with_fields(vec!["HPTTL".into(), k.into()], &fields);
            let codes = fields
                .iter()
                .map(|f| match m.live(k, f) {
                    None => -2,
                    Some((_, _, 0)) => -1,
                    Some((_, _, t)) if *t == now && listpackex => -2,
                    Some((_, _, t)) => t - now,
                })
                .collect();
            (argv, ints(codes))
        }
        HGetDel(k, fs) => {
            let k = pick(&KEYS, *k);
            let fields = field_list(fs);
            let argv = with_fields(vec!["HGETDEL".into(), k.into()], &fields);
            m.lazy(k, &fields);
            let mut out = Vec::new();
            for f in &fields {
                let got = m.keys.get_mut(k).and_then(|h| {
                    let i = h.iter().position(|(x, _, _)| x == f)?;
                    Some(h.remove(i).1)
                });
                out.push(got.map_or(Reply::Nil, |v| bulk(&v)));
            }
            (argv, Ok(Reply::Array(out)))
        }
        HGetEx(k, mode, ms, fs) => {
            let k = pick(&KEYS, *k);
            let fields = field_list(fs);
            let ms = i64::from(*ms % 50);
            let mut argv = vec!["HGETEX".to_owned(), k.to_owned()];
            match mode % 3 {
                1 => argv.extend(["PX".to_owned(), ms.to_string()]),
                2 => argv.push("PERSIST".into()),
                _ => {}
            }
            let argv = with_fields(argv, &fields);
            m.lazy(k, &fields);
            let out = fields
                .iter()
                .map(|f| m.live(k, f).map_or(Reply::Nil, |(_, v, _)| bulk(v)))
                .collect();
            if let Some(h) = m.keys.get_mut(k) {
                match mode % 3 {
                    1 if now + ms <= now => h.retain(|(x, _, _)| !fields.contains(&x.as_str())),
                    1 => h
                        .iter_mut()
                        .filter(|(x, _, _)| fields.contains(&x.as_str()))
                        .for_each(|p| p.2 = now + ms),
                    2 => h
                        .iter_mut()
                        .filter(|(x, _, _)| fields.contains(&x.as_str()))
                        .for_each(|p| p.2 = 0),
                    _ => {}
                }
            }
            (argv, Ok(Reply::Array(out)))
        }
        HSetEx(k, cond, ttl, ms, pairs) => {
            let k = pick(&KEYS, *k);
            let ms = i64::from(*ms % 50);
            let mut pairs: Vec<(&str, &str)> = pairs
                .iter()
                .take(4)
                .map(|(f, v)| (pick(&FIELDS, *f), pick(&VALUES, *v)))
                .collect();
            if pairs.is_empty() {
                pairs.push((FIELDS[0], VALUES[0]));
            }
            let mut argv = vec!["HSETEX".to_owned(), k.to_owned()];
            let c = ["", "FNX", "FXX"][*cond as usize % 3];
            if !c.is_empty() {
                argv.push(c.into());
            }
            match ttl % 3 {
                1 => argv.extend(["PX".to_owned(), ms.to_string()]),
                2 => argv.push("KEEPTTL".into()),
                _ => {}
            }
            argv.push("FIELDS".into());
            argv.push(pairs.len().to_string());
            for (f, v) in &pairs {
                argv.push(f.to_string());
                argv.push(v.to_string());
            }
            let fields: Vec<&str> = pairs.iter().map(|(f, _)| *f).collect();
            m.lazy(k, &fields);
            let exists = |m: &Model, f: &str| m.live(k, f).is_some();
            let pass = match c {
                "FNX" => fields.iter().all(|f| !exists(m, f)),
                "FXX" => m.keys.contains_key(k) && fields.iter().all(|f| exists(m, f)),
                _ => true,
            };
            if !pass {
                return (argv, Ok(Reply::Integer(0)));
            }
            if ttl % 3 == 1 && now + ms <= now {
                if let Some(h) = m.keys.get_mut(k) {
                    h.retain(|(x, _, _)| !fields.contains(&x.as_str()));
                }
                return (argv, Ok(Reply::Integer(1)));
            }
            let h = m.keys.entry(k.to_owned()).or_default();
            for (f, v) in &pairs {
                let t = match ttl % 3 {
                    1 => Some(now + ms),
                    2 => None,
                    _ => Some(0),
                };
                match h.iter_mut().find(|(x, _, _)| x == f) {
                    Some(p) => {
                        p.1 = v.to_string();
                        if let Some(t) = t {
                            p.2 = t;
                        }
                    }
                    None => h.push((f.to_string(), v.to_string(), t.unwrap_or(0))),
                }
            }
            (argv, Ok(Reply::Integer(1)))
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
    let clock = hashkv::ManualClock::new(START_MS);
    let o = || hashkv::fuzzing::opts_with_clock(clock.clone());
    let (db, log) = hashkv::fuzzing::logged_db_with(o());
    // The same commands through pipelines (cut where time moves) on a
    // second database: each reply must be the single call's.
    let (piped, _piped_log) = hashkv::fuzzing::logged_db_with(o());
    let mut batch: Vec<(Vec<String>, Result<Reply, String>)> = Vec::new();
    let flush = |batch: &mut Vec<(Vec<String>, Result<Reply, String>)>| {
        let mut p = piped.pipeline();
        for (argv, _) in batch.iter() {
            p.cmd(argv);
        }
        for ((argv, single), got) in batch.drain(..).zip(p.run()) {
            let got = got.map_err(|e| e.to_string());
            assert_eq!(got, single, "pipelined {argv:?}");
        }
    };
    let mut model = Model {
        now: START_MS,
        ..Model::default()
    };
    for op in ops.iter().take(64) {
        let key_of = |k: &u8| pick(&KEYS, *k);
        let listpackex = match op {
            Op::HPTtl(k, _) => {
                db.object_encoding(key_of(k)).ok().flatten().as_deref() == Some("listpackex")
            }
            _ => false,
        };
        let (argv, want) = step(&mut model, op, listpackex);
        if let Op::Advance(d) = op {
            flush(&mut batch);
            clock.advance(i64::from(*d));
        }
        // Keys emptied in the model are gone, as in Redis.
        model.retain_nonempty();
        let raw = match db.execute(&argv) {
            Ok(r) => Ok(r),
            Err(hashkv::Error::Command(e)) => Err(e.to_string()),
            Err(e) => panic!("{argv:?}: {e}"),
        };
        batch.push((argv.clone(), raw.clone()));
        if batch.len() == 8 {
            flush(&mut batch);
        }
        let got = raw.map(|r| {
            if matches!(op, Op::HGetAll(_)) {
                sorted_pairs(r)
            } else {
                r
            }
        });
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
    flush(&mut batch);
    // The log replays, and a snapshot loads, to the same state (as seen at
    // the same time: field TTLs are absolute).
    let live = hashkv::fuzzing::dump(&db);
    assert_eq!(hashkv::fuzzing::dump(&piped), live, "pipelined state");
    let replayed =
        hashkv::fuzzing::replay_log_with(&log.bytes(), o()).expect("the engine's own log replays");
    let state = |d: &hashkv::fuzzing::Dump| -> Vec<_> {
        d.iter()
            .map(|(k, p, t, _, f)| (k.clone(), p.clone(), *t, f.clone()))
            .collect()
    };
    assert_eq!(state(&hashkv::fuzzing::dump(&replayed)), state(&live));
    hashkv::fuzzing::assert_consistent(&replayed, true);
    let snap = hashkv::fuzzing::snapshot_bytes(&db);
    let loaded = hashkv::fuzzing::load_snapshot_with(&snap, o()).expect("a snapshot loads");
    assert_eq!(state(&hashkv::fuzzing::dump(&loaded)), state(&live));
}
