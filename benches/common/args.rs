//! The benches' command line: `--name VALUE` flags, and whether `cargo
//! bench` ran the bench (it passes `--bench`; `cargo test --all-targets`
//! does not, and then a bench runs a small smoke round).
#![allow(dead_code)]

/// The value after `--name` on the command line, if there is one that
/// parses.
pub fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// Whether `cargo bench` ran this.
pub fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}
