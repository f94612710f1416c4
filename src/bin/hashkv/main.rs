//! The `hashkv` command-line tool.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

mod interactive;
mod sync;
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
#[command(
    name = "hashkv",
    version,
    about,
    long_about = None,
    after_help = "Examples:\n  \
        hashkv shell data                      # a redis-cli-like prompt on the directory data\n  \
        echo 'HGETALL user:1' | hashkv shell data\n  \
        hashkv exec data HSET user:1 name Alice\n  \
        hashkv info data --json\n  \
        hashkv watch data 'user:*'               # each change as it happens, beside the writer\n  \
        hashkv snapshot data --output backup.hks && hashkv restore backup.hks data2\n  \
        hashkv export data --format resp | redis-cli --pipe"
)]
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
    /// Write snapshot sections without LZ4 compression.
    #[arg(long, global = true)]
    no_snapshot_compression: bool,
    /// No progress bars (they only show on a terminal anyway).
    #[arg(long, short, global = true)]
    quiet: bool,
}

/// Export and import formats.
#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Redis commands (RESP), as `redis-cli --pipe` reads them.
    Resp,
    /// One JSON object per key per line.
    Json,
    /// A Redis RDB file: import reads versions 1 to 12 (Redis 2.x to 8.x);
    /// export writes version 10 (Redis 7.0+) or, with --rdb-version 12,
    /// version 12 (Redis 7.4+, field TTLs kept).
    Rdb,
}

