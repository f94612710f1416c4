//! The benchmark datasets of docs/PERFORMANCE.md, shared by the benches:
//! `profiles` (1,000,000 users x 8 fields), `big` (10 hashes x 1,000,000
//! fields) and `objects` (10,000,000 ids bucketed 1,000 per hash), each
//! divided by `scale`.
#![allow(dead_code)]

pub fn profile(i: u64) -> Vec<(String, String)> {
    let first = [
        "Alice", "Bob", "Carol", "Dmitri", "Eve", "Farah", "Gunnar", "Hiro",
    ][(i % 8) as usize];
    let last = [
        "Johnson", "Smith", "Nguyen", "Garcia", "Müller", "Okafor", "Rossi", "Tanaka",
    ][(i / 8 % 8) as usize];
    vec![
        ("username".into(), format!("user{i}")),
        ("email".into(), format!("user{i}@example.com")),
        ("first_name".into(), first.into()),
        ("last_name".into(), last.into()),
        ("joined".into(), format!("{}", 1_600_000_000 + i * 37)),
        (
            "avatar".into(),
            format!("https://cdn.example.com/avatars/{i}.png"),
        ),
        (
            "verified".into(),
            if i.is_multiple_of(3) { "false" } else { "true" }.into(),
        ),
        (
            "bio".into(),
            format!("Loves hiking, coffee and Rust #{}", i % 1000),
        ),
    ]
}

/// A 6-field profile whose last-but-one field is a 40-digit hex value: the
/// shaped, packed hashes of `hash_ops`'s `profiles` group and of
/// `instructions`.
pub fn hex_profile(i: usize) -> [(&'static str, String); 6] {
    [
        ("username", format!("user{i}")),
        ("email", format!("user{i}@example.com")),
        ("joined", (1_600_000_000 + i * 37).to_string()),
        ("avatar", format!("https://cdn.example.com/avatars/{i}.png")),
        (
            "sha",
            format!("{:040x}", (i as u128) * 0x9e37_79b9_7f4a_7c15),
        ),
        (
            "bio",
            format!("Loves hiking, coffee and Rust #{}", i % 1000),
        ),
    ]
}

pub fn hex40(i: u64) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xDEAD_BEEF;
    let mut s = String::with_capacity(40);
    while s.len() < 40 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        s.push_str(&format!("{:016x}", x));
    }
    s.truncate(40);
    s
}

/// Calls `f(key, pairs)` for every HSET of the dataset, in batches of pairs.
pub fn generate(name: &str, scale: u64, mut f: impl FnMut(&str, &[(String, String)])) {
    match name {
        "profiles" => {
            for i in 0..1_000_000 / scale {
                f(&format!("user:{i}"), &profile(i));
            }
        }
        "big" => {
            let per = 1_000_000 / scale;
            for h in 0..10 {
                let key = format!("big:{h}");
                let mut batch = Vec::with_capacity(100);
                for i in 0..per {
                    batch.push((format!("f{i}"), format!("{:016}", i * 7 + h)));
                    if batch.len() == 100 {
                        f(&key, &batch);
                        batch.clear();
                    }
                }
                if !batch.is_empty() {
                    f(&key, &batch);
                }
            }
        }
        _ => {
            let ids = 10_000_000 / scale;
            let mut batch = Vec::with_capacity(100);
            let mut key = String::new();
            for id in 0..ids {
                let k = format!("object:{}", id / 1000);
                if k != key && !batch.is_empty() {
                    f(&key, &batch);
                    batch.clear();
                }
                key = k;
                batch.push((id.to_string(), hex40(id)));
                if batch.len() == 100 {
                    f(&key, &batch);
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                f(&key, &batch);
            }
        }
    }
}
