//! The data directory: the `LOCK` file, the atomically replaced and
//! checksummed `MANIFEST`, the names of snapshots and log segments, and the
//! rule for files MANIFEST does not list ([`classify_unlisted`]).
//!
//! ```text
//! DIR/LOCK              advisory exclusive lock (std File::try_lock) while open;
//!                       holds the writer's process id
//! DIR/MANIFEST          "hashkv-manifest 2\n", an optional "snapshot <name>\n",
//!                       one "segment <name>\n" per live segment, then
//!                       "end <crc32 of the lines before, 8 hex digits>\n"
//! DIR/snap-000002.hks   the snapshot MANIFEST names (the number is that of
//!                       the first segment written after it)
//! DIR/log-000002.aof    log segments, replayed in MANIFEST order after it
//! DIR/lost+found/       what open or repair moved aside, with NOTES saying why
//! ```
//! Numbers are written with at least six digits and read at any width.
//! MANIFEST is replaced by writing `MANIFEST.tmp`, fsyncing it, renaming it
//! over `MANIFEST` and fsyncing the directory, so a crash leaves the old or
//! the new list, never a mix. Version 1 (no `end` line) is still read.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;

pub(crate) const MANIFEST: &str = "MANIFEST";
const MANIFEST_HEADER_V1: &str = "hashkv-manifest 1";
const MANIFEST_HEADER: &str = "hashkv-manifest 2";
/// Where files that are not provably garbage are moved instead of removed.
pub(crate) const LOST_FOUND: &str = "lost+found";

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
            Ok(()) => {
                // Who holds it, for readers and tools that find it held.
                use std::io::Seek;
                let mut w = &f;
                let _ = f.set_len(0);
                let _ = w.rewind();
                let _ = writeln!(w, "{}", std::process::id());
                return Ok(f);
            }
            Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: dir.display().to_string(),
                    pid: lock_holder(dir),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io("locking", &path, e)),
        }
    }
}

/// The process id of the writer holding `dir`'s lock, if one holds it and
/// wrote its id there.
pub(crate) fn lock_holder(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join("LOCK")).ok()?;
    if try_lock_shared(dir).ok()?.is_some() {
        return None;
    }
    text.trim().parse().ok()
}

/// Takes the directory's lock shared if no writer holds it: `Some(file)`
/// when taken (no writer can open the directory meanwhile), `None` when a
/// writer has it open (the caller must then expect files to change).
pub(crate) fn try_lock_shared(dir: &Path) -> Result<Option<File>, Error> {
    let path = dir.join("LOCK");
    let f = match File::open(&path) {
        Ok(f) => f,
        // No LOCK file: nothing has ever opened it for writing.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("opening", &path, e)),
    };
    match f.try_lock_shared() {
        Ok(()) => Ok(Some(f)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(io("locking", &path, e)),
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
    /// Whether it was read with a checksum that matched (version 2); a
    /// version-1 MANIFEST cannot prove which unlisted files are garbage.
    pub(crate) verified: bool,
}

impl Manifest {
    /// A manifest about to be written (written ones are always checksummed).
    pub(crate) fn new(snapshot: Option<String>, segments: Vec<String>) -> Manifest {
        Manifest {
            snapshot,
            segments,
            verified: true,
        }
    }

    /// The number of the first listed segment (the snapshot's number too).
    pub(crate) fn base(&self) -> u64 {
        self.segments
            .first()
            .and_then(|s| segment_number(s))
            .unwrap_or(0)
    }

    /// The number of the last listed segment.
    pub(crate) fn last(&self) -> u64 {
        self.segments
            .last()
            .and_then(|s| segment_number(s))
            .unwrap_or(0)
    }

    fn lists(&self, name: &str) -> bool {
        self.snapshot.as_deref() == Some(name) || self.segments.iter().any(|s| s == name)
    }
}

/// The fix named in every MANIFEST error.
fn repair_hint(dir: &Path) -> String {
    format!(
        "`hashkv repair {}` rebuilds MANIFEST from the files present",
        dir.display()
    )
}

/// A file in `dir` that holds data (any snapshot, a segment with a record),
/// so that a missing MANIFEST means damage, not a new directory. A segment
/// holding no record is what a crash leaves between creating the first
/// segment and the first MANIFEST: nothing was ever acknowledged there.
fn has_data_files(dir: &Path) -> Result<Option<String>, Error> {
    Ok(list_files(dir)?.into_iter().find(|n| match parse_name(n) {
        Some((Kind::Snapshot, _)) => true,
        Some((Kind::Segment, _)) => !holds_no_record(&dir.join(n)),
        _ => false,
    }))
}

/// The MANIFEST of `dir`, or `None` for a directory never initialised (no
/// MANIFEST and no file holding data). A MANIFEST that does not parse, fails its
/// checksum, repeats or skips a file, or is missing beside data files is
/// [`Error::Corrupt`].
pub(crate) fn read_manifest(dir: &Path) -> Result<Option<Manifest>, Error> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match has_data_files(dir)? {
                None => Ok(None),
                Some(f) => Err(Error::Corrupt {
                    file: path.display().to_string(),
                    offset: 0,
                    reason: format!(
                        "missing, but the directory holds data files ({f}); refusing to treat it as new: {}",
                        repair_hint(dir)
                    ),
                }),
            };
        }
        Err(e) => return Err(io("reading", &path, e)),
    };
    parse_manifest(&text)
        .map(Some)
        .map_err(|(offset, reason)| Error::Corrupt {
            file: path.display().to_string(),
            offset: offset as u64,
            reason: format!("{reason}; {}", repair_hint(dir)),
        })
}

