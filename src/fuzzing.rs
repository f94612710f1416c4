//! Entry points for the cargo-fuzz targets in `fuzz/` and the tests that
//! replay their corpora: the parsers of outside bytes, run in memory (no
//! files, so a fuzzer runs them thousands of times a second). Not a stable
//! API.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::db::Db;
use crate::error::Error;
use crate::hash::compact;
use crate::keyspace::{Effect, Journal, Keyspace};
use crate::log::{reader, record};
use crate::options::Options;

fn opts() -> Options {
    Options::default()
        .active_expiry(false)
        .no_auto_snapshots()
        .hash_max_listpack_entries(4)
        .hash_max_listpack_value(8)
}

/// Validates `bytes` as a compact hash; a valid one must re-encode, pair by
/// pair, to exactly the same bytes. Panics if not (a fuzzer finding).
pub fn compact_round_trip(bytes: &[u8]) {
    let Ok(n) = compact::validate(bytes) else {
        return;
    };
    let mut again = Vec::with_capacity(bytes.len());
    let mut count = 0;
    for (f, v) in compact::pairs(bytes) {
        compact::push_elem(&mut again, &f.to_bytes());
        match v {
            compact::Elem::Hex(_) | compact::Elem::HexUpper(_) => {
                compact::push_value(&mut again, &v.to_bytes(), true)
            }
            _ => compact::push_elem(&mut again, &v.to_bytes()),
        }
        count += 1;
    }
    assert_eq!(count, n, "pair count");
    assert_eq!(again, bytes, "a valid buffer re-encodes to itself");
}

/// Replays `bytes` as the last log segment (strict, then salvaging) into
/// in-memory databases; returns the strict one, or the error naming the
/// offset.
pub fn replay_log(bytes: &[u8]) -> Result<Db, String> {
    replay_log_with(bytes, opts())
}

/// [`replay_log`] with options `o` (e.g. the clock of the database that
/// wrote the log).
pub fn replay_log_with(bytes: &[u8], o: Options) -> Result<Db, String> {
    let salvaged = Keyspace::default();
    let _ = reader::scan(bytes, true, true, |e| {
        let _ = salvaged.apply(&e, &o);
    });
    let ks = Keyspace::default();
    match reader::scan(bytes, true, false, |e| {
        let _ = ks.apply(&e, &o);
    }) {
        Ok(_) => {
            ks.rebuild_encodings(&o);
            Ok(Db::with_keyspace(ks, o))
        }
        Err(bad) => Err(format!("offset {}: {}", bad.offset, bad.reason)),
    }
}

/// Loads `bytes` as a snapshot file into an in-memory database.
pub fn load_snapshot(bytes: &[u8]) -> Result<Db, String> {
    load_snapshot_with(bytes, opts())
}

/// [`load_snapshot`] under the thresholds of `o` (for timing loads).
pub fn load_snapshot_with(bytes: &[u8], o: Options) -> Result<Db, String> {
    let ks = Keyspace::default();
    crate::snapshot::format::read(bytes, &o, |e| {
        let mut shard = ks.shard(e.key).write();
        match e.hash {
            crate::snapshot::format::EntryHash::Compact(buf) => {
                shard.put_compact(e.key, buf, e.ttl)
            }
            crate::snapshot::format::EntryHash::Shaped {
                fields,
                len,
                values,
            } => shard.put_shaped(e.key, fields, len, values, e.ttl),
            crate::snapshot::format::EntryHash::Owned(h) => shard.put(e.key, h, e.ttl),
        }
        .map(|_| ())
        .map_err(|err| err.to_string())
    })
    .map_err(|bad| format!("offset {}: {}", bad.offset, bad.reason))?;
    Ok(Db::with_keyspace(ks, o))
}

/// Recomputes every checksum of a snapshot file (section CRCs, END's counts
/// are left alone, the file CRC), so mutated bytes get past the checksums
/// to the entry parser. Stops quietly where the structure is broken.
pub fn resign_snapshot(bytes: &mut [u8]) {
    if bytes.len() < 16 {
        return;
    }
    let hlen = u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize;
    let Some(h) = bytes.get(16..16 + hlen) else {
        return;
    };
    let hcrc = crc32fast::hash(h);
    bytes[12..16].copy_from_slice(&hcrc.to_le_bytes());
    let mut file = crc32fast::Hasher::new();
    file.update(&hcrc.to_le_bytes());
    let mut pos = 16 + hlen;
    while pos + 9 <= bytes.len() {
        let kind = bytes[pos];
        let len = u32::from_le_bytes(bytes[pos + 1..pos + 5].try_into().expect("4")) as usize;
        let start = pos + 9;
        let Some(end) = start.checked_add(len).filter(|&e| e <= bytes.len()) else {
            return;
        };
        if kind == 2 && len == 20 {
            let fc = file.clone().finalize();
            bytes[start + 16..start + 20].copy_from_slice(&fc.to_le_bytes());
        }
        let crc = crc32fast::hash(&bytes[start..end]);
        bytes[pos + 5..pos + 9].copy_from_slice(&crc.to_le_bytes());
        if kind == 1 || kind == 3 || kind == 4 {
            file.update(&crc.to_le_bytes());
        }
        pos = end;
    }
}

