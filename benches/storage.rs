//! Criterion benchmarks of the durable paths: `log_append/<policy>` (one
//! HSET through the log under each fsync policy), `snapshot/write` and
//! `snapshot/open` (a snapshot of 100,000 fields in 8-field hashes, written,
//! and opened with nothing to replay), and `replay/open` (the same data
//! opened from the log alone).
//!
//! Run: `cargo bench --bench storage`. Under `cargo test --all-targets` it
//! runs each once on 2,000 fields. Larger datasets and the comparison with
//! Redis are in the `log_append`, `snapshot` and `compare` benches.

#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hashkv::{Db, FsyncPolicy, Options};

fn fields() -> u64 {
    if std::env::args().any(|a| a == "--bench") {
        100_000
    } else {
        2_000
    }
}

fn opts(policy: FsyncPolicy) -> Options {
    Options::default()
        .active_expiry(false)
        .no_auto_snapshots()
        .fsync(policy)
}

fn fill(db: &Db, fields: u64) {
    for h in 0..fields / 8 {
        let pairs: Vec<(String, String)> = (0..8)
            .map(|f| (format!("field-{f}"), format!("value-{h}-{f}")))
            .collect();
        db.hset(format!("user:{h}"), &pairs).unwrap();
    }
}

fn log_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_append");
    g.throughput(Throughput::Elements(1));
    for (name, policy) in [
        ("no", FsyncPolicy::No),
        ("everysec", FsyncPolicy::EverySec),
        ("always", FsyncPolicy::Always),
    ] {
        if policy == FsyncPolicy::Always {
            // Each write waits for an fsync (milliseconds): fewer samples.
            g.sample_size(10);
        }
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_with(dir.path(), opts(policy)).unwrap();
        let mut n = 0u64;
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                n += 1;
                black_box(
                    db.hset(
                        format!("user:{}", n % 10_000),
                        &[("field", "0123456789abcdef")],
                    )
                    .unwrap(),
                )
            });
        });
    }
    g.finish();
}

fn snapshot(c: &mut Criterion) {
    let n = fields();
    let mut g = c.benchmark_group("snapshot");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open_with(dir.path(), opts(FsyncPolicy::No)).unwrap();
        fill(&db, n);
        g.bench_function(BenchmarkId::new("write", n), |b| {
            b.iter(|| black_box(db.snapshot().unwrap()));
        });
    }
    g.bench_function(BenchmarkId::new("open", n), |b| {
        b.iter(|| black_box(Db::open_with(dir.path(), opts(FsyncPolicy::No)).unwrap()));
    });
    g.finish();
}

fn replay(c: &mut Criterion) {
    let n = fields();
    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open_with(dir.path(), opts(FsyncPolicy::No)).unwrap();
        fill(&db, n);
    }
    g.bench_function(BenchmarkId::new("open", n), |b| {
        b.iter(|| black_box(Db::open_with(dir.path(), opts(FsyncPolicy::No)).unwrap()));
    });
    g.finish();
}

criterion_group!(benches, log_append, snapshot, replay);
criterion_main!(benches);
