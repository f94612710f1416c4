//! hashkv in process against a real redis-server on loopback, side by side
//! on the same data, with comparable durability (Redis `appendonly yes`,
//! `appendfsync everysec`; hashkv `FsyncPolicy::EverySec`) and Redis at its
//! best (64 commands per round trip). Prints one table of ratios per
//! workload: load, HGET, HSET and HINCRBY throughput, memory and disk bytes
//! per field, open/recovery time; and, for `mixed`, 80% HGET / 20% HSET from
//! 1 and 2 threads.
//!
//! Run: `cargo bench --bench compare [-- WORKLOAD... [--scale N] [--runs N]]`
//! with workloads `objects` (10 M ids, 1,000 per hash), `profiles` (1 M x 8
//! fields), `big` (10 x 1 M fields), `mixed` (profiles, 80/20, 1 and 2
//! threads); default all, scale 1, 1 run. The hashkv side of each run is a
//! fresh child process (so its memory is its own). Under `cargo test
//! --all-targets` it runs one tiny round as a smoke test.
#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "common/datasets.rs"]
mod datasets;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{rss_bytes, start_redis, RespClient};
use datasets::generate;
use hashkv::{Db, FsyncPolicy, Options, Reply};
use rand::{Rng, SeedableRng};

/// Operations per throughput measurement (fewer in the smoke test).
fn ops() -> usize {
    if std::env::var_os("HASHKV_COMPARE_SMOKE").is_some() {
        20_000
    } else {
        400_000
    }
}
const PIPELINE: usize = 64;

fn entries(workload: &str) -> usize {
    if workload == "objects" {
        1024
    } else {
        512
    }
}

fn dataset(workload: &str) -> &str {
    if workload == "mixed" {
        "profiles"
    } else {
        workload
    }
}

/// Every (key, field) of the dataset, for picking random ones.
fn key_fields(workload: &str, scale: u64) -> Vec<(String, String)> {
    let mut kf = Vec::new();
    generate(dataset(workload), scale, |k, pairs| {
        for (f, _) in pairs {
            kf.push((k.to_owned(), f.clone()));
        }
    });
    kf
}

type Results = BTreeMap<String, f64>;

fn rss_anon() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("RssAnon:"))?;
            l.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

fn dir_bytes(dir: &std::path::Path, ext: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(ext))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The hashkv side, in this (child) process.
fn hashkv_side(workload: &str, scale: u64) -> Results {
    let mut r = Results::new();
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .active_expiry(false)
        .no_auto_snapshots()
        .fsync(FsyncPolicy::EverySec)
        .hash_max_listpack_entries(entries(workload));
    let kf = key_fields(workload, scale);
    let before = rss_anon();
    let db = Db::open_with(tmp.path(), opts.clone()).unwrap();
    let start = Instant::now();
    let mut fields = 0u64;
    generate(dataset(workload), scale, |k, pairs| {
        db.hset(k, pairs).unwrap();
        fields += pairs.len() as u64;
    });
    r.insert(
        "load_fields_per_s".into(),
        fields as f64 / start.elapsed().as_secs_f64(),
    );
    r.insert("fields".into(), fields as f64);
    r.insert(
        "memory_per_field".into(),
        rss_anon().saturating_sub(before) as f64 / fields as f64,
    );
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let picks: Vec<usize> = (0..ops()).map(|_| rng.gen_range(0..kf.len())).collect();
    // The operations, built before timing and laid out in the order they
    // run, as the Redis side's pipelines are.
    let kf: Vec<(String, String)> = picks.iter().map(|&i| kf[i].clone()).collect();
    let picks: Vec<usize> = (0..kf.len()).collect();
    if workload == "mixed" {
        for threads in [1usize, 2] {
            let start = Instant::now();
            let per = ops() / threads;
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (db, kf, picks) = (&db, &kf, &picks);
                    s.spawn(move || {
                        for (n, &i) in picks[t * per..(t + 1) * per].iter().enumerate() {
                            let (k, f) = &kf[i];
                            if n % 5 == 0 {
                                db.hset(k, &[(f.as_str(), "updated-value")]).unwrap();
                            } else {
                                std::hint::black_box(db.hget(k, f).unwrap());
                            }
                        }
                    });
                }
            });
            r.insert(
                format!("mixed_{threads}t_ops_per_s"),
                (per * threads) as f64 / start.elapsed().as_secs_f64(),
            );
        }
        return r;
    }
    let start = Instant::now();
    for &i in &picks {
        let (k, f) = &kf[i];
        std::hint::black_box(db.hget(k, f).unwrap());
    }
    r.insert(
        "hget_per_s".into(),
        ops() as f64 / start.elapsed().as_secs_f64(),
    );
    let mut lat = Vec::with_capacity(ops());
    let start = Instant::now();
    for &i in &picks {
        let (k, f) = &kf[i];
        let t = Instant::now();
        db.hset(k, &[(f.as_str(), "v-updated-0123456789")]).unwrap();
        lat.push(t.elapsed().as_nanos() as u64);
    }
    r.insert(
        "hset_per_s".into(),
        ops() as f64 / start.elapsed().as_secs_f64(),
    );
    lat.sort_unstable();
    r.insert(
        "hset_p999_us".into(),
        lat[lat.len() * 999 / 1000] as f64 / 1e3,
    );
    let start = Instant::now();
    for &i in &picks {
        let (k, _) = &kf[i];
        db.hincrby(k, "counter", 1).unwrap();
    }
    r.insert(
        "hincrby_per_s".into(),
        ops() as f64 / start.elapsed().as_secs_f64(),
    );
    db.snapshot().unwrap();
    r.insert(
        "disk_per_field".into(),
        dir_bytes(tmp.path(), ".hks") as f64 / fields as f64,
    );
    drop(db);
    let start = Instant::now();
    let db = Db::open_with(tmp.path(), opts).unwrap();
    r.insert("open_s".into(), start.elapsed().as_secs_f64());
    drop(db);
    r
}

