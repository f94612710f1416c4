//! Criterion benchmarks of the hash commands through the public API, on
//! both encodings: `hash_ops/<op>/<encoding>-<fields>` for compact hashes of
//! 8 and 100 fields and dict hashes of 10,000 and 1,000,000 fields, and
//! `listpack_search/<where>/<fields>`: finding a field at the start, middle
//! or end of a compact hash, or missing it; and `profiles/<op>`: commands
//! on 100,000 small hashes with the same six fields (which share their
//! field list) and a 40-digit hex value (packed), one key after another.
//!
//! Run: `cargo bench --bench hash_ops`. Under `cargo test --all-targets`
//! (no `--bench` argument) criterion runs each once, with the 1,000,000
//! field hash cut to 20,000 so the smoke run stays quick.

#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use hashkv::{Db, Options};

#[path = "common/datasets.rs"]
mod datasets;
use datasets::hex_profile as profile;

fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn filled(fields: usize, entries: usize) -> Db {
    let db = Db::in_memory(
        Options::default()
            .active_expiry(false)
            .hash_max_listpack_entries(entries),
    );
    let pairs: Vec<(String, String)> = (0..fields)
        .map(|i| (format!("field:{i}"), format!("value-{i}")))
        .collect();
    for chunk in pairs.chunks(256) {
        db.hset("h", chunk).unwrap();
    }
    db
}

fn hash_ops(c: &mut Criterion) {
    let big = if benchmarking() { 1_000_000 } else { 20_000 };
    let mut g = c.benchmark_group("hash_ops");
    for (label, fields) in [
        ("listpack-8".to_owned(), 8usize),
        ("listpack-100".to_owned(), 100),
        ("hashtable-10k".to_owned(), 10_000),
        (format!("hashtable-{}k", big / 1000), big),
    ] {
        let db = filled(fields, 512);
        let probe = format!("field:{}", fields / 2);
        let probes: Vec<String> = (0..4)
            .map(|i| format!("field:{}", i * fields / 4))
            .collect();
        g.bench_with_input(BenchmarkId::new("hget", &label), &db, |b, db| {
            b.iter(|| black_box(db.hget("h", &probe).unwrap()));
        });
        g.bench_with_input(BenchmarkId::new("hmget-4", &label), &db, |b, db| {
            b.iter(|| black_box(db.hmget("h", &probes).unwrap()));
        });
        g.bench_with_input(BenchmarkId::new("hset-update", &label), &db, |b, db| {
            b.iter(|| black_box(db.hset("h", &[(probe.as_str(), "new-value")]).unwrap()));
        });
        g.bench_with_input(BenchmarkId::new("hincrby", &label), &db, |b, db| {
            b.iter(|| black_box(db.hincrby("h", "counter", 1).unwrap()));
        });
        // HDEL of a field, then HSET of it again, so the hash keeps its size.
        g.bench_with_input(BenchmarkId::new("hdel+hset", &label), &db, |b, db| {
            b.iter(|| {
                black_box(db.hdel("h", &[probe.as_str()]).unwrap());
                black_box(db.hset("h", &[(probe.as_str(), "value")]).unwrap())
            });
        });
        if fields <= 10_000 {
            g.bench_with_input(BenchmarkId::new("hgetall", &label), &db, |b, db| {
                b.iter(|| black_box(db.hgetall("h").unwrap()));
            });
        }
    }
    g.finish();
}

fn listpack_search(c: &mut Criterion) {
    let mut g = c.benchmark_group("listpack_search");
    for fields in [8usize, 100, 512] {
        let db = filled(fields, 512);
        for (place, field) in [
            ("first", "field:0".to_owned()),
            ("middle", format!("field:{}", fields / 2)),
            ("last", format!("field:{}", fields - 1)),
            ("missing", "no-such-field".to_owned()),
        ] {
            g.bench_with_input(BenchmarkId::new(place, fields), &db, |b, db| {
                b.iter(|| black_box(db.hexists("h", &field).unwrap()));
            });
        }
    }
    g.finish();
}

fn profiles(c: &mut Criterion) {
    let n = if benchmarking() { 100_000 } else { 1_000 };
    let db = Db::in_memory(Options::default().active_expiry(false));
    let keys: Vec<String> = (0..n).map(|i| format!("user:{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        db.hset(k, &profile(i)).unwrap();
    }
    let mut g = c.benchmark_group("profiles");
    let mut i = 0usize;
    let mut next = move || {
        i = (i + 7919) % n;
        i
    };
    g.bench_function("hget", |b| {
        b.iter(|| black_box(db.hget(&keys[next()], "email").unwrap()));
    });
    g.bench_function("hget-hex", |b| {
        b.iter(|| black_box(db.hget(&keys[next()], "sha").unwrap()));
    });
    g.bench_function("hgetall", |b| {
        b.iter(|| black_box(db.hgetall(&keys[next()]).unwrap()));
    });
    // The same size: written in place.
    g.bench_function("hset-same-size", |b| {
        b.iter(|| {
            let k = next();
            black_box(
                db.hset(&keys[k], &[("joined", (1_700_000_000 + k).to_string())])
                    .unwrap(),
            )
        });
    });
    // Another size: the hash is rewritten (and keeps its shape).
    g.bench_function("hset-resize", |b| {
        let mut flip = false;
        b.iter(|| {
            flip = !flip;
            let v = if flip {
                "Rust"
            } else {
                "Loves Rust, hiking and coffee"
            };
            black_box(db.hset(&keys[next()], &[("bio", v)]).unwrap())
        });
    });
    g.bench_function("hset-hex", |b| {
        b.iter(|| {
            let k = next();
            let v = format!("{:040x}", (k as u128) * 31);
            black_box(db.hset(&keys[k], &[("sha", v.as_str())]).unwrap())
        });
    });
    g.bench_function("hincrby", |b| {
        b.iter(|| black_box(db.hincrby(&keys[next()], "joined", 1).unwrap()));
    });
    g.finish();
}

criterion_group!(benches, hash_ops, listpack_search, profiles);
criterion_main!(benches);
