//! A fixed number of single-thread HSETs on a logged directory (fsync
//! `No`), for instruction counts under callgrind, which do not move with
//! the machine's load:
//!
//! ```sh
//! cargo bench --no-run --bench hset_profile
//! B=$(ls -t target/release/deps/hset_profile-* | grep -v '\.d$' | head -1)
//! for n in 50000 250000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/hp.$n $B $n 2>&1 | grep Collected
//! done   # per HSET: (count at 250000 - count at 50000) / 200000
//! ```
//!
//! Under `cargo test --all-targets` it runs 10,000 HSETs as a smoke test.
#![allow(missing_docs)]

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let db = hashkv::Db::open_with(
        dir.path(),
        hashkv::Options::default()
            .active_expiry(false)
            .no_auto_snapshots()
            .fsync(hashkv::FsyncPolicy::No),
    )
    .unwrap();
    let value = "0123456789abcdef";
    for i in 0..n {
        db.hset(format!("user:{}", i % 10_000), &[("field", value)])
            .unwrap();
    }
}