/// A valid snapshot of `db`, in memory.
pub fn snapshot_bytes(db: &Db) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!(
        "hashkv-fuzz-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("s.hks");
    let bytes = db
        .snapshot_to(&path)
        .ok()
        .and_then(|_| std::fs::read(&path).ok())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// A log kept in memory: what a [`Db`] from [`logged_db`] wrote.
#[derive(Default)]
pub struct MemLog {
    bytes: Mutex<Vec<u8>>,
}

impl MemLog {
    /// The segment as written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.bytes.lock().clone()
    }
}

impl Journal for MemLog {
    fn append(&self, e: &Effect<'_>) -> Result<u64, Error> {
        let mut scratch = Vec::new();
        let n = record::encode(e, &mut scratch).map_err(|m| Error::Io {
            op: "encoding",
            path: "memory".into(),
            source: std::io::Error::other(m),
        })?;
        self.bytes.lock().extend_from_slice(&scratch[..n]);
        Ok(0)
    }
    fn append_frame(&self, frame: &[u8]) -> Result<u64, Error> {
        self.bytes.lock().extend_from_slice(frame);
        Ok(0)
    }
    fn sync(&self, _ticket: u64) -> Result<(), Error> {
        Ok(())
    }
}

/// An in-memory database whose writes are logged to a [`MemLog`], with the
/// fuzzing thresholds (4 fields, 8 bytes).
pub fn logged_db() -> (Db, Arc<MemLog>) {
    logged_db_with(opts())
}

/// The fuzzing options with `clock`.
pub fn opts_with_clock(clock: Arc<dyn crate::Clock>) -> Options {
    opts().clock(clock)
}

/// [`logged_db`] with options `o`.
pub fn logged_db_with(o: Options) -> (Db, Arc<MemLog>) {
    let log = Arc::new(MemLog::default());
    log.bytes.lock().extend_from_slice(record::SEGMENT_MAGIC);
    let ks = Keyspace::default();
    ks.set_journal(log.clone());
    (Db::with_keyspace(ks, o), log)
}

/// Every key's observable state: (key, sorted live pairs, has a TTL,
/// encoding, sorted live field expiries).
pub type Dump = Vec<(
    Vec<u8>,
    Vec<(Vec<u8>, Vec<u8>)>,
    bool,
    String,
    Vec<(Vec<u8>, i64)>,
)>;

/// The observable state of `db`.
pub fn dump(db: &Db) -> Dump {
    let Ok(crate::Reply::Array(keys)) = db.execute(&["KEYS", "*"]) else {
        panic!("KEYS * must answer an array");
    };
    let mut out = Vec::new();
    for k in keys {
        let crate::Reply::Bulk(k) = k else {
            panic!("KEYS answers bulk strings");
        };
        let mut pairs = db.hgetall(&k).expect("HGETALL of a listed key");
        pairs.sort();
        let ttl = db.pttl(&k).expect("PTTL");
        let enc = db
            .object_encoding(&k)
            .expect("OBJECT ENCODING")
            .unwrap_or_default();
        let mut fttl = db.field_expiries(&k);
        fttl.sort();
        out.push((k, pairs, ttl >= 0, enc, fttl));
    }
    out.sort();
    out
}

/// Panics unless every key of `db` (built with the fuzzing thresholds: 4
/// fields, 8 bytes) reads back whole and its encoding is allowed: a hash
/// that does not fit the compact limits is a dict; one that fits is compact
/// after a replay or load (`rebuilt`), and may still be a dict in a live
/// database (hashes never convert back at run time).
pub fn assert_consistent(db: &Db, rebuilt: bool) {
    let o = opts();
    for (k, pairs, _, enc, _) in dump(db) {
        let n = db.hlen(&k).expect("HLEN") as usize;
        let now = crate::options::Now::lazy(&*db.options().clock);
        let field_ttls = db
            .keyspace()
            .read(&k, &now, |h| h.is_some_and(|h| h.min_field_ttl().is_some()));
        if field_ttls {
            // HLEN also counts expired fields not yet removed.
            assert!(n >= pairs.len(), "HLEN counts at least the live fields");
        } else {
            assert_eq!(n, pairs.len(), "HLEN agrees with HGETALL");
        }
        if pairs.is_empty() {
            // Expired between KEYS and HGETALL, or only expired fields left.
            continue;
        }
        let fits = pairs.len() <= o.hash_max_listpack_entries
            && pairs.iter().all(|(f, v)| {
                f.len() <= o.hash_max_listpack_value && v.len() <= o.hash_max_listpack_value
            });
        if rebuilt || !fits {
            // Compact hashes with field TTLs (or that had some) are
            // `listpackex`; the field count includes expired fields.
            let want = if fits {
                enc == "listpack" || enc == "listpackex"
            } else {
                enc == "hashtable"
            };
            assert!(
                want || (field_ttls && n > pairs.len()),
                "encoding of {k:?}: {enc}"
            );
        }
        assert!(db.memory_usage(&k).expect("MEMORY USAGE").is_some());
    }
}

