//! Memory benchmark: the same data loaded into hashkv (in a child process)
//! and into a real redis-server, resident memory of the data compared
//! (process RSS after loading minus before).
//!
//! Run: `cargo bench --bench memory` (all datasets) or
//! `cargo bench --bench memory -- profiles|big|objects [scale]`, where scale
//! divides the dataset size (default 1 = the full sizes of docs/PERFORMANCE.md).
//! `all` stands for all three datasets before a scale. With
//! `HASHKV_CHART_DATA=DIR` the figures also go to `DIR/memory.csv`
//! (docs/charts/regenerate.sh). With `HASHKV_MEMORY_DETAIL=1` a line under
//! each row says where hashkv's resident bytes go: what `Db::info` accounts
//! for, and (glibc) the heap's bytes in use and free.
#![allow(missing_docs)]

#[path = "common/chart_data.rs"]
mod chart_data;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "common/datasets.rs"]
mod datasets;

use std::process::Command;

use common::{rss_bytes, start_redis, RespClient};
use datasets::generate;
use hashkv::{Db, Options};

/// One dataset: name, Redis config, hashkv options, and the HSET commands.
struct Dataset {
    name: &'static str,
    entries: usize,
    fields: u64,
    raw_bytes: u64,
}

fn dataset(name: &str, scale: u64) -> Dataset {
    let (mut fields, mut raw) = (0u64, 0u64);
    generate(name, scale, |_, pairs| {
        fields += pairs.len() as u64;
        raw += pairs
            .iter()
            .map(|(f, v)| (f.len() + v.len()) as u64)
            .sum::<u64>();
    });
    match name {
        "profiles" => Dataset {
            name: "profiles",
            entries: 512,
            fields,
            raw_bytes: raw,
        },
        "big" => Dataset {
            name: "big",
            entries: 512,
            fields,
            raw_bytes: raw,
        },
        _ => Dataset {
            name: "objects",
            entries: 1024,
            fields,
            raw_bytes: raw,
        },
    }
}

fn self_pid() -> u32 {
    std::process::id()
}

/// The C heap's bytes in use and free (glibc's `mallinfo2`; zeros
/// elsewhere).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn heap() -> (u64, u64) {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    ((m.uordblks + m.hblkhd) as u64, m.fordblks as u64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap() -> (u64, u64) {
    (0, 0)
}

/// Child mode: load into hashkv and print the RSS growth (and what the
/// database accounts for, the heap's growth in use and free).
fn child(name: &str, scale: u64) {
    let d = dataset(name, scale);
    let db = Db::in_memory(
        Options::default()
            .hash_max_listpack_entries(d.entries)
            .active_expiry(false),
    );
    let before = rss_bytes(self_pid()).unwrap_or(0);
    let (used0, free0) = heap();
    generate(name, scale, |k, pairs| {
        db.hset(k, pairs).expect("hset");
    });
    let after = rss_bytes(self_pid()).unwrap_or(0);
    let (used, free) = heap();
    let keys = db.dbsize().unwrap();
    println!("RESULT {} {}", after.saturating_sub(before), keys);
    println!(
        "DETAIL {} {} {}",
        db.info().expect("info").memory_bytes,
        used.saturating_sub(used0),
        free as i64 - free0 as i64
    );
}