/// RDB versions an export can write.
#[derive(Clone, Copy, ValueEnum)]
enum RdbVer {
    /// Redis 7.0 and later.
    #[value(name = "10")]
    V10,
    /// Redis 7.4 and later (hash field TTLs).
    #[value(name = "12")]
    V12,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run commands read from standard input (a prompt on a terminal).
    ///
    /// Example: echo 'HSET user:1 name Alice' | hashkv shell data
    ///
    /// When another process has the directory open for writing, the shell
    /// opens it read-only beside it (and says so): reads answer, writes
    /// answer READONLY.
    Shell {
        /// The database directory (created if missing).
        dir: PathBuf,
        /// Open read-only even when no writer holds the directory.
        #[arg(long)]
        read_only: bool,
    },
    /// Run one command and print its reply (read-only beside a process that
    /// has the directory open for writing).
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
    /// Keys, fields, encodings, memory, snapshot and log files.
    ///
    /// Example: hashkv info data --json
    Info {
        /// The database directory (must exist).
        dir: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Verify every checksum of the snapshot and log; exit 0 clean, 1
    /// corruption found, 2 could not check.
    ///
    /// Example: hashkv check data
    Check {
        /// The database directory (must exist).
        dir: PathBuf,
    },
    /// Cut a torn log tail; with --salvage, rewrite the log keeping every
    /// valid record. Changed files are backed up to DIR/backup-<time>/ first.
    ///
    /// Example: hashkv repair data --salvage
    Repair {
        /// The database directory (must exist).
        dir: PathBuf,
        /// Drop damaged records and keep every valid one.
        #[arg(long)]
        salvage: bool,
    },
    /// Write every key as Redis commands (for `redis-cli --pipe`) or JSON
    /// lines.
    ///
    /// Example: hashkv export data --format resp | redis-cli --pipe
    Export {
        /// The database directory (must exist).
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "resp")]
        format: Format,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// With `--format rdb`: write every string as it is (Redis's
        /// `rdbcompression no`) instead of LZF-compressing long ones.
        #[arg(long)]
        no_compression: bool,
        /// With `--format rdb`: the RDB version, 10 (Redis 7.0+; hashes
        /// with field TTLs are refused) or 12 (Redis 7.4+; field TTLs kept).
        #[arg(long, value_enum, default_value = "10")]
        rdb_version: RdbVer,
    },
    /// Print each change to the data as it happens, one line each, until
    /// interrupted: in redis-cli's words (`hset user:1 name Alice`), or as
    /// JSON lines. Works beside the process writing the directory.
    ///
    /// Example: hashkv watch data 'user:*' --json
    Watch {
        /// The database directory (must exist).
        dir: PathBuf,
        /// Only changes to keys matching this glob (as KEYS and SCAN MATCH).
        pattern: Option<String>,
        /// One JSON object per change (binary-safe, as the JSON export).
        #[arg(long)]
        json: bool,
        /// Start after this log position (`segment:offset`, as a change's
        /// "position" or `hashkv info` prints it) instead of now.
        #[arg(long)]
        from: Option<String>,
    },
    /// Load Redis commands (RESP), JSON lines or a Redis RDB file
    /// (dump.rdb) into the database.
    ///
    /// Example: hashkv import data --format rdb dump.rdb
    Import {
        /// The database directory (created if missing).
        dir: PathBuf,
        /// Input format.
        #[arg(long, value_enum, default_value = "resp")]
        format: Format,
        /// The input file; `-` or none for standard input (not for rdb).
        file: Option<PathBuf>,
        /// With `--format rdb`: the Redis database number to import (keys
        /// of the others are skipped and counted).
        #[arg(long, default_value_t = 0)]
        db: u64,
        /// With `--format rdb`: refuse a file holding keys of other types
        /// than hashes instead of skipping them.
        #[arg(long)]
        strict: bool,
    },
    /// Copy the data into Redis, Valkey or Redis Cluster, then send every
    /// change as the application makes it (beside it: the directory is
    /// opened read-only), until interrupted (SIGINT/SIGTERM: the batch in
    /// flight is finished and the position saved).
    ///
    /// Example: hashkv sync data --to redis://127.0.0.1:7000 --cluster --state data.sync
    Sync {
        /// The database directory (must exist).
        dir: PathBuf,
        /// The target: redis://[user:password@]host:port[/db].
        #[arg(long)]
        to: String,
        /// The target is a Redis Cluster (the URL names any node).
        #[arg(long)]
        cluster: bool,
        /// Save the position the target acknowledged here, and resume from
        /// it (without it every run starts with a full copy).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Copy, send the changes in the log as it is now, and exit.
        #[arg(long)]
        once: bool,
        /// Only keys matching this glob (as SCAN MATCH).
        #[arg(long = "match", value_name = "PATTERN")]
        pattern: Option<String>,
        /// Send fields without their TTLs to a target that has none
        /// (instead of stopping at the first field TTL).
        #[arg(long)]
        drop_field_ttls: bool,
    },
    /// Print a completion script for a shell.
    ///
    /// Example: hashkv completions bash > /etc/bash_completion.d/hashkv
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): hashkv(1), or with a command's name
    /// that command's page (hashkv-watch(1), ...).
    ///
    /// Example: hashkv man > hashkv.1 && hashkv man watch > hashkv-watch.1
    Man {
        /// A command whose page to print instead (watch, export, ...).
        command: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let quiet = cli.quiet;
    let opts = Options::default()
        .hash_max_listpack_entries(cli.listpack_entries)
        .hash_max_listpack_value(cli.listpack_value)
        .fsync(match cli.fsync {
            Fsync::Always => FsyncPolicy::Always,
            Fsync::Everysec => FsyncPolicy::EverySec,
            Fsync::No => FsyncPolicy::No,
        })
        .snapshot_compression(!cli.no_snapshot_compression);
    let opts = if cli.no_auto_snapshots {
        opts.no_auto_snapshots()
    } else {
        opts.compact_log_at(Some(cli.compact_log_at))
    };
    let result = match cli.command {
        Cmd::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "hashkv", &mut script);
            print_bytes(&script)
        }
        Cmd::Man { command } => man_page(command.as_deref()).and_then(|page| print_bytes(&page)),
        Cmd::Shell { dir, read_only } => if read_only {
            existing(&dir).and_then(|()| open_read_only(&dir, opts))
        } else {
            open_or_follow(&dir, opts)
        }
        .and_then(|db| {
            let stdin = io::stdin();
            if stdin.is_terminal() && io::stdout().is_terminal() {
                let ro = if db.is_read_only() {
                    " (read-only)"
                } else {
                    ""
                };
                interactive::run(&db, &format!("hashkv {}{ro}> ", dir.display()))
            } else {
                hashkv::shell::run(&db, stdin.lock(), io::stdout().lock(), None)
                    .map_err(|e| format!("hashkv: shell: {e}"))
            }?;
            close(db, &dir)
        }),
        Cmd::Exec { dir, words } => open_or_follow(&dir, opts).and_then(|db| {
            let mut out = Vec::new();
            let line: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
            match db.execute(&line) {
                Ok(r) => r.write_cli(&mut out),
                Err(e @ (hashkv::Error::Command(_) | hashkv::Error::ReadOnly)) => {
                    out.extend_from_slice(format!("(error) {e}\n").as_bytes())
                }
                Err(e) => return Err(format!("hashkv: {e}")),
            }
            io::stdout()
                .write_all(&out)
                .map_err(|e| format!("hashkv: {e}"))?;
            close(db, &dir)
        }),
        Cmd::Snapshot { dir, output } => match &output {
            // A standalone copy can be taken beside a writer.
            Some(_) => open_or_follow(&dir, opts),
            None => open(&dir, opts),
        }
        .and_then(|db| {
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
            let pb = spinner(quiet, "compacting");
            let info = db.snapshot();
            pb.finish_and_clear();
            let info = info.map_err(|e| format!("hashkv: compact {}: {e}", dir.display()))?;
            println!("{}", describe(&info));
            println!(
                "directory: {} bytes before, {} bytes after",
                before,
                dir_bytes(&dir)
            );
            Ok(())
        }),
        Cmd::Restore { file, dir } => {
            let pb = spinner(quiet, "restoring (checking every checksum, then copying)");
            let r = Db::restore(&file, &dir, &opts);
            pb.finish_and_clear();
            r.map(|keys| {
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
            })
        }
        Cmd::Info { dir, json } => existing(&dir)
            .and_then(|()| open_or_follow(&dir, opts.no_auto_snapshots().active_expiry(false)))
            .and_then(|db| {
                db.info()
                    .map_err(|e| format!("hashkv: info {}: {e}", dir.display()))
            })
            .map(|info| {
                if json {
                    println!("{}", info.to_json());
                } else {
                    print_info(&info);
                }
            }),
        Cmd::Check { dir } => return check(&dir, quiet),
        Cmd::Repair { dir, salvage } => existing(&dir).and_then(|()| {
            let r = hashkv::admin::repair(&dir, salvage, &opts)
                .map_err(|e| format!("hashkv: repair {}: {e}", dir.display()))?;
            print_repair(&dir, &r);
            Ok(())
        }),
        Cmd::Export {
            dir,
            format,
            output,
            no_compression,
            rdb_version,
        } => existing(&dir)
            .and_then(|()| open_or_follow(&dir, opts.no_auto_snapshots().active_expiry(false)))
            .and_then(|db| {
                let rdb = hashkv::interop::RdbExportOptions {
                    compression: if no_compression {
                        hashkv::interop::RdbCompression::None
                    } else {
                        hashkv::interop::RdbCompression::Lzf
                    },
                    version: match rdb_version {
                        RdbVer::V10 => hashkv::interop::RdbVersion::V10,
                        RdbVer::V12 => hashkv::interop::RdbVersion::V12,
                    },
                };
                export(&db, format, &rdb, output.as_deref(), quiet)
            }),
        Cmd::Sync {
            dir,
            to,
            cluster,
            state,
            once,
            pattern,
            drop_field_ttls,
        } => existing(&dir).and_then(|()| {
            sync::run(
                sync::Args {
                    dir,
                    to,
                    cluster,
                    state,
                    once,
                    pattern,
                    drop_field_ttls,
                },
                quiet,
            )
        }),
        Cmd::Watch {
            dir,
            pattern,
            json,
            from,
        } => existing(&dir)
            .and_then(|()| watch(&dir, opts, pattern.as_deref(), json, from.as_deref())),
        Cmd::Import {
            dir,
            format: Format::Rdb,
            file,
            db,
            strict,
        } => rdb_file(file.as_deref()).and_then(|file| {
            let db_opts = hashkv::interop::RdbImportOptions { db, strict };
            let handle = open(&dir, opts)?;
            import_rdb(&handle, &file, &db_opts, quiet)?;
            close(handle, &dir)
        }),
        Cmd::Import {
            dir, format, file, ..
        } => format_of(format)
            .and_then(|_| open(&dir, opts))
            .and_then(|db| {
                import(&db, format, file.as_deref(), quiet)?;
                close(db, &dir)
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

/// The roff manual page of the tool, or of one of its commands (the pages
/// the tool's page lists as hashkv-NAME(1)).
fn man_page(command: Option<&str>) -> Result<Vec<u8>, String> {
    let mut cli = Cli::command().disable_help_subcommand(true);
    // Building names the commands' pages (hashkv-watch) and gives them the
    // global options.
    cli.build();
    let page = match command {
        None => cli,
        Some(name) => cli.find_subcommand(name).cloned().ok_or_else(|| {
            format!("hashkv: man: no command {name:?} (`hashkv --help` lists them)")
        })?,
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .source(concat!("hashkv ", env!("CARGO_PKG_VERSION")))
        .render(&mut out)
        .map_err(|e| format!("hashkv: man: {e}"))?;
    Ok(out)
}

/// Writes `bytes` to standard output (completions, the man page).
fn print_bytes(bytes: &[u8]) -> Result<(), String> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| format!("hashkv: writing to standard output: {e}"))
}

/// A bad command line as one line on stderr with exit code 2 (help and
/// version are printed as clap prints them).
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    // clap's first paragraph, on one line ("the following required
    // arguments were not provided: <DIR>").
    let text = e.render().to_string();
    let what = text
        .trim_start()
        .split("\n\n")
        .next()
        .unwrap_or("bad arguments")
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let what = what.trim_start_matches("error: ");
    // The subcommand, when clap got that far: its help is the useful one.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sub = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .filter(|a| Cli::command().find_subcommand(a.as_str()).is_some());
    let help = match sub {
        Some(sub) => format!("hashkv {sub} --help"),
        None => "hashkv --help".to_owned(),
    };
    eprintln!("hashkv: {what}; try '{help}'");
    ExitCode::from(2)
}

