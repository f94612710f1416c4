//! Product inventory: many buyers at once, and never more sold than in
//! stock. Each purchase is a transaction over the product's key: check the
//! stock, then decrement it and count the sale, with no other buyer in
//! between; a reader never sees negative stock, and a crash keeps a sale
//! whole or not at all (one log record).
//!
//! Run: `cargo run --example inventory`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hashkv::Db;

/// Buys `n` units of `sku`; true when they were in stock.
fn buy(db: &Db, sku: &str, n: i64) -> hashkv::Result<bool> {
    let key = format!("product:{sku}");
    db.transaction(&[&key], |tx| {
        let stock: i64 = tx
            .hget(&key, "stock")?
            .and_then(|v| String::from_utf8_lossy(&v).parse().ok())
            .unwrap_or(0);
        if stock < n {
            return Ok(false);
        }
        tx.hincrby(&key, "stock", -n)?;
        tx.hincrby(&key, "sold", n)?;
        Ok(true)
    })
}

fn run() -> hashkv::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::open(dir.path())?;
    let stock = 1000;
    db.hset(
        "product:sku-42",
        &[
            ("name", "Rust mug"),
            ("price", "12.50"),
            ("stock", &stock.to_string()),
            ("sold", "0"),
        ],
    )?;
    println!("product:sku-42 starts with {stock} in stock; 8 buyers try 200 purchases each");
    let bought = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let buyers: Vec<_> = (0..8)
        .map(|_| {
            let (db, bought, refused) = (db.clone(), bought.clone(), refused.clone());
            std::thread::spawn(move || -> hashkv::Result<()> {
                for _ in 0..200 {
                    if buy(&db, "sku-42", 1)? {
                        bought.fetch_add(1, Ordering::Relaxed);
                    } else {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            })
        })
        .collect();
    for b in buyers {
        b.join().expect("buyer thread")?;
    }
    let stock_left: i64 = String::from_utf8_lossy(&db.hget("product:sku-42", "stock")?.unwrap())
        .parse()
        .unwrap();
    let sold: i64 = String::from_utf8_lossy(&db.hget("product:sku-42", "sold")?.unwrap())
        .parse()
        .unwrap();
    println!(
        "bought {}, refused {} (sold out); stock left {stock_left}, sold {sold}",
        bought.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
    assert_eq!(sold, stock, "exactly the stock was sold, never more");
    assert_eq!(stock_left, 0);
    assert_eq!(bought.load(Ordering::Relaxed), stock as u64);
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
