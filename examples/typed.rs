//! User profiles as Rust structs: stored with `hset_struct` (one hash
//! field per struct field, so `HINCRBY`, `HGET` and the shell see plain
//! Redis values), loaded with `hget_struct`, walked with
//! `iter_keys_matching`, and made durable with `sync` before answering.
//!
//! Run: `cargo run --example typed [DIR]` (a temporary directory by
//! default; with DIR, run it twice to see the profiles come back).

use serde::{Deserialize, Serialize};

use hashkv::{Db, FsyncPolicy, Options};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Profile {
    username: String,
    email: String,
    age: u32,
    score: f64,
    verified: bool,
    /// `None` removes the field.
    bio: Option<String>,
}

fn main() -> hashkv::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| hashkv::Error::Io {
        op: "creating a temporary directory",
        path: "$TMPDIR".into(),
        source: e,
    })?;
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| tmp.path().join("profiles"), Into::into);
    // `No`: the OS writes the log back when it likes; `sync` below is the
    // durability point.
    let db = Db::open_with(&dir, Options::default().fsync(FsyncPolicy::No))?;

    let existing = db.iter_keys_matching("user:*").count();
    println!("{existing} profiles already in {}", dir.display());

    for i in 0..1_000u32 {
        let p = Profile {
            username: format!("user{i}"),
            email: format!("user{i}@example.com"),
            age: 20 + i % 50,
            score: f64::from(i) / 8.0,
            verified: i % 3 == 0,
            bio: (i % 2 == 0).then(|| format!("I am number {i}")),
        };
        db.hset_struct(format!("user:{i}"), &p)?;
    }
    // Everything above is on disk when this returns, whatever the policy.
    db.sync()?;

    // Plain Redis commands work on the fields.
    db.hincrby("user:7", "age", 1)?;
    db.hincrbyfloat("user:7", "score", "0.125")?;
    let seven: Profile = db.hget_struct("user:7")?.expect("stored above");
    println!("user:7 = {seven:?}");
    assert_eq!((seven.age, seven.score, seven.bio), (28, 1.0, None));

    // Clearing an optional field removes it from the hash.
    let mut two: Profile = db.hget_struct("user:2")?.expect("stored above");
    two.bio = None;
    db.hset_struct("user:2", &two)?;
    assert_eq!(db.hget("user:2", "bio")?, None);

    // Walk every profile in batches (no lock held across the walk).
    let mut verified = 0;
    let mut total_age = 0u64;
    for key in db.iter_keys_matching("user:*") {
        let p: Profile = db.hget_struct(&key)?.expect("listed just now");
        verified += usize::from(p.verified);
        total_age += u64::from(p.age);
    }
    println!(
        "{verified} verified profiles, mean age {:.1}",
        total_age as f64 / 1000.0
    );
    assert_eq!(verified, 334);

    // Its fields, as HGETALL would list them.
    let fields: Vec<String> = db
        .iter_fields("user:7")
        .map(|(f, _)| String::from_utf8_lossy(&f).into_owned())
        .collect();
    println!("user:7 fields: {}", fields.join(", "));

    db.close()
}
