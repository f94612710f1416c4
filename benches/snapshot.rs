//! Snapshot benchmark on the object-store dataset (ids bucketed 1,000 per
//! hash as `object:{id/1000}` -> field `{id}` = 40-hex value,
//! `hash-max-listpack-entries 1024`), side by side with a real Redis:
//!
//! - snapshot write speed (MB/s of snapshot file, fsync included);
//! - open from the snapshot vs Redis loading its RDB of the same data (the
//!   "DB loaded from disk" time Redis logs, and the time until it answers);
//! - open time at 1 M and 10 M fields (linear?);
//! - p99.9 latency of a steady write load with and without a snapshot
//!   running, and the extra resident memory during the snapshot.
//!
//! Run: `cargo bench --bench snapshot [-- FIELDS]` (default 10,000,000 and
//! 1,000,000). Under `cargo test --all-targets` it runs a small smoke test.
//! With `HASHKV_CHART_DATA=DIR` the paced writes' latency over time (p99
//! and maximum of each 20 ms, without and during snapshots) goes to
//! `DIR/snapshot_latency.csv` and the snapshots' spans to
//! `DIR/snapshot_runs.csv` (docs/charts/regenerate.sh).
#![allow(missing_docs)]

#[path = "common/chart_data.rs"]
mod chart_data;
#[path = "../tests/common/mod.rs"]
mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::RespClient;
use hashkv::{Db, FsyncPolicy, Options};

/// Anonymous resident memory (the data and the snapshot's buffers; the
/// mapped log window and page cache are file-backed and not counted).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("RssAnon:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

fn hex40(i: u64) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xDEAD_BEEF;
    let mut s = String::with_capacity(40);
    while s.len() < 40 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        s.push_str(&format!("{x:016x}"));
    }
    s.truncate(40);
    s
}

fn opts() -> Options {
    Options::default()
        .active_expiry(false)
        .no_auto_snapshots()
        .fsync(FsyncPolicy::No)
        .hash_max_listpack_entries(1024)
}

/// Calls `f(key, pairs)` for each bucket of 1,000 ids.
fn buckets(fields: u64, mut f: impl FnMut(String, Vec<(String, String)>)) {
    let mut id = 0;
    while id < fields {
        let end = (id + 1000).min(fields);
        let pairs = (id..end).map(|i| (i.to_string(), hex40(i))).collect();
        f(format!("object:{}", id / 1000), pairs);
        id = end;
    }
}

/// Loads the dataset into a directory and snapshots it; returns (snapshot
/// bytes, seconds to write it, seconds of that in the final fsync).
fn hashkv_side(dir: &std::path::Path, fields: u64) -> (u64, f64, f64) {
    let db = Db::open_with(dir, opts()).unwrap();
    buckets(fields, |k, pairs| {
        db.hset(&k, &pairs).unwrap();
    });
    // The first snapshot right after the bulk load competes with the
    // writeback of the load's own log; the second is the steady state.
    let first = db.snapshot().unwrap();
    println!(
        "  first snapshot right after loading: {:.0} MB/s, fsync included",
        first.bytes as f64 / 1e6 / first.duration.as_secs_f64()
    );
    // Steady state: the median of five snapshots in a row (the first of
    // them often still shares the disk with the load's writeback).
    let mut runs: Vec<hashkv::SnapshotInfo> = (0..5).map(|_| db.snapshot().unwrap()).collect();
    let rates: Vec<String> = runs
        .iter()
        .map(|i| format!("{:.0}", i.bytes as f64 / 1e6 / i.duration.as_secs_f64()))
        .collect();
    println!("  five snapshots in a row: {} MB/s", rates.join(", "));
    runs.sort_by_key(|i| i.duration);
    let info = &runs[2];
    (
        info.bytes,
        info.duration.as_secs_f64(),
        info.fsync.as_secs_f64(),
    )
}

/// Sequential write speed of the disk with an fsync at the end, as `dd
/// conv=fdatasync` measures it (MB/s), for scale.
fn disk_speed(dir: &std::path::Path) -> f64 {
    use std::io::Write;
    let path = dir.join("disk-speed");
    let block = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    let mut f = std::fs::File::create(&path).unwrap();
    for _ in 0..512 {
        f.write_all(&block).unwrap();
    }
    f.sync_all().unwrap();
    let mbps = 512.0 * 1.048_576 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    mbps
}

/// Opens `dir` (median of `runs`), returns seconds and keys.
fn open_time(dir: &std::path::Path, runs: usize) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let db = Db::open_with(dir, opts()).unwrap();
            let s = start.elapsed().as_secs_f64();
            assert!(db.recovery_report().snapshot_keys > 0);
            s
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

