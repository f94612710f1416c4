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
            } => shard.put_shaped(e.key, fields, len, values, e.ttl, &mut None),
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

/// A log kept in memory: what a [`Db`] from [`logged_db_with`] wrote.
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
#[cfg(test)]
pub(crate) fn logged_db() -> (Db, Arc<MemLog>) {
    logged_db_with(opts())
}

/// The fuzzing options with `clock`.
pub fn opts_with_clock(clock: Arc<dyn crate::Clock>) -> Options {
    opts().clock(clock)
}

/// An in-memory database whose writes are logged to a [`MemLog`], with
/// options `o`.
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

/// The fixed time of [`follow_tail`]'s databases (the writer that made the
/// starting segment, the reader, the replays it is compared with).
const FOLLOW_NOW_MS: i64 = 1_700_000_000_000;

/// What every [`follow_tail`] run starts from, built once.
struct FollowStart {
    clock: Arc<crate::ManualClock>,
    /// MANIFEST as the writer left it, listing one segment.
    manifest: Vec<u8>,
    /// That segment's name and bytes: the header, records, sync marks.
    segment_name: String,
    segment: Vec<u8>,
    /// Whole frames of hashkv's own encoding, one per command of
    /// [`FOLLOW_COMMANDS`] (and one transaction), to append as valid records.
    frames: Vec<Vec<u8>>,
}

/// The commands the starting segment's writer runs, and whose frames
/// [`follow_tail`] appends: every kind of effect, a hash past the compact
/// limits, key and field TTLs.
const FOLLOW_COMMANDS: &[&[&str]] = &[
    &["HSET", "a", "f", "1", "g", "x"],
    &["HSET", "b", "f", "1"],
    &["HINCRBY", "a", "f", "5"],
    &["HINCRBYFLOAT", "a", "h", "1.5"],
    &["HDEL", "a", "g"],
    &["PEXPIRE", "a", "100000"],
    &["PERSIST", "a"],
    &["RENAME", "b", "c"],
    &["COPY", "c", "b"],
    &["HPEXPIRE", "a", "100000", "FIELDS", "1", "f"],
    &["HSETEX", "c", "PX", "5000", "FIELDS", "1", "x", "y"],
    &[
        "HSET",
        "d",
        "1",
        "a",
        "2",
        "b",
        "3",
        "c",
        "4",
        "d",
        "5",
        "a longer value",
    ],
    &["HGETDEL", "d", "FIELDS", "1", "1"],
    &["DEL", "c"],
    &["FLUSHDB"],
];

fn follow_opts(clock: &Arc<crate::ManualClock>) -> Options {
    opts()
        .clock(clock.clone())
        .follow(None)
        .fsync(crate::options::FsyncPolicy::No)
}

/// A fresh directory for one run, removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new(what: &str) -> ScratchDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "hashkv-fuzz-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn follow_start() -> &'static FollowStart {
    static START: std::sync::OnceLock<FollowStart> = std::sync::OnceLock::new();
    START.get_or_init(|| {
        let clock = crate::ManualClock::new(FOLLOW_NOW_MS);
        // The starting segment: a real writer's, a sync mark after every
        // record.
        let dir = ScratchDir::new("follow-start");
        let o = follow_opts(&clock).fsync(crate::options::FsyncPolicy::Always);
        let db = Db::open_with(&dir.0, o).expect("a writer opens an empty directory");
        for argv in &FOLLOW_COMMANDS[..12] {
            db.execute(argv).expect("a starting command");
        }
        db.close().expect("the writer closes");
        let m = crate::dir::read_manifest(&dir.0)
            .expect("the writer's MANIFEST")
            .expect("a MANIFEST");
        assert!(m.snapshot.is_none() && m.segments.len() == 1, "{m:?}");
        let segment_name = m.segments[0].clone();
        let segment = std::fs::read(dir.0.join(&segment_name)).expect("the segment");
        let manifest = std::fs::read(dir.0.join(crate::dir::MANIFEST)).expect("MANIFEST");
        // The frames, one command at a time, through an in-memory log.
        let (mem, log) = logged_db_with(follow_opts(&clock));
        let mut frames = Vec::new();
        let mut seen = log.bytes().len();
        let mut take = |log: &MemLog| {
            let b = log.bytes();
            let f = b[seen..].to_vec();
            seen = b.len();
            f
        };
        for argv in FOLLOW_COMMANDS {
            mem.execute(argv).expect("a frame's command");
            frames.push(take(&log));
        }
        let mut s = mem.session();
        for argv in [
            &["MULTI"][..],
            &["HSET", "a", "q", "1"],
            &["HINCRBY", "b", "n", "2"],
            &["DEL", "c"],
        ] {
            s.execute(argv).expect("queued");
        }
        s.execute(&["EXEC"]).expect("EXEC");
        frames.push(take(&log));
        frames.retain(|f| !f.is_empty());
        FollowStart {
            clock,
            manifest,
            segment_name,
            segment,
            frames,
        }
    })
}

