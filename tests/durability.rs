//! Durability: reopen round trips, the directory lock, torn tails cut at
//! every byte, corruption named by file and offset (and salvaged), and
//! crash tests that SIGKILL a writer at random moments.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::ShellChild;
use hashkv::{Db, Error, FsyncPolicy, Options, RecoveryMode, Reply};
use rand::{Rng, SeedableRng};

fn opts() -> Options {
    Options::default()
        .active_expiry(false)
        .hash_max_listpack_entries(8)
        .hash_max_listpack_value(16)
}

/// Everything observable about the data: keys, pairs (sorted), TTLs,
/// encodings.
fn dump(db: &Db) -> Vec<String> {
    let Reply::Array(keys) = db.execute(&["KEYS", "*"]).unwrap() else {
        panic!()
    };
    let mut out = Vec::new();
    for k in keys {
        let Reply::Bulk(k) = k else { panic!() };
        let mut pairs = db.hgetall(&k).unwrap();
        pairs.sort();
        let ttl = db.execute(&[b"PEXPIRETIME".as_slice(), &k]).unwrap();
        let enc = db.object_encoding(&k).unwrap();
        out.push(format!("{k:?} {pairs:?} {ttl:?} {enc:?}"));
    }
    out.sort();
    out
}

fn segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "aof"))
        .collect();
    segs.sort();
    segs.pop().expect("a log segment")
}

/// Byte offsets where records start (and the end), from the framing.
fn record_bounds(buf: &[u8]) -> Vec<usize> {
    let mut off = 8;
    let mut v = vec![off];
    while off + 8 <= buf.len() {
        let len = u32::from_le_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
        off += 8 + len;
        if off > buf.len() {
            break;
        }
        v.push(off);
    }
    v
}

fn workload(db: &Db) {
    db.hset("user:1", &[("name", "Alice"), ("age", "25")])
        .unwrap();
    db.hincrby("user:1", "age", 1).unwrap();
    db.hincrbyfloat("user:1", "score", "10.5").unwrap();
    db.hincrbyfloat("user:1", "score", "0.1").unwrap();
    let big: Vec<(String, String)> = (0..20)
        .map(|i| (format!("f{i}"), format!("v{i}")))
        .collect();
    db.hset("big", &big).unwrap();
    db.hset("long", &[("f", "a value longer than sixteen bytes")])
        .unwrap();
    db.execute(&["PEXPIREAT", "user:1", "4102444800000"])
        .unwrap();
    db.execute(&["EXPIRE", "long", "100000"]).unwrap();
    db.hset("tmp", &[("x", "1")]).unwrap();
    db.del(&["tmp"]).unwrap();
    db.execute(&["RENAME", "long", "renamed"]).unwrap();
    db.execute(&["COPY", "user:1", "user:2"]).unwrap();
    db.hdel("user:2", &["name"]).unwrap();
    // A dict that shrinks below the limits comes back compact on reopen.
    let shrink: Vec<(String, String)> =
        (0..12).map(|i| (format!("s{i}"), "v".to_owned())).collect();
    db.hset("shrinks", &shrink).unwrap();
    let gone: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    db.hdel("shrinks", &gone).unwrap();
    db.hset("bin\x00key", &[("\u{ff}", "\x00\x01")]).unwrap();
}

#[test]
fn reopen_restores_the_state_and_chooses_encodings_again() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let db = Db::open_with(dir.path(), opts()).unwrap();
        workload(&db);
        assert_eq!(
            db.object_encoding("shrinks").unwrap().as_deref(),
            Some("hashtable")
        );
        dump(&db)
    };
    let db = Db::open_with(dir.path(), opts()).unwrap();
    let after = dump(&db);
    assert_eq!(
        db.object_encoding("shrinks").unwrap().as_deref(),
        Some("listpack")
    );
    assert_eq!(
        db.object_encoding("big").unwrap().as_deref(),
        Some("hashtable")
    );
    assert_eq!(
        db.hget("user:1", "score").unwrap().as_deref(),
        Some(&b"10.6"[..])
    );
    // Same data; only the re-chosen encoding of "shrinks" differs.
    let norm = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|l| {
                l.replace("Some(\"hashtable\")", "E")
                    .replace("Some(\"listpack\")", "E")
            })
            .collect()
    };
    assert_eq!(norm(&after), norm(&before));
    assert_eq!(db.recovery_report().torn_tail, None);
    assert!(db.recovery_report().records > 10);
}