fn info_field(c: &mut RespClient, section: &str, field: &str) -> Option<String> {
    match c
        .call(&[b"INFO".as_slice(), section.as_bytes()])
        .ok()?
        .ok()?
    {
        Reply::Bulk(b) => String::from_utf8_lossy(&b).lines().find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_owned())
        }),
        _ => None,
    }
}

fn pipelined(c: &mut RespClient, cmds: &[Vec<Vec<u8>>]) -> f64 {
    let start = Instant::now();
    for chunk in cmds.chunks(PIPELINE) {
        let replies = c.pipeline(chunk).expect("pipeline");
        assert!(replies.iter().all(Result::is_ok), "redis error");
    }
    cmds.len() as f64 / start.elapsed().as_secs_f64()
}

/// The Redis side: a server started here on loopback.
fn redis_side(workload: &str, scale: u64) -> Option<Results> {
    let mut r = Results::new();
    let entries = entries(workload).to_string();
    let server = start_redis(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--hash-max-listpack-entries",
        &entries,
        "--enable-debug-command",
        "yes",
    ])
    .map_err(|e| eprintln!("redis-server unavailable: {e}"))
    .ok()?;
    let mut c = RespClient::connect(server.port).ok()?;
    let pid: u32 = info_field(&mut c, "server", "process_id")?.parse().ok()?;
    let before = rss_bytes(pid)?;
    let kf = key_fields(workload, scale);
    let mut load = Vec::new();
    let mut fields = 0u64;
    generate(dataset(workload), scale, |k, pairs| {
        let mut argv = vec![b"HSET".to_vec(), k.as_bytes().to_vec()];
        for (f, v) in pairs {
            argv.push(f.as_bytes().to_vec());
            argv.push(v.as_bytes().to_vec());
        }
        load.push(argv);
        fields += pairs.len() as u64;
    });
    let per_s = pipelined(&mut c, &load);
    drop(load);
    r.insert(
        "load_fields_per_s".into(),
        per_s * fields as f64 / batches(workload, scale) as f64,
    );
    r.insert("fields".into(), fields as f64);
    r.insert(
        "memory_per_field".into(),
        rss_bytes(pid)?.saturating_sub(before) as f64 / fields as f64,
    );
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let picks: Vec<usize> = (0..ops()).map(|_| rng.gen_range(0..kf.len())).collect();
    let cmd = |name: &str, k: &str, rest: &[&str]| -> Vec<Vec<u8>> {
        let mut v = vec![name.as_bytes().to_vec(), k.as_bytes().to_vec()];
        v.extend(rest.iter().map(|s| s.as_bytes().to_vec()));
        v
    };
    if workload == "mixed" {
        let cmds: Vec<_> = picks
            .iter()
            .enumerate()
            .map(|(n, &i)| {
                let (k, f) = &kf[i];
                if n % 5 == 0 {
                    cmd("HSET", k, &[f, "updated-value"])
                } else {
                    cmd("HGET", k, &[f])
                }
            })
            .collect();
        r.insert("mixed_1t_ops_per_s".into(), pipelined(&mut c, &cmds));
        return Some(r);
    }
    let gets: Vec<_> = picks
        .iter()
        .map(|&i| cmd("HGET", &kf[i].0, &[&kf[i].1]))
        .collect();
    r.insert("hget_per_s".into(), pipelined(&mut c, &gets));
    let sets: Vec<_> = picks
        .iter()
        .map(|&i| cmd("HSET", &kf[i].0, &[&kf[i].1, "v-updated-0123456789"]))
        .collect();
    r.insert("hset_per_s".into(), pipelined(&mut c, &sets));
    let incrs: Vec<_> = picks
        .iter()
        .map(|&i| cmd("HINCRBY", &kf[i].0, &["counter", "1"]))
        .collect();
    r.insert("hincrby_per_s".into(), pipelined(&mut c, &incrs));
    c.call(&[b"SAVE".as_slice()]).ok()?.ok()?;
    let rdb = {
        let Reply::Array(v) = c.call(&[b"CONFIG".as_slice(), b"GET", b"dir"]).ok()?.ok()? else {
            return None;
        };
        let Reply::Bulk(d) = &v[1] else { return None };
        std::path::PathBuf::from(String::from_utf8_lossy(d).into_owned())
    };
    r.insert(
        "disk_per_field".into(),
        std::fs::metadata(rdb.join("dump.rdb")).ok()?.len() as f64 / fields as f64,
    );
    // Recovery: a restart loads the AOF (rewritten first, so its base is
    // an RDB image, as a long-running server's would be).
    c.call(&[b"BGREWRITEAOF".as_slice()]).ok()?.ok()?;
    while info_field(&mut c, "persistence", "aof_rewrite_in_progress").as_deref() != Some("0")
        || info_field(&mut c, "persistence", "aof_rewrite_scheduled").as_deref() != Some("0")
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let start = Instant::now();
    // DEBUG LOADAOF reloads from the AOF as a restart would.
    c.call(&[b"DEBUG".as_slice(), b"LOADAOF"]).ok()?.ok()?;
    r.insert("open_s".into(), start.elapsed().as_secs_f64());
    Some(r)
}