/// Parses MANIFEST's bytes; errors carry the byte offset and what is wrong.
pub(crate) fn parse_manifest(text: &[u8]) -> Result<Manifest, (usize, String)> {
    let text = std::str::from_utf8(text)
        .map_err(|e| (e.valid_up_to(), "MANIFEST is not UTF-8".to_owned()))?;
    let header_end = text.find('\n').ok_or((0, "no header line".to_owned()))?;
    let version = match &text[..header_end] {
        MANIFEST_HEADER => 2,
        MANIFEST_HEADER_V1 => 1,
        other => {
            return Err((
                0,
                format!("first line is {other:?}, not {MANIFEST_HEADER:?}"),
            ))
        }
    };
    let mut m = Manifest {
        verified: version == 2,
        ..Manifest::default()
    };
    let mut offset = header_end + 1;
    let mut ended = false;
    while offset < text.len() {
        let line_end = text[offset..]
            .find('\n')
            .map(|i| offset + i)
            .ok_or((offset, "last line is cut short (no newline)".to_owned()))?;
        let line = &text[offset..line_end];
        if ended {
            return Err((offset, format!("line {line:?} after the end line")));
        }
        if let Some(crc) = line.strip_prefix("end ").filter(|_| version == 2) {
            let actual = crc32fast::hash(&text.as_bytes()[..offset]);
            if crc != format!("{actual:08x}") {
                return Err((
                    offset,
                    format!("checksum mismatch (end line says {crc}, contents give {actual:08x})"),
                ));
            }
            ended = true;
        } else if let Some(name) = line.strip_prefix("snapshot ") {
            if !matches!(parse_name(name), Some((Kind::Snapshot, _))) {
                return Err((offset, format!("bad snapshot name {name:?}")));
            }
            if m.snapshot.is_some() || !m.segments.is_empty() {
                return Err((offset, "snapshot line out of place".to_owned()));
            }
            m.snapshot = Some(name.to_owned());
        } else if let Some(name) = line.strip_prefix("segment ") {
            let Some((Kind::Segment, n)) = parse_name(name) else {
                return Err((offset, format!("bad segment name {name:?}")));
            };
            if let Some(prev) = m.segments.last().and_then(|s| segment_number(s)) {
                if n == prev {
                    return Err((offset, format!("segment {name} listed twice")));
                }
                if n != prev + 1 {
                    return Err((
                        offset,
                        format!("segment {name} does not follow {} (segments are numbered one after another)", segment_name(prev)),
                    ));
                }
            }
            m.segments.push(name.to_owned());
        } else {
            return Err((offset, format!("unexpected line {line:?}")));
        }
        offset = line_end + 1;
    }
    if version == 2 && !ended {
        return Err((offset, "no end line (MANIFEST cut short)".to_owned()));
    }
    if m.segments.is_empty() {
        return Err((offset, "no segments listed".into()));
    }
    if let Some(s) = &m.snapshot {
        let n = parse_name(s).map_or(0, |(_, n)| n);
        if n != m.base() {
            return Err((
                header_end + 1,
                format!(
                    "snapshot {s} does not match the first segment {} (a snapshot is numbered after the segment that follows it)",
                    m.segments[0]
                ),
            ));
        }
    }
    Ok(m)
}