/// Why the run of whole frames of a segment stops ([`frame_run`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunStop {
    /// The header is not all there yet.
    NoHeader,
    /// The header is neither version's.
    BadHeader,
    /// A version-1 segment (read once, whole).
    V1,
    /// Nothing whole at the end: not written yet, or torn.
    Pending,
    /// A whole frame (checksum good) that is not a record or a valid mark.
    Bad,
}

/// How far a reader of `bytes` (a whole segment as it is now, the last
/// MANIFEST lists) can get: the end of the run of whole, meaningful frames
/// after the header, why the run stops there, and the end of the furthest
/// frame that is whole (bytes before it are never changed by
/// [`follow_tail`]: the writer does not rewrite what it wrote).
fn frame_run(bytes: &[u8]) -> (usize, RunStop, usize) {
    let header = record::SEGMENT_MAGIC.len();
    let h = &bytes[..bytes.len().min(header)];
    // Version 1 is read whole once, by its own rules: the run still says
    // which bytes are never changed.
    let v1 = h == record::SEGMENT_MAGIC_V1;
    if !v1 && h != record::SEGMENT_MAGIC {
        let creating = h
            .iter()
            .zip(record::SEGMENT_MAGIC)
            .all(|(&a, &b)| a == b || a == 0);
        let stop = if creating {
            RunStop::NoHeader
        } else {
            RunStop::BadHeader
        };
        return (header, stop, h.len());
    }
    let stop = |s| if v1 { RunStop::V1 } else { s };
    let mut at = header;
    loop {
        match reader::frame_at(bytes, at) {
            // A seal goes on: MANIFEST lists no segment after this one.
            Ok(Some((end, payload))) => match reader::classify(payload, at) {
                Ok(_) => at = end,
                Err(_) => return (at, stop(RunStop::Bad), end),
            },
            _ => return (at, stop(RunStop::Pending), at),
        }
    }
}

/// A [`Dump`] without encodings.
type FollowState = Vec<(Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>, bool, Vec<(Vec<u8>, i64)>)>;

/// The observable state without encodings (a reader does not convert
/// hashes as a writer's replay does).
fn follow_state(db: &Db) -> FollowState {
    dump(db)
        .into_iter()
        .map(|(k, p, t, _, f)| (k, p, t, f))
        .collect()
}

