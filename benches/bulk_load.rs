//! Bulk load of N W1 profiles (keys `user:%012d`, 8 fields each), durable
//! at the end, against LMDB through heed, all in the same method: the
//! fields go in batches of 1,000 (125 profiles), nothing is made durable
//! per batch, and one fsync at the end makes the whole load durable; the
//! time runs from the first batch to the end of that fsync.
//!
//! - LMDB (heed, `NO_SYNC`): one write transaction per batch, a record per
//!   field (`key \0 field` -> value), `Env::force_sync` at the end.
//! - hashkv `Db::write_batch`: one `WriteBatch` of 125 HSETs per batch
//!   (`FsyncPolicy::EverySec`, so no batch waits for an fsync),
//!   `Db::sync` at the end.
//! - hashkv `Db::load`: the profiles as one iterator (batches of 1,000
//!   fields, each logged as one record); `load` fsyncs once at the end.
//!   Then the same into an in-memory database (no log, no fsync), which
//!   shows what logging costs.
//! - hashkv `Db::import` of the profiles as a RESP file of HSETs (what
//!   `redis-cli --pipe` reads; written before the timing), then
//!   `Db::close`: parsing included, and the snapshot `import` takes at
//!   its end.
//!
//! The profiles are built in memory before any timing. Each engine writes
//! into a fresh directory under the system's temporary directory.
//!
//! Run: `cargo bench --bench bulk_load [-- --keys N --runs R]` (default
//! 1,000,000 keys, 3 runs; medians printed). Under `cargo test
//! --all-targets` it runs one small round.
#![allow(missing_docs)]
// heed opens LMDB environments through `unsafe` calls.
#![allow(unsafe_code)]

#[path = "common/args.rs"]
mod args;
#[path = "common/datasets.rs"]
mod datasets;

use std::time::Instant;

use datasets::profile;
use hashkv::{Db, FsyncPolicy, Options, WriteBatch};

type Profile = (String, Vec<(String, String)>);

/// Loads the profiles into a fresh store; returns the seconds taken.
type Engine = fn(&[Profile]) -> f64;

const BATCH_FIELDS: usize = 1_000;

