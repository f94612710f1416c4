//! Snapshots: round trips of random data, point-in-time captures with
//! writers running, crashes between every pair of file-system steps and by
//! SIGKILL during snapshots, and damaged snapshot files.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ShellChild;
use hashkv::{Db, Error, FsyncPolicy, Options, Reply};
use rand::{Rng, SeedableRng};

fn opts() -> Options {
    Options::default()
        .active_expiry(false)
        .no_auto_snapshots()
        .hash_max_listpack_entries(8)
        .hash_max_listpack_value(16)
}

/// The section types of a snapshot file, in order (1 KEYS, 3 KEYS_LZ4,
/// 2 END; docs/FORMAT.md).
fn section_kinds(file: &[u8]) -> Vec<u8> {
    let hlen = u32::from_le_bytes(file[8..12].try_into().unwrap()) as usize;
    let mut pos = 16 + hlen;
    let mut kinds = Vec::new();
    while pos + 9 <= file.len() {
        kinds.push(file[pos]);
        pos += 9 + u32::from_le_bytes(file[pos + 1..pos + 5].try_into().unwrap()) as usize;
    }
    kinds
}

/// Hashes whose snapshot compresses well (repeated names and values).
fn fill_compressible(db: &Db, keys: usize) {
    for i in 0..keys {
        db.hset(
            format!("user:{i}"),
            &[
                ("name", format!("user number {i}")),
                ("email", format!("user{i}@example.com")),
                ("plan", "free".to_owned()),
                (
                    "bio",
                    "the same long text in every hash, so it compresses well".to_owned(),
                ),
            ],
        )
        .unwrap();
    }
}

/// Everything observable: keys, sorted pairs, absolute TTLs, encodings.
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

fn bytes(rng: &mut impl Rng, max: usize) -> Vec<u8> {
    let n = rng.gen_range(0..=max);
    (0..n)
        .map(|_| {
            if rng.gen_bool(0.7) {
                rng.gen_range(b'a'..=b'z')
            } else {
                rng.gen()
            }
        })
        .collect()
}

/// A random dataset: small and big hashes (both encodings), binary keys,
/// fields and values, integer-looking values, TTLs in the future.
fn fill(db: &Db, seed: u64, keys: usize) {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    for i in 0..keys {
        let mut key = bytes(&mut rng, 12);
        key.extend_from_slice(format!(":{i}").as_bytes());
        let fields = if rng.gen_bool(0.2) {
            rng.gen_range(9..200)
        } else {
            rng.gen_range(1..8)
        };
        let mut argv: Vec<Vec<u8>> = vec![b"HSET".to_vec(), key.clone()];
        for f in 0..fields {
            let mut field = bytes(&mut rng, 10);
            field.extend_from_slice(format!("#{f}").as_bytes());
            argv.push(field);
            argv.push(if rng.gen_bool(0.3) {
                rng.gen_range(-100_000i64..100_000).to_string().into_bytes()
            } else {
                let max = if rng.gen_bool(0.1) { 40 } else { 12 };
                bytes(&mut rng, max)
            });
        }
        db.execute(&argv).unwrap();
        if rng.gen_bool(0.3) {
            let at = 4_000_000_000_000i64 + rng.gen_range(0..1_000_000);
            db.execute(&[b"PEXPIREAT".to_vec(), key, at.to_string().into_bytes()])
                .unwrap();
        }
    }
}

