//! User profiles: one hash per user, fields read and updated one at a time,
//! and the data still there after the database is reopened.
//!
//! Run: `cargo run --example profiles`

use hashkv::{Db, Options};

fn run() -> hashkv::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| hashkv::Error::Io {
        op: "creating a temporary directory",
        path: std::env::temp_dir().display().to_string(),
        source: e,
    })?;
    println!("database in {}", dir.path().display());
    {
        let db = Db::open(dir.path())?;
        for (id, name, email) in [
            (1, "Alice", "alice@example.com"),
            (2, "Bob", "bob@example.com"),
            (3, "Carol", "carol@example.com"),
        ] {
            let key = format!("user:{id}");
            db.hset(&key, &[("name", name), ("email", email), ("visits", "0")])?;
            println!("HSET {key} name {name} email {email} visits 0");
        }
        let visits = db.hincrby("user:1", "visits", 1)?;
        println!("HINCRBY user:1 visits 1 -> {visits}");
        db.hset("user:2", &[("email", "bob@example.org")])?;
        println!("HSET user:2 email bob@example.org (an update: 0 new fields)");
        db.hdel("user:3", &["email"])?;
        println!("HDEL user:3 email");
        let reply = db.execute(&["HMGET", "user:2", "name", "email", "phone"])?;
        println!(
            "HMGET user:2 name email phone ->\n{}",
            reply.to_cli_string()
        );
        println!(
            "OBJECT ENCODING user:1 -> {}",
            db.object_encoding("user:1")?.unwrap_or_default()
        );
    }
    // Reopen: every write is replayed from the log.
    let db = Db::open_with(dir.path(), Options::default())?;
    let alice = db.hgetall("user:1")?;
    println!("after reopening, HGETALL user:1 ->");
    for (f, v) in &alice {
        println!(
            "  {} = {}",
            String::from_utf8_lossy(f),
            String::from_utf8_lossy(v)
        );
    }
    assert_eq!(db.hget("user:1", "visits")?.as_deref(), Some(&b"1"[..]));
    assert_eq!(
        db.hget("user:2", "email")?.as_deref(),
        Some(&b"bob@example.org"[..])
    );
    assert!(!db.hexists("user:3", "email")?);
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
