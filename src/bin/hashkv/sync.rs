//! `hashkv sync`: the command-line face of [`hashkv::sync::Sync`], with a
//! progress bar for the full copy and a status line while it follows, on a
//! terminal; SIGINT and SIGTERM stop it cleanly.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hashkv::sync::{Event, Sync};

/// What `hashkv sync` was given.
pub(crate) struct Args {
    pub dir: PathBuf,
    pub to: String,
    pub cluster: bool,
    pub state: Option<PathBuf>,
    pub once: bool,
    pub pattern: Option<String>,
    pub drop_field_ttls: bool,
}

/// Runs the sync; `Err` is the one-line message to print.
pub(crate) fn run(a: Args, quiet: bool) -> Result<(), String> {
    let tty = !quiet && std::io::stderr().is_terminal();
    let bar = if tty {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "copying [{bar:40}] {pos}/{len} keys ({per_sec}, {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let status = if tty {
        indicatif::ProgressBar::new_spinner()
    } else {
        indicatif::ProgressBar::hidden()
    };
    let (b, s) = (bar.clone(), status.clone());
    let mut builder = Sync::builder(&a.dir, &a.to)
        .cluster(a.cluster)
        .drop_field_ttls(a.drop_field_ttls)
        .on_event(move |e| show(e, &b, &s, quiet));
    if let Some(p) = &a.state {
        builder = builder.state_file(p);
    }
    if let Some(p) = &a.pattern {
        builder = builder.matching(p);
    }
    let mut sync = builder.build().map_err(|e| format!("hashkv: sync: {e}"))?;
    let result = if a.once {
        sync.run_once()
    } else {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .map_err(|e| format!("hashkv: sync: cannot catch SIGINT/SIGTERM: {e}"))?;
        sync.run(&stop)
    };
    bar.finish_and_clear();
    status.finish_and_clear();
    let report = result.map_err(|e| format!("hashkv: sync: {e}"))?;
    if !quiet {
        let saved = a
            .state
            .as_ref()
            .map(|p| format!(" (saved in {})", p.display()))
            .unwrap_or_default();
        eprintln!(
            "hashkv: sync: {} keys copied, {} changes sent; the target holds everything up to log position {}{saved}",
            report.copied_keys, report.changes, report.position
        );
    }
    Ok(())
}

fn show(e: &Event, bar: &indicatif::ProgressBar, status: &indicatif::ProgressBar, quiet: bool) {
    match e {
        Event::Connected {
            target,
            server,
            field_ttls,
        } if !quiet => {
            let ttls = if *field_ttls {
                "with field TTLs"
            } else {
                "without field TTLs"
            };
            eprintln!("hashkv: sync: connected to {target} ({server}, {ttls})");
        }
        Event::Resuming { position } if !quiet => {
            eprintln!("hashkv: sync: resuming after log position {position}");
        }
        Event::CopyStarted { keys, why } => {
            if !quiet {
                eprintln!("hashkv: sync: full copy of {keys} keys ({why})");
            }
            bar.set_length(*keys);
            bar.set_position(0);
        }
        Event::Copied { keys, total } => {
            bar.set_length(*total.max(keys));
            bar.set_position(*keys);
        }
        Event::CopyDone {
            keys,
            fields,
            deleted,
            elapsed,
        } => {
            bar.finish_and_clear();
            if !quiet {
                let gone = if *deleted > 0 {
                    format!(", {deleted} hashes hashkv no longer holds deleted")
                } else {
                    String::new()
                };
                eprintln!(
                    "hashkv: sync: copied {keys} keys ({fields} fields) in {:.1} s{gone}",
                    elapsed.as_secs_f64()
                );
            }
        }
        Event::Acknowledged {
            position, changes, ..
        } => status.set_message(format!("synced to {position} · {changes} changes sent")),
        Event::Lag {
            changes, behind, ..
        } => {
            status.set_message(format!(
                "{} · lag {changes} changes, {} ms",
                status.message().split(" · lag").next().unwrap_or(""),
                behind.as_millis()
            ));
            status.tick();
        }
        Event::Retrying {
            message,
            attempt,
            after,
        } if !quiet => eprintln!(
            "hashkv: sync: {message}; trying again in {} ms (try {})",
            after.as_millis(),
            attempt + 1
        ),
        Event::FieldTtlsDropped { key } => eprintln!(
            "hashkv: sync: the target has no field TTLs: fields are sent without them (first at key {key})"
        ),
        _ => {}
    }
    if matches!(e, Event::Acknowledged { .. }) {
        status.enable_steady_tick(Duration::from_millis(200));
    }
}
