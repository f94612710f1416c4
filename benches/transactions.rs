//! What a transaction costs: two HINCRBYs as two calls, as one closure
//! transaction, and as MULTI/EXEC in a session, on a logged directory
//! (`EverySec`); transactions on disjoint keys from 1 and 2 threads; and
//! one HINCRBY on a hash of a million fields, alone and in a transaction
//! (what undo keeps is what the transaction changes, not the hash).
//!
//! Run: `cargo bench --bench transactions`. Under `cargo test --all-targets`
//! (no `--bench` argument) it runs as a quick smoke test.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use hashkv::{Db, Options};

/// Operations per second of `op(i)` for `dur`.
fn rate(dur: Duration, mut op: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..64 {
            op(n);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Transactions (or, with `plain`, pairs of single calls) per second from
/// `threads` threads on their own keys.
fn scaling(db: &Db, threads: usize, dur: Duration, plain: bool) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while start.elapsed() < dur {
                    let k = format!("t{t}:{}", n % 1000);
                    if plain {
                        db.hincrby(&k, "a", 1).unwrap();
                        db.hincrby(&k, "b", -1).unwrap();
                    } else {
                        db.transaction(&[&k], |tx| {
                            tx.hincrby(&k, "a", 1)?;
                            tx.hincrby(&k, "b", -1)?;
                            Ok(())
                        })
                        .unwrap();
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

/// `HASHKV_TX_PROFILE=plain|closure|multi` with `HASHKV_TX_ITERS=N`: runs
/// only that variant N times (for instruction counts under callgrind).
fn profile(db: &Db, which: &str, iters: u64) {
    let mut s = db.session();
    for n in 0..iters {
        let k = format!("acct:{}", n % 10_000);
        match which {
            "plain" => {
                db.hincrby(&k, "a", 1).unwrap();
                db.hincrby(&k, "b", -1).unwrap();
            }
            "closure" => db
                .transaction(&[&k], |tx| {
                    tx.hincrby(&k, "a", 1)?;
                    tx.hincrby(&k, "b", -1)?;
                    Ok(())
                })
                .unwrap(),
            _ => {
                s.execute(&["MULTI"]).unwrap();
                s.execute(&["HINCRBY", &k, "a", "1"]).unwrap();
                s.execute(&["HINCRBY", &k, "b", "-1"]).unwrap();
                s.execute(&["EXEC"]).unwrap();
            }
        }
    }
}

fn main() {
    if let (Ok(which), Ok(iters)) = (
        std::env::var("HASHKV_TX_PROFILE"),
        std::env::var("HASHKV_TX_ITERS"),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open_with(
            tmp.path(),
            Options::default()
                .active_expiry(false)
                .no_auto_snapshots()
                .fsync(hashkv::FsyncPolicy::No),
        )
        .unwrap();
        profile(&db, &which, 20_000); // warm: every key exists
        profile(&db, &which, iters.parse().unwrap_or(100_000));
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let dur = if full {
        Duration::from_secs(3)
    } else {
        Duration::from_millis(50)
    };
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open_with(
        tmp.path(),
        Options::default().active_expiry(false).no_auto_snapshots(),
    )
    .unwrap();
    let key = |n: u64| format!("acct:{}", n % 10_000);
    let plain = rate(dur, |n| {
        let k = key(n);
        db.hincrby(&k, "a", 1).unwrap();
        db.hincrby(&k, "b", -1).unwrap();
    });
    let closure = rate(dur, |n| {
        let k = key(n);
        db.transaction(&[&k], |tx| {
            tx.hincrby(&k, "a", 1)?;
            tx.hincrby(&k, "b", -1)?;
            Ok(())
        })
        .unwrap();
    });
    let mut s = db.session();
    let multi = rate(dur, |n| {
        let k = key(n);
        s.execute(&["MULTI"]).unwrap();
        s.execute(&["HINCRBY", &k, "a", "1"]).unwrap();
        s.execute(&["HINCRBY", &k, "b", "-1"]).unwrap();
        s.execute(&["EXEC"]).unwrap();
    });
    println!("two HINCRBYs on one key, EverySec log, one thread (pairs per second):");
    println!("  two calls          {:>10.0}", plain);
    println!(
        "  closure transaction {:>9.0}  ({:.2}x the time of two calls)",
        closure,
        plain / closure
    );
    println!(
        "  MULTI/EXEC session {:>10.0}  ({:.2}x the time of two calls)",
        multi,
        plain / multi
    );
    // One field of a big hash: a transaction keeps that field for undo.
    let fields = if full { 1_000_000 } else { 20_000 };
    let pairs: Vec<(String, String)> = (0..fields)
        .map(|i| (format!("f{i}"), i.to_string()))
        .collect();
    for chunk in pairs.chunks(10_000) {
        db.hset("big", chunk).unwrap();
    }
    let alone = rate(dur, |n| {
        db.hincrby("big", format!("f{}", n % 1000), 1).unwrap();
    });
    let in_tx = rate(dur, |n| {
        db.transaction(&["big"], |tx| {
            tx.hincrby("big", format!("f{}", n % 1000), 1)
        })
        .unwrap();
    });
    println!(
        "one HINCRBY on a hash of {fields} fields: alone {:.2} us, in a closure transaction {:.2} us",
        1e6 / alone,
        1e6 / in_tx
    );
    for (what, plain) in [
        ("closure transactions", false),
        ("pairs of single calls", true),
    ] {
        let one = scaling(&db, 1, dur, plain);
        let two = scaling(&db, 2, dur, plain);
        println!(
            "{what} on disjoint keys: 1 thread {one:.0}/s, 2 threads {two:.0}/s ({:.2}x)",
            two / one
        );
    }
}
