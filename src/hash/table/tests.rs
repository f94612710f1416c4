//! Unit tests of the arena table: migrations, page compaction, big and
//! mapped entries, and scans across resizes.

use super::arena::entry_size;
use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};

#[test]
fn tidy_finishes_a_migration_that_writes_left_in_progress() {
    let mut t = ArenaTable::new();
    let mut n = 0;
    // Insert until a migration is under way.
    while !t.has_pending_work() || t.old.is_none() {
        t.set(format!("k{n}").as_bytes(), b"v").unwrap();
        n += 1;
    }
    let mut passes = 0;
    while t.has_pending_work() {
        t.tidy(64);
        passes += 1;
        assert!(passes < 10_000, "tidy makes no progress");
    }
    assert!(t.old.is_none());
    for i in 0..n {
        assert_eq!(t.get(format!("k{i}").as_bytes()), Some(&b"v"[..]), "k{i}");
    }
    assert_eq!(t.len(), n);
}

#[test]
fn grows_and_shrinks_with_migrations() {
    let mut t = ArenaTable::new();
    for i in 0..20_000u32 {
        assert!(t.set(format!("f{i}").as_bytes(), &i.to_le_bytes()).unwrap());
        assert_eq!(t.len(), i as usize + 1);
    }
    for i in 0..20_000u32 {
        assert_eq!(
            t.get(format!("f{i}").as_bytes()),
            Some(&i.to_le_bytes()[..])
        );
    }
    for i in 0..19_990u32 {
        assert!(t.remove(format!("f{i}").as_bytes()));
    }
    assert_eq!(t.len(), 10);
    for _ in 0..1000 {
        t.step();
    }
    assert!(t.cur.cap() <= 64, "shrunk to {}", t.cur.cap());
    assert!(t.arena.pages.iter().filter(|p| !p.buf.is_empty()).count() <= 2);
    assert_eq!(t.iter().count(), 10);
}

#[test]
fn big_entries_and_in_place_updates() {
    let mut t = ArenaTable::new();
    let big = vec![7u8; 100_000];
    assert!(t.set(b"big", &big).unwrap());
    assert_eq!(t.get(b"big").unwrap(), &big[..]);
    assert!(!t.set(b"big", b"small").unwrap());
    assert_eq!(t.get(b"big").unwrap(), b"small");
    t.get_mut(b"big").unwrap().copy_from_slice(b"SMALL");
    assert_eq!(t.get(b"big").unwrap(), b"SMALL");
    assert!(t.remove(b"big"));
    assert_eq!(t.get(b"big"), None);
}

#[test]
fn big_entries_survive_growing_and_shrinking_rewrites() {
    let mut t = ArenaTable::new();
    t.set(b"small", b"x").unwrap();
    for len in [20_000usize, 30_000, 12_000, 9_000, 50_000, 100, 40_000] {
        let v = vec![(len % 251) as u8; len];
        t.set(b"big", &v).unwrap();
        assert_eq!(t.get(b"big").unwrap(), &v[..], "len {len}");
        assert_eq!(t.get(b"small").unwrap(), b"x");
    }
    let live: usize = t
        .iter()
        .map(|(n, p)| padded(entry_size(n.len(), p.len())))
        .sum();
    assert_eq!(t.arena.live_bytes, live);
}

#[test]
fn mapped_entries_are_rewritten_in_place_while_they_fit() {
    let mut t = ArenaTable::new();
    let addr = |t: &ArenaTable| {
        t.addr_at(
            false,
            t.cur.find(&t.arena, hash_name(b"big"), b"big").unwrap(),
        )
    };
    t.set(b"big", &vec![1u8; 40_000]).unwrap();
    let first = addr(&t);
    // Smaller, and a little larger (within the mapping's quarter of
    // headroom): same mapping, same address, right bytes.
    for len in [39_000usize, 45_000, 30_000] {
        let v = vec![(len % 251) as u8; len];
        t.set(b"big", &v).unwrap();
        assert_eq!(addr(&t), first, "len {len}");
        assert_eq!(t.get(b"big").unwrap(), &v[..]);
    }
    // Far larger, or under half the mapping: a new entry.
    t.set(b"big", &vec![2u8; 90_000]).unwrap();
    assert_ne!(addr(&t), first);
    let second = addr(&t);
    t.set(b"big", &vec![3u8; 40_000]).unwrap();
    assert_ne!(addr(&t), second);
    assert_eq!(t.get(b"big").unwrap(), &vec![3u8; 40_000][..]);
    let live: usize = t
        .iter()
        .map(|(n, p)| padded(entry_size(n.len(), p.len())))
        .sum();
    assert_eq!(t.arena.live_bytes, live);
}