#[test]
fn random_datasets_round_trip_through_snapshots_and_restore() {
    for seed in 0..4u64 {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("copy.hks");
        let db_dir = dir.path().join("db");
        // Compressed sections on even seeds, plain ones on odd seeds.
        let compress = seed % 2 == 0;
        let expected = {
            let db = Db::open_with(&db_dir, opts().snapshot_compression(compress)).unwrap();
            fill(&db, seed, 100);
            fill_compressible(&db, 200);
            let info = db.snapshot().unwrap();
            assert_eq!(info.keys, 300);
            // Writes after the snapshot live in the new log segment.
            fill(&db, seed + 100, 20);
            db.snapshot_to(&file).unwrap();
            let kinds = section_kinds(&std::fs::read(&file).unwrap());
            assert_eq!(kinds.contains(&3), compress, "seed {seed}: {kinds:?}");
            dump(&db)
        };
        let db = Db::open_with(&db_dir, opts()).unwrap();
        let report = db.recovery_report().clone();
        assert!(report.snapshot.is_some(), "{report:?}");
        assert_eq!(report.snapshot_keys, 300);
        assert_eq!(dump(&db), expected, "seed {seed}: reopen");
        drop(db);

        let restored = dir.path().join("restored");
        assert_eq!(Db::restore(&file, &restored, &opts()).unwrap(), 320);
        let db = Db::open_with(&restored, opts()).unwrap();
        assert_eq!(dump(&db), expected, "seed {seed}: restore");
        // Restoring over a database is refused: open or not.
        let err = Db::restore(&file, &restored, &opts()).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        drop(db);
        let err = Db::restore(&file, &restored, &opts()).unwrap_err();
        assert!(
            err.to_string().contains("already holds a database"),
            "{err}"
        );

        // Other thresholds: the same pairs, encodings chosen again.
        let db = Db::open_with(
            &db_dir,
            opts()
                .hash_max_listpack_entries(1000)
                .hash_max_listpack_value(1000),
        )
        .unwrap();
        let Reply::Array(keys) = db.execute(&["KEYS", "*"]).unwrap() else {
            panic!()
        };
        for k in keys {
            let Reply::Bulk(k) = k else { panic!() };
            assert_eq!(db.object_encoding(&k).unwrap().as_deref(), Some("listpack"));
        }
    }
}

/// Writers increment K counters round-robin while snapshots run. In any
/// point-in-time view each thread's counters are non-increasing along the
/// round with at most one step between first and last; a snapshot that
/// copied keys at different moments breaks that.
#[test]
fn snapshots_taken_under_writers_are_point_in_time() {
    const K: usize = 64;
    const THREADS: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(dir.path().join("db"), opts()).unwrap();
    // Ballast so that capturing takes a while.
    for i in 0..20_000 {
        db.hset(
            format!("ballast:{i}"),
            &[("a", "1"), ("b", "2"), ("c", "3")],
        )
        .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for j in 0..K {
                        db.hincrby(format!("c:{t}:{j}"), "n", 1).unwrap();
                    }
                    // Churn: keys renamed and deleted during the capture.
                    db.hset(format!("tmp:{t}"), &[("x", "y")]).unwrap();
                    db.execute(&[
                        "RENAME".to_string(),
                        format!("tmp:{t}"),
                        format!("moved:{t}:{}", n % 50),
                    ])
                    .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let check = |db: &Db, what: &str| -> u64 {
        let mut total = 0;
        for t in 0..THREADS {
            let c: Vec<i64> = (0..K)
                .map(|j| {
                    db.hget(format!("c:{t}:{j}"), "n")
                        .unwrap()
                        .map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap())
                })
                .collect();
            assert!(
                c.windows(2).all(|w| w[0] >= w[1]) && c[0] - c[K - 1] <= 1,
                "{what}: thread {t} counters are not a point-in-time cut: {c:?}"
            );
            total += c[0] as u64;
        }
        total
    };
    std::thread::sleep(Duration::from_millis(50));
    let mut seen = Vec::new();
    for round in 0..3 {
        let file = dir.path().join(format!("s{round}.hks"));
        db.snapshot_to(&file).unwrap();
        let info = db.snapshot().unwrap();
        for (f, what) in [
            (file.clone(), "snapshot_to"),
            (info.path.clone(), "snapshot"),
        ] {
            let copy = dir.path().join(format!("check-{round}-{what}"));
            let copy_file = dir.path().join(format!("check-{round}-{what}.hks"));
            std::fs::copy(&f, &copy_file).unwrap();
            Db::restore(&copy_file, &copy, &opts()).unwrap();
            let snap = Db::open_with(&copy, opts()).unwrap();
            seen.push(check(&snap, what));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let rounds: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let live = dump(&db);
    let final_total = check(&db, "live");
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]) && final_total > seen[0],
        "writers must have run during the snapshots: {seen:?} then {final_total}"
    );
    drop(db);
    let db = Db::open_with(dir.path().join("db"), opts()).unwrap();
    assert_eq!(
        dump(&db),
        live,
        "snapshot + the log after it = the live state"
    );
    eprintln!("{rounds} writer rounds; snapshot totals {seen:?}, final {final_total}");
}

