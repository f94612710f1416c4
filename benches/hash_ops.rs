//! Criterion benchmarks of the hot hash commands on both encodings:
//! `hash_ops/<op>/<encoding>-<fields>`.

#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use hashkv::{Db, Options};

fn filled(fields: usize) -> Db {
    let db = Db::in_memory(Options::default().active_expiry(false));
    let pairs: Vec<(String, String)> = (0..fields)
        .map(|i| (format!("field:{i}"), format!("value-{i}")))
        .collect();
    for chunk in pairs.chunks(256) {
        db.hset("h", chunk).unwrap();
    }
    db
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("hash_ops");
    for (label, fields) in [
        ("listpack-8", 8usize),
        ("listpack-100", 100),
        ("hashtable-10k", 10_000),
    ] {
        let db = filled(fields);
        let probe = format!("field:{}", fields / 2);
        g.bench_with_input(BenchmarkId::new("hget", label), &db, |b, db| {
            b.iter(|| black_box(db.hget("h", &probe).unwrap()));
        });
        g.bench_with_input(BenchmarkId::new("hset-update", label), &db, |b, db| {
            b.iter(|| black_box(db.hset("h", &[(probe.as_str(), "new-value")]).unwrap()));
        });
        g.bench_with_input(BenchmarkId::new("hincrby", label), &db, |b, db| {
            b.iter(|| black_box(db.hincrby("h", "counter", 1).unwrap()));
        });
        if fields <= 100 {
            g.bench_with_input(BenchmarkId::new("hgetall", label), &db, |b, db| {
                b.iter(|| black_box(db.hgetall("h").unwrap()));
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