#[test]
fn scan_returns_every_stable_entry_across_resizes() {
    let mut t = ArenaTable::new();
    for i in 0..50u32 {
        t.set(format!("stable{i}").as_bytes(), b"v").unwrap();
    }
    let mut seen = HashSet::new();
    let mut cursor = 0;
    let mut round = 0u32;
    let mut caps = HashSet::new();
    loop {
        cursor = t.scan(cursor, |n, _| {
            seen.insert(n.to_vec());
        });
        // Churn between calls: grow to thousands of entries, then shrink
        // back, so the scan runs across migrations in both directions.
        if round.is_multiple_of(2) {
            for k in 0..1000 {
                t.set(format!("churn{k}").as_bytes(), b"x").unwrap();
            }
        } else {
            for k in 0..1000 {
                t.remove(format!("churn{k}").as_bytes());
            }
        }
        caps.insert(t.cur.cap());
        round += 1;
        if cursor == 0 || round > 100_000 {
            break;
        }
    }
    assert_eq!(cursor, 0, "scan did not finish");
    assert!(caps.len() >= 2, "table never resized: {caps:?}");
    for i in 0..50u32 {
        assert!(
            seen.contains(format!("stable{i}").as_bytes()),
            "missed stable{i}"
        );
    }
}

proptest! {
    #[test]
    fn prop_table_matches_btreemap(ops in proptest::collection::vec((0u8..3, 0u16..300, proptest::collection::vec(any::<u8>(), 0..40)), 1..2000)) {
        let mut t = ArenaTable::new();
        let mut m: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (op, k, v) in ops {
            let name = format!("k{k}").into_bytes();
            match op {
                0 | 1 => {
                    let new = t.set(&name, &v).unwrap();
                    prop_assert_eq!(new, m.insert(name, v).is_none());
                }
                _ => prop_assert_eq!(t.remove(&name), m.remove(&name).is_some()),
            }
            prop_assert_eq!(t.len(), m.len());
        }
        for (k, v) in &m {
            prop_assert_eq!(t.get(k), Some(&v[..]));
        }
        let mut all: Vec<(Vec<u8>, Vec<u8>)> = t.iter().map(|(a, b)| (a.to_vec(), b.to_vec())).collect();
        all.sort();
        prop_assert_eq!(all, m.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn pages_after_the_first_are_allocated_whole_unless_big_entries_have_their_own() {
    const PAGE: usize = 32 * 1024;
    let fill = |t: &mut ArenaTable, pages: usize| {
        let mut i = 0u32;
        while t.arena.pages.len() < pages {
            t.set(format!("key:{i}").as_bytes(), &[7u8; 100]).unwrap();
            i += 1;
        }
        i
    };
    // The first page grows by doubling up to a page; the next are whole.
    let mut t = ArenaTable::new();
    t.set(b"first", b"v").unwrap();
    assert!(t.arena.pages[0].buf.capacity() < PAGE);
    fill(&mut t, 3);
    assert!(t.arena.pages.iter().all(|p| p.buf.capacity() == PAGE));
    // A table with an entry in a heap page of its own keeps doubling, so
    // its small buffers can fill the holes such entries leave.
    let mut t = ArenaTable::new();
    t.set(b"big", &[1u8; 10_000]).unwrap();
    let n = fill(&mut t, 4);
    let tail = t.arena.tail.unwrap() as usize;
    assert!(t.arena.pages[tail].buf.capacity() < PAGE);
    for i in 0..n {
        let k = format!("key:{i}");
        assert_eq!(t.get(k.as_bytes()).map(<[u8]>::len), Some(100), "{k}");
    }
    assert_eq!(t.get(b"big").unwrap(), &[1u8; 10_000][..]);
}

#[test]
fn a_zeroed_chunk_is_empty_slots() {
    let chunk = Slot::zeroed_chunk(CHUNK_SLOTS);
    assert_eq!(chunk.len(), CHUNK_SLOTS);
    assert!(chunk.iter().all(|s| {
        let (tag, addr) = (s.tag, s.addr);
        tag == EMPTY && addr == 0
    }));
    // A table grown through many chunks finds every entry and no other.
    let mut t = ArenaTable::new();
    for i in 0..300_000u32 {
        t.set(format!("f{i}").as_bytes(), &i.to_le_bytes()).unwrap();
    }
    for i in (0..300_000u32).step_by(997) {
        assert_eq!(
            t.get(format!("f{i}").as_bytes()),
            Some(&i.to_le_bytes()[..])
        );
    }
    assert_eq!(t.get(b"missing"), None);
    assert_eq!(t.len(), 300_000);
}