/// A read-only handle following a segment that grows as `data` says;
/// panics on a finding.
///
/// The segment starts as a real writer's (the header, records, a sync mark
/// after each), cut at a byte the input picks (`data[0..2]`, little
/// endian, modulo its length plus one: inside the header too). The reader
/// opens on it, then steps follow, each an op byte and its arguments:
/// `op % 9` = 0 raw bytes, 1 a frame with a good checksum around the
/// bytes given, 2 a valid record (hashkv's own encoding of a command),
/// 3 a sync mark (offset: the file's length plus a signed byte times 8),
/// 4 a seal at its own offset, 5 the rest of the writer's segment (up to
/// a length given), 6 zeros (reserved space), 7 bytes written over the
/// trailing zeros (as the writer fills its reserved space), 8 the trailing
/// zeros cut (as a closing writer does). Lengths are one byte. After each
/// step (unless bit 7 of the op byte is set), `catch_up` runs and:
/// - it returns the records applied, or a [`Error::Corrupt`]; once it has
///   reported damage it reports it on every later call;
/// - the handle's position is where the run of whole frames from the
///   segment's start ends (all of it after an `Ok`; a whole frame that
///   makes no sense is damage at its offset), and its state is what
///   replaying the segment's bytes up to that position gives: the reader
///   is at a prefix of the log, never past a frame that is not whole;
/// - reads answer (the state is read back whole) after an error too.
///
/// At the end, if the top bit of `data[1]` is set (it is not part of the
/// cut) and a frame that is there but not whole (not zeros) ends the
/// whole ones, a second reader opens, the run waits longer than a reader
/// waits before looking for a proof that such a frame is damage (20 ms),
/// and the second reader must decide as a strict replay of the same bytes
/// does: damage at the same offset, or a torn tail it stands before.
/// Allocation and time are bounded by the fuzzer's limits.
pub fn follow_tail(data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let start = follow_start();
    let Some((cut_bytes, mut rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let cut_word = u16::from_le_bytes(*cut_bytes);
    let wait_for_proof = cut_word & 0x8000 != 0;
    let cut = (cut_word & 0x7fff) as usize % (start.segment.len() + 1);
    let dir = ScratchDir::new("follow");
    let seg_path = dir.0.join(&start.segment_name);
    std::fs::write(dir.0.join(crate::dir::MANIFEST), &start.manifest).expect("MANIFEST");
    let mut bytes = start.segment[..cut].to_vec();
    let mut from_start = cut;
    std::fs::write(&seg_path, &bytes).expect("the segment");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg_path)
        .expect("the segment opens for writing");
    let o = follow_opts(&start.clock);
    // The state of replaying the bytes before a position (they never
    // change once a reader may have read them), by position.
    let replays = std::cell::RefCell::new(std::collections::HashMap::new());
    let replayed = |upto: usize, bytes: &[u8]| {
        if upto <= record::SEGMENT_MAGIC.len() {
            return Vec::new();
        }
        replays
            .borrow_mut()
            .entry(upto)
            .or_insert_with(|| {
                let db = replay_log_with(&bytes[..upto], o.clone())
                    .unwrap_or_else(|e| panic!("the frames before {upto} replay: {e}"));
                follow_state(&db)
            })
            .clone()
    };
    // Every prefix of a valid segment opens to the state of its records.
    let reader = Db::open_read_only_with(&dir.0, o.clone())
        .unwrap_or_else(|e| panic!("a prefix of {cut} bytes of a valid segment: {e}"));
    let check = |bytes: &[u8], res: Result<u64, Error>, damaged: &mut Option<String>| {
        let (end, stop, _) = frame_run(bytes);
        let pos = reader.log_position();
        let state = follow_state(&reader);
        match res {
            Ok(_) => {
                assert!(
                    damaged.is_none(),
                    "damage reported before ({damaged:?}) is no longer reported"
                );
                match stop {
                    RunStop::Bad | RunStop::BadHeader => {
                        panic!("catch-up passed over a bad frame at {end} ({stop:?})")
                    }
                    RunStop::V1 => {}
                    RunStop::NoHeader | RunStop::Pending => {
                        assert_eq!(pos.offset, end as u64, "{stop:?}: the reader stopped early");
                    }
                }
            }
            Err(e) => {
                let Error::Corrupt { offset, .. } = &e else {
                    panic!("catch-up failed with something other than damage: {e}");
                };
                match stop {
                    RunStop::Bad => assert_eq!(*offset, end as u64, "{e}"),
                    RunStop::BadHeader => assert_eq!(*offset, 0, "{e}"),
                    // Checked whole by the version-1 rule, nothing applied.
                    RunStop::V1 => {}
                    _ => assert_eq!(*offset, pos.offset, "{e}"),
                }
                if let Some(before) = damaged {
                    assert_eq!(*before, e.to_string(), "the damage reported changed");
                }
                *damaged = Some(e.to_string());
            }
        }
        if stop != RunStop::V1 {
            assert!(pos.offset as usize <= end, "{pos} past {end}");
        }
        assert_eq!(
            state,
            replayed(pos.offset as usize, bytes),
            "state at {pos}"
        );
    };
    let mut damaged = None;
    check(&bytes, Ok(0), &mut damaged);
    let mut next = || -> Option<u8> {
        let (&b, r) = rest.split_first()?;
        rest = r;
        Some(b)
    };
    for _ in 0..48 {
        let Some(op) = next() else {
            break;
        };
        let (_, _, frontier) = frame_run(&bytes);
        // Bytes the writer may still write: after every byte that is not
        // zero and every whole frame.
        let free = reader::data_end(&bytes).max(frontier);
        let mut arg = |n: usize| -> Vec<u8> { (0..n).map_while(|_| next()).collect() };
        match op % 9 {
            0 => {
                let n = arg(1).first().copied().unwrap_or(0) as usize;
                bytes.extend(arg(n));
            }
            1 | 2 => {
                let n = arg(1).first().copied().unwrap_or(0) as usize;
                let mut payload = if op % 9 == 2 {
                    vec![record::PAYLOAD_VERSION]
                } else {
                    Vec::new()
                };
                payload.extend(arg(n));
                if op % 9 == 2 && n == 0 {
                    // A valid record instead.
                    let i = arg(1).first().copied().unwrap_or(0) as usize;
                    bytes.extend(&start.frames[i % start.frames.len()]);
                } else {
                    bytes.extend((payload.len() as u32).to_le_bytes());
                    bytes.extend(crc32fast::hash(&payload).to_le_bytes());
                    bytes.extend(payload);
                }
            }
            3 => {
                let d = arg(1).first().map_or(0, |&b| b as i8 as i64) * 8;
                let at = (bytes.len() as i64 + d).max(0) as u64;
                bytes.extend(record::mark(record::MARK_SYNCED, at));
            }
            4 => {
                let at = bytes.len() as u64;
                bytes.extend(record::mark(record::MARK_SEAL, at));
            }
            5 => {
                let n = match arg(1).first().copied().unwrap_or(0) {
                    0 => usize::MAX,
                    n => n as usize,
                };
                let to = from_start.saturating_add(n).min(start.segment.len());
                bytes.extend(&start.segment[from_start..to]);
                from_start = to;
            }
            6 => {
                let n = arg(1).first().copied().unwrap_or(0) as usize * 8;
                bytes.resize(bytes.len() + n, 0);
            }
            7 => {
                let n = arg(1).first().copied().unwrap_or(0) as usize;
                let new = arg(n);
                let end = free + new.len();
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[free..end].copy_from_slice(&new);
            }
            _ => bytes.truncate(free.min(bytes.len())),
        }
        // Only bytes from `free` on changed.
        file.set_len(bytes.len() as u64)
            .expect("the segment's length");
        if let Some(new) = bytes.get(free..) {
            file.write_all_at(new, free as u64).expect("appending");
        }
        if op & 0x80 == 0 {
            check(&bytes, reader.catch_up(), &mut damaged);
        }
    }
    check(&bytes, reader.catch_up(), &mut damaged);
    // The writer is gone, and what stands at the end of the whole frames
    // is the start of one that is not whole (not zeros: a reader waits
    // longer before it looks past those, the usual end of a log). A
    // reader that has stood there longer than it waits before it looks
    // for a proof decides as a strict replay of the same bytes does: a
    // fresh one, so that no earlier look delays this one.
    let (end, stop, _) = frame_run(&bytes);
    let rest = &bytes[end.min(bytes.len())..];
    let zeros = if rest.len() >= record::FRAME_HEADER {
        rest[..4] == [0; 4]
    } else {
        rest.iter().all(|&b| b == 0)
    };
    if !wait_for_proof || stop != RunStop::Pending || zeros {
        return;
    }
    let fresh = Db::open_read_only_with(&dir.0, o.clone())
        .unwrap_or_else(|e| panic!("nothing whole is bad before {end}: {e}"));
    std::thread::sleep(std::time::Duration::from_millis(25));
    check(&bytes, reader.catch_up(), &mut damaged);
    let res = fresh.catch_up();
    let strict = reader::scan(&bytes, true, false, |_| {});
    match (&strict, &res) {
        (Err(bad), Err(Error::Corrupt { offset, .. })) => {
            assert_eq!((bad.offset, *offset), (end as u64, end as u64));
        }
        (Ok(_), Ok(_)) => assert_eq!(fresh.log_position().offset, end as u64),
        _ => panic!("a strict replay says {strict:?}, a reader {res:?}"),
    }
    assert_eq!(follow_state(&fresh), replayed(end, &bytes));
}