#[test]
fn flushdb_during_a_snapshot_leaves_the_snapshot_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::in_memory(opts());
    for i in 0..100_000 {
        db.hset(format!("k:{i}"), &[("f", "v")]).unwrap();
    }
    let before = dump(&db);
    let file = dir.path().join("s.hks");
    let snap = {
        let (db, file) = (db.clone(), file.clone());
        std::thread::spawn(move || db.snapshot_to(&file).unwrap())
    };
    std::thread::sleep(Duration::from_millis(2));
    db.execute(&["FLUSHDB"]).unwrap();
    db.hset("after", &[("f", "v")]).unwrap();
    snap.join().unwrap();
    Db::restore(&file, dir.path().join("r"), &opts()).unwrap();
    let got = dump(&Db::open_with(dir.path().join("r"), opts()).unwrap());
    let after = dump(&db);
    assert!(
        got == before || got.is_empty() || got == after,
        "the snapshot is neither before nor after FLUSHDB: {} keys",
        got.len()
    );
}

fn listed_and_present(dir: &Path) -> (Vec<String>, Vec<String>) {
    let manifest = std::fs::read_to_string(dir.join("MANIFEST")).unwrap();
    let mut listed: Vec<String> = manifest
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("end "))
        .filter_map(|l| l.split_once(' ').map(|(_, n)| n.to_owned()))
        .collect();
    listed.sort();
    let mut present: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "LOCK" && n != "MANIFEST")
        .collect();
    present.sort();
    (listed, present)
}

#[test]
fn a_crash_between_any_two_snapshot_steps_keeps_the_acknowledged_state() {
    for step in 1..=7 {
        let dir = tempfile::tempdir().unwrap();
        let o = opts().fsync(FsyncPolicy::Always);
        let expected = {
            let db = Db::open_with(dir.path(), o.clone()).unwrap();
            fill(&db, 7, 50);
            db.snapshot().unwrap();
            fill(&db, 8, 30);
            db.stop_next_snapshot_after(step);
            let err = db.snapshot().unwrap_err();
            assert!(err.to_string().contains("stopped on purpose"), "{err}");
            // Writes after the interrupted snapshot are acknowledged too.
            fill(&db, 9, 30);
            db.hincrby("counter", "n", 5).unwrap();
            dump(&db)
        };
        let db = Db::open_with(dir.path(), o.clone()).unwrap();
        assert_eq!(dump(&db), expected, "crash after step {step}");
        let (listed, present) = listed_and_present(dir.path());
        assert_eq!(
            listed, present,
            "step {step}: leftovers are removed on open"
        );
        // And the next snapshot works from there.
        db.snapshot().unwrap();
        db.hincrby("counter", "n", 1).unwrap();
        let expected = dump(&db);
        drop(db);
        let db = Db::open_with(dir.path(), o).unwrap();
        assert_eq!(dump(&db), expected, "step {step}: snapshot after recovery");
    }
}