/// MANIFEST bytes through the parser: an error naming an offset, or a list
/// that keeps MANIFEST's rules (segments numbered one after another, the
/// snapshot numbered as the first segment) and that, written again and read
/// back, gives the same list. Panics if not.
pub fn manifest_round_trip(bytes: &[u8]) {
    let Ok(m) = crate::dir::parse_manifest(bytes) else {
        return;
    };
    let numbers: Vec<u64> = m
        .segments
        .iter()
        .map(|s| crate::dir::segment_number(s).expect("a listed segment has a number"))
        .collect();
    assert!(!numbers.is_empty());
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    if let Some(s) = &m.snapshot {
        assert_eq!(
            crate::dir::parse_name(s),
            Some((crate::dir::Kind::Snapshot, numbers[0]))
        );
    }
    let again = crate::dir::parse_manifest(crate::dir::manifest_text(&m).as_bytes())
        .expect("a written MANIFEST parses");
    assert_eq!(
        (again.snapshot, again.segments),
        (m.snapshot, m.segments),
        "round trip"
    );
}

/// Every file under `dir` (LOCK aside) with its bytes.
fn files_under(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "LOCK") {
                out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

/// A whole directory damaged as `data` says, then opened. The directory is
/// built first (a snapshot, a sealed segment and the current one, from the
/// commands before the first 0xFF byte); after it, each 4-byte group
/// `[file, op, at_lo, at_hi]` damages one of MANIFEST, the snapshot, the
/// two segments or an extra unlisted segment: flip a byte, cut the file,
/// remove it, or append a byte. Opening then either fails, changing no
/// file, or gives a consistent state; `check` never panics; a damaged file
/// is never shortened or removed by a failed open. Panics if not.
pub fn open_damaged_dir(data: &[u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "hashkv-fuzz-dir-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone());
    let cut = data.iter().position(|&b| b == 0xFF).unwrap_or(data.len());
    let (script, damage) = data.split_at(cut);
    let o = opts().fsync(crate::options::FsyncPolicy::No);
    {
        let Ok(db) = Db::open_with(&dir, o.clone()) else {
            return;
        };
        let mut lines = script.split(|&b| b == b'\n').take(24);
        let mut out = Vec::new();
        for line in lines.by_ref().take(8) {
            let _ = crate::shell::run_line(&db, line, &mut out);
        }
        if db.snapshot().is_err() {
            return;
        }
        for line in lines.by_ref().take(8) {
            let _ = crate::shell::run_line(&db, line, &mut out);
        }
        // Stopped after its switch: the segment it left is sealed.
        db.stop_next_snapshot_after(3);
        let _ = db.snapshot();
        for line in lines {
            let _ = crate::shell::run_line(&db, line, &mut out);
        }
    }
    let names = [
        "MANIFEST",
        "snap-000002.hks",
        "log-000002.aof",
        "log-000003.aof",
        "log-000004.aof",
    ];
    let _ = std::fs::remove_file(dir.join("snap-000003.hks.tmp"));
    for op in damage.get(1..).unwrap_or(&[]).chunks_exact(4).take(8) {
        let path = dir.join(names[op[0] as usize % names.len()]);
        let at = u16::from_le_bytes([op[2], op[3]]) as usize;
        let mut bytes = std::fs::read(&path).unwrap_or_default();
        match op[1] % 4 {
            0 if !bytes.is_empty() => {
                let i = at % bytes.len();
                bytes[i] ^= op[1] | 1;
            }
            1 => bytes.truncate(at.min(bytes.len())),
            2 => {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            _ => bytes.push(op[3]),
        }
        let _ = std::fs::write(&path, &bytes);
    }
    let _ = crate::admin::check(&dir, &mut |_, _| {});
    let before = files_under(&dir);
    match Db::open_with(&dir, o) {
        Ok(db) => assert_consistent(&db, true),
        Err(e) => {
            let after = files_under(&dir);
            let changed: Vec<_> = before
                .keys()
                .chain(after.keys())
                .filter(|p| before.get(*p) != after.get(*p))
                .collect();
            assert!(
                changed.is_empty(),
                "a failed open ({e}) changed {changed:?}"
            );
        }
    }
}