/// MANIFEST's text for `m` (version 2, with its end line).
pub(crate) fn manifest_text(m: &Manifest) -> String {
    let mut text = format!("{MANIFEST_HEADER}\n");
    if let Some(s) = &m.snapshot {
        text.push_str(&format!("snapshot {s}\n"));
    }
    for s in &m.segments {
        text.push_str(&format!("segment {s}\n"));
    }
    let crc = crc32fast::hash(text.as_bytes());
    text.push_str(&format!("end {crc:08x}\n"));
    text
}

/// Replaces MANIFEST atomically with `m`.
pub(crate) fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), Error> {
    let tmp = dir.join("MANIFEST.tmp");
    let text = manifest_text(m);
    let mut f = File::create(&tmp).map_err(|e| io("creating", &tmp, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| io("writing", &tmp, e))?;
    f.sync_all().map_err(|e| io("syncing", &tmp, e))?;
    let dst = dir.join(MANIFEST);
    std::fs::rename(&tmp, &dst).map_err(|e| io("renaming into place", &dst, e))?;
    fsync_dir(dir)
}

/// The kinds of file a database directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Snapshot,
    Segment,
    /// `snap-*.tmp` or `MANIFEST.tmp`: never renamed into place.
    Tmp,
}

/// The kind and number of a file name of ours (`None` for anything else).
pub(crate) fn parse_name(n: &str) -> Option<(Kind, u64)> {
    let number = |d: &str| {
        (!d.is_empty() && d.len() <= 19 && d.bytes().all(|b| b.is_ascii_digit()))
            .then(|| d.parse().ok())
            .flatten()
    };
    if n == "MANIFEST.tmp" {
        return Some((Kind::Tmp, 0));
    }
    if let Some(d) = n.strip_prefix("log-").and_then(|r| r.strip_suffix(".aof")) {
        return number(d).map(|k| (Kind::Segment, k));
    }
    if let Some(rest) = n.strip_prefix("snap-") {
        if let Some(d) = rest.strip_suffix(".hks") {
            return number(d).map(|k| (Kind::Snapshot, k));
        }
        if rest.ends_with(".tmp") {
            return Some((Kind::Tmp, 0));
        }
    }
    None
}

/// The name of the snapshot after which segment `n` is the first.
pub(crate) fn snapshot_name(n: u64) -> String {
    format!("snap-{n:06}.hks")
}

/// The name of segment number `n`.
pub(crate) fn segment_name(n: u64) -> String {
    format!("log-{n:06}.aof")
}

/// The number in a segment name.
pub(crate) fn segment_number(name: &str) -> Option<u64> {
    match parse_name(name) {
        Some((Kind::Segment, n)) => Some(n),
        _ => None,
    }
}

/// What to do with a file MANIFEST does not list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unlisted {
    /// Provably garbage: removed (why).
    Remove(String),
    /// Not part of the state, not provably garbage: moved to lost+found.
    MoveAside(String),
    /// Newer than what MANIFEST lists and not a crash leftover: MANIFEST is
    /// probably damaged; open refuses.
    Refuse(String),
}

/// Whether a segment file holds no record (at most its header, then zeros).
fn holds_no_record(path: &Path) -> bool {
    match std::fs::read(path) {
        Ok(b) => {
            b.len() <= crate::log::record::SEGMENT_MAGIC.len() || b[8..].iter().all(|&x| x == 0)
        }
        Err(_) => false,
    }
}