fn format_of(f: Format) -> Result<hashkv::admin::Format, String> {
    match f {
        Format::Resp => Ok(hashkv::admin::Format::Resp),
        Format::Json => Ok(hashkv::admin::Format::Json),
        Format::Rdb => Err("hashkv: --format rdb has its own import path".into()),
    }
}

/// Exports `db` in `format` to `w`.
fn export_to(
    db: &Db,
    format: Format,
    rdb: &hashkv::interop::RdbExportOptions,
    w: &mut dyn io::Write,
    progress: &mut dyn FnMut(u64, u64),
) -> hashkv::Result<hashkv::admin::Transfer> {
    match format {
        Format::Rdb => db.export_rdb_to(w, rdb),
        Format::Resp => db.export(hashkv::admin::Format::Resp, w, progress),
        Format::Json => db.export(hashkv::admin::Format::Json, w, progress),
    }
}

/// Commands that read a directory report a missing one instead of
/// creating it.
fn existing(dir: &std::path::Path) -> Result<(), String> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "hashkv: {}: no such directory (check the path; only shell, exec, import, snapshot and compact create one)",
            dir.display()
        ))
    }
}

fn hidden(quiet: bool) -> bool {
    quiet || !io::stderr().is_terminal()
}

/// A progress bar on standard error, hidden when not on a terminal.
fn bar(quiet: bool, what: &str, bytes: bool) -> indicatif::ProgressBar {
    if hidden(quiet) {
        return indicatif::ProgressBar::hidden();
    }
    let template = if bytes {
        "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})"
    } else {
        "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})"
    };
    let pb = indicatif::ProgressBar::new(0).with_message(what.to_owned());
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// A spinner for operations without a known length.
fn spinner(quiet: bool, what: &str) -> indicatif::ProgressBar {
    if hidden(quiet) {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new_spinner().with_message(what.to_owned());
    pb.enable_steady_tick(std::time::Duration::from_millis(100));
    pb
}

fn print_info(i: &hashkv::admin::Info) {
    println!("# Keyspace");
    println!("keys:{}", i.keys);
    println!("fields:{}", i.fields);
    println!("hashes_listpack:{}", i.listpack_hashes);
    println!("hashes_hashtable:{}", i.hashtable_hashes);
    println!("hashes_shaped:{}", i.shaped_hashes);
    println!("shapes:{}", i.shapes);
    println!("volatile_keys:{}", i.volatile_keys);
    println!("field_ttl_hashes:{}", i.field_ttl_hashes);
    println!("memory_bytes:{}", i.memory_bytes);
    println!("# Stats");
    println!("expired_keys:{}", i.expired_keys);
    println!("expired_fields:{}", i.expired_fields);
    println!("# Persistence");
    match &i.snapshot {
        Some(s) => println!(
            "snapshot:{} bytes={} age_secs={}",
            s.name, s.bytes, s.age_secs
        ),
        None => println!("snapshot:none"),
    }
    for s in &i.segments {
        println!(
            "log_segment:{} bytes={} age_secs={}",
            s.name, s.bytes, s.age_secs
        );
    }
    println!(
        "log_bytes:{}",
        i.segments.iter().map(|s| s.bytes).sum::<u64>()
    );
    println!("fsync:{}", format!("{:?}", i.fsync).to_lowercase());
    println!("# Log");
    println!("role:{}", if i.read_only { "reader" } else { "writer" });
    println!("log_position:{}", i.position);
    if let Some(lag) = i.lag_bytes {
        println!("lag_bytes:{lag}");
    }
}

fn check(dir: &std::path::Path, quiet: bool) -> ExitCode {
    let pb = bar(quiet, "checking", true);
    let r = hashkv::admin::check(dir, &mut |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    });
    pb.finish_and_clear();
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hashkv: check {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    for f in &r.files {
        let unit = if f.kind == "snapshot" {
            "keys"
        } else {
            "records"
        };
        println!(
            "{} {}: {} {unit}, {} bytes",
            f.kind, f.file, f.items, f.bytes
        );
    }
    for f in &r.findings {
        let sev = match f.severity {
            hashkv::admin::Severity::Corrupt => "CORRUPT",
            hashkv::admin::Severity::Warning => "warning",
            _ => "note",
        };
        println!("{sev}: {} at byte {}: {}", f.file, f.offset, f.what);
    }
    if r.live {
        println!("(a writer has the directory open: the newest segment's tail was not judged)");
    }
    match r.advice(dir) {
        None => {
            println!("clean");
            ExitCode::SUCCESS
        }
        Some(advice) => {
            println!("damage found: {advice}");
            ExitCode::from(1)
        }
    }
}

fn print_repair(dir: &std::path::Path, r: &hashkv::admin::RepairReport) {
    let Some(backup) = &r.backup else {
        println!("{}: nothing to repair", dir.display());
        return;
    };
    println!("backup of the files changed: {}", backup.display());
    for line in &r.manifest {
        println!("MANIFEST: {line}");
    }
    if !r.manifest.is_empty() {
        println!("rebuilt MANIFEST");
    }
    if let Some(t) = &r.torn_tail {
        let saved = t
            .saved_to
            .as_ref()
            .map_or(String::new(), |p| format!(" (saved to {p})"));
        println!(
            "cut a torn tail: {} bytes at byte {} of {}{saved}",
            t.bytes, t.offset, t.file
        );
    }
    for s in &r.skipped {
        println!(
            "dropped bytes {}..{} of {}: {}",
            s.start, s.end, s.file, s.reason
        );
    }
    if r.rewritten {
        println!("rewrote the log from every valid record");
    }
    for n in &r.notes {
        println!("{n}");
    }
}

fn export(
    db: &Db,
    format: Format,
    rdb: &hashkv::interop::RdbExportOptions,
    output: Option<&std::path::Path>,
    quiet: bool,
) -> Result<(), String> {
    let pb = bar(quiet, "exporting", false);
    let mut progress = |done: u64, total: u64| {
        pb.set_length(total);
        pb.set_position(done);
    };
    let r = match output {
        Some(path) => {
            let f = std::fs::File::create(path)
                .map_err(|e| format!("hashkv: export: cannot create {}: {e}", path.display()))?;
            let mut w = io::BufWriter::new(f);
            export_to(db, format, rdb, &mut w, &mut progress)
        }
        None => {
            let mut w = io::BufWriter::new(io::stdout().lock());
            export_to(db, format, rdb, &mut w, &mut progress)
        }
    };
    pb.finish_and_clear();
    let t = r.map_err(|e| format!("hashkv: export: {e}"))?;
    if output.is_some() {
        println!("exported {} keys, {} fields", t.items, t.fields);
    }
    Ok(())
}

fn import(
    db: &Db,
    format: Format,
    file: Option<&std::path::Path>,
    quiet: bool,
) -> Result<(), String> {
    let path = file.filter(|p| p.as_os_str() != "-");
    let format = format_of(format)?;
    let pb = bar(quiet, "importing", true);
    let r = match path {
        Some(p) => {
            let f = std::fs::File::open(p)
                .map_err(|e| format!("hashkv: import: cannot open {}: {e}", p.display()))?;
            pb.set_length(f.metadata().map_or(0, |m| m.len()));
            let mut r = io::BufReader::with_capacity(1 << 20, f);
            db.import(format, &mut r, &mut |done, _| pb.set_position(done))
        }
        None => {
            let stdin = io::stdin();
            let mut r = stdin.lock();
            db.import(format, &mut r, &mut |done, _| pb.set_position(done))
        }
    };
    pb.finish_and_clear();
    let what = path.map_or("standard input".to_owned(), |p| p.display().to_string());
    let t = r.map_err(|e| format!("hashkv: import from {what}: {e}"))?;
    println!(
        "imported {} commands, {} fields; {} errors",
        t.items,
        t.fields,
        t.errors.len()
    );
    for e in t.errors.iter().take(10) {
        println!("  {e}");
    }
    if t.errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "hashkv: import from {what}: {} commands failed",
            t.errors.len()
        ))
    }
}

