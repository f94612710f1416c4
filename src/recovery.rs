//! Opening a directory: MANIFEST, then replay of every listed log segment
//! through the same `apply` the live path uses, then the encodings chosen
//! again from each hash's contents. Returns a [`RecoveryReport`] that says
//! what was replayed, cut, skipped, moved aside or removed; nothing is
//! dropped silently.
//!
//! Open never deletes or shortens what it cannot prove is garbage: a
//! MANIFEST that is damaged, missing beside data files, or names a missing
//! file is refused before anything is touched; unlisted files follow the
//! rule of `dir::classify_unlisted` (docs/FORMAT.md); the bytes of a torn tail are saved
//! to `lost+found/` before the cut (unless they are all zeros).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::dir;
use crate::error::Error;
use crate::keyspace::Keyspace;
use crate::log::{reader, record};
use crate::options::{Options, RecoveryMode};

/// A torn tail that was cut off the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The segment file.
    pub file: String,
    /// Where the cut was made (end of the last whole record).
    pub offset: u64,
    /// Bytes dropped (one partial record, or the unsynced rest of the log
    /// after a power cut).
    pub bytes: u64,
    /// Where the cut bytes were saved (None when they were all zeros or the
    /// segment was shorter than its header).
    pub saved_to: Option<String>,
}

/// A damaged byte range skipped in salvage mode.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Skipped {
    /// The segment file.
    pub file: String,
    /// First byte skipped.
    pub start: u64,
    /// One past the last byte skipped.
    pub end: u64,
    /// What was wrong at `start`.
    pub reason: String,
}

/// What opening a directory found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The snapshot loaded first, if MANIFEST names one.
    pub snapshot: Option<String>,
    /// Keys loaded from that snapshot.
    pub snapshot_keys: u64,
    /// Log segments replayed.
    pub segments: usize,
    /// Records replayed.
    pub records: u64,
    /// The torn tail cut off the last segment, if there was one.
    pub torn_tail: Option<TornTail>,
    /// Ranges skipped (salvage mode only).
    pub skipped: Vec<Skipped>,
    /// Whether the log was rewritten from the recovered state (salvage).
    pub rewritten: bool,
    /// Files removed as provable garbage, one line each saying why.
    pub removed: Vec<String>,
    /// Files moved to `lost+found/`, one line each saying why.
    pub moved_aside: Vec<String>,
    /// Other changes made on open (a version-1 log or MANIFEST upgraded, a
    /// segment sealed), one line each.
    pub notes: Vec<String>,
}

impl RecoveryReport {
    /// One line per thing open cut, skipped, saved, moved, removed or
    /// rewrote (empty for a clean open): what the tool prints to stderr.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(t) = &self.torn_tail {
            let saved = t
                .saved_to
                .as_ref()
                .map_or(String::new(), |p| format!(" (saved to {p})"));
            out.push(format!(
                "cut a torn tail of {} bytes at byte {} of {}{saved}",
                t.bytes, t.offset, t.file
            ));
        }
        for s in &self.skipped {
            out.push(format!(
                "salvage skipped bytes {}..{} of {}: {}",
                s.start, s.end, s.file, s.reason
            ));
        }
        if self.rewritten {
            out.push("rewrote the log from every valid record".to_owned());
        }
        out.extend(self.removed.iter().cloned());
        out.extend(self.moved_aside.iter().cloned());
        out.extend(self.notes.iter().cloned());
        out
    }
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// The open segment to append to after recovery.
pub(crate) struct OpenLog {
    pub(crate) file: File,
    pub(crate) len: u64,
    pub(crate) path: PathBuf,
    /// How far a sync mark already vouches for the segment (so a reopen
    /// that writes nothing adds no mark).
    pub(crate) marked: u64,
}

