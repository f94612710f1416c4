//! Money transfers between accounts: debit one, credit the other, as one
//! transaction, so the total never changes, not for a reader in between
//! and not after a crash (the two changes are one log record). Shown two
//! ways: a Rust closure transaction, and Redis's MULTI/EXEC with WATCH in
//! a session (an optimistic retry loop, as a Redis client would write it).
//!
//! Run: `cargo run --example transfer`

use hashkv::{Db, Error, Reply};

fn balance(v: Option<Vec<u8>>) -> i64 {
    v.and_then(|b| String::from_utf8_lossy(&b).parse().ok())
        .unwrap_or(0)
}

/// Moves `amount` from `from` to `to` if `from` has it (closure form).
fn transfer(db: &Db, from: &str, to: &str, amount: i64) -> hashkv::Result<bool> {
    db.transaction(&[from, to], |tx| {
        if balance(tx.hget(from, "balance")?) < amount {
            return Ok(false);
        }
        tx.hincrby(from, "balance", -amount)?;
        tx.hincrby(to, "balance", amount)?;
        tx.hincrby(from, "transfers", 1)?;
        Ok(true)
    })
}

/// The same with WATCH/MULTI/EXEC: retried when another client changed
/// the account between the check and EXEC.
fn transfer_watched(db: &Db, from: &str, to: &str, amount: i64) -> hashkv::Result<bool> {
    let mut s = db.session();
    loop {
        s.execute(&["WATCH", from])?;
        if balance(db.hget(from, "balance")?) < amount {
            s.execute(&["UNWATCH"])?;
            return Ok(false);
        }
        let amount = amount.to_string();
        s.execute(&["MULTI"])?;
        s.execute(&["HINCRBY", from, "balance", &format!("-{amount}")])?;
        s.execute(&["HINCRBY", to, "balance", &amount])?;
        match s.execute(&["EXEC"])? {
            Reply::Nil => continue, // touched by someone else: try again
            Reply::Array(_) => return Ok(true),
            other => {
                return Err(Error::Command(hashkv::CommandError::new(format!(
                    "ERR unexpected EXEC reply {other:?}"
                ))))
            }
        }
    }
}

fn run() -> hashkv::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::open(dir.path())?;
    let accounts = ["acct:alice", "acct:bob", "acct:carol", "acct:dave"];
    for a in accounts {
        db.hset(a, &[("balance", "1000")])?;
    }
    let total = || -> hashkv::Result<i64> {
        // Read all balances at one instant: a transaction over every account.
        db.transaction(&accounts, |tx| {
            let mut sum = 0;
            for a in accounts {
                sum += balance(tx.hget(a, "balance")?);
            }
            Ok(sum)
        })
    };
    println!("4 accounts with 1000 each; 4 threads move money around");
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || -> hashkv::Result<u32> {
                let mut done = 0;
                for i in 0..250 {
                    let from = accounts[(t + i) % 4];
                    let to = accounts[(t + i + 1 + i % 3) % 4];
                    let amount = (i % 7 + 1) as i64 * 10;
                    let ok = if i % 2 == 0 {
                        transfer(&db, from, to, amount)?
                    } else {
                        transfer_watched(&db, from, to, amount)?
                    };
                    done += u32::from(ok);
                }
                Ok(done)
            })
        })
        .collect();
    let mut done = 0;
    for w in workers {
        done += w.join().expect("worker thread")?;
    }
    let sum = total()?;
    println!("{done} transfers made; total money {sum}");
    assert_eq!(sum, 4000, "no money created or lost");
    drop(db);
    // After a restart, every transfer is there whole.
    let db = Db::open(dir.path())?;
    let sum: i64 = accounts
        .iter()
        .map(|a| db.hget(a, "balance").map(balance))
        .sum::<hashkv::Result<i64>>()?;
    println!("after reopening: total money {sum}");
    assert_eq!(sum, 4000);
    Ok(())
}

fn main() -> hashkv::Result<()> {
    run()
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs() {
        super::run().unwrap();
    }
}