/// HSET commands the dataset is loaded with.
fn batches(workload: &str, scale: u64) -> u64 {
    let mut n = 0;
    generate(dataset(workload), scale, |_, _| n += 1);
    n
}

fn child_results(workload: &str, scale: u64) -> Results {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .env("HASHKV_COMPARE_CHILD", format!("{workload} {scale}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// A figure for the table: whole numbers with thousands separators from
/// 1,000 up, else three decimals.
fn fmt(x: f64) -> String {
    if x.abs() < 1000.0 {
        return format!("{x:.3}");
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 {
        out.insert(0, '-');
    }
    out
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if let Ok(spec) = std::env::var("HASHKV_COMPARE_CHILD") {
        let (w, s) = spec.split_once(' ').unwrap();
        for (k, v) in hashkv_side(w, s.parse().unwrap()) {
            println!("RESULT {k} {v}");
        }
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let scale = value("--scale").unwrap_or(if full { 1 } else { 1000 });
    if !full {
        // Inherited by the child processes too.
        std::env::set_var("HASHKV_COMPARE_SMOKE", "1");
    }
    let runs = value("--runs").unwrap_or(1).max(1) as usize;
    let mut workloads: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| ["objects", "profiles", "big", "mixed"].contains(a))
        .collect();
    if workloads.is_empty() {
        workloads = vec!["objects", "profiles", "big", "mixed"];
    }
    println!("scale 1/{scale}, {runs} run(s), medians; ratio = hashkv / Redis (higher is better for rates, lower for sizes and times)");
    for w in workloads {
        let mut ours: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut theirs: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for _ in 0..runs {
            for (k, v) in child_results(w, scale) {
                ours.entry(k).or_default().push(v);
            }
            if let Some(r) = redis_side(w, scale) {
                for (k, v) in r {
                    theirs.entry(k).or_default().push(v);
                }
            }
        }
        println!("\n{w}:");
        println!("| measure | hashkv | Redis | ratio |");
        println!("|---|---|---|---|");
        for (k, v) in &mut ours {
            let a = median(v);
            match theirs.get_mut(k) {
                Some(t) => {
                    let b = median(t);
                    println!("| {k} | {} | {} | {:.2}x |", fmt(a), fmt(b), a / b);
                }
                None => println!("| {k} | {} | | |", fmt(a)),
            }
        }
        if let Some(v) = ours.get_mut("mixed_2t_ops_per_s") {
            let two = median(v);
            let one = median(ours.get_mut("mixed_1t_ops_per_s").unwrap());
            println!("2 threads / 1 thread: {:.2}x", two / one);
        }
    }
}