/// The RDB file to import: it is read more than once (checked, then
/// applied), so it must be a file, checked before the directory is opened.
fn rdb_file(file: Option<&std::path::Path>) -> Result<PathBuf, String> {
    let Some(p) = file.filter(|p| p.as_os_str() != "-") else {
        return Err(
            "hashkv: import: --format rdb reads a file (it is checked before anything is applied), not standard input; give its path".into(),
        );
    };
    if !p.is_file() {
        return Err(format!("hashkv: import: {}: no such file", p.display()));
    }
    Ok(p.to_path_buf())
}

fn import_rdb(
    db: &Db,
    file: &std::path::Path,
    opts: &hashkv::interop::RdbImportOptions,
    quiet: bool,
) -> Result<(), String> {
    let pb = bar(quiet, "checking, then importing", true);
    let r = db.import_rdb_with(file, opts, &mut |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    });
    pb.finish_and_clear();
    let t = r.map_err(|e| format!("hashkv: import from {}: {e}", file.display()))?;
    for line in t.summary() {
        println!("{line}");
    }
    Ok(())
}

/// Opens `dir` for writing or, when another process has it open for
/// writing, read-only beside it, saying so on stderr.
fn open_or_follow(dir: &PathBuf, opts: Options) -> Result<Db, String> {
    match Db::open_with(dir, opts.clone()) {
        Err(hashkv::Error::Locked { pid, .. }) => {
            let db = open_read_only(dir, opts)?;
            eprintln!(
                "hashkv: {} is open for writing in another process{}; opened it read-only (writes answer READONLY)",
                dir.display(),
                pid.map_or(String::new(), |p| format!(" (pid {p})"))
            );
            Ok(db)
        }
        r => opened(dir, r),
    }
}

