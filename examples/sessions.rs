//! Web sessions that expire 24 hours after they were last used. The clock
//! is injected (`ManualClock`), so a day passes in an instant here; with the
//! default system clock the same code expires sessions in real time.
//!
//! Run: `cargo run --example sessions`

use hashkv::{Db, ManualClock, Options};

const DAY_SECS: i64 = 24 * 3600;

fn touch(db: &Db, sid: &str) -> hashkv::Result<()> {
    db.execute(&["EXPIRE", &format!("session:{sid}"), &DAY_SECS.to_string()])?;
    Ok(())
}

fn run() -> hashkv::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let clock = ManualClock::new(1_700_000_000_000);
    let db = Db::open_with(dir.path(), Options::default().clock(clock.clone()))?;
    for (sid, user) in [("a1", "alice"), ("b2", "bob")] {
        db.hset(
            format!("session:{sid}"),
            &[("user", user), ("csrf", "t0k3n"), ("cart_items", "0")],
        )?;
        touch(&db, sid)?;
        println!("login: session:{sid} for {user}, expires in 24 h");
    }
    clock.advance(20 * 3600 * 1000);
    db.hincrby("session:a1", "cart_items", 2)?;
    touch(&db, "a1")?;
    println!("20 h later alice is active again: her session is extended to 24 h from now");
    println!(
        "TTL session:a1 -> {} s, TTL session:b2 -> {} s",
        db.pttl("session:a1")? / 1000,
        db.pttl("session:b2")? / 1000
    );
    clock.advance(5 * 3600 * 1000);
    println!("5 h later:");
    for sid in ["a1", "b2"] {
        let alive = db.exists(&[format!("session:{sid}")])? == 1;
        println!(
            "  session:{sid} {}",
            if alive { "still valid" } else { "expired" }
        );
    }
    assert_eq!(db.exists(&["session:a1"])?, 1);
    assert_eq!(db.exists(&["session:b2"])?, 0);
    // The expiry survives a restart: it is stored as an absolute time.
    drop(db);
    let db = Db::open_with(dir.path(), Options::default().clock(clock.clone()))?;
    clock.advance(20 * 3600 * 1000);
    assert_eq!(db.exists(&["session:a1"])?, 0);
    println!("after a restart and 20 more hours, alice's session has expired too");
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
