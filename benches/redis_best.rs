//! hashkv against Redis at its best, on the same data and key distribution:
//! N W1 profiles (8 fields) under keys `user:%012d`, random keys drawn
//! uniformly from all N (as `redis-benchmark -r N` draws `__rand_int__`).
//!
//! - Redis 7.0 (`appendonly yes`, `appendfsync everysec`) driven by
//!   `redis-benchmark -c 50 -P 64` (50 connections, 64 commands per round
//!   trip) for `HGET user:__rand_int__ username` and `HSET
//!   user:__rand_int__ username x`; its RDB load time ("DB loaded from
//!   disk" in its log, after SAVE and a restart); `redis-cli --pipe` of the
//!   dataset as RESP into an empty server.
//! - hashkv (`FsyncPolicy::EverySec`, in process, one thread): HGET and
//!   HSET one call at a time and in pipelines of 64; batches
//!   (`Db::get_many` of 64 and of 1,000 keys, `Db::write_batch` of 64
//!   HSETs); HGET from 2 threads;
//!   open of the directory (a snapshot of the dataset); `Db::import` of the
//!   same RESP file; `Db::export_rdb` of the dataset (MB/s) and
//!   `Db::import_rdb` of that file into a new directory (against Redis's
//!   load of its own dump of the same data).
//!
//! Run: `cargo bench --bench redis_best [-- --keys N --runs R]` (default
//! 1,000,000 keys, 3 runs; medians printed). Under `cargo test
//! --all-targets` it runs one small round, hashkv side only. With
//! `HASHKV_CHART_DATA=DIR` the throughput medians also go to
//! `DIR/redis_best.csv` (docs/charts/regenerate.sh).
#![allow(missing_docs)]

#[path = "common/args.rs"]
mod args;
#[path = "common/chart_data.rs"]
mod chart_data;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "common/datasets.rs"]
mod datasets;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use args::arg;
use common::{start_redis, RespClient};
use datasets::profile;
use hashkv::{Db, FsyncPolicy, Options};
use rand::{Rng, SeedableRng};

fn key(i: u64) -> String {
    format!("user:{i:012}")
}

/// `user:%012d` of `i` in a stack buffer: made per operation as
/// redis-benchmark makes `__rand_int__`, so the harness adds no cache miss
/// (a table of a million key strings would add two per operation).
#[inline]
fn key_buf(i: usize) -> [u8; 17] {
    let mut b = *b"user:000000000000";
    let mut v = i;
    for d in b[5..].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    b
}

/// The dataset as RESP HSET commands.
fn resp_file(path: &std::path::Path, n: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut buf = Vec::new();
    for i in 0..n {
        let k = key(i);
        let p = profile(i);
        let mut argv: Vec<&[u8]> = vec![b"HSET", k.as_bytes()];
        for (f, v) in &p {
            argv.push(f.as_bytes());
            argv.push(v.as_bytes());
        }
        buf.clear();
        RespClient::encode(&argv, &mut buf);
        out.write_all(&buf).unwrap();
    }
    out.flush().unwrap();
}

/// Requests per second `redis-benchmark -c 50 -P 64` reports for `cmd`.
fn redis_benchmark(port: u16, keys: u64, requests: u64, cmd: &[&str]) -> Option<f64> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", "50", "-P", "64", "-r", &keys.to_string()])
        .args(["-n", &requests.to_string(), "--csv"])
        .args(cmd)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps",...: the second line's second field.
    let line = text.lines().nth(1)?;
    line.split(',').nth(1)?.trim_matches('"').parse().ok()
}

