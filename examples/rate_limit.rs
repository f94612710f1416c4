//! Per-endpoint rate limiting with fixed one-minute windows: one hash per
//! client and minute (endpoint -> requests), counted with HINCRBY and
//! expiring with its window, so old windows cost nothing.
//!
//! Run: `cargo run --example rate_limit`

use hashkv::{Db, ManualClock, Options};

/// Requests per endpoint per minute.
fn limit(endpoint: &str) -> i64 {
    match endpoint {
        "/login" => 5,
        _ => 100,
    }
}

/// Counts a request; true when it is allowed.
fn allow(db: &Db, clock: &ManualClock, client: &str, endpoint: &str) -> hashkv::Result<bool> {
    use hashkv::Clock;
    let window = clock.now_ms() / 60_000;
    let key = format!("rate:{client}:{window}");
    let n = db.hincrby(&key, endpoint, 1)?;
    if n == 1 {
        // The first request of the window sets its expiry (NX: only once).
        db.execute(&["EXPIRE", &key, "60", "NX"])?;
    }
    Ok(n <= limit(endpoint))
}

fn run() -> hashkv::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let clock = ManualClock::new(1_700_000_000_000 - 1_700_000_000_000 % 60_000);
    let db = Db::open_with(dir.path(), Options::default().clock(clock.clone()))?;
    let mut allowed = 0;
    for i in 0..8 {
        let ok = allow(&db, &clock, "10.0.0.7", "/login")?;
        println!(
            "request {} to /login: {}",
            i + 1,
            if ok {
                "allowed"
            } else {
                "429 Too Many Requests"
            }
        );
        allowed += usize::from(ok);
    }
    assert_eq!(allowed, 5);
    assert!(
        allow(&db, &clock, "10.0.0.7", "/search")?,
        "other endpoints have their own count"
    );
    use hashkv::Clock;
    let old_window = format!("rate:10.0.0.7:{}", clock.now_ms() / 60_000);
    // Keys expire once the clock passes their time (Redis: now > expiry).
    clock.advance(60_001);
    assert!(allow(&db, &clock, "10.0.0.7", "/login")?);
    println!("a minute later /login is allowed again; the old window's key expired");
    assert_eq!(db.exists(&[old_window])?, 0);
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
