//! A reader following a segment that grows by arbitrary bytes. The body is `follow_tail` in
//! `fuzz/common/targets.rs` (shared with `tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../common/targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::follow_tail(data));
