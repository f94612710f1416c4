//! Arbitrary command lines (redis-cli quoting) run on the engine: any input
//! gives a reply or a Redis error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let db = hashkv::Db::in_memory(
        hashkv::Options::default()
            .hash_max_listpack_entries(4)
            .hash_max_listpack_value(8)
            .active_expiry(false),
    );
    let mut out = Vec::new();
    for line in data.split(|&b| b == b'\n').take(64) {
        out.clear();
        if !hashkv::shell::run_line(&db, line, &mut out) {
            break;
        }
    }
});
