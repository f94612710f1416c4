//! Batch reads allocate nothing per key: a global allocator counts the
//! allocations the test thread makes (its own file, so the allocator is
//! the whole process's and nothing else runs in it). After a warm-up call,
//! `Db::get_many` and `Db::view_many` over 1,000 keys allocate nothing,
//! whether values are strings, integers or packed hex digits; a batch of
//! HSETs allocates a fixed number of times, not a number per command.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use hashkv::{Db, FsyncPolicy, Options, WriteBatch};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the slots may be gone while the thread ends.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every call is passed on to the system allocator unchanged.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    COUNT.with(Cell::get)
}

fn address(id: u64) -> String {
    format!(
        "{:040x}",
        u128::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
    )
}

/// Object ids 1,000 to a hash (integer fields, packed hex values), and
/// profiles (string and integer values; shaped compact hashes).
fn loaded() -> Db {
    let db = Db::in_memory(Options::default().hash_max_listpack_entries(1024));
    let mut pairs = Vec::new();
    for bucket in 0..20u64 {
        pairs.clear();
        for id in bucket * 1000..(bucket + 1) * 1000 {
            pairs.push((id.to_string(), address(id)));
        }
        db.hset(format!("object:{bucket}"), &pairs).unwrap();
    }
    for i in 0..2000 {
        db.hset(
            format!("user:{i}"),
            &[
                ("name", format!("user number {i}")),
                ("visits", (i * 7).to_string()),
            ],
        )
        .unwrap();
    }
    db
}

#[test]
fn batch_reads_allocate_nothing_per_key() {
    let db = loaded();
    let users: Vec<String> = (0..1000).map(|i| format!("user:{}", i * 2)).collect();
    let mixed: Vec<String> = (0..1000)
        .map(|i| match i % 3 {
            0 => format!("user:{i}"),
            1 => format!("object:{}", i % 20),
            _ => format!("missing:{i}"),
        })
        .collect();
    for field in ["name", "visits"] {
        let run = || {
            let mut bytes = 0;
            db.get_many(&users, field, |_, v| bytes += v.map_or(0, <[u8]>::len))
                .unwrap();
            assert!(bytes > 0);
        };
        run(); // warm-up: the thread's buffers grow once
        assert_eq!(allocations(run), 0, "get_many of 1,000 keys, field {field}");
    }
    // Hex values printed from their packed form; ids are integer fields.
    let objects: Vec<String> = (0..1000).map(|i| format!("object:{}", i % 20)).collect();
    let run = || {
        let mut found = 0;
        db.get_many(&objects, "19999", |_, v| found += usize::from(v.is_some()))
            .unwrap();
        db.get_many(&objects, "7", |i, v| {
            assert_eq!(v.is_some(), i % 20 == 0);
        })
        .unwrap();
        assert_eq!(found, 50);
    };
    run();
    assert_eq!(allocations(run), 0, "get_many of packed hex values");
    let run = || {
        let mut fields = 0;
        db.view_many(&mixed, |_, v| {
            if let Some(mut h) = v {
                fields += h.len();
                let _ = h.get("visits");
                let _ = h.contains("name");
                if h.len() < 10 {
                    h.for_each(|f, v| fields += usize::from(f.len() + v.len() > 0));
                }
            }
        })
        .unwrap();
        assert!(fields > 0);
    };
    run();
    assert_eq!(allocations(run), 0, "view_many of 1,000 keys");
    // The whole of a 1,000-id hash, ids and addresses printed.
    let run = || {
        let mut n = 0;
        db.view_many(&objects[..20], |_, v| {
            v.expect("loaded").for_each(|f, a| {
                assert_eq!((f.len() <= 5, a.len()), (true, 40));
                n += 1;
            });
        })
        .unwrap();
        assert_eq!(n, 20_000);
    };
    run();
    assert_eq!(allocations(run), 0, "view_many iterating 20,000 pairs");
}

#[test]
fn a_batch_of_hsets_allocates_a_fixed_number_of_times() {
    let dir = tempfile::tempdir().unwrap();
    let on_disk = Db::open_with(dir.path(), Options::default().fsync(FsyncPolicy::No)).unwrap();
    for db in [loaded(), on_disk] {
        let batch = |n: usize, v: &str| {
            let mut b = WriteBatch::new();
            for i in 0..n {
                b.hset(format!("user:{i}"), &[("name", v)]);
            }
            b
        };
        // Same-size values: each write is in place, so what is counted is
        // the batch's own work.
        let (small, big) = (batch(64, "value-one"), batch(1000, "value-one"));
        let big2 = batch(1000, "value-two");
        db.write_batch(&big).unwrap();
        db.write_batch(&big2).unwrap();
        let n64 = allocations(|| {
            db.write_batch(&small).unwrap();
        });
        let n1000 = allocations(|| {
            db.write_batch(&big).unwrap();
        });
        let again = allocations(|| {
            db.write_batch(&big2).unwrap();
        });
        eprintln!("allocations: batch of 64 {n64}, of 1,000 {n1000} and {again}");
        assert!(
            n1000 <= n64 + 2 && again <= n64 + 2,
            "{n64} vs {n1000}, {again}"
        );
        assert!(n64 <= 8, "{n64} allocations for a batch");
    }
}

#[test]
fn a_pipeline_of_reads_run_with_allocates_nothing_per_command() {
    let db = loaded();
    // Keys are formatted outside the count: what is counted is the
    // queueing into the pipeline's kept buffers and the run. Strings,
    // integers and packed hex values, missing keys, HEXISTS and HLEN.
    let keys: Vec<String> = (0..1000)
        .map(|i| match i % 3 {
            0 => format!("user:{i}"),
            1 => format!("object:{}", i % 20),
            _ => format!("missing:{i}"),
        })
        .collect();
    let run = |n: usize| {
        let (mut bulk, mut ints) = (0, 0);
        let mut p = db.pipeline();
        for k in &keys[..n] {
            p.hget(k, "name")
                .hget(k, "visits")
                .hget(k, "19999")
                .cmd(&["HEXISTS", k, "7"])
                .cmd(&["HLEN", k]);
        }
        p.run_with(|_, r| match r {
            Ok(hashkv::Reply::Bulk(v)) => bulk += v.len(),
            Ok(hashkv::Reply::Integer(n)) => ints += n,
            _ => {}
        });
        assert!(bulk > 0 && ints > 0);
    };
    run(1000); // warm-up: the thread's buffers grow once
    let small = allocations(|| run(13));
    let big = allocations(|| run(1000));
    eprintln!("allocations: pipeline of 65 reads {small}, of 5,000 {big}");
    assert_eq!(small, big, "allocations grow with the pipeline");
    assert!(small <= 6, "{small} allocations for a pipeline");
    // `run` builds a reply per command.
    let collected = allocations(|| {
        let mut p = db.pipeline();
        for k in &keys {
            p.hget(k, "name");
        }
        assert_eq!(p.run().len(), 1000);
    });
    assert!(collected >= 300, "{collected}");
}
