//! The `hashkv` command-line tool.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hashkv::{Db, FsyncPolicy, Options};

/// When log writes reach the disk.
#[derive(Clone, Copy, ValueEnum)]
enum Fsync {
    /// Every write is on disk before its reply is printed.
    Always,
    /// Once a second (a power cut may lose about a second).
    Everysec,
    /// When the OS decides.
    No,
}

/// hashkv: an embedded store of Redis hashes.
#[derive(Parser)]
#[command(name = "hashkv", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Most fields a hash keeps in the compact encoding.
    #[arg(long, global = true, default_value_t = 512)]
    listpack_entries: usize,
    /// Longest field or value a compact hash holds.
    #[arg(long, global = true, default_value_t = 64)]
    listpack_value: usize,
    /// Fsync policy of the log.
    #[arg(long, global = true, value_enum, default_value = "everysec")]
    fsync: Fsync,
    /// Snapshot automatically once the log since the last snapshot passes
    /// this many bytes.
    #[arg(long, global = true, default_value_t = 64 << 20)]
    compact_log_at: u64,
    /// No automatic snapshots (neither Redis's save rules nor the log size).
    #[arg(long, global = true)]
    no_auto_snapshots: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run commands read from standard input (a prompt on a terminal).
    ///
    /// Example: echo 'HSET user:1 name Alice' | hashkv shell data
    Shell {
        /// The database directory (created if missing).
        dir: PathBuf,
    },
    /// Run one command and print its reply.
    ///
    /// Example: hashkv exec data HGETALL user:1
    Exec {
        /// The database directory (created if missing).
        dir: PathBuf,
        /// The command and its arguments.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true)]
        words: Vec<String>,
    },
    /// Take a snapshot: into the directory (dropping the log it covers), or
    /// with --output to a standalone file, leaving the directory as it is.
    ///
    /// Example: hashkv snapshot data --output backup.hks
    Snapshot {
        /// The database directory.
        dir: PathBuf,
        /// Write the snapshot to this file instead.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Make a new database directory from a snapshot file.
    ///
    /// Example: hashkv restore backup.hks data2
    Restore {
        /// A snapshot file (from `hashkv snapshot --output`).
        file: PathBuf,
        /// The directory to create (must not hold a database).
        dir: PathBuf,
    },
    /// Snapshot the directory and drop the log the snapshot covers.
    ///
    /// Example: hashkv compact data
    Compact {
        /// The database directory.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = Options::default()
        .hash_max_listpack_entries(cli.listpack_entries)
        .hash_max_listpack_value(cli.listpack_value)
        .fsync(match cli.fsync {
            Fsync::Always => FsyncPolicy::Always,
            Fsync::Everysec => FsyncPolicy::EverySec,
            Fsync::No => FsyncPolicy::No,
        });
    let opts = if cli.no_auto_snapshots {
        opts.no_auto_snapshots()
    } else {
        opts.compact_log_at(Some(cli.compact_log_at))
    };
    let result = match cli.command {
        Cmd::Shell { dir } => open(&dir, opts).and_then(|db| {
            let stdin = io::stdin();
            let prompt = stdin
                .is_terminal()
                .then(|| format!("hashkv {}> ", dir.display()));
            hashkv::shell::run(&db, stdin.lock(), io::stdout().lock(), prompt.as_deref())
                .map_err(|e| format!("hashkv: shell: {e}"))
        }),
        Cmd::Exec { dir, words } => open(&dir, opts).and_then(|db| {
            let mut out = Vec::new();
            let line: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
            match db.execute(&line) {
                Ok(r) => r.write_cli(&mut out),
                Err(hashkv::Error::Command(e)) => {
                    out.extend_from_slice(format!("(error) {e}\n").as_bytes())
                }
                Err(e) => return Err(format!("hashkv: {e}")),
            }
            io::stdout()
                .write_all(&out)
                .map_err(|e| format!("hashkv: {e}"))
        }),
        Cmd::Snapshot { dir, output } => open(&dir, opts).and_then(|db| {
            let info = match &output {
                Some(file) => db.snapshot_to(file),
                None => db.snapshot(),
            }
            .map_err(|e| format!("hashkv: snapshot of {}: {e}", dir.display()))?;
            println!("{}", describe(&info));
            Ok(())
        }),
        Cmd::Compact { dir } => open(&dir, opts).and_then(|db| {
            let before = dir_bytes(&dir);
            let info = db
                .snapshot()
                .map_err(|e| format!("hashkv: compact {}: {e}", dir.display()))?;
            println!("{}", describe(&info));
            println!(
                "directory: {} bytes before, {} bytes after",
                before,
                dir_bytes(&dir)
            );
            Ok(())
        }),
        Cmd::Restore { file, dir } => Db::restore(&file, &dir, &opts)
            .map(|keys| {
                println!(
                    "restored {keys} keys from {} into {}",
                    file.display(),
                    dir.display()
                )
            })
            .map_err(|e| {
                format!(
                    "hashkv: restore {} into {}: {e}",
                    file.display(),
                    dir.display()
                )
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
    }
}

fn open(dir: &PathBuf, opts: Options) -> Result<Db, String> {
    Db::open_with(dir, opts).map_err(|e| format!("hashkv: cannot open {}: {e}", dir.display()))
}

fn describe(info: &hashkv::SnapshotInfo) -> String {
    format!(
        "snapshot {}: {} keys, {} bytes in {:.3} s (writers held {} us)",
        info.path.display(),
        info.keys,
        info.bytes,
        info.duration.as_secs_f64(),
        info.switch.as_micros()
    )
}

/// Total size of the files directly in `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