/// A child process writes with fsync always and snapshots every few KiB of
/// log; it is killed at random moments. Every acknowledged write must
/// survive, nothing else may appear.
#[test]
fn sigkill_during_snapshots_never_loses_acknowledged_writes() {
    let iterations: usize = std::env::var("HASHKV_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let seed: u64 = rand::thread_rng().gen();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    {
        // Enough data that each snapshot takes a moment.
        let db = Db::open_with(dir.path(), opts()).unwrap();
        for i in 0..20_000 {
            db.hset(format!("ballast:{i}"), &[("a", "1"), ("b", "2")])
                .unwrap();
        }
    }
    let mut acked: Vec<String> = Vec::new();
    let mut all_sent = std::collections::HashSet::new();
    let mut snapshots_seen = 0;
    for it in 0..iterations {
        let mut child = ShellChild::spawn(
            &[
                "--fsync",
                "always",
                "--listpack-entries",
                "8",
                "--compact-log-at",
                "4096",
            ],
            dir.path(),
        );
        // Kills land anywhere in the first 300 ms; if no snapshot has
        // completed by half way (a loaded machine starts the child slowly),
        // the rest of the runs last long enough for one to.
        let kill_after = if snapshots_seen == 0 && it >= iterations / 2 {
            Duration::from_millis(rng.gen_range(1000..2000))
        } else {
            Duration::from_millis(rng.gen_range(20..300))
        };
        let start = Instant::now();
        let mut sent = Vec::new();
        let mut i = 0;
        while start.elapsed() < kill_after {
            let field = format!("it{it}-{i}");
            if !child.send(&format!("HSET fields {field} x\n")) {
                break;
            }
            sent.push(field);
            i += 1;
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..500)));
        }
        let n_acked = child.kill().len(); // SIGKILL
        acked.extend(sent[..n_acked.min(sent.len())].iter().cloned());
        let db = Db::open_with(dir.path(), opts())
            .unwrap_or_else(|e| panic!("seed {seed} iteration {it}: reopen failed: {e}"));
        if db.recovery_report().snapshot.is_some() {
            snapshots_seen += 1;
        }
        for f in &acked {
            assert!(
                db.hexists("fields", f).unwrap(),
                "seed {seed} iteration {it}: acknowledged field {f} lost"
            );
        }
        // Nothing that was never sent (a field sent but not acknowledged
        // before a kill may or may not be there, in this and later runs).
        all_sent.extend(sent.iter().cloned());
        for (f, _) in db.hgetall("fields").unwrap() {
            let f = String::from_utf8(f).unwrap();
            assert!(
                all_sent.contains(&f),
                "seed {seed} iteration {it}: field {f} was never sent"
            );
        }
        assert_eq!(
            db.hget("ballast:19999", "b").unwrap().as_deref(),
            Some(&b"2"[..])
        );
    }
    assert!(
        snapshots_seen > 0,
        "no snapshot was ever taken (seed {seed})"
    );
    eprintln!(
        "{iterations} kills, {} acknowledged writes checked, {snapshots_seen} opens from a snapshot (seed {seed})",
        acked.len()
    );
}

#[test]
fn damaged_and_truncated_snapshots_are_named_with_file_and_offset() {
    for compress in [false, true] {
        damaged_and_truncated(compress);
    }
}

fn damaged_and_truncated(compress: bool) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    {
        let db = Db::open_with(&src, opts().snapshot_compression(compress)).unwrap();
        fill(&db, 3, 4);
        fill_compressible(&db, 30);
        db.snapshot().unwrap();
    }
    let snap = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "hks"))
        .unwrap();
    let name = snap.file_name().unwrap().to_owned();
    let good = std::fs::read(&snap).unwrap();
    assert_eq!(section_kinds(&good).contains(&3), compress);
    let manifest = std::fs::read(src.join("MANIFEST")).unwrap();
    let seg = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "aof"))
        .unwrap();
    let seg_bytes = std::fs::read(&seg).unwrap();
    let open_with = |bytes: &[u8]| -> Result<Db, Error> {
        let d = tempfile::tempdir().unwrap().keep();
        std::fs::write(d.join("MANIFEST"), &manifest).unwrap();
        std::fs::write(d.join(seg.file_name().unwrap()), &seg_bytes).unwrap();
        std::fs::write(d.join(&name), bytes).unwrap();
        let r = Db::open_with(&d, opts());
        if r.is_err() {
            let _ = std::fs::remove_dir_all(&d);
        }
        r
    };
    assert!(open_with(&good).is_ok());
    // Every bit flip is caught, at an offset at or before it.
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        match open_with(&bad) {
            Err(Error::Corrupt { file, offset, .. }) => {
                assert!(file.ends_with(name.to_str().unwrap()), "{file}");
                assert!(offset as usize <= at, "flip at {at} reported at {offset}");
            }
            other => panic!("flip at byte {at}: expected Corrupt, got {other:?}"),
        }
    }
    // Every truncation too.
    for len in 0..good.len() {
        match open_with(&good[..len]) {
            Err(Error::Corrupt { offset, .. }) => assert!(offset as usize <= len),
            other => panic!("cut at {len}: expected Corrupt, got {other:?}"),
        }
    }
    // And restore refuses a damaged file before creating anything.
    let bad_file = dir.path().join("bad.hks");
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 1;
    std::fs::write(&bad_file, &bad).unwrap();
    let target = dir.path().join("never");
    assert!(matches!(
        Db::restore(&bad_file, &target, &opts()),
        Err(Error::Corrupt { .. })
    ));
    assert!(!target.exists());
}

