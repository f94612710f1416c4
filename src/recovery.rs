//! Opening a directory: MANIFEST, then replay of every listed log segment
//! through the same `apply` the live path uses, then the encodings chosen
//! again from each hash's contents. Returns a [`RecoveryReport`] that says
//! what was replayed, cut or skipped; nothing is dropped silently.

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
pub struct TornTail {
    /// The segment file.
    pub file: String,
    /// Where the cut was made (end of the last whole record).
    pub offset: u64,
    /// Bytes dropped (one partial record).
    pub bytes: u64,
}

/// A damaged byte range skipped in salvage mode.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    })
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
        // A fresh directory (or a crash before its MANIFEST existed).
        let name = dir::segment_name(1);
        let path = dir::create_segment(dir, &name)?;
        let m = dir::Manifest {
            snapshot: None,
            segments: vec![name],
        };
        dir::write_manifest(dir, &m)?;
        return Ok((report, open_append(&path, None)?, m));
    };
    // Files a crash left behind (a half-written snapshot, segments a
    // finished snapshot covers) are not part of the state: remove them.
    dir::remove_unlisted(dir, &manifest)?;
    if let Some(name) = &manifest.snapshot {
        let path = dir.join(name);
        let loaded = crate::snapshot::format::read_file(&path, opts, |e| {
            let mut shard = ks.shard(e.key).write();
            match e.hash {
                crate::snapshot::format::EntryHash::Compact(buf) => {
                    shard.put_compact(e.key, buf, e.ttl)
                }
                crate::snapshot::format::EntryHash::Owned(h) => shard.put(e.key, h, e.ttl),
            }
            .map_err(|err| format!("key {:?}: {err}", String::from_utf8_lossy(e.key)))
        })?;
        report.snapshot = Some(path.display().to_string());
        report.snapshot_keys = loaded.keys;
    }
    let segs = &manifest.segments;
    let salvage = opts.recovery == RecoveryMode::Salvage;
    let mut last_end = None;
    for (i, name) in segs.iter().enumerate() {
        let path = dir.join(name);
        let map = map_segment(&path)?;
        let buf: &[u8] = map.as_deref().unwrap_or(&[]);
        let last = i + 1 == segs.len();
        let scan = reader::scan(buf, last, salvage, |e| {
            // Errors here are the ones the live command met after logging
            // (a hash outgrowing its limits); replay meets them the same way.
            let _ = ks.apply(&e, opts);
        })
        .map_err(|bad| Error::Corrupt {
            file: path.display().to_string(),
            offset: bad.offset,
            reason: bad.reason,
        })?;
        drop(map);
        report.segments += 1;
        report.records += scan.records;
        last_end = Some(scan.valid_end);
        for (start, end, reason) in scan.skipped {
            report.skipped.push(Skipped {
                file: path.display().to_string(),
                start,
                end,
                reason,
            });
        }
        if scan.torn_bytes > 0 {
            // Cut the torn tail so appends continue after the last whole
            // record, and make the cut durable before going on.
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| io("opening", &path, e))?;
            f.set_len(scan.valid_end)
                .map_err(|e| io("truncating torn tail of", &path, e))?;
            f.sync_all().map_err(|e| io("syncing", &path, e))?;
            report.torn_tail = Some(TornTail {
                file: path.display().to_string(),
                offset: scan.valid_end,
                bytes: scan.torn_bytes,
            });
        }
    }
    ks.rebuild_encodings(opts);
    let last = segs.last().cloned().unwrap_or_else(|| dir::segment_name(1));
    if !report.skipped.is_empty() {
        // Salvaged: write the recovered state to a fresh segment so the
        // damaged ranges are gone from the log for good.
        let name = dir::segment_name(dir::segment_number(&last) + 1);
        let path = rewrite(dir, &name, ks)?;
        let m = dir::Manifest {
            snapshot: None,
            segments: vec![name],
        };
        dir::write_manifest(dir, &m)?;
        dir::remove_unlisted(dir, &m)?;
        report.rewritten = true;
        return Ok((report, open_append(&path, None)?, m));
    }
    Ok((report, open_append(&dir.join(last), last_end)?, manifest))
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
