//! Snapshot files, raw and structure-aware. The body is `snapshot_load` in `fuzz/common/targets.rs`
//! (shared with `tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../common/targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::snapshot_load(data));