/// Every file of ours in `dir` that `m` does not list, with what to do
/// with it, in name order. The rule (docs/DURABILITY.md):
///
/// - `*.tmp`: removed (never renamed into place, so never part of a state);
/// - a segment or snapshot numbered below MANIFEST's first segment: it was
///   superseded by a snapshot; removed when MANIFEST's checksum proves the
///   list, else moved to lost+found;
/// - a segment numbered after every listed one that holds no record: made
///   by a snapshot's first step before MANIFEST listed it; removed;
/// - `snap-N.hks` while MANIFEST lists `log-N.aof` after an earlier
///   segment: a snapshot whose commit did not happen (its contents are all
///   in the listed segments); removed;
/// - anything else (a snapshot or segment MANIFEST should list): refused.
pub(crate) fn classify_unlisted(
    dir: &Path,
    m: &Manifest,
) -> Result<Vec<(String, Unlisted)>, Error> {
    Ok(classify(dir, m, &list_files(dir)?))
}

/// The names of the regular files in `dir`, sorted.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<String>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| io("listing", dir, e))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// [`classify_unlisted`] over a listing of `dir` taken earlier.
pub(crate) fn classify(dir: &Path, m: &Manifest, names: &[String]) -> Vec<(String, Unlisted)> {
    let names = names.iter().filter(|n| !m.lists(n)).cloned();
    let mut out = Vec::new();
    for name in names {
        let Some((kind, k)) = parse_name(&name) else {
            continue;
        };
        let verdict = match kind {
            Kind::Tmp => Unlisted::Remove("an unfinished temporary file".into()),
            _ if k < m.base() => {
                let why = format!(
                    "superseded: MANIFEST starts at {}",
                    m.snapshot.clone().unwrap_or_else(|| m.segments[0].clone())
                );
                if m.verified {
                    Unlisted::Remove(why)
                } else {
                    Unlisted::MoveAside(format!(
                        "{why} (MANIFEST version 1 has no checksum to prove it)"
                    ))
                }
            }
            Kind::Segment if k > m.last() && holds_no_record(&dir.join(&name)) => {
                Unlisted::Remove("an empty segment a snapshot created before listing it".into())
            }
            Kind::Snapshot if k > m.base() && k <= m.last() => Unlisted::Remove(format!(
                "a snapshot whose commit did not happen (its data is in {} onwards)",
                segment_name(k)
            )),
            _ => Unlisted::Refuse(format!(
                "not listed in MANIFEST, yet not older than what it lists: MANIFEST may have lost a line; {}",
                repair_hint(dir)
            )),
        };
        out.push((name, verdict));
    }
    out
}

/// Moves `name` of `dir` to `dir/lost+found/` (never overwriting), appends
/// why to `lost+found/NOTES`, and fsyncs both directories. Returns the new
/// path.
pub(crate) fn move_aside(dir: &Path, name: &str, why: &str) -> Result<PathBuf, Error> {
    let lf = dir.join(LOST_FOUND);
    std::fs::create_dir_all(&lf).map_err(|e| io("creating", &lf, e))?;
    let mut dst = lf.join(name);
    let mut i = 1;
    while dst.exists() {
        dst = lf.join(format!("{name}.{i}"));
        i += 1;
    }
    let src = dir.join(name);
    std::fs::rename(&src, &dst).map_err(|e| io("moving aside", &src, e))?;
    note(&lf, &format!("{} moved here: {why}", dst.display()))?;
    fsync_dir(&lf)?;
    fsync_dir(dir)?;
    Ok(dst)
}

