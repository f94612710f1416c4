//! A shopping cart: one hash per cart (product -> quantity), quantities
//! changed atomically with HINCRBY, a line removed when it reaches zero, and
//! the whole cart gone 7 days after it was last touched.
//!
//! Run: `cargo run --example cart`

use hashkv::{Db, ManualClock, Options};

const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;

fn add(db: &Db, cart: &str, product: &str, n: i64) -> hashkv::Result<i64> {
    let key = format!("cart:{cart}");
    let q = db.hincrby(&key, product, n)?;
    if q <= 0 {
        db.hdel(&key, &[product])?;
    }
    db.pexpire(&key, WEEK_MS)?;
    Ok(q.max(0))
}

fn run() -> hashkv::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let clock = ManualClock::new(1_700_000_000_000);
    let db = Db::open_with(dir.path(), Options::default().clock(clock.clone()))?;
    println!("add 2 x book -> {}", add(&db, "u42", "book", 2)?);
    println!("add 1 x pen -> {}", add(&db, "u42", "pen", 1)?);
    println!("add 3 x book -> {}", add(&db, "u42", "book", 3)?);
    println!("remove 1 x pen -> {}", add(&db, "u42", "pen", -1)?);
    println!(
        "cart:u42 ->\n{}",
        db.execute(&["HGETALL", "cart:u42"])?.to_cli_string()
    );
    assert_eq!(db.hget("cart:u42", "book")?.as_deref(), Some(&b"5"[..]));
    assert!(!db.hexists("cart:u42", "pen")?);
    clock.advance(6 * 24 * 3600 * 1000);
    println!(
        "6 days later the cart is still there ({} field)",
        db.hlen("cart:u42")?
    );
    assert_eq!(db.hlen("cart:u42")?, 1);
    clock.advance(24 * 3600 * 1000 + 1);
    println!(
        "7 days after the last change it is gone: HLEN -> {}",
        db.hlen("cart:u42")?
    );
    assert_eq!(db.hlen("cart:u42")?, 0);
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
