//! MEMORY USAGE against the allocator: a counting global allocator measures
//! what loading a dataset really costs, and the sum of MEMORY USAGE over its
//! keys must be within 20% of it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use hashkv::{Db, Options};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: delegates every call to the system allocator unchanged and only
// counts the bytes requested.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn usage_sum(db: &Db, keys: &[String]) -> i64 {
    keys.iter()
        .map(|k| db.memory_usage(k).unwrap().expect("key exists"))
        .sum()
}

fn within(reported: i64, measured: isize, what: &str) {
    let ratio = reported as f64 / measured as f64;
    assert!(
        (0.8..=1.2).contains(&ratio),
        "{what}: MEMORY USAGE total {reported} vs allocator {measured} (ratio {ratio:.3})"
    );
    eprintln!("{what}: MEMORY USAGE {reported} B, allocator {measured} B, ratio {ratio:.3}");
}

// One test function: the allocator counter is process-wide, so the cases
// must not run concurrently.
#[test]
fn memory_usage_matches_the_allocator() {
    let db = Db::in_memory(Options::default().active_expiry(false));
    // Warm up the shards' first pages so they are not charged to one case.
    db.hset("warm", &[("f", "v")]).unwrap();

    // Many small compact hashes.
    let keys: Vec<String> = (0..50_000).map(|i| format!("user:{i}")).collect();
    let before = LIVE.load(Ordering::SeqCst);
    for (i, k) in keys.iter().enumerate() {
        db.hset(
            k,
            &[
                ("name", format!("user number {i}")),
                ("email", format!("user{i}@example.com")),
                ("visits", i.to_string()),
            ],
        )
        .unwrap();
    }
    let measured = LIVE.load(Ordering::SeqCst) - before;
    within(usage_sum(&db, &keys), measured, "50k compact hashes");

    // One big dict hash.
    let before = LIVE.load(Ordering::SeqCst);
    for chunk in 0..200 {
        let pairs: Vec<(String, String)> = (0..1000)
            .map(|i| {
                (
                    format!("field:{}", chunk * 1000 + i),
                    format!("value-{i:08}"),
                )
            })
            .collect();
        db.hset("big", &pairs).unwrap();
    }
    let measured = LIVE.load(Ordering::SeqCst) - before;
    within(
        usage_sum(&db, &["big".to_owned()]),
        measured,
        "one 200k-field dict",
    );
    assert_eq!(
        db.object_encoding("big").unwrap().as_deref(),
        Some("hashtable")
    );

    // Usage grows with content and is Nil for a missing key.
    let small = db.memory_usage("user:1").unwrap().unwrap();
    db.hset("user:1", &[("bio", "x".repeat(60))]).unwrap();
    assert!(db.memory_usage("user:1").unwrap().unwrap() > small + 50);
    assert_eq!(db.memory_usage("nope").unwrap(), None);
}