/// Saves `bytes` (cut from `file` at `offset`) as a new file in
/// lost+found, fsynced, with a note of why. Returns its path.
pub(crate) fn save_aside(
    dir: &Path,
    file: &str,
    offset: u64,
    bytes: &[u8],
    why: &str,
) -> Result<PathBuf, Error> {
    let lf = dir.join(LOST_FOUND);
    std::fs::create_dir_all(&lf).map_err(|e| io("creating", &lf, e))?;
    let mut dst = lf.join(format!("{file}.at-{offset}"));
    let mut i = 1;
    while dst.exists() {
        dst = lf.join(format!("{file}.at-{offset}.{i}"));
        i += 1;
    }
    let mut f = File::create(&dst).map_err(|e| io("creating", &dst, e))?;
    f.write_all(bytes).map_err(|e| io("writing", &dst, e))?;
    f.sync_all().map_err(|e| io("syncing", &dst, e))?;
    note(&lf, &format!("{} saved here: {why}", dst.display()))?;
    fsync_dir(&lf)?;
    fsync_dir(dir)?;
    Ok(dst)
}

fn note(lf: &Path, line: &str) -> Result<(), Error> {
    let path = lf.join("NOTES");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| io("opening", &path, e))?;
    writeln!(f, "unix time {stamp}: {line}").map_err(|e| io("writing", &path, e))?;
    f.sync_all().map_err(|e| io("syncing", &path, e))
}

/// Removes (or moves aside) the unlisted files `classify_unlisted` found,
/// after the open has succeeded. Returns what was done, one line each.
pub(crate) fn sweep(dir: &Path, found: &[(String, Unlisted)]) -> Result<Vec<String>, Error> {
    let mut done = Vec::new();
    let mut removed = false;
    for (name, verdict) in found {
        match verdict {
            Unlisted::Remove(why) => {
                let p = dir.join(name);
                std::fs::remove_file(&p).map_err(|e| io("removing", &p, e))?;
                removed = true;
                done.push(format!("removed {}: {why}", p.display()));
            }
            Unlisted::MoveAside(why) => {
                let to = move_aside(dir, name, why)?;
                done.push(format!(
                    "moved {} to {}: {why}",
                    dir.join(name).display(),
                    to.display()
                ));
            }
            Unlisted::Refuse(_) => {}
        }
    }
    if removed {
        fsync_dir(dir)?;
    }
    Ok(done)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_any_width_sort_numerically() {
        assert_eq!(
            parse_name("log-1000000.aof"),
            Some((Kind::Segment, 1_000_000))
        );
        assert_eq!(parse_name("log-000007.aof"), Some((Kind::Segment, 7)));
        assert_eq!(parse_name("snap-12.hks"), Some((Kind::Snapshot, 12)));
        assert_eq!(parse_name("log-.aof"), None);
        assert_eq!(parse_name("log-12a.aof"), None);
        assert_eq!(segment_name(999_999), "log-999999.aof");
        assert_eq!(segment_name(1_000_000), "log-1000000.aof");
        let m = Manifest::new(None, vec![segment_name(999_999), segment_name(1_000_000)]);
        assert_eq!(parse_manifest(manifest_text(&m).as_bytes()).unwrap(), m);
    }

    #[test]
    fn every_altered_byte_of_a_manifest_is_refused_or_harmless() {
        let m = Manifest::new(
            Some(snapshot_name(2)),
            vec![segment_name(2), segment_name(3)],
        );
        let text = manifest_text(&m).into_bytes();
        for i in 0..text.len() {
            for bit in 0..8 {
                let mut t = text.clone();
                t[i] ^= 1 << bit;
                match parse_manifest(&t) {
                    Err(_) => {}
                    Ok(got) => assert_eq!(got, m, "flip of bit {bit} at {i} changed the list"),
                }
            }
        }
        for cut in 0..text.len() {
            assert!(parse_manifest(&text[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn repeated_gapped_or_mismatched_lists_are_refused() {
        for text in [
            "hashkv-manifest 1\nsegment log-000002.aof\nsegment log-000002.aof\n",
            "hashkv-manifest 1\nsegment log-000002.aof\nsegment log-000004.aof\n",
            "hashkv-manifest 1\nsnapshot snap-000009.hks\nsegment log-000002.aof\n",
            "hashkv-manifest 1\n",
        ] {
            assert!(parse_manifest(text.as_bytes()).is_err(), "{text}");
        }
        let v1 = parse_manifest(
            b"hashkv-manifest 1\nsnapshot snap-000002.hks\nsegment log-000002.aof\n",
        )
        .unwrap();
        assert!(!v1.verified);
    }
}