/// Opens `path` to append after its data: at `len` when the scan found the
/// end, else at the file's length.
fn open_append(path: &Path, len: Option<u64>) -> Result<OpenLog, Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io("opening for append", path, e))?;
    let len = match len {
        Some(len) => len,
        None => file
            .metadata()
            .map_err(|e| io("reading size of", path, e))?
            .len(),
    };
    Ok(OpenLog {
        file,
        len,
        path: path.to_path_buf(),
        marked: 0,
    })
}

fn corrupt(file: &Path, offset: u64, reason: String) -> Error {
    Error::Corrupt {
        file: file.display().to_string(),
        offset,
        reason,
    }
}

/// Checks what MANIFEST names is all there and no unlisted file says
/// MANIFEST lost a line: the unlisted files and what to do with them.
pub(crate) fn vet(dir: &Path, m: &dir::Manifest) -> Result<Vec<(String, dir::Unlisted)>, Error> {
    for name in m.snapshot.iter().chain(&m.segments) {
        if !dir.join(name).is_file() {
            return Err(corrupt(
                &dir.join(dir::MANIFEST),
                0,
                format!(
                    "lists {name}, which is missing; `hashkv repair {}` rebuilds MANIFEST from the files present",
                    dir.display()
                ),
            ));
        }
    }
    let unlisted = dir::classify_unlisted(dir, m)?;
    if let Some((name, dir::Unlisted::Refuse(why))) = unlisted
        .iter()
        .find(|(_, v)| matches!(v, dir::Unlisted::Refuse(_)))
    {
        return Err(corrupt(&dir.join(name), 0, why.clone()));
    }
    Ok(unlisted)
}

/// Makes `path` a segment holding only its header, fsynced.
fn rewrite_header(path: &Path) -> Result<(), Error> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io("opening", path, e))?;
    f.set_len(0)
        .and_then(|()| f.write_all(record::SEGMENT_MAGIC))
        .and_then(|()| f.sync_all())
        .map_err(|e| io("rewriting the header of", path, e))
}

/// Appends a seal at `at` (the end of the data) of a segment the writer
/// will not come back to, and makes it durable.
fn seal(path: &Path, at: u64) -> Result<(), Error> {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io("opening", path, e))?;
    let m = record::mark(record::MARK_SEAL, at);
    f.set_len(at)
        .and_then(|()| f.write_all_at(&m, at))
        .and_then(|()| f.sync_all())
        .map_err(|e| io("sealing", path, e))
}

