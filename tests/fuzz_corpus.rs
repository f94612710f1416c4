//! Every seed of the fuzz corpora (`fuzz/corpus/TARGET/`) and every input
//! that ever crashed a fuzz target (`fuzz/regressions/TARGET/`) run through
//! the same target bodies as `cargo +nightly fuzz` runs them, so CI guards
//! against regressions without a nightly toolchain or a fuzzer.

#[path = "../fuzz/common/targets.rs"]
mod targets;

use std::path::Path;

#[test]
fn every_corpus_file_and_every_past_crash_still_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = 0;
    for (name, target) in targets::TARGETS {
        for kind in ["corpus", "regressions"] {
            let dir = root.join(kind).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
            files.sort();
            for f in files {
                let data = std::fs::read(&f).unwrap();
                let res = std::panic::catch_unwind(|| target(&data));
                assert!(res.is_ok(), "{name}: {} fails", f.display());
                ran += 1;
            }
        }
    }
    assert!(
        ran >= 12,
        "expected the checked-in seeds, found {ran} files"
    );
    eprintln!("{ran} corpus and regression files passed");
}
