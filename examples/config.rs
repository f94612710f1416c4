//! Application configuration in one hash: defaults written with HSETNX (they
//! never overwrite an operator's change), typed reads, a numeric tweak with
//! HINCRBYFLOAT, and a version counter bumped on every change.
//!
//! Run: `cargo run --example config`

use hashkv::Db;

fn set(db: &Db, field: &str, value: &str) -> hashkv::Result<i64> {
    db.hset("config:app", &[(field, value)])?;
    db.hincrby("config:app", "version", 1)
}

fn run() -> hashkv::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::open(dir.path())?;
    // An operator already set the log level; then the app starts and writes
    // its defaults.
    db.hset("config:app", &[("log_level", "debug")])?;
    for (field, default) in [
        ("log_level", "info"),
        ("max_connections", "100"),
        ("cache_ratio", "0.25"),
        ("version", "0"),
    ] {
        let written = db.hsetnx("config:app", field, default)?;
        println!(
            "HSETNX config:app {field} {default} -> {}",
            if written {
                "default written"
            } else {
                "kept existing value"
            }
        );
    }
    let v = set(&db, "max_connections", "250")?;
    println!("max_connections = 250 (config version {v})");
    let ratio =
        String::from_utf8_lossy(&db.hincrbyfloat("config:app", "cache_ratio", "0.1")?).into_owned();
    println!("HINCRBYFLOAT config:app cache_ratio 0.1 -> {ratio}");
    let max: u32 = String::from_utf8_lossy(&db.hget("config:app", "max_connections")?.unwrap())
        .parse()
        .unwrap();
    println!("the app reads max_connections as a number: {max}");
    println!(
        "HGETALL config:app ->\n{}",
        db.execute(&["HGETALL", "config:app"])?.to_cli_string()
    );
    assert_eq!(
        db.hget("config:app", "log_level")?.as_deref(),
        Some(&b"debug"[..])
    );
    assert_eq!(ratio, "0.35");
    assert_eq!(max, 250);
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