#[test]
fn a_second_open_gets_a_locked_error() {
    let dir = tempfile::tempdir().unwrap();
    let _db = Db::open(dir.path()).unwrap();
    match Db::open(dir.path()) {
        Err(Error::Locked { path, pid }) => {
            assert!(path.contains(&*dir.path().to_string_lossy()));
            assert_eq!(pid, Some(std::process::id()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn torn_tail_is_truncated_and_reported_at_every_offset() {
    let src = tempfile::tempdir().unwrap();
    {
        let db = Db::open_with(src.path(), opts()).unwrap();
        workload(&db);
    }
    let seg = segment(src.path());
    let name = seg.file_name().unwrap().to_owned();
    let full = std::fs::read(&seg).unwrap();
    let bounds = record_bounds(&full);
    assert_eq!(*bounds.last().unwrap(), full.len());
    let manifest = std::fs::read(src.path().join("MANIFEST")).unwrap();
    let state_at = |cut: usize| -> (Vec<String>, hashkv::RecoveryReport, Vec<u8>) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("MANIFEST"), &manifest).unwrap();
        std::fs::write(d.path().join(&name), &full[..cut]).unwrap();
        let db = Db::open_with(d.path(), opts()).unwrap();
        let s = dump(&db);
        let r = db.recovery_report().clone();
        // Read while open: closing appends a sync mark.
        let bytes = std::fs::read(d.path().join(&name)).unwrap();
        drop(db);
        (s, r, bytes)
    };
    // Every cut inside the last three records.
    let first = bounds[bounds.len() - 4];
    let mut expected = state_at(first).0;
    let mut boundary = first;
    for cut in first..=full.len() {
        let (state, report, bytes) = state_at(cut);
        if bounds.contains(&cut) {
            expected = state.clone();
            boundary = cut;
            assert_eq!(report.torn_tail, None, "cut {cut} is a record boundary");
        } else {
            let t = report
                .torn_tail
                .as_ref()
                .unwrap_or_else(|| panic!("cut {cut} not reported"));
            assert_eq!(
                (t.offset, t.bytes),
                (boundary as u64, (cut - boundary) as u64)
            );
            assert_eq!(bytes.len(), boundary, "the torn tail is cut off the file");
        }
        assert_eq!(state, expected, "cut at byte {cut}");
    }
}

#[test]
fn corruption_before_the_tail_names_the_offset_and_salvage_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open_with(dir.path(), opts()).unwrap();
        for i in 0..20 {
            db.hset(format!("k{i}"), &[("f", "v")]).unwrap();
        }
    }
    let seg = segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let bounds = record_bounds(&bytes);
    let victim = bounds[5];
    bytes[victim + 12] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    match Db::open_with(dir.path(), opts()) {
        Err(Error::Corrupt {
            file,
            offset,
            reason,
        }) => {
            assert!(file.ends_with("log-000001.aof"), "{file}");
            assert_eq!(offset, victim as u64);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let db = Db::open_with(dir.path(), opts().recovery(RecoveryMode::Salvage)).unwrap();
    let r = db.recovery_report().clone();
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].start, victim as u64);
    assert!(r.rewritten);
    assert_eq!(db.dbsize().unwrap(), 19, "every record but the damaged one");
    assert_eq!(db.exists(&["k5"]).unwrap(), 0);
    drop(db);
    // The rewritten log opens cleanly without salvage.
    let db = Db::open_with(dir.path(), opts()).unwrap();
    assert_eq!(db.dbsize().unwrap(), 19);
}

#[test]
fn fsync_policies_all_persist_on_clean_close() {
    for policy in [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::No] {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open_with(dir.path(), opts().fsync(policy)).unwrap();
            for i in 0..50 {
                db.hincrby("c", "n", i).unwrap();
            }
        }
        let db = Db::open_with(dir.path(), opts()).unwrap();
        assert_eq!(
            db.hget("c", "n").unwrap().as_deref(),
            Some(&b"1225"[..]),
            "{policy:?}"
        );
    }
}