#[test]
fn automatic_rules_take_snapshots_and_drop_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let snap_files = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".hks")
            })
            .count()
    };
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "{what} never happened");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // A save rule: after 0 s if at least 5 changes.
    let a = dir.path().join("save");
    let db = Db::open_with(&a, opts().save(Duration::ZERO, 5)).unwrap();
    for i in 0..4 {
        db.hset("k", &[(format!("f{i}"), "v")]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(snap_files(&a), 0, "4 changes do not meet the rule");
    db.hset("k", &[("f4", "v")]).unwrap();
    wait_for("a snapshot after 5 changes", &|| snap_files(&a) == 1);
    let expected = dump(&db);
    drop(db);
    let db = Db::open_with(&a, opts()).unwrap();
    assert_eq!(db.recovery_report().snapshot_keys, 1);
    assert_eq!(dump(&db), expected);
    drop(db);
    // The log-size trigger: past 4 KiB of log.
    let b = dir.path().join("size");
    let db = Db::open_with(&b, opts().compact_log_at(Some(4096))).unwrap();
    for i in 0..200 {
        db.hset("k", &[(format!("field-{i}"), "some value")])
            .unwrap();
    }
    // Wait for what the rule means, not for a moment: snapshots fire while
    // the log since the last one is past 4 KiB, so it ends below that,
    // with the covered segments gone. (Counting data, not file sizes: the
    // open segment has space reserved ahead.)
    let listed_log_bytes = |d: &Path| -> u64 {
        let manifest = std::fs::read_to_string(d.join("MANIFEST")).unwrap_or_default();
        manifest
            .lines()
            .filter_map(|l| l.strip_prefix("segment "))
            .map(|name| {
                let bytes = std::fs::read(d.join(name)).unwrap_or_default();
                bytes
                    .iter()
                    .rposition(|&b| b != 0)
                    .map_or(0, |i| i as u64 + 1)
            })
            .sum()
    };
    // Quiet: one snapshot, every segment present listed, nothing half done.
    let settled = |d: &Path| {
        let manifest = std::fs::read_to_string(d.join("MANIFEST")).unwrap_or_default();
        std::fs::read_dir(d).unwrap().all(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            !n.ends_with(".tmp") && (!n.ends_with(".aof") || manifest.contains(&n))
        }) && snap_files(d) == 1
    };
    wait_for("the log compacted below 4 KiB by snapshots", &|| {
        settled(&b) && listed_log_bytes(&b) < 4096
    });
    let expected = dump(&db);
    drop(db);
    let aof_files = std::fs::read_dir(&b)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".aof")
        })
        .count();
    assert_eq!(aof_files, 1, "the covered segments were dropped");
    let db = Db::open_with(&b, opts()).unwrap();
    assert_eq!(dump(&db), expected);
}

/// Dropping the last handle waits for the background thread (an automatic
/// snapshot under way finishes first) and releases the directory, so
/// opening it again at once works every time; a second open while a
/// handle lives says the holder is this process.
#[test]
fn reopening_right_after_the_last_handle_drops_works_while_snapshots_run() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .no_auto_snapshots()
        .compact_log_at(Some(64 << 10));
    let value = "v".repeat(200);
    for round in 0..20 {
        let db = Db::open_with(dir.path(), opts.clone())
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        for i in 0..2_000 {
            db.hset(format!("k{}", i % 500), &[("f", value.as_str())])
                .unwrap();
        }
        let err = Db::open_with(dir.path(), opts.clone()).unwrap_err();
        assert!(
            err.to_string().contains("already open in this process"),
            "{err}"
        );
        drop(db);
    }
    let db = Db::open_with(dir.path(), opts).unwrap();
    assert_eq!(db.dbsize().unwrap(), 500);
}