fn main() {
    let bench = args::full();
    let keys = args::arg("--keys").unwrap_or(if bench { 1_000_000 } else { 2_000 });
    let runs = args::arg("--runs").unwrap_or(if bench { 3 } else { 1 });
    let only: Option<String> = args::arg("--only");
    let data: Vec<Profile> = (0..keys as u64)
        .map(|i| (format!("user:{i:012}"), profile(i)))
        .collect();
    let fields: usize = data.iter().map(|(_, p)| p.len()).sum();
    let bytes: usize = data
        .iter()
        .map(|(k, p)| k.len() + p.iter().map(|(f, v)| f.len() + v.len()).sum::<usize>())
        .sum();
    println!(
        "{keys} W1 profiles, {fields} fields, {:.1} MB of keys, fields and values; batches of {BATCH_FIELDS} fields; {runs} runs",
        bytes as f64 / 1e6
    );
    let engines: [(&str, Engine); 5] = [
        ("lmdb (heed)", heed_load),
        ("hashkv write_batch", hashkv_write_batch),
        ("hashkv load", hashkv_load),
        ("hashkv load in memory", hashkv_load_in_memory),
        ("hashkv import (RESP)", hashkv_import),
    ];
    let mut medians = Vec::new();
    for (name, run) in engines {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let mut rates = Vec::new();
        for _ in 0..runs {
            let secs = run(&data);
            let rate = fields as f64 / secs;
            println!("  {name:<20} {secs:.3} s  {:.2} M fields/s", rate / 1e6);
            rates.push(rate);
        }
        let m = median(rates);
        println!("{name:<22} median {:.2} M fields/s", m / 1e6);
        medians.push((name, m));
    }
    if let Some(&(_, lmdb)) = medians.iter().find(|(n, _)| n.starts_with("lmdb")) {
        for &(name, m) in &medians[1..] {
            println!("{name} / lmdb = {:.2}x", m / lmdb);
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn per_batch() -> usize {
    BATCH_FIELDS / 8
}

fn heed_load(data: &[Profile]) -> f64 {
    use heed::types::Bytes;
    use heed::{CommitOrAbort, Database, EnvFlags, EnvOpenOptions};
    let dir = tempfile::tempdir().unwrap();
    let env = unsafe {
        EnvOpenOptions::new()
            .map_size(16 << 30)
            .flags(EnvFlags::NO_SYNC)
            .open(dir.path())
            .unwrap()
    };
    let wtxn = env.write_txn().unwrap();
    let db: Database<Bytes, Bytes> = env
        .create_databases_and_commit(wtxn, |wdo, wtxn| {
            wdo.create_database::<Bytes, Bytes>(wtxn, None)
                .map(CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
        .unwrap_commit();
    let mut key = Vec::with_capacity(64);
    let start = Instant::now();
    for chunk in data.chunks(per_batch()) {
        let mut wtxn = env.write_txn().unwrap();
        for (k, pairs) in chunk {
            for (f, v) in pairs {
                key.clear();
                key.extend_from_slice(k.as_bytes());
                key.push(0);
                key.extend_from_slice(f.as_bytes());
                db.put(&mut wtxn, &key, v.as_bytes()).unwrap();
            }
        }
        wtxn.commit().unwrap();
    }
    env.force_sync().unwrap();
    start.elapsed().as_secs_f64()
}

fn hashkv_dir() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_with(
        dir.path().join("db"),
        Options::default().fsync(FsyncPolicy::EverySec),
    )
    .unwrap();
    (dir, db)
}

fn hashkv_write_batch(data: &[Profile]) -> f64 {
    let (_dir, db) = hashkv_dir();
    let mut batch = WriteBatch::new();
    let start = Instant::now();
    for chunk in data.chunks(per_batch()) {
        batch.clear();
        for (k, pairs) in chunk {
            batch.hset(k, pairs);
        }
        db.write_batch(&batch).unwrap();
    }
    db.sync().unwrap();
    start.elapsed().as_secs_f64()
}

fn hashkv_load(data: &[Profile]) -> f64 {
    let (_dir, db) = hashkv_dir();
    load_into(&db, data)
}

/// The same load with no log (the cost of logging and the fsync is the
/// difference).
fn hashkv_load_in_memory(data: &[Profile]) -> f64 {
    load_into(&Db::in_memory(Options::default()), data)
}

fn load_into(db: &Db, data: &[Profile]) -> f64 {
    let start = Instant::now();
    let t = db
        .load(
            data.iter()
                .map(|(k, pairs)| (k, pairs.iter().map(|(f, v)| (f.as_bytes(), v.as_bytes())))),
        )
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    secs
}

fn hashkv_import(data: &[Profile]) -> f64 {
    let (dir, db) = hashkv_dir();
    let resp = dir.path().join("profiles.resp");
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&resp).unwrap());
        for (k, pairs) in data {
            write!(
                out,
                "*{}\r\n$4\r\nHSET\r\n${}\r\n{k}\r\n",
                2 + 2 * pairs.len(),
                k.len()
            )
            .unwrap();
            for (f, v) in pairs {
                write!(out, "${}\r\n{f}\r\n${}\r\n{v}\r\n", f.len(), v.len()).unwrap();
            }
        }
        out.flush().unwrap();
    }
    let start = Instant::now();
    let mut input = std::io::BufReader::new(std::fs::File::open(&resp).unwrap());
    let t = db
        .import(hashkv::interop::Format::Resp, &mut input, &mut |_, _| {})
        .unwrap();
    let imported = start.elapsed().as_secs_f64();
    db.close().unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "    (import {imported:.3} s, its snapshot included; close {:.3} s)",
        secs - imported
    );
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    secs
}