/// Loads `dir`'s snapshot and replays its log into `ks`; returns the report,
/// the segment to append to and the MANIFEST now in force.
pub(crate) fn recover(
    dir: &Path,
    ks: &Keyspace,
    opts: &Options,
) -> Result<(RecoveryReport, OpenLog, dir::Manifest), Error> {
    let mut report = RecoveryReport::default();
    let Some(manifest) = dir::read_manifest(dir)? else {
        // A directory without a MANIFEST and without data files: new.
        let name = dir::segment_name(1);
        let path = dir::create_segment(dir, &name)?;
        let m = dir::Manifest::new(None, vec![name]);
        dir::write_manifest(dir, &m)?;
        return Ok((report, open_append(&path, None)?, m));
    };
    // Nothing is changed until every listed file is known to be there and
    // no unlisted one suggests MANIFEST lost a line.
    let unlisted = vet(dir, &manifest)?;
    if let Some(name) = &manifest.snapshot {
        let path = dir.join(name);
        let presize = |keys: u64| ks.reserve_keys(keys);
        let loaded = crate::snapshot::format::read_file_presized(&path, opts, presize, |batch| {
            ks.load_batch(batch)
        })?;
        report.snapshot = Some(path.display().to_string());
        report.snapshot_keys = loaded.keys;
    }
    let segs = &manifest.segments;
    let salvage = opts.recovery == RecoveryMode::Salvage;
    let maps = segs
        .iter()
        .map(|name| map_segment(&dir.join(name)))
        .collect::<Result<Vec<_>, Error>>()?;
    let bufs: Vec<&[u8]> = maps.iter().map(|m| m.as_deref().unwrap_or(&[])).collect();
    // A segment may end torn only if no later one holds data: the writer
    // moves on only after fsyncing (and sealing) it.
    let mut tail_allowed = vec![true; bufs.len()];
    for i in (0..bufs.len().saturating_sub(1)).rev() {
        tail_allowed[i] = tail_allowed[i + 1] && !reader::holds_data(bufs[i + 1]);
    }
    let mut scans = Vec::with_capacity(bufs.len());
    let mut torn_cuts: Vec<Option<Vec<u8>>> = Vec::with_capacity(bufs.len());
    for (i, name) in segs.iter().enumerate() {
        let path = dir.join(name);
        let scan = reader::scan(bufs[i], tail_allowed[i], salvage, |e| {
            // Errors here are the ones the live command met after logging
            // (a hash outgrowing its limits); replay meets them the same way.
            let _ = ks.apply(&e, opts);
        })
        .map_err(|bad| corrupt(&path, bad.offset, bad.reason))?;
        report.segments += 1;
        report.records += scan.records;
        for (start, end, reason) in &scan.skipped {
            report.skipped.push(Skipped {
                file: path.display().to_string(),
                start: *start,
                end: *end,
                reason: reason.clone(),
            });
        }
        // What a torn tail cuts is kept until every segment has checked
        // out: nothing is written while the open may still fail.
        let cut = if scan.torn_bytes > 0 && !scan.torn_header {
            // Up to the last non-zero byte: the reserved space after it is
            // not data.
            let from = (scan.valid_end as usize).min(bufs[i].len());
            let rest = &bufs[i][from..];
            let end = rest.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            (end > 0).then(|| rest[..end].to_vec())
        } else {
            None
        };
        torn_cuts.push(cut);
        scans.push(scan);
    }
    drop(bufs);
    drop(maps);
    for (i, scan) in scans.iter().enumerate() {
        let name = &segs[i];
        let path = dir.join(name);
        if scan.torn_bytes > 0 || scan.torn_header {
            // Save what is cut (unless it is only zeros), then cut it so
            // appends continue after the last whole frame.
            let saved_to = match &torn_cuts[i] {
                Some(bytes) => {
                    let why = format!(
                        "torn tail of {name} from byte {}: written after the last fsync the log vouches for, so never durable",
                        scan.valid_end
                    );
                    Some(
                        dir::save_aside(dir, name, scan.valid_end, bytes, &why)?
                            .display()
                            .to_string(),
                    )
                }
                None => None,
            };
            report.torn_tail = Some(TornTail {
                file: path.display().to_string(),
                offset: if scan.torn_header { 0 } else { scan.valid_end },
                bytes: scan.torn_bytes,
                saved_to,
            });
        }
        if scan.torn_header {
            rewrite_header(&path)?;
        } else if scan.torn_bytes > 0 {
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| io("opening", &path, e))?;
            f.set_len(scan.valid_end)
                .map_err(|e| io("truncating torn tail of", &path, e))?;
            f.sync_all().map_err(|e| io("syncing", &path, e))?;
        }
        // A segment left for a later one is sealed, as the writer would
        // have done, so the later one may receive data.
        let last = i + 1 == segs.len();
        if !last && scan.version >= 2 && !scan.sealed && scan.skipped.is_empty() {
            seal(&path, scan.valid_end)?;
            report.notes.push(format!(
                "sealed {} at byte {}",
                path.display(),
                scan.valid_end
            ));
        }
    }
    ks.rebuild_encodings(opts);
    let last = segs.last().cloned().unwrap_or_else(|| dir::segment_name(1));
    let last_scan = scans.last();
    if !report.skipped.is_empty() {
        // Salvaged: write the recovered state to a fresh segment so the
        // damaged ranges are gone from the log, and move the damaged files
        // aside (never delete them).
        let n = manifest.last() + 1;
        let name = dir::segment_name(n);
        let path = rewrite(dir, &name, ks)?;
        let m = dir::Manifest::new(None, vec![name]);
        dir::write_manifest(dir, &m)?;
        for old in manifest.snapshot.iter().chain(&manifest.segments) {
            let to = dir::move_aside(dir, old, "replaced by the log salvage rewrote")?;
            report.moved_aside.push(format!(
                "moved {} to {}: salvage rewrote the log",
                dir.join(old).display(),
                to.display()
            ));
        }
        report.rewritten = true;
        report.removed = dir::sweep(dir, &unlisted)?;
        return Ok((report, open_append(&path, None)?, m));
    }
    let mut m = manifest.clone();
    let mut append_to = dir.join(&last);
    let mut append_at = last_scan.map(|s| s.valid_end);
    if last_scan.is_some_and(|s| s.version == 1) {
        // Continue in a segment of the current format.
        let name = dir::segment_name(m.last() + 1);
        append_to = dir::create_segment(dir, &name)?;
        append_at = None;
        m.segments.push(name.clone());
        report
            .notes
            .push(format!("continued the log in {name} (log format 2)"));
    }
    for line in dir::sweep(dir, &unlisted)? {
        if line.starts_with("moved") {
            report.moved_aside.push(line);
        } else {
            report.removed.push(line);
        }
    }
    if m != manifest || !manifest.verified {
        m.verified = true;
        dir::write_manifest(dir, &m)?;
        if !manifest.verified {
            report
                .notes
                .push("rewrote MANIFEST in version 2 (with a checksum)".to_owned());
        }
    }
    let mut log = open_append(&append_to, append_at)?;
    if let Some(s) = last_scan.filter(|_| append_at.is_some()) {
        // A segment ending in a mark that vouches for all before it needs
        // no new mark until something is written.
        if s.synced_through + record::MARK_FRAME as u64 == s.valid_end {
            log.marked = s.valid_end;
        } else if s.synced_through > 0 && report.torn_tail.is_none() {
            report.notes.push(format!(
                "{} does not end with the sync mark a clean close leaves (the last process writing it crashed, or the file was cut): bytes {}..{} were replayed, but no fsync vouched for them",
                append_to.display(),
                s.synced_through,
                s.valid_end
            ));
        }
    }
    Ok((report, log, m))
}