#[test]
fn group_commit_serves_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path(), opts().fsync(FsyncPolicy::Always)).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    db.hset(format!("t{t}"), &[(format!("f{i}"), "v")]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(db);
    let db = Db::open_with(dir.path(), opts()).unwrap();
    for t in 0..8 {
        assert_eq!(db.hlen(format!("t{t}")).unwrap(), 25);
    }
}

/// A child `hashkv shell --fsync always` gets commands on stdin; a printed
/// reply is an acknowledged write. SIGKILL at a random moment, reopen, and
/// check: every acknowledged write is there, nothing that was never sent.
#[test]
fn sigkill_never_loses_acknowledged_writes() {
    let iterations: usize = std::env::var("HASHKV_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("HASHKV_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let (mut acked_total, mut sent_total) = (0u64, 0u64);
    let mut acked_fields: Vec<String> = Vec::new();
    for it in 0..iterations {
        let mut child = ShellChild::spawn(
            &["--fsync", "always", "--listpack-entries", "8"],
            dir.path(),
        );
        let kill_after = Duration::from_millis(rng.gen_range(5..60));
        let start = Instant::now();
        let mut sent: Vec<String> = Vec::new();
        let mut i = 0;
        while start.elapsed() < kill_after {
            let field = format!("it{it}-{i}");
            if !child.send(&format!("HINCRBY counter n 1\nHSET fields {field} x\n")) {
                break;
            }
            sent.push(field);
            i += 1;
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..2000)));
        }
        let replies = child.kill(); // SIGKILL
                                    // Each command pair yields two replies; a pair is acknowledged when
                                    // its HSET reply (the second) was printed.
        let pairs_acked = replies.len() / 2;
        let incr_acked = replies.len().div_ceil(2);
        acked_total += incr_acked as u64;
        sent_total += sent.len() as u64;
        acked_fields.extend(sent[..pairs_acked].iter().cloned());
        let db = Db::open(dir.path())
            .unwrap_or_else(|e| panic!("seed {seed} iteration {it}: reopen failed: {e}"));
        let n: u64 = db
            .hget("counter", "n")
            .unwrap()
            .map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap());
        assert!(
            n >= acked_total && n <= sent_total,
            "seed {seed} iteration {it}: counter {n}, acknowledged {acked_total}, sent {sent_total}"
        );
        // The counter is exact from here on: unacknowledged increments that
        // did reach the log count as done.
        acked_total = n;
        sent_total = n;
        for f in &acked_fields {
            assert!(
                db.hexists("fields", f).unwrap(),
                "seed {seed} iteration {it}: acknowledged field {f} lost"
            );
        }
        assert!(
            db.hlen("fields").unwrap() as u64 <= n,
            "seed {seed}: phantom fields"
        );
    }
    assert!(
        acked_fields.len() > iterations,
        "too few acknowledged writes to mean anything: {}",
        acked_fields.len()
    );
    eprintln!(
        "{iterations} kills, {} acknowledged HSETs checked, counter {acked_total} (seed {seed})",
        acked_fields.len()
    );
}

