//! Arbitrary bytes into the compact-encoding validator: it must return an
//! error or a pair count, never panic or over-allocate.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hashkv::validate_compact(data);
});
