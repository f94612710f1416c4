//! Log throughput per fsync policy, group commit scaling and replay speed.
//!
//! Run: `cargo bench --bench log_append`. Under `cargo test --all-targets`
//! (no `--bench` argument) it runs as a quick smoke test.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use hashkv::{Db, FsyncPolicy, Options};

fn opts(policy: FsyncPolicy) -> Options {
    Options::default().active_expiry(false).fsync(policy)
}

/// HSETs per second from one thread for `dur`.
fn single(db: &Db, dur: Duration) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    let value = "0123456789abcdef";
    while start.elapsed() < dur {
        for _ in 0..64 {
            db.hset(format!("user:{}", n % 10_000), &[("field", value)])
                .unwrap();
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// HSETs per second from `threads` threads, each on its own keys.
fn multi(db: &Db, threads: usize, dur: Duration) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while start.elapsed() < dur {
                    db.hset(format!("t{t}:{}", n % 1000), &[("f", "v")])
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let dur = if full {
        Duration::from_secs(3)
    } else {
        Duration::from_millis(50)
    };
    let dir = tempfile::tempdir().unwrap();

    let mem = Db::in_memory(opts(FsyncPolicy::No));
    let base = single(&mem, dur);
    println!("single-thread HSET/s, persistence off: {base:.0}");
    for (name, policy) in [
        ("No", FsyncPolicy::No),
        ("EverySec", FsyncPolicy::EverySec),
        ("Always", FsyncPolicy::Always),
    ] {
        let path = dir.path().join(name);
        let db = Db::open_with(&path, opts(policy)).unwrap();
        let r = single(&db, dur);
        // Removing the directory discards its dirty pages, so the next run
        // does not pay for this one's writeback.
        drop(db);
        std::fs::remove_dir_all(&path).unwrap();
        println!(
            "single-thread HSET/s, fsync {name}: {r:.0} ({:.0}% of persistence off)",
            100.0 * r / base
        );
    }
    let path = dir.path().join("group");
    let db = Db::open_with(&path, opts(FsyncPolicy::Always)).unwrap();
    let one = multi(&db, 1, dur);
    let eight = multi(&db, 8, dur);
    println!(
        "fsync Always: 1 thread {one:.0} HSET/s, 8 threads {eight:.0} HSET/s ({:.1}x)",
        eight / one
    );
    drop(db);

    // Replay: a log of N records, then time the open.
    let n: u64 = if full { 2_000_000 } else { 20_000 };
    let path = dir.path().join("replay");
    {
        let db = Db::open_with(&path, opts(FsyncPolicy::No)).unwrap();
        for i in 0..n {
            db.hset(
                format!("user:{}", i % 100_000),
                &[(format!("f{}", i % 7), "some value")],
            )
            .unwrap();
        }
    }
    let start = Instant::now();
    let db = Db::open_with(&path, opts(FsyncPolicy::No)).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let records = db.recovery_report().records;
    assert_eq!(records, n);
    println!(
        "replay: {records} records in {secs:.3} s = {:.2} M records/s",
        records as f64 / secs / 1e6
    );
}
