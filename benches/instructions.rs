//! Commands run N times for instruction counts under callgrind (steadier
//! than time on a shared VM): `valgrind --tool=callgrind <binary> OP N`,
//! minus the count of `OP 0`, divided by N. The data: 10,000 profiles of 6
//! fields with a 40-digit hex value (shaped, packed), an 8-field and a
//! 100-field plain hash, a 10,000-field dict. Ops: hget, hget-hex, hgetall,
//! hset-same, hset-resize, hset-hex, hincrby, h8-hgetall, h8-hmget, h8-hget,
//! h8-hdelhset, h8-hexists-last, h100-missing, h100-last, d-hgetall, d-hget,
//! d-hincrby, d-hset, d-hmget, and hset-add and hdel, which add a 7th
//! field to a profile or remove its `bio` (each key once for N up to
//! 10,000, so the hash changes shape). `--no-shapes` runs it all with
//! `Options::shapes(false)`. The figures of docs/PERFORMANCE.md ("What
//! shapes and packing cost in time") compare two commits built from this
//! file. Without arguments (as `cargo test --all-targets` runs it) it runs
//! each op a few times.
#![allow(missing_docs)]

use hashkv::{Db, Options};
use std::hint::black_box;
#[path = "common/datasets.rs"]
mod datasets;
use datasets::hex_profile as profile;
const OPS: [&str; 21] = [
    "hget",
    "hget-hex",
    "hgetall",
    "hset-same",
    "hset-resize",
    "hset-hex",
    "hincrby",
    "h8-hgetall",
    "h8-hmget",
    "h8-hget",
    "h8-hdelhset",
    "h8-hexists-last",
    "h100-missing",
    "h100-last",
    "d-hgetall",
    "d-hget",
    "d-hincrby",
    "d-hset",
    "d-hmget",
    "hset-add",
    "hdel",
];

fn main() {
    let shapes = !std::env::args().any(|a| a == "--no-shapes");
    let a: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match (a.first(), a.get(1).and_then(|n| n.parse().ok())) {
        (Some(op), Some(n)) => run(op, n, shapes),
        _ => OPS.iter().for_each(|op| run(op, 3, shapes)),
    }
}

fn run(op: &str, iters: usize, shapes: bool) {
    let n = 10_000usize;
    let db = Db::in_memory(Options::default().active_expiry(false).shapes(shapes));
    let keys: Vec<String> = (0..n).map(|i| format!("user:{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        db.hset(k, &profile(i)).unwrap();
    }
    // A single 8-field hash like hash_ops's listpack-8, stored a few times.
    let pairs: Vec<(String, String)> = (0..8)
        .map(|i| (format!("field:{i}"), format!("value-{i}")))
        .collect();
    for _ in 0..3 {
        db.hset("h", &pairs).unwrap();
        db.hdel("h", &["field:4"]).unwrap();
        db.hset("h", &pairs).unwrap();
    }
    let p100: Vec<(String, String)> = (0..100)
        .map(|i| (format!("field:{i}"), format!("value-{i}")))
        .collect();
    db.hset("h100", &p100).unwrap();
    let d10k: Vec<(String, String)> = (0..10_000)
        .map(|i| (format!("field:{i}"), format!("value-{i}")))
        .collect();
    for c in d10k.chunks(256) {
        db.hset("d10k", c).unwrap();
    }
    let probes = ["field:0", "field:2", "field:4", "field:6"];
    let mut j = 0usize;
    for _ in 0..iters {
        j = (j + 7919) % n;
        let k = &keys[j];
        match op {
            "hget" => {
                black_box(db.hget(k, "email").unwrap());
            }
            "hget-hex" => {
                black_box(db.hget(k, "sha").unwrap());
            }
            "hgetall" => {
                black_box(db.hgetall(k).unwrap());
            }
            "hset-same" => {
                black_box(
                    db.hset(k, &[("joined", (1_700_000_000 + j).to_string())])
                        .unwrap(),
                );
            }
            "hset-resize" => {
                let v = if j.is_multiple_of(2) {
                    "Rust"
                } else {
                    "Loves Rust, hiking and coffee"
                };
                black_box(db.hset(k, &[("bio", v)]).unwrap());
            }
            "hset-hex" => {
                let v = format!("{:040x}", (j as u128) * 31);
                black_box(db.hset(k, &[("sha", v.as_str())]).unwrap());
            }
            "hincrby" => {
                black_box(db.hincrby(k, "joined", 1).unwrap());
            }
            "h8-hgetall" => {
                black_box(db.hgetall("h").unwrap());
            }
            "h8-hmget" => {
                black_box(db.hmget("h", &probes).unwrap());
            }
            "h8-hget" => {
                black_box(db.hget("h", "field:4").unwrap());
            }
            "h8-hdelhset" => {
                black_box(db.hdel("h", &["field:4"]).unwrap());
                black_box(db.hset("h", &[("field:4", "value")]).unwrap());
            }
            "h8-hexists-last" => {
                black_box(db.hexists("h", "field:7").unwrap());
            }
            "h100-missing" => {
                black_box(db.hexists("h100", "no-such-field").unwrap());
            }
            "h100-last" => {
                black_box(db.hexists("h100", "field:99").unwrap());
            }
            "d-hgetall" => {
                black_box(db.hgetall("d10k").unwrap());
            }
            "d-hget" => {
                black_box(db.hget("d10k", "field:5000").unwrap());
            }
            "d-hincrby" => {
                black_box(db.hincrby("d10k", "counter", 1).unwrap());
            }
            "d-hset" => {
                black_box(db.hset("d10k", &[("field:5000", "new-value")]).unwrap());
            }
            "d-hmget" => {
                black_box(db.hmget("d10k", &probes).unwrap());
            }
            "hset-add" => {
                black_box(db.hset(k, &[("plan", "pro")]).unwrap());
            }
            "hdel" => {
                black_box(db.hdel(k, &["bio"]).unwrap());
            }
            _ => panic!("unknown op {op}"),
        }
    }
}