/// Opens `dir` read-only.
fn open_read_only(dir: &PathBuf, opts: Options) -> Result<Db, String> {
    opened(dir, Db::open_read_only_with(dir, opts))
}

/// Opens `dir`, printing to stderr what the open cut, skipped, saved,
/// moved or removed (nothing for a clean open).
fn open(dir: &PathBuf, opts: Options) -> Result<Db, String> {
    opened(dir, Db::open_with(dir, opts))
}

/// The result of an open, its error in words, its report on stderr.
fn opened(dir: &std::path::Path, r: hashkv::Result<Db>) -> Result<Db, String> {
    let db = r.map_err(|e| match e {
        hashkv::Error::Corrupt {
            file,
            offset,
            reason,
        } => {
            let d = dir.display();
            let fix = if reason.contains("hashkv repair") {
                String::new()
            } else if file.ends_with(".aof") {
                format!("; `hashkv check {d}` lists the damage, `hashkv repair --salvage {d}` keeps every valid record")
            } else if file.ends_with(".hks") {
                format!("; no repair can rebuild a damaged snapshot: restore {d} from a backup")
            } else {
                format!("; `hashkv check {d}` lists the damage and the fix")
            };
            format!(
                "hashkv: cannot open {}: {file}: corrupt at byte {offset}: {reason}{fix}",
                dir.display()
            )
        }
        e => format!("hashkv: cannot open {}: {e}", dir.display()),
    })?;
    for line in db.recovery_report().lines() {
        eprintln!("hashkv: open {}: {line}", dir.display());
    }
    Ok(db)
}