fn redis(d: &Dataset, scale: u64) -> Option<(u64, String)> {
    let entries = d.entries.to_string();
    let server = match start_redis(&["--hash-max-listpack-entries", &entries]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("redis-server unavailable: {e}");
            return None;
        }
    };
    let pid = {
        let mut c = RespClient::connect(server.port).ok()?;
        match c
            .call(&[b"INFO".as_slice(), b"server".as_slice()])
            .ok()?
            .ok()?
        {
            hashkv::Reply::Bulk(b) => String::from_utf8_lossy(&b).lines().find_map(|l| {
                l.strip_prefix("process_id:")
                    .and_then(|v| v.trim().parse::<u32>().ok())
            })?,
            _ => return None,
        }
    };
    let before = rss_bytes(pid)?;
    let mut client = RespClient::connect(server.port).ok()?;
    let mut pending: Vec<Vec<Vec<u8>>> = Vec::with_capacity(1000);
    let mut flush = |pending: &mut Vec<Vec<Vec<u8>>>| {
        if !pending.is_empty() {
            let replies = client.pipeline(pending).expect("redis pipeline");
            assert!(replies.iter().all(Result::is_ok));
            pending.clear();
        }
    };
    generate(d.name, scale, |k, pairs| {
        let mut argv = vec![b"HSET".to_vec(), k.as_bytes().to_vec()];
        for (f, v) in pairs {
            argv.push(f.clone().into_bytes());
            argv.push(v.clone().into_bytes());
        }
        pending.push(argv);
        if pending.len() == 1000 {
            flush(&mut pending);
        }
    });
    flush(&mut pending);
    let after = rss_bytes(pid)?;
    let mut c = RespClient::connect(server.port).ok()?;
    let version = match c
        .call(&[b"INFO".as_slice(), b"server".as_slice()])
        .ok()?
        .ok()?
    {
        hashkv::Reply::Bulk(b) => String::from_utf8_lossy(&b)
            .lines()
            .find_map(|l| {
                l.strip_prefix("redis_version:")
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    Some((after.saturating_sub(before), version))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.first().map(String::as_str) == Some("child") {
        child(&args[1], args[2].parse().unwrap_or(1));
        return;
    }
    // `cargo bench` passes --bench; under `cargo test --all-targets` this
    // runs as a smoke test at 1/1000 of the sizes.
    let full = std::env::args().any(|a| a == "--bench");
    let scale: u64 =
        args.get(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(if full { 1 } else { 1000 });
    let names: Vec<&str> = match args.first().map(String::as_str) {
        Some(n @ ("profiles" | "big" | "objects")) => vec![n],
        _ => vec!["profiles", "big", "objects"],
    };
    println!("| dataset | fields | raw bytes/field | hashkv bytes/field | Redis bytes/field | hashkv / Redis |");
    println!("|---|---|---|---|---|---|");
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut redis_version = String::new();
    for name in names {
        let d = dataset(name, scale);
        let out = Command::new(std::env::current_exe().expect("exe"))
            .args(["child", name, &scale.to_string()])
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&out.stdout);
        let hk: u64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("RESULT ")
                    .and_then(|r| r.split(' ').next()?.parse().ok())
            })
            .expect("child result");
        let detail = std::env::var_os("HASHKV_MEMORY_DETAIL")
            .and(text.lines().find_map(|l| l.strip_prefix("DETAIL ")))
            .map(|l| {
                let v: Vec<f64> = l.split(' ').filter_map(|x| x.parse().ok()).collect();
                let per = |b: f64| b / d.fields as f64;
                format!(
                    "|  | hashkv's {:.1}: accounted (Db::info memory_bytes) {:.1}; heap in use {:.1}, heap free {:.1}, other resident {:.1} |",
                    per(hk as f64),
                    per(v[0]),
                    per(v[1]),
                    per(v[2]),
                    per(hk as f64 - v[1] - v[2]),
                )
            });
        let Some((rd, version)) = redis(&d, scale) else {
            println!(
                "| {} | {} | {:.1} | {:.1} | (no redis-server) | |",
                d.name,
                d.fields,
                d.raw_bytes as f64 / d.fields as f64,
                hk as f64 / d.fields as f64
            );
            continue;
        };
        let per = |b: u64| b as f64 / d.fields as f64;
        rows.push(vec![
            d.name.to_owned(),
            d.fields.to_string(),
            format!("{:.1}", per(d.raw_bytes)),
            format!("{:.1}", per(hk)),
            format!("{:.1}", per(rd)),
        ]);
        redis_version.clone_from(&version);
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} (Redis {}) | {:.2} |",
            d.name,
            d.fields,
            per(d.raw_bytes),
            per(hk),
            per(rd),
            version,
            hk as f64 / rd as f64
        );
        if let Some(line) = detail {
            println!("{line}");
        }
    }
    if !rows.is_empty() {
        let mut notes = chart_data::machine_notes(&chart_data::command("memory"));
        notes.push(format!(
            "resident memory after loading minus before, per field; scale 1/{scale}; Redis {redis_version}"
        ));
        chart_data::write(
            "memory",
            &notes,
            &[
                "dataset",
                "fields",
                "raw_bytes_per_field",
                "hashkv_bytes_per_field",
                "redis_bytes_per_field",
            ],
            &rows,
        );
    }
}