/// Redis's side: (HGET rps, HSET rps, RDB load s, --pipe s).
fn redis_side(n: u64, resp: &std::path::Path) -> Option<[f64; 4]> {
    let dir = tempfile::tempdir().ok()?;
    let d = dir.path().display().to_string();
    let log1 = format!("{d}/first.log");
    let server = start_redis(&[
        "--dir",
        &d,
        "--logfile",
        &log1,
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
    ])
    .ok()?;
    let mut c = RespClient::connect(server.port).ok()?;
    let mut batch = Vec::new();
    for i in 0..n {
        let mut argv = vec![b"HSET".to_vec(), key(i).into_bytes()];
        for (f, v) in profile(i) {
            argv.push(f.into_bytes());
            argv.push(v.into_bytes());
        }
        batch.push(argv);
        if batch.len() == 1000 || i + 1 == n {
            c.pipeline(&batch).ok()?;
            batch.clear();
        }
    }
    let requests = (n * 2).max(200_000);
    let hget = redis_benchmark(
        server.port,
        n,
        requests,
        &["HGET", "user:__rand_int__", "username"],
    );
    let Some(hget) = hget else {
        eprintln!("redis: redis-benchmark gave no figure");
        return None;
    };
    let hset = redis_benchmark(
        server.port,
        n,
        requests,
        &["HSET", "user:__rand_int__", "username", "x"],
    )?;
    if !matches!(c.call(&[b"SAVE".as_slice()]), Ok(Ok(_))) {
        eprintln!("redis: SAVE failed");
        return None;
    }
    drop(c);
    drop(server);
    // A restart with the RDB only: Redis logs how long the load took.
    let log2 = format!("{d}/second.log");
    let second = start_redis(&["--dir", &d, "--logfile", &log2, "--appendonly", "no"]).ok()?;
    // PING answers (LOADING) before the load ends: wait for the log line.
    let deadline = Instant::now() + Duration::from_secs(120);
    let load = loop {
        let found = std::fs::read_to_string(&log2).ok().and_then(|text| {
            text.lines().find_map(|l| {
                let rest = l.split("DB loaded from disk: ").nth(1)?;
                rest.split_whitespace().next()?.parse::<f64>().ok()
            })
        });
        match found {
            Some(s) => break s,
            None if Instant::now() > deadline => {
                eprintln!("redis: no \"DB loaded from disk\" line in {log2}");
                return None;
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    drop(second);
    // --pipe into an empty server with the same durability.
    let third = start_redis(&["--appendonly", "yes", "--appendfsync", "everysec"]).ok()?;
    let start = Instant::now();
    let status = Command::new("redis-cli")
        .args(["-p", &third.port.to_string(), "--pipe"])
        .stdin(std::fs::File::open(resp).ok()?)
        .stdout(Stdio::null())
        .status()
        .ok()?;
    let pipe = start.elapsed().as_secs_f64();
    if !status.success() {
        return None;
    }
    Some([hget, hset, load, pipe])
}

/// Pipelines of 64 HGETs (or HSETs) of `picks`, replies returned by
/// `Pipeline::run`.
fn pipelines(db: &Db, picks: &[usize], hset: bool) {
    for chunk in picks.chunks(64) {
        let mut p = db.pipeline();
        for &i in chunk {
            if hset {
                p.hset(key_buf(i), &[("username", "x")]);
            } else {
                p.hget(key_buf(i), "username");
            }
        }
        std::hint::black_box(p.run());
    }
}

/// `Db::get_many` of `picks` in batches of `size` (the value borrowed,
/// nothing built per key).
fn get_many(db: &Db, picks: &[usize], size: usize) {
    let mut keys: Vec<[u8; 17]> = Vec::with_capacity(size);
    for chunk in picks.chunks(size) {
        keys.clear();
        keys.extend(chunk.iter().map(|&i| key_buf(i)));
        let mut bytes = 0;
        db.get_many(&keys, "username", |_, v| bytes += v.map_or(0, <[u8]>::len))
            .unwrap();
        std::hint::black_box(bytes);
    }
}

/// `Db::write_batch` of 64 HSETs of `picks` at a time.
fn write_batches(db: &Db, picks: &[usize]) {
    let mut batch = hashkv::WriteBatch::new();
    for chunk in picks.chunks(64) {
        batch.clear();
        for &i in chunk {
            batch.hset(key_buf(i), &[("username", "x")]);
        }
        std::hint::black_box(db.write_batch(&batch).unwrap());
    }
}

/// Pipelines of 64 HGETs of `picks`, replies lent by `Pipeline::run_with`.
fn hget_pipelines_lent(db: &Db, picks: &[usize]) {
    for chunk in picks.chunks(64) {
        let mut p = db.pipeline();
        for &i in chunk {
            p.hget(key_buf(i), "username");
        }
        let mut bytes = 0;
        p.run_with(|_, r| {
            if let Ok(hashkv::Reply::Bulk(v)) = r {
                bytes += v.len();
            }
        });
        std::hint::black_box(bytes);
    }
}

fn rate(ops: usize, f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    ops as f64 / start.elapsed().as_secs_f64()
}

/// hashkv's side: (HGET 1, HSET 1, HGET x64, HSET x64, HGET 2 threads,
/// open s, import s, RDB export MB/s, RDB import s (into a directory,
/// with the snapshot that makes it durable), RDB import s (in memory),
/// `get_many` 64, `get_many` 1,000, `write_batch` 64, HGET x64 through
/// `Pipeline::run_with`).
fn hashkv_side(n: u64, resp: &std::path::Path) -> [f64; 14] {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let opts = Options::default().fsync(FsyncPolicy::EverySec);
    let keys: Vec<String> = (0..n).map(key).collect();
    let db = Db::open_with(&dir, opts.clone()).unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let mut p = db.pipeline();
        for &i in chunk {
            p.hset(&keys[i as usize], &profile(i));
        }
        for r in p.run() {
            r.unwrap();
        }
    }
    db.snapshot().unwrap();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let ops = (n as usize * 2).max(200_000);
    let picks: Vec<usize> = (0..ops).map(|_| rng.gen_range(0..n as usize)).collect();
    let hget1 = rate(ops, || {
        for &i in &picks {
            std::hint::black_box(db.hget(key_buf(i), "username").unwrap());
        }
    });
    let hset1 = rate(ops, || {
        for &i in &picks {
            db.hset(key_buf(i), &[("username", "x")]).unwrap();
        }
    });
    let hget64 = rate(ops, || pipelines(&db, &picks, false));
    // The same pipelines, replies lent by `Pipeline::run_with`.
    let hget64w = rate(ops, || hget_pipelines_lent(&db, &picks));
    let hset64 = rate(ops, || pipelines(&db, &picks, true));
    // Batches: `Db::get_many` of 64 and of 1,000 keys (the value borrowed,
    // nothing built per key), and `Db::write_batch` of 64 HSETs.
    let get64 = rate(ops, || get_many(&db, &picks, 64));
    let get1000 = rate(ops, || get_many(&db, &picks, 1000));
    let batch64 = rate(ops, || write_batches(&db, &picks));
    let hget2 = rate(ops, || {
        std::thread::scope(|s| {
            for half in picks.chunks(ops.div_ceil(2)) {
                let db = &db;
                s.spawn(move || {
                    for &i in half {
                        std::hint::black_box(db.hget(key_buf(i), "username").unwrap());
                    }
                });
            }
        });
    });
    db.snapshot().unwrap();
    db.close().unwrap();
    let start = Instant::now();
    let db = Db::open_with(&dir, opts.clone()).unwrap();
    let open = start.elapsed().as_secs_f64();
    assert_eq!(db.dbsize().unwrap(), n as i64);
    // The dataset as a Redis dump.rdb (listpacks, LZF as Redis writes
    // them), then imported into a fresh directory (durable at the end).
    let rdb = tmp.path().join("profiles.rdb");
    let start = Instant::now();
    db.export_rdb(&rdb).unwrap();
    let export_mbs =
        std::fs::metadata(&rdb).unwrap().len() as f64 / 1e6 / start.elapsed().as_secs_f64();
    drop(db);
    let start = Instant::now();
    let db = Db::open_with(tmp.path().join("from-rdb"), opts.clone()).unwrap();
    let t = db.import_rdb(&rdb).unwrap();
    db.close().unwrap();
    let rdb_import = start.elapsed().as_secs_f64();
    assert_eq!(t.keys, n);
    let start = Instant::now();
    let t = Db::in_memory(opts.clone()).import_rdb(&rdb).unwrap();
    let rdb_import_mem = start.elapsed().as_secs_f64();
    assert_eq!(t.keys, n);
    let dir2 = tmp.path().join("imported");
    let start = Instant::now();
    let db = Db::open_with(&dir2, opts).unwrap();
    let mut input = std::io::BufReader::new(std::fs::File::open(resp).unwrap());
    db.import(hashkv::admin::Format::Resp, &mut input, &mut |_, _| {})
        .unwrap();
    db.close().unwrap();
    let import = start.elapsed().as_secs_f64();
    [
        hget1,
        hset1,
        hget64,
        hset64,
        hget2,
        open,
        import,
        export_mbs,
        rdb_import,
        rdb_import_mem,
        get64,
        get1000,
        batch64,
        hget64w,
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `HASHKV_BEST_PROFILE=hget1|hget64|hget64w|hset1|hset64|get64|get1000|batch64`:
/// only that loop (`hget64w`: pipelines of 64 HGETs through
/// `Pipeline::run_with`; `get64`, `get1000`: `Db::get_many` of that many keys;
/// `batch64`: `Db::write_batch` of 64 HSETs), on
/// `--keys` keys in memory (or logged, with `HASHKV_BEST_LOG=1`), for
/// perf or callgrind; `rdb`: an RDB export of
/// those keys (with and without LZF) and its import (in memory, then into
/// a directory with its snapshot), each timed.
fn profile_loop(which: &str, n: u64) {
    // `HASHKV_BEST_LOG=1`: a directory with the `EverySec` log, as the
    // full bench runs, instead of memory only.
    let tmp = tempfile::tempdir().unwrap();
    let db = if std::env::var_os("HASHKV_BEST_LOG").is_some() {
        let opts = Options::default().fsync(FsyncPolicy::EverySec);
        Db::open_with(tmp.path().join("db"), opts).unwrap()
    } else {
        Db::in_memory(Options::default())
    };
    let keys: Vec<String> = (0..n).map(key).collect();
    for i in 0..n {
        db.hset(&keys[i as usize], &profile(i)).unwrap();
    }
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let count = std::env::var("HASHKV_BEST_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let picks: Vec<usize> = (0..count).map(|_| rng.gen_range(0..n as usize)).collect();
    let start = Instant::now();
    match which {
        "hget1" => picks.iter().for_each(|&i| {
            std::hint::black_box(db.hget(key_buf(i), "username").unwrap());
        }),
        "hset1" => picks.iter().for_each(|&i| {
            db.hset(key_buf(i), &[("username", "x")]).unwrap();
        }),
        "get64" => get_many(&db, &picks, 64),
        "get1000" => get_many(&db, &picks, 1000),
        "batch64" => write_batches(&db, &picks),
        "hget64w" => hget_pipelines_lent(&db, &picks),
        "hget64" => pipelines(&db, &picks, false),
        "hset64" => pipelines(&db, &picks, true),
        "rdb" => {
            // Export then import of a dump.rdb (`count` is ignored).
            let tmp = tempfile::tempdir().unwrap();
            let file = tmp.path().join("dump.rdb");
            let t = Instant::now();
            db.export_rdb(&file).unwrap();
            let bytes = std::fs::metadata(&file).unwrap().len();
            eprintln!(
                "export: {:.3} s, {bytes} bytes, {:.0} MB/s",
                t.elapsed().as_secs_f64(),
                bytes as f64 / 1e6 / t.elapsed().as_secs_f64()
            );
            let t = Instant::now();
            let raw = tmp.path().join("raw.rdb");
            db.export_rdb_to(
                &mut std::io::BufWriter::new(std::fs::File::create(&raw).unwrap()),
                &hashkv::interop::RdbExportOptions {
                    compression: hashkv::interop::RdbCompression::None,
                    ..Default::default()
                },
            )
            .unwrap();
            let bytes = std::fs::metadata(&raw).unwrap().len();
            eprintln!(
                "export without LZF: {:.3} s, {bytes} bytes, {:.0} MB/s",
                t.elapsed().as_secs_f64(),
                bytes as f64 / 1e6 / t.elapsed().as_secs_f64()
            );
            drop(db);
            let t = Instant::now();
            Db::in_memory(Options::default()).import_rdb(&file).unwrap();
            eprintln!("import in memory: {:.3} s", t.elapsed().as_secs_f64());
            let t = Instant::now();
            let on_disk = Db::open(tmp.path().join("db")).unwrap();
            on_disk.import_rdb(&file).unwrap();
            eprintln!(
                "import with its snapshot: {:.3} s",
                t.elapsed().as_secs_f64()
            );
            let t = Instant::now();
            on_disk.snapshot().unwrap();
            eprintln!("a snapshot alone: {:.3} s", t.elapsed().as_secs_f64());
            return;
        }
        _ => {}
    }
    let ns = start.elapsed().as_nanos() as f64 / picks.len() as f64;
    eprintln!("{which}: {ns:.0} ns per command");
}

fn main() {
    if let Ok(path) = std::env::var("HASHKV_BEST_RESP") {
        // Only write the dataset as RESP (for timing `hashkv import`).
        resp_file(
            std::path::Path::new(&path),
            arg("--keys").unwrap_or(1_000_000),
        );
        return;
    }
    if let Ok(which) = std::env::var("HASHKV_BEST_PROFILE") {
        profile_loop(&which, arg("--keys").unwrap_or(1_000_000));
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let n = arg("--keys").unwrap_or(if full { 1_000_000 } else { 5_000 });
    let runs = arg("--runs").unwrap_or(if full { 3 } else { 1 }) as usize;
    let tmp = tempfile::tempdir().unwrap();
    let resp = tmp.path().join("profiles.resp");
    resp_file(&resp, n);
    let mut ours: Vec<[f64; 14]> = Vec::new();
    let mut theirs: Vec<[f64; 4]> = Vec::new();
    for run in 0..runs {
        ours.push(hashkv_side(n, &resp));
        if full {
            match redis_side(n, &resp) {
                Some(r) => theirs.push(r),
                None => eprintln!("run {run}: redis-server or redis-benchmark unavailable"),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = |i: usize| median(ours.iter().map(|r| r[i]).collect());
    let t = |i: usize| (!theirs.is_empty()).then(|| median(theirs.iter().map(|r| r[i]).collect()));
    let ratio = |a: f64, b: Option<f64>| b.map_or("-".to_owned(), |b| format!("{:.2}x", a / b));
    let fmt_rate = |x: f64| format!("{:.2}M/s", x / 1e6);
    let fmt_opt = |x: Option<f64>, f: &dyn Fn(f64) -> String| x.map_or("-".to_owned(), f);
    println!("{n} W1 profiles, keys user:%012d, uniform random keys; medians of {runs} run(s)");
    println!("| | Redis 7.0 (-c 50 -P 64) | hashkv | ratio |");
    println!("|---|---|---|---|");
    for (label, ours_i, theirs_i) in [
        ("HGET random, one call at a time", 0, 0),
        ("HSET random, one call at a time", 1, 1),
        ("HGET random, pipelines of 64", 2, 0),
        ("HGET random, pipelines of 64, `run_with`", 13, 0),
        ("HSET random, pipelines of 64", 3, 1),
    ] {
        println!(
            "| {label} | {} | {} | {} |",
            fmt_opt(t(theirs_i), &fmt_rate),
            fmt_rate(o(ours_i)),
            ratio(o(ours_i), t(theirs_i))
        );
    }
    for (label, ours_i, theirs_i) in [
        ("HGET random, `get_many` of 64 keys", 10, 0),
        ("HGET random, `get_many` of 1,000 keys", 11, 0),
        ("HSET random, `write_batch` of 64", 12, 1),
    ] {
        println!(
            "| {label} | {} | {} | {} |",
            fmt_opt(t(theirs_i), &fmt_rate),
            fmt_rate(o(ours_i)),
            ratio(o(ours_i), t(theirs_i))
        );
    }
    println!(
        "| HGET random, 2 threads | - | {} | {:.2}x one thread |",
        fmt_rate(o(4)),
        o(4) / o(0)
    );
    let mut notes = chart_data::machine_notes(&chart_data::command("redis_best"));
    notes.push(format!(
        "{n} W1 profiles, uniform random keys, medians of {runs} run(s); Redis: redis-benchmark -c 50 -P 64"
    ));
    let rows: Vec<Vec<String>> = [
        ("HGET one call at a time", 0, 0),
        ("HSET one call at a time", 1, 1),
        ("HGET pipelines of 64", 2, 0),
        ("HSET pipelines of 64", 3, 1),
    ]
    .iter()
    .map(|&(label, ours_i, theirs_i)| {
        vec![
            label.to_owned(),
            format!("{:.0}", o(ours_i)),
            t(theirs_i).map_or(String::new(), |x| format!("{x:.0}")),
        ]
    })
    .collect();
    chart_data::write(
        "redis_best",
        &notes,
        &["measure", "hashkv_ops_per_s", "redis_ops_per_s"],
        &rows,
    );
    let secs = |x: f64| format!("{x:.3} s");
    let faster = |theirs: Option<f64>, ours: f64| {
        theirs.map_or("-".to_owned(), |t| format!("{:.2}x faster", t / ours))
    };
    println!(
        "| open (snapshot) vs RDB load | {} | {} | {} |",
        fmt_opt(t(2), &secs),
        secs(o(5)),
        faster(t(2), o(5))
    );
    println!(
        "| import vs redis-cli --pipe (same RESP file) | {} | {} | {} |",
        fmt_opt(t(3), &secs),
        secs(o(6)),
        faster(t(3), o(6))
    );
    println!(
        "| `Db::import_rdb` of the dataset's dump.rdb, in memory, vs Redis loading its own | {} | {} | {} |",
        fmt_opt(t(2), &secs),
        secs(o(9)),
        faster(t(2), o(9))
    );
    println!(
        "| the same into a directory, with the snapshot that makes it durable | {} | {} | {} |",
        fmt_opt(t(2), &secs),
        secs(o(8)),
        faster(t(2), o(8))
    );
    println!(
        "| `Db::export_rdb` of the dataset | - | {:.0} MB/s | |",
        o(7)
    );
}