/// Field TTLs under SIGKILL: a child shell (`--fsync always`, small
/// listpack limits, so dicts with field TTLs and `listpackex` hashes both
/// occur; every third reopen takes a snapshot) sets
/// fields with absolute expiries in the year 2100 and moves them; after
/// each kill, every field has the expiry of its last acknowledged command
/// or of one sent after it, and a field whose creation was acknowledged is
/// never missing.
#[test]
fn sigkill_keeps_acknowledged_field_ttls() {
    const T: i64 = 4_102_444_800_000;
    struct Field {
        key: String,
        name: String,
        /// Expiry given by the last acknowledged command (None: the
        /// field's creation was never acknowledged).
        acked: Option<i64>,
        /// Expiries sent after it, not acknowledged.
        pending: Vec<i64>,
    }
    let iterations: usize = std::env::var("HASHKV_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = rand::thread_rng().gen();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut fields: Vec<Field> = Vec::new();
    let mut created = 0usize;
    let mut acked_total = 0usize;
    for it in 0..iterations {
        let mut child = ShellChild::spawn(
            &["--fsync", "always", "--listpack-entries", "8"],
            dir.path(),
        );
        let kill_after = Duration::from_millis(rng.gen_range(10..80));
        let start = Instant::now();
        // (index into `fields`, expiry) per command sent, in order.
        let mut sent: Vec<(usize, i64)> = Vec::new();
        while start.elapsed() < kill_after {
            let cmd = if fields.is_empty() || rng.gen_bool(0.6) {
                let n = created;
                created += 1;
                let key = if n.is_multiple_of(3) {
                    "small".to_string()
                } else {
                    format!("k{}", n % 4)
                };
                let at = T + n as i64;
                fields.push(Field {
                    key: key.clone(),
                    name: format!("f{n}"),
                    acked: None,
                    pending: Vec::new(),
                });
                sent.push((fields.len() - 1, at));
                format!("HSETEX {key} PXAT {at} FIELDS 1 f{n} v\n")
            } else {
                let i = rng.gen_range(0..fields.len());
                let at = T + rng.gen_range(0..1_000_000);
                sent.push((i, at));
                format!(
                    "HPEXPIREAT {} {at} FIELDS 1 {}\n",
                    fields[i].key, fields[i].name
                )
            };
            if !child.send(&cmd) {
                break;
            }
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..1500)));
        }
        // One reply line per command: the first `replies` were acknowledged.
        let replies = child.kill().len(); // SIGKILL
        acked_total += replies;
        for (k, &(i, at)) in sent.iter().enumerate() {
            let f = &mut fields[i];
            if k < replies {
                f.acked = Some(at);
                f.pending.clear();
            } else {
                f.pending.push(at);
            }
        }
        let db = Db::open(dir.path())
            .unwrap_or_else(|e| panic!("seed {seed} iteration {it}: reopen failed: {e}"));
        for f in &mut fields {
            let got = match db
                .execute(&["HPEXPIRETIME", &f.key, "FIELDS", "1", &f.name])
                .unwrap()
            {
                Reply::Array(v) => v[0].as_integer().unwrap(),
                other => panic!("{other:?}"),
            };
            let ok = match f.acked {
                Some(a) => got == a || f.pending.contains(&got),
                None => got == -2 || f.pending.contains(&got),
            };
            assert!(
                ok,
                "seed {seed} iteration {it}: {} {} expires at {got}; acknowledged {:?}, sent after {:?}",
                f.key, f.name, f.acked, f.pending
            );
            // What reopened is the state from here on.
            f.acked = (got > 0).then_some(got);
            f.pending.clear();
        }
        fields.retain(|f| f.acked.is_some());
        if it % 3 == 1 {
            // Later runs start from a snapshot holding field TTLs.
            db.snapshot().unwrap();
        }
    }
    assert!(
        acked_total > iterations,
        "too few acknowledged commands: {acked_total}"
    );
    let snapshots = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".hks")
        })
        .count();
    eprintln!(
        "{iterations} kills, {acked_total} acknowledged field-TTL commands, {} fields checked, {snapshots} snapshot file(s) at the end (seed {seed})",
        fields.len()
    );
}

/// A clean close leaves the log ending in a sync mark; closing again, or
/// opening and closing without writing, adds nothing, and a reopen reports
/// nothing.
#[test]
fn clean_closes_and_idle_reopens_leave_the_log_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts();
    let db = Db::open_with(dir.path(), o.clone()).unwrap();
    db.hset("k", &[("f", "v")]).unwrap();
    let other = db.clone();
    db.close().unwrap();
    drop(other);
    let seg = segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    for _ in 0..3 {
        let db = Db::open_with(dir.path(), o.clone()).unwrap();
        assert!(
            db.recovery_report().lines().is_empty(),
            "{:?}",
            db.recovery_report().lines()
        );
        assert_eq!(db.hget("k", "f").unwrap().as_deref(), Some(&b"v"[..]));
        db.close().unwrap();
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
    }
}
