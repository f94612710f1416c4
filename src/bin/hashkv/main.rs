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
