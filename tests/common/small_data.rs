//! The small vocabulary the batch and load property tests draw from: few
//! keys and fields (so commands meet each other's keys), values that store
//! as strings, integers and packed hex digits, and options with low
//! listpack thresholds (so both encodings and conversions occur).
#![allow(dead_code)]

use std::sync::Arc;

use hashkv::{FsyncPolicy, ManualClock, Options};

pub const KEYS: [&str; 6] = ["a", "b", "c", "d", "e", "missing"];
pub const FIELDS: [&str; 5] = ["f0", "f1", "12", "-3", "name"];
pub const VALUES: [&str; 6] = [
    "x",
    "42",
    "deadbeefcafe0123",
    "DEADBEEFCAFE0123",
    "a-value-longer-than-sixteen-bytes",
    "",
];

/// No background work, no fsync, listpacks of at most 4 fields of 16
/// bytes, time from `clock`.
pub fn opts(clock: Arc<ManualClock>) -> Options {
    Options::default()
        .active_expiry(false)
        .no_auto_snapshots()
        .fsync(FsyncPolicy::No)
        .hash_max_listpack_entries(4)
        .hash_max_listpack_value(16)
        .clock(clock)
}
