//! Open from a snapshot: N W1 profiles (keys `user:%012d`, 8 fields
//! each) loaded with `Db::load`, snapshotted and closed, then the
//! directory opened again R times (each open reads the snapshot: the
//! sections checked and decoded on both cores, the entries copied into
//! the key tables). Prints each open and the median.
//!
//! Run: `cargo bench --bench open [-- --keys N --runs R]` (default
//! 1,000,000 keys, 7 runs). Under `cargo test --all-targets` it runs one
//! small round. For a profile, `perf record -g <bench binary> --bench
//! --runs 20`.
#![allow(missing_docs)]

#[path = "common/args.rs"]
mod args;
#[path = "common/datasets.rs"]
mod datasets;

use std::time::Instant;

use datasets::profile;
use hashkv::{Db, Options};

fn main() {
    let bench = args::full();
    let keys = args::arg("--keys").unwrap_or(if bench { 1_000_000 } else { 2_000 });
    let runs = args::arg("--runs").unwrap_or(if bench { 7 } else { 1 });
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let opts = Options::default().no_auto_snapshots();
    {
        let db = Db::open_with(&dir, opts.clone()).unwrap();
        db.load((0..keys).map(|i| (format!("user:{i:012}"), profile(i))))
            .unwrap();
        db.snapshot().unwrap();
        db.close().unwrap();
    }
    let size: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("snap"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    println!(
        "{keys} W1 profiles, snapshot {:.1} MB; {runs} opens",
        size as f64 / 1e6
    );
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let db = Db::open_with(&dir, opts.clone()).unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(db.dbsize().unwrap(), keys as i64);
        println!("  open {secs:.3} s");
        times.push(secs);
        drop(db);
    }
    times.sort_by(f64::total_cmp);
    println!("open median {:.3} s", times[times.len() / 2]);
}
