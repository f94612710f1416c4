//! Redis RDB import. The body is `rdb_import` in `fuzz/common/targets.rs`
//! (shared with `tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../common/targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::rdb_import(data));