/// `hashkv watch`: follows `dir` read-only and prints each change.
fn watch(
    dir: &PathBuf,
    opts: Options,
    pattern: Option<&str>,
    json: bool,
    from: Option<&str>,
) -> Result<(), String> {
    let db = open_read_only(dir, opts.follow(None))?;
    let pattern = pattern.filter(|p| *p != "*");
    let mut sub = match (from, pattern) {
        (Some(pos), p) => {
            let pos: hashkv::LogPosition =
                pos.parse().map_err(|e| format!("hashkv: watch: {e}"))?;
            match p {
                Some(p) => db.subscribe_from_matching(pos, p),
                None => db.subscribe_from(pos),
            }
            .map_err(|e| format!("hashkv: watch {}: {e}", dir.display()))?
        }
        (None, Some(p)) => db.subscribe_matching(p),
        (None, None) => db.subscribe(),
    };
    let mut out = io::stdout().lock();
    let mut last_error = String::new();
    loop {
        // Catch up here rather than in the background, so damage is said.
        match db.catch_up() {
            Ok(_) => last_error.clear(),
            Err(e) => {
                let e = e.to_string();
                if e != last_error {
                    eprintln!("hashkv: watch {}: {e}", dir.display());
                    last_error = e;
                }
            }
        }
        let mut wrote = false;
        loop {
            let line = match sub.try_recv() {
                Ok(c) if json => c.to_json().to_string(),
                Ok(c) => c.to_cli_line(),
                Err(hashkv::RecvError::Empty) => break,
                Err(hashkv::RecvError::Closed) => return Ok(()),
                Err(hashkv::RecvError::Lagged(n)) => {
                    eprintln!("hashkv: watch: fell behind and missed {n} changes");
                    continue;
                }
                Err(e) => {
                    eprintln!("hashkv: watch: {e}");
                    continue;
                }
            };
            if writeln!(out, "{line}").is_err() {
                // The reader of our output went away (`| head`): done.
                return Ok(());
            }
            wrote = true;
        }
        if wrote && out.flush().is_err() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Closes `db`, reporting what a drop would swallow (a failed last fsync).
fn close(db: Db, dir: &std::path::Path) -> Result<(), String> {
    db.close()
        .map_err(|e| format!("hashkv: closing {}: {e}", dir.display()))
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
