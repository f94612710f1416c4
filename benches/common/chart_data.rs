//! Machine-readable bench output for the charts of docs/PERFORMANCE.md.
//!
//! A bench that feeds a chart calls [`write`] with its figures. The file is
//! written only when `HASHKV_CHART_DATA` names a directory (the committed
//! data lives in `docs/charts/data/`; `docs/charts/regenerate.sh` sets it),
//! so smoke runs under `cargo test --all-targets` leave the committed data
//! alone. `examples/charts.rs` draws the SVGs from these files.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

/// The directory chart data goes to, when one is asked for.
pub fn dir() -> Option<PathBuf> {
    std::env::var_os("HASHKV_CHART_DATA")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// Writes `NAME.csv` (a header line, then one line a row; fields must not
/// hold commas) into the chart data directory, if one is set. `notes` go
/// first as `# ` lines: the command, the size and the machine of the run.
pub fn write(name: &str, notes: &[String], header: &[&str], rows: &[Vec<String>]) {
    let Some(dir) = dir() else { return };
    std::fs::create_dir_all(&dir).expect("chart data directory");
    let path = dir.join(format!("{name}.csv"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("chart data file"));
    for note in notes {
        writeln!(out, "# {note}").unwrap();
    }
    writeln!(out, "{}", header.join(",")).unwrap();
    for row in rows {
        debug_assert_eq!(row.len(), header.len());
        writeln!(out, "{}", row.join(",")).unwrap();
    }
    out.flush().unwrap();
    eprintln!("chart data: {}", path.display());
}

/// Notes every data file starts with: the command, the date (UTC), the
/// machine and how busy it was.
pub fn machine_notes(command: &str) -> Vec<String> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    // Other work on the machine shows in latency: its load when this ran.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    vec![
        format!("command: {command}"),
        format!("date: {date}"),
        format!("machine: {cores} CPUs, {cpu}, load average {load} at the start"),
    ]
}

/// The `cargo bench` command line of this run, for the notes.
pub fn command(bench: &str) -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.is_empty() {
        format!("cargo bench --bench {bench}")
    } else {
        format!("cargo bench --bench {bench} -- {}", args.join(" "))
    }
}