/// Maps a log segment read-only (`None` for an empty file). Mapping rather
/// than reading keeps a big segment out of malloc (see
/// `snapshot::buf` on why that matters) and costs no copy.
pub(crate) fn map_segment(path: &Path) -> Result<Option<memmap2::Mmap>, Error> {
    let file = File::open(path).map_err(|e| io("opening", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| io("reading size of", path, e))?
        .len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: recovery runs with the directory's LOCK held, before any
    // writer exists; nothing else writes or truncates the segment while
    // it is mapped (the torn-tail cut happens after the mapping is
    // dropped).
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
        .map_err(|e| io("mapping", path, e))?;
    Ok(Some(map))
}

/// Writes the whole state of `ks` as a new segment `name`, fsynced.
pub(crate) fn rewrite(dir: &Path, name: &str, ks: &Keyspace) -> Result<PathBuf, Error> {
    let path = dir::create_segment(dir, name)?;
    let mut f = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| io("opening", &path, e))?;
    let mut buf = Vec::new();
    let mut err = None;
    ks.for_each_state_effect(|e| {
        if err.is_some() {
            return;
        }
        let n = match record::encode(e, &mut buf) {
            Ok(n) => n,
            Err(m) => {
                err = Some(io(
                    "encoding",
                    &path,
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, m),
                ));
                return;
            }
        };
        if let Err(e) = f.write_all(&buf[..n]) {
            err = Some(io("writing", &path, e));
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    f.sync_all().map_err(|e| io("syncing", &path, e))?;
    Ok(path)
}
