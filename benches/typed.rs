//! What the serde mapping costs: `hset_struct` of an 8-field profile
//! against `hset` of the same pairs already rendered as text, and
//! `hget_struct` against `hgetall` of the same hash, on 10,000 keys in
//! memory (no log, so the mapping is all that differs).
//!
//! Run: `cargo bench --bench typed`. Under `cargo test --all-targets` (no
//! `--bench` argument) criterion runs each once.

#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use hashkv::{Db, Options};
use serde::{Deserialize, Serialize};

/// A W1 profile (docs/PERFORMANCE.md): 8 fields, two of them not strings.
#[derive(Serialize, Deserialize, Clone)]
struct Profile {
    username: String,
    email: String,
    first_name: String,
    last_name: String,
    joined: i64,
    avatar: String,
    verified: bool,
    bio: String,
}

fn profile(i: usize) -> Profile {
    Profile {
        username: format!("user{i}"),
        email: format!("user{i}@example.com"),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        joined: 1_700_000_000 + i as i64,
        avatar: format!("https://img.example.com/u/{i}.png"),
        verified: i.is_multiple_of(2),
        bio: "Writes programs for engines that do not exist yet.".into(),
    }
}

fn pairs(p: &Profile) -> Vec<(&'static str, String)> {
    vec![
        ("username", p.username.clone()),
        ("email", p.email.clone()),
        ("first_name", p.first_name.clone()),
        ("last_name", p.last_name.clone()),
        ("joined", p.joined.to_string()),
        ("avatar", p.avatar.clone()),
        ("verified", if p.verified { "1" } else { "0" }.to_owned()),
        ("bio", p.bio.clone()),
    ]
}

const KEYS: usize = 10_000;

fn typed(c: &mut Criterion) {
    let db = Db::in_memory(Options::default().active_expiry(false));
    let profiles: Vec<Profile> = (0..KEYS).map(profile).collect();
    let rendered: Vec<Vec<(&str, String)>> = profiles.iter().map(pairs).collect();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("user:{i:012}")).collect();
    for (k, p) in keys.iter().zip(&rendered) {
        db.hset(k, p).unwrap();
    }
    let mut g = c.benchmark_group("typed");
    let mut i = 0;
    g.bench_function("hset (pairs)", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(db.hset(&keys[i], &rendered[i]).unwrap())
        })
    });
    g.bench_function("hset_struct", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            db.hset_struct(&keys[i], &profiles[i]).unwrap();
        })
    });
    g.bench_function("hgetall", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(db.hgetall(&keys[i]).unwrap())
        })
    });
    g.bench_function("hget_struct", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(db.hget_struct::<Profile>(&keys[i]).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, typed);
criterion_main!(benches);