struct Redis {
    child: std::process::Child,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts redis-server on `dir` (loading dump.rdb if present); returns it
/// and the seconds until it answered PING with PONG.
fn redis(dir: &std::path::Path) -> Option<(Redis, f64)> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let start = Instant::now();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--hash-max-listpack-entries", "1024"])
        .args(["--dir", &dir.display().to_string()])
        .args(["--logfile", "redis.log"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let r = Redis { child, port };
    loop {
        if let Ok(mut c) = RespClient::connect(port) {
            if let Ok(Ok(hashkv::Reply::Status(s))) = c.call(&[b"PING".as_slice()]) {
                if s == "PONG" {
                    return Some((r, start.elapsed().as_secs_f64()));
                }
            }
        }
        if start.elapsed() > Duration::from_secs(120) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The load time Redis logged ("DB loaded from disk: 0.123 seconds").
fn redis_logged_load(dir: &std::path::Path) -> Option<f64> {
    let log = std::fs::read_to_string(dir.join("redis.log")).ok()?;
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("DB loaded from disk"))?;
    line.split("disk: ").nth(1)?.split(' ').next()?.parse().ok()
}

/// Loads the dataset into Redis, SAVEs, restarts it; returns (RDB bytes,
/// logged load seconds, seconds to first PONG, seconds to first PONG of an
/// empty server).
fn redis_side(dir: &std::path::Path, fields: u64) -> Option<(u64, f64, f64, f64)> {
    let (_, empty_start) = redis(dir)?;
    let (server, _) = redis(dir)?;
    let mut c = RespClient::connect(server.port).ok()?;
    let mut batch: Vec<Vec<Vec<u8>>> = Vec::new();
    buckets(fields, |k, pairs| {
        let mut argv = vec![b"HSET".to_vec(), k.into_bytes()];
        for (f, v) in pairs {
            argv.push(f.into_bytes());
            argv.push(v.into_bytes());
        }
        batch.push(argv);
        if batch.len() == 16 {
            c.pipeline(&batch).unwrap();
            batch.clear();
        }
    });
    if !batch.is_empty() {
        c.pipeline(&batch).unwrap();
    }
    c.call(&[b"SAVE".as_slice()]).ok()?.ok()?;
    drop(c);
    drop(server);
    let rdb = std::fs::metadata(dir.join("dump.rdb")).ok()?.len();
    let (_server, to_pong) = redis(dir)?;
    let logged = redis_logged_load(dir)?;
    Some((rdb, logged, to_pong, empty_start))
}

/// What one paced run measured.
struct Paced {
    /// p99.9 latency, µs.
    p999: f64,
    /// The slowest write, µs.
    max: f64,
    /// Peak growth of anonymous resident memory, bytes.
    extra: u64,
    /// When the run started.
    start: Instant,
    /// Each write's start (ns after `start`) and latency (ns).
    writes: Vec<(u64, u64)>,
}

/// HSETs paced at `rate` per second for `dur`: their latencies and the
/// peak RSS growth seen meanwhile.
fn paced(db: &Db, rate: u64, dur: Duration, fields: u64) -> Paced {
    let stop = Arc::new(AtomicBool::new(false));
    let base = rss();
    let peak = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss());
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let mut lat = Vec::new();
    let start = Instant::now();
    let mut i: u64 = 0;
    while start.elapsed() < dur {
        // Paced like an application: the writes due so far, then sleep
        // (a spinning writer would take a whole core from the snapshot and
        // the kernel's writeback on this 2-core machine).
        let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        }
        let id = (i * 7919) % fields;
        let t = Instant::now();
        db.hset(
            format!("object:{}", id / 1000),
            &[(id.to_string(), hex40(i))],
        )
        .unwrap();
        lat.push((
            t.duration_since(start).as_nanos() as u64,
            t.elapsed().as_nanos() as u64,
        ));
        i += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let peak = peak.join().unwrap();
    let mut ns: Vec<u64> = lat.iter().map(|w| w.1).collect();
    ns.sort_unstable();
    Paced {
        p999: ns[(ns.len() as f64 * 0.999) as usize] as f64 / 1e3,
        max: ns[ns.len() - 1] as f64 / 1e3,
        extra: peak.saturating_sub(base),
        start,
        writes: lat,
    }
}

/// Chart rows of one paced run: p99 and maximum latency of each 20 ms.
fn latency_rows(phase: &str, run: &Paced) -> Vec<Vec<String>> {
    const BIN_NS: u64 = 20_000_000;
    let mut rows = Vec::new();
    let mut i = 0;
    while i < run.writes.len() {
        let bin = run.writes[i].0 / BIN_NS;
        let mut ns: Vec<u64> = run.writes[i..]
            .iter()
            .take_while(|w| w.0 / BIN_NS == bin)
            .map(|w| w.1)
            .collect();
        i += ns.len();
        ns.sort_unstable();
        let p99 = ns[((ns.len() as f64 * 0.99) as usize).min(ns.len() - 1)];
        rows.push(vec![
            phase.to_owned(),
            ((bin * BIN_NS + BIN_NS / 2) / 1_000_000).to_string(),
            ns.len().to_string(),
            format!("{:.2}", p99 as f64 / 1e3),
            format!("{:.2}", ns[ns.len() - 1] as f64 / 1e3),
        ]);
    }
    rows
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<u64> = match std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .find_map(|a| a.parse().ok())
    {
        Some(n) => vec![n],
        None if full => vec![1_000_000, 10_000_000],
        None => vec![20_000],
    };
    for &fields in &sizes {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hashkv");
        let (bytes, secs, fsync) = hashkv_side(&dir, fields);
        let open = open_time(&dir, 3);
        println!(
            "{fields} fields: snapshot {:.1} MB in {secs:.3} s = {:.0} MB/s, fsync included ({:.0} MB/s before the final fsync of {fsync:.3} s; this disk: {:.0} MB/s with fsync); open {open:.3} s ({:.1} M fields/s)",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / secs,
            bytes as f64 / 1e6 / (secs - fsync),
            disk_speed(tmp.path()),
            fields as f64 / open / 1e6
        );
        let rdir = tmp.path().join("redis");
        std::fs::create_dir_all(&rdir).unwrap();
        match redis_side(&rdir, fields) {
            Some((rdb, logged, to_pong, empty)) => println!(
                "  redis: RDB {:.1} MB ({:.2}x hashkv's snapshot); load logged {logged:.3} s, first PONG after {to_pong:.3} s (empty server {empty:.3} s); hashkv open is {:.1}x faster than the logged load",
                rdb as f64 / 1e6,
                rdb as f64 / bytes as f64,
                logged / open
            ),
            None => println!("  redis: not measured (redis-server missing or failed)"),
        }
        if fields == *sizes.iter().max().unwrap() {
            let db = Db::open_with(&dir, opts()).unwrap();
            let dataset = rss();
            let dur = if full {
                Duration::from_secs(4)
            } else {
                Duration::from_millis(200)
            };
            let rate = 100_000;
            let quiet_run = paced(&db, rate, dur, fields);
            let (quiet, quiet_max) = (quiet_run.p999, quiet_run.max);
            let snapper = {
                let db = db.clone();
                let stop_at = Instant::now() + dur;
                std::thread::spawn(move || {
                    let mut spans = Vec::new();
                    while Instant::now() < stop_at {
                        let began = Instant::now();
                        db.snapshot().unwrap();
                        spans.push((began, Instant::now()));
                    }
                    spans
                })
            };
            let busy_run = paced(&db, rate, dur, fields);
            let (busy, busy_max, extra) = (busy_run.p999, busy_run.max, busy_run.extra);
            let spans = snapper.join().unwrap();
            let snaps = spans.len();
            if chart_data::dir().is_some() {
                let mut notes = chart_data::machine_notes(&chart_data::command("snapshot"));
                notes.push(format!(
                    "{fields} fields (objects dataset); HSETs paced at {rate}/s for {:.1} s without snapshots, then as long with snapshots back to back",
                    dur.as_secs_f64()
                ));
                let mut rows = latency_rows("none", &quiet_run);
                rows.extend(latency_rows("snapshots", &busy_run));
                chart_data::write(
                    "snapshot_latency",
                    &notes,
                    &["phase", "t_ms", "writes", "p99_us", "max_us"],
                    &rows,
                );
                let ms = |at: Instant| {
                    // A snapshot may start a moment before the writes do.
                    let d = at.saturating_duration_since(busy_run.start);
                    format!("{:.1}", d.as_secs_f64() * 1e3)
                };
                let runs: Vec<Vec<String>> =
                    spans.iter().map(|&(a, b)| vec![ms(a), ms(b)]).collect();
                chart_data::write("snapshot_runs", &notes, &["start_ms", "end_ms"], &runs);
            }
            println!(
                "  writes at {rate}/s: p99.9 {quiet:.1} us (max {quiet_max:.0}) without a snapshot, {busy:.1} us (max {busy_max:.0}) during {snaps} snapshots ({:.2}x); extra anonymous RSS {:.1} MB = {:.1}% of the {:.0} MB of data",
                busy / quiet,
                extra as f64 / 1e6,
                100.0 * extra as f64 / dataset as f64,
                dataset as f64 / 1e6
            );
        }
    }
}
