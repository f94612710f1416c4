//! Readers beside a live writer: one process owns the directory and writes
//! (a thread moving money between accounts, one transaction each, so the
//! total never changes); two reader processes open the same directory
//! read-only and follow the writer's log, checking the total as they go;
//! a subscriber in the writer's process prints the changes as they are
//! made, in redis-cli's words.
//!
//! Run: `cargo run --example followers`
//! (It starts its reader processes by running itself with `--reader DIR`.)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hashkv::{Db, Options};

const ACCOUNTS: usize = 10;
const TOTAL: i64 = 1_000 * ACCOUNTS as i64;

fn balance(v: Option<Vec<u8>>) -> i64 {
    v.and_then(|b| String::from_utf8_lossy(&b).parse().ok())
        .unwrap_or(0)
}

fn account(i: usize) -> String {
    format!("acct:{i}")
}

/// The sum of every balance, read in one transaction (one consistent view).
fn total(db: &Db) -> hashkv::Result<i64> {
    let keys: Vec<String> = (0..ACCOUNTS).map(account).collect();
    db.transaction(&keys, |tx| {
        let mut sum = 0;
        for k in &keys {
            sum += balance(tx.hget(k, "balance")?);
        }
        Ok(sum)
    })
}

/// A reader process: follows the directory for `secs` seconds, checking
/// the total, then prints what it saw.
fn reader(dir: &str, secs: u64) -> hashkv::Result<()> {
    let db = Db::open_read_only(dir)?;
    let start = Instant::now();
    let (mut checks, mut moves_seen) = (0u64, 0i64);
    while start.elapsed() < Duration::from_secs(secs) {
        assert_eq!(total(&db)?, TOTAL, "a reader saw half a transfer");
        checks += 1;
        moves_seen = balance(db.hget("stats", "transfers")?);
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "reader {}: {checks} checks of the total, all {TOTAL}; {moves_seen} transfers seen, at log position {}",
        std::process::id(),
        db.log_position()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--reader") {
        return Ok(reader(&args[2], 2)?);
    }
    let dir = tempfile::tempdir()?;
    let db = Db::open_with(dir.path(), Options::default())?;
    for i in 0..ACCOUNTS {
        db.hset(account(i), &[("balance", "1000")])?;
    }
    // Readers: separate processes over the same directory.
    let me = std::env::current_exe()?;
    let readers: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&me)
                .arg("--reader")
                .arg(dir.path())
                .stdout(Stdio::inherit())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    // A subscriber in this process prints the first changes.
    let mut changes = db.subscribe_matching("acct:*");
    let printer = std::thread::spawn(move || {
        for change in changes.by_ref().take(3).flatten() {
            println!("change at {}: {}", change.position, change.to_cli_line());
        }
    });
    // The writer: random transfers for two seconds.
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || -> hashkv::Result<u64> {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < Duration::from_millis(2300) {
                let (a, b) = (n as usize % ACCOUNTS, (n as usize * 7 + 3) % ACCOUNTS);
                if a != b {
                    let (from, to) = (account(a), account(b));
                    db.transaction(&[from.as_str(), to.as_str(), "stats"], |tx| {
                        tx.hincrby(&from, "balance", -1)?;
                        tx.hincrby(&to, "balance", 1)?;
                        tx.hincrby("stats", "transfers", 1)
                    })?;
                }
                n += 1;
            }
            Ok(n)
        })
    };
    let n = writer.join().expect("writer thread")?;
    printer.join().expect("printer thread");
    for mut r in readers {
        r.wait()?;
    }
    println!(
        "writer: {n} transfers, total {} at log position {}",
        total(&db)?,
        db.log_position()
    );
    Ok(())
}
