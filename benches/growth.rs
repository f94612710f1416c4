//! Growth without stalls: one hash grown from 0 to N fields (default
//! 10,000,000) with one HSET per call, every call timed. Prints the maximum,
//! p99.9, p99 and mean single-call latency, and the worst calls' positions
//! (table migrations start at powers of two).
//!
//! Run: `cargo bench --bench growth [-- N]`.
#![allow(missing_docs)]

use std::time::Instant;

use hashkv::{Db, Options};

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and
    // then this runs as a quick smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .find_map(|a| a.parse().ok())
        .unwrap_or(if full { 10_000_000 } else { 20_000 });
    let db = Db::in_memory(Options::default().active_expiry(false));
    let mut lat = Vec::with_capacity(n);
    let mut field = String::with_capacity(16);
    let value = "0123456789abcdef";
    let start = Instant::now();
    for i in 0..n {
        field.clear();
        field.push('f');
        field.push_str(&i.to_string());
        let t = Instant::now();
        db.hset("big", &[(field.as_str(), value)]).expect("hset");
        lat.push((t.elapsed().as_nanos() as u64, i));
    }
    let total = start.elapsed();
    assert_eq!(db.hlen("big").unwrap() as usize, n);
    let mut worst: Vec<(u64, usize)> = lat.clone();
    worst.sort_unstable_by(|a, b| b.cmp(a));
    let mut ns: Vec<u64> = lat.iter().map(|x| x.0).collect();
    ns.sort_unstable();
    let q = |p: f64| ns[((ns.len() as f64 * p) as usize).min(ns.len() - 1)];
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64;
    println!(
        "fields: {n}, total {:.2} s ({:.0} HSET/s)",
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64()
    );
    println!(
        "single HSET latency: max {:.1} us, p99.9 {:.2} us, p99 {:.2} us, mean {:.3} us",
        ns[ns.len() - 1] as f64 / 1e3,
        q(0.999) as f64 / 1e3,
        q(0.99) as f64 / 1e3,
        mean / 1e3
    );
    let top: Vec<String> = worst
        .iter()
        .take(5)
        .map(|(t, i)| format!("{:.0} us at field {i}", *t as f64 / 1e3))
        .collect();
    println!("worst calls: {}", top.join(", "));
    drop(db);
    control(n);
}

/// The same amount of memory touched without hashkv: 32 KiB blocks filled
/// 28 bytes at a time plus a 64 MiB table written at random, every step
/// timed. What this machine's page faults alone cost, to compare the
/// maximum above against.
fn control(n: usize) {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut table = vec![0u32; 1 << 24];
    let mut worst = 0u64;
    let mut x: u64 = 88_172_645_463_325_252;
    for i in 0..n {
        let t = Instant::now();
        if blocks.last().is_none_or(|b| b.len() + 28 > 32_768) {
            blocks.push(Vec::with_capacity(32_768));
        }
        if let Some(b) = blocks.last_mut() {
            b.extend_from_slice(&[i as u8; 28]);
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        table[(x as usize) & ((1 << 24) - 1)] = i as u32;
        worst = worst.max(t.elapsed().as_nanos() as u64);
    }
    println!(
        "control (same memory touched, no hashkv): max {:.1} us",
        worst as f64 / 1e3
    );
}
