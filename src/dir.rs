//! The data directory: the `LOCK` file, the atomically replaced `MANIFEST`
//! and the names of log segments.
//!
//! ```text
//! DIR/LOCK              advisory exclusive lock (std File::try_lock) while open
//! DIR/MANIFEST          "hashkv-manifest 1\n", an optional "snapshot <name>\n",
//!                       then one "segment <name>\n" per live segment
//! DIR/snap-000002.hks   the snapshot MANIFEST names (the number is that of
//!                       the first segment written after it)
//! DIR/log-000002.aof    log segments, replayed in MANIFEST order after it
//! ```
//! MANIFEST is replaced by writing `MANIFEST.tmp`, fsyncing it, renaming it
//! over `MANIFEST` and fsyncing the directory, so a crash leaves the old or
//! the new list, never a mix.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;

const MANIFEST: &str = "MANIFEST";
const MANIFEST_HEADER: &str = "hashkv-manifest 1";

fn io(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// Takes the directory's exclusive lock; the lock lives as long as the file.
pub(crate) fn lock(dir: &Path) -> Result<File, Error> {
    let path = dir.join("LOCK");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io("opening", &path, e))?;
    // A lock released by a closing handle can linger for a moment: a child
    // process forked elsewhere in the program shares the descriptor until it
    // calls exec. Retry briefly before reporting the directory as locked.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: dir.display().to_string(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io("locking", &path, e)),
        }
    }
}

/// Fsyncs a directory, making renames and new files in it durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("syncing directory", dir, e))
}

/// What MANIFEST lists: the snapshot to load, then the segments to replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) snapshot: Option<String>,
    pub(crate) segments: Vec<String>,
}

/// The MANIFEST of `dir`, or `None` for a directory never initialised.
pub(crate) fn read_manifest(dir: &Path) -> Result<Option<Manifest>, Error> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("reading", &path, e)),
    };
    let corrupt = |offset: usize, reason: String| Error::Corrupt {
        file: path.display().to_string(),
        offset: offset as u64,
        reason,
    };
    let text = String::from_utf8(text)
        .map_err(|e| corrupt(e.utf8_error().valid_up_to(), "not UTF-8".into()))?;
    let mut lines = text.lines();
    if lines.next() != Some(MANIFEST_HEADER) {
        return Err(corrupt(0, format!("first line is not {MANIFEST_HEADER:?}")));
    }
    let mut m = Manifest::default();
    let mut offset = MANIFEST_HEADER.len() + 1;
    for line in lines {
        if let Some(name) = line
            .strip_prefix("snapshot ")
            .filter(|n| is_snapshot_name(n) && m.snapshot.is_none() && m.segments.is_empty())
        {
            m.snapshot = Some(name.to_owned());
        } else {
            let name = line
                .strip_prefix("segment ")
                .filter(|n| is_segment_name(n))
                .ok_or_else(|| corrupt(offset, format!("unexpected line {line:?}")))?;
            m.segments.push(name.to_owned());
        }
        offset += line.len() + 1;
    }
    if m.segments.is_empty() {
        return Err(corrupt(offset, "no segments listed".into()));
    }
    Ok(Some(m))
}

/// Replaces MANIFEST atomically with `m`.
pub(crate) fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), Error> {
    let tmp = dir.join("MANIFEST.tmp");
    let mut text = format!("{MANIFEST_HEADER}\n");
    if let Some(s) = &m.snapshot {
        text.push_str(&format!("snapshot {s}\n"));
    }
    for s in &m.segments {
        text.push_str(&format!("segment {s}\n"));
    }
    let mut f = File::create(&tmp).map_err(|e| io("creating", &tmp, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| io("writing", &tmp, e))?;
    f.sync_all().map_err(|e| io("syncing", &tmp, e))?;
    let dst = dir.join(MANIFEST);
    std::fs::rename(&tmp, &dst).map_err(|e| io("renaming into place", &dst, e))?;
    fsync_dir(dir)
}

/// Deletes files of ours that `m` does not list (left by a crash during a
/// snapshot, or by a snapshot's cleanup that did not finish).
pub(crate) fn remove_unlisted(dir: &Path, m: &Manifest) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| io("listing", dir, e))?;
    let mut removed = false;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = is_segment_name(name)
            || is_snapshot_name(name)
            || (name.ends_with(".tmp") && (name.starts_with("snap-") || name == "MANIFEST.tmp"));
        let listed = m.snapshot.as_deref() == Some(name) || m.segments.iter().any(|s| s == name);
        if ours && !listed {
            let p = dir.join(name);
            std::fs::remove_file(&p).map_err(|e| io("removing", &p, e))?;
            removed = true;
        }
    }
    if removed {
        fsync_dir(dir)?;
    }
    Ok(())
}

fn is_snapshot_name(n: &str) -> bool {
    n.len() == 15
        && n.starts_with("snap-")
        && n.ends_with(".hks")
        && n[5..11].bytes().all(|b| b.is_ascii_digit())
}

/// The name of the snapshot after which segment `n` is the first.
pub(crate) fn snapshot_name(n: u64) -> String {
    format!("snap-{n:06}.hks")
}

fn is_segment_name(n: &str) -> bool {
    n.len() == 14
        && n.starts_with("log-")
        && n.ends_with(".aof")
        && n[4..10].bytes().all(|b| b.is_ascii_digit())
}

/// The name of segment number `n`.
pub(crate) fn segment_name(n: u64) -> String {
    format!("log-{n:06}.aof")
}

/// The number in a segment name.
pub(crate) fn segment_number(name: &str) -> u64 {
    name.get(4..10).and_then(|d| d.parse().ok()).unwrap_or(0)
}

/// Creates an empty segment (header only), fsynced, and fsyncs the dir.
pub(crate) fn create_segment(dir: &Path, name: &str) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    let mut f = File::create(&path).map_err(|e| io("creating", &path, e))?;
    f.write_all(crate::log::record::SEGMENT_MAGIC)
        .map_err(|e| io("writing", &path, e))?;
    f.sync_all().map_err(|e| io("syncing", &path, e))?;
    fsync_dir(dir)?;
    Ok(path)
}
