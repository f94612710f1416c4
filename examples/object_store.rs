//! The object-address store: ids bucketed 1,000 per hash
//! (`object:{id / 1000}` -> field `{id}` = a 40-hex address), the layout
//! that keeps Redis's memory small. Loaded twice: with
//! `hash_max_listpack_entries` 1024 (every bucket stays compact) and with
//! the default 512 (every bucket becomes a dict), printing the memory per id
//! of each; then compact again without packed hex values
//! (`Options::pack_hex(false)`), to show what packing the 40 digits into 20
//! bytes saves. Each load then resolves 1,000 ids to their addresses in
//! one call ([`Db::view_many`]: one lookup per id, their cache misses
//! overlapped, each address borrowed where it is stored).
//!
//! Run: `cargo run --release --example object_store [-- IDS]` (default
//! 1,000,000 ids).

use hashkv::{Db, Options};

fn address(id: u64) -> String {
    let x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!(
        "{:016x}{:016x}{:08x}",
        x,
        x.rotate_left(17),
        (x >> 7) as u32
    )
}

/// Calls `f` with each id of `ids` and its address (`None` if unknown),
/// looked up in one call: one bucket key per id, the id as the field.
fn resolve(db: &Db, ids: &[u64], mut f: impl FnMut(u64, Option<&[u8]>)) -> hashkv::Result<()> {
    let buckets: Vec<String> = ids
        .iter()
        .map(|id| format!("object:{}", id / 1000))
        .collect();
    let mut field = String::new();
    db.view_many(&buckets, |i, bucket| {
        use std::fmt::Write;
        field.clear();
        let _ = write!(field, "{}", ids[i]);
        match bucket {
            Some(mut h) => f(ids[i], h.get(&field)),
            None => f(ids[i], None),
        }
    })
}

/// Loads `ids` ids; returns bytes per id and the encodings seen.
fn load(ids: u64, entries: usize, pack: bool) -> hashkv::Result<(f64, String)> {
    let db = Db::in_memory(
        Options::default()
            .hash_max_listpack_entries(entries)
            .pack_hex(pack),
    );
    let mut pairs = Vec::with_capacity(1000);
    for bucket in 0..ids.div_ceil(1000) {
        pairs.clear();
        for id in bucket * 1000..((bucket + 1) * 1000).min(ids) {
            pairs.push((id.to_string(), address(id)));
        }
        db.hset(format!("object:{bucket}"), &pairs)?;
    }
    // Look one up, as the application would.
    let id = ids / 2;
    let got = db.hget(format!("object:{}", id / 1000), id.to_string())?;
    assert_eq!(got.as_deref(), Some(address(id).as_bytes()));
    // And 1,000 at once, as a request for many objects does.
    let wanted: Vec<u64> = (0..1000).map(|i| i * 7919 % ids).collect();
    let mut found = 0;
    resolve(&db, &wanted, |id, addr| {
        assert_eq!(addr, Some(address(id).as_bytes()));
        found += 1;
    })?;
    assert_eq!(found, wanted.len());
    let info = db.info()?;
    let enc = db.object_encoding("object:0")?.unwrap_or_default();
    Ok((info.memory_bytes as f64 / ids as f64, enc))
}

fn run(ids: u64) -> hashkv::Result<()> {
    println!("{ids} ids in hashes of 1,000 (value: 40 hex characters)");
    let (compact, enc_c) = load(ids, 1024, true)?;
    println!("hash_max_listpack_entries 1024: {compact:.1} bytes per id ({enc_c})");
    let (dict, enc_d) = load(ids, 512, true)?;
    println!("hash_max_listpack_entries 512:  {dict:.1} bytes per id ({enc_d})");
    println!(
        "the compact encoding uses {:.0}% of the dict's memory",
        100.0 * compact / dict
    );
    let (unpacked, _) = load(ids, 1024, false)?;
    println!(
        "compact without packed hex values: {unpacked:.1} bytes per id (packing saves {:.0}%)",
        100.0 * (1.0 - compact / unpacked)
    );
    assert_eq!((enc_c.as_str(), enc_d.as_str()), ("listpack", "hashtable"));
    assert!(compact < dict && compact < unpacked);
    Ok(())
}

fn main() -> hashkv::Result<()> {
    let ids = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    run(ids)
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs() {
        super::run(20_000).unwrap();
    }
}
