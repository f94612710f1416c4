//! Snapshots: point-in-time copies of the keyspace written while writers
//! keep going, and the log compaction they allow.
//!
//! A snapshot in a data directory ([`Store::snapshot`]) goes through these
//! file-system steps, each durable before the next; a crash between any two
//! leaves a directory that opens to the acknowledged state:
//!
//! 1. create the next log segment `log-N.aof` (header only, fsynced);
//! 2. MANIFEST += `log-N.aof` (the old snapshot and segments stay listed);
//! 3. the switch: with every shard locked, the old segment is fsynced and
//!    the writer moves to `log-N.aof`, and every key is marked "not captured"
//!    ([`crate::keyspace::Capture`]); writers then go on;
//! 4. the keys are written to `snap-N.hks.tmp` as of the switch (a writer
//!    about to change a key not captured yet captures it first), fsynced;
//! 5. rename to `snap-N.hks`, fsync the directory;
//! 6. MANIFEST = `snap-N.hks` + `log-N.aof`;
//! 7. the old snapshot and segments are deleted (open removes files
//!    numbered below what a checksummed MANIFEST lists, so a crash here
//!    only leaves garbage to clean).
//!
//! A failure before the switch puts MANIFEST back and removes the empty
//! new segment, so the writer's segment stays the last one listed and the
//! next attempt reuses the number. After a failure past the switch, the
//! next attempt reuses the segment it switched to if nothing was written
//! since (a snapshot of that moment needs no new segment).
//!
//! The file format is in [`format`] and docs/FORMAT.md.

pub(crate) mod buf;
pub(crate) mod format;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::dir::{self, Manifest};
use crate::error::Error;
use crate::keyspace::{Capture, Keyspace, SHARDS};
use crate::log::record::SEGMENT_MAGIC;
use crate::log::writer::LogWriter;
use crate::options::Options;
use buf::BigBuf;
use format::{Header, SnapshotWriter, SECTION_TARGET};

/// What a snapshot wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotInfo {
    /// The snapshot file.
    pub path: PathBuf,
    /// Keys in it.
    pub keys: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// How long writing it took (the switch included).
    pub duration: Duration,
    /// How long writers were held at the switch.
    pub switch: Duration,
    /// How much of `duration` was the final fsync of the file (waiting for
    /// the disk).
    pub fsync: Duration,
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// Runs the capture of `cap` (begun at the switch) over every shard and
/// what FLUSHDB left, writing sections of about [`SECTION_TARGET`] bytes,
/// and returns the snapshot file. The capture always runs to its end, even
/// after a write error, because it also restores every key's mark.
fn capture_all(ks: &Keyspace, cap: &Capture) -> std::io::Result<Option<SnapshotWriter>> {
    let mut out = BigBuf::default();
    let mut count = 0u64;
    let mut flush = |o: &mut BigBuf, c: &mut u64| {
        if o.len() >= SECTION_TARGET {
            cap.emit(o.as_slice(), *c, true);
            o.clear();
            *c = 0;
        }
        if cap.pending_bytes() >= SECTION_TARGET {
            cap.drain();
        }
    };
    for i in 0..SHARDS {
        ks.capture_shard(i, &mut out, &mut count, &mut flush);
    }
    ks.capture_orphans(cap, &mut out, &mut count, &mut flush);
    cap.emit(out.as_slice(), count, true);
    cap.finish()
}

/// Writes a snapshot of `ks` as of now to `path` (through `path.tmp` and a
/// rename), without touching any log: `hashkv snapshot --output` and
/// [`crate::Db::snapshot_to`].
pub(crate) fn write_standalone(
    ks: &Keyspace,
    opts: &Options,
    path: &Path,
) -> Result<SnapshotInfo, Error> {
    let _one = ks.capture_lock.lock();
    let started = Instant::now();
    let tmp = tmp_path(path);
    let file = File::create(&tmp).map_err(|e| io("creating", &tmp, e))?;
    let w = SnapshotWriter::new(file, &Header::new(opts, 0), opts.snapshot_compression)
        .map_err(|e| io("writing snapshot", &tmp, e))?;
    let cap = Arc::new(Capture::new(Some(w)));
    let switch = Instant::now();
    ks.begin_capture(&cap, || Ok(()))?;
    let switch = switch.elapsed();
    let res = capture_all(ks, &cap)
        .and_then(|w| w.ok_or_else(|| std::io::Error::other("snapshot file lost")))
        .and_then(SnapshotWriter::finish)
        .map_err(|e| io("writing snapshot", &tmp, e));
    let (keys, bytes, fsync) = match res {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, path).map_err(|e| io("renaming into place", path, e))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        dir::fsync_dir(parent)?;
    }
    Ok(SnapshotInfo {
        path: path.to_path_buf(),
        keys,
        bytes,
        duration: started.elapsed(),
        switch,
        fsync,
    })
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// When the last snapshot (or the open) happened, for the automatic rules.
struct Last {
    at: Instant,
    appended: u64,
    /// After a failed automatic snapshot: not before this.
    retry_at: Option<Instant>,
}

/// A data directory's log writer, MANIFEST and snapshot schedule.
pub(crate) struct Store {
    pub(crate) dir: PathBuf,
    pub(crate) writer: Arc<LogWriter>,
    /// Held for a whole snapshot: one at a time.
    manifest: Mutex<Manifest>,
    /// The segment a snapshot switched to and the records appended then,
    /// until that snapshot completes (a failed one's successor may reuse it).
    switched: Mutex<Option<(u64, u64)>>,
    last: Mutex<Last>,
    /// Snapshot steps to run before stopping (tests of crashes between
    /// steps); `usize::MAX` normally.
    stop_after: std::sync::atomic::AtomicUsize,
}

/// A snapshot stopped on purpose between two steps (crash tests).
fn stopped(step: usize) -> Error {
    Error::Io {
        op: "snapshot stopped on purpose after step",
        path: step.to_string(),
        source: std::io::Error::other("simulated crash"),
    }
}

impl Store {
    pub(crate) fn new(dir: PathBuf, writer: Arc<LogWriter>, manifest: Manifest) -> Store {
        Store {
            dir,
            last: Mutex::new(Last {
                at: Instant::now(),
                appended: writer.appended(),
                retry_at: None,
            }),
            writer,
            manifest: Mutex::new(manifest),
            switched: Mutex::new(None),
            stop_after: std::sync::atomic::AtomicUsize::new(usize::MAX),
        }
    }

    /// Makes the next snapshot stop (as if the process died) after `steps`
    /// of its file-system steps.
    pub(crate) fn stop_next_snapshot_after(&self, steps: usize) {
        self.stop_after
            .store(steps, std::sync::atomic::Ordering::SeqCst);
    }

    /// Takes a snapshot into the directory and drops the log it covers.
    pub(crate) fn snapshot(&self, ks: &Keyspace, opts: &Options) -> Result<SnapshotInfo, Error> {
        let stop_after = self
            .stop_after
            .swap(usize::MAX, std::sync::atomic::Ordering::SeqCst);
        let check = |step: usize| {
            if step >= stop_after {
                Err(stopped(step))
            } else {
                Ok(())
            }
        };
        let mut m = self.manifest.lock();
        let _one = ks.capture_lock.lock();
        let started = Instant::now();
        // 1. The next segment.
        // A snapshot that failed after its switch, with nothing written
        // since, left the writer on a segment that starts where a snapshot
        // now would: use it again rather than take another number.
        let reuse = self
            .switched
            .lock()
            .is_some_and(|(n0, a0)| n0 == m.last() && a0 == self.writer.appended());
        let before = m.clone();
        let n = if reuse { m.last() } else { m.last() + 1 };
        let seg_name = dir::segment_name(n);
        let seg_path = self.dir.join(&seg_name);
        if !reuse {
            dir::create_segment(&self.dir, &seg_name)?;
        }
        check(1)?;
        // Until the switch, a failure undoes steps 1 and 2: MANIFEST lists
        // the writer's segment last again and the number is free.
        let undo = |m: &mut Manifest, e: Error| -> Error {
            if reuse || matches!(&e, Error::Io { op, .. } if op.starts_with("snapshot stopped")) {
                return e;
            }
            if *m != before && dir::write_manifest(&self.dir, &before).is_ok() {
                *m = before.clone();
            }
            if *m == before {
                let _ = std::fs::remove_file(&seg_path);
            }
            e
        };
        // 2. Listed before anything is written to it.
        if !reuse {
            let mut listed = m.clone();
            listed.segments.push(seg_name.clone());
            dir::write_manifest(&self.dir, &listed).map_err(|e| undo(&mut m, e))?;
            *m = listed;
        }
        check(2)?;
        // 3. The switch. Sync the old segment first so the fsync under the
        // locks has little left to do.
        let snap_name = dir::snapshot_name(n);
        let snap_path = self.dir.join(&snap_name);
        let tmp = tmp_path(&snap_path);
        let prepared = if reuse {
            Ok(None)
        } else {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&seg_path)
                .map(Some)
                .map_err(|e| io("opening", &seg_path, e))
        }
        .and_then(|file| self.writer.sync_now().map(|()| file))
        .and_then(|file| {
            File::create(&tmp)
                .and_then(|f| {
                    SnapshotWriter::new(f, &Header::new(opts, n), opts.snapshot_compression)
                })
                .map(|w| (file, w))
                .map_err(|e| io("writing snapshot", &tmp, e))
        });
        let (file, w) = match prepared {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(undo(&mut m, e));
            }
        };
        let cap = Arc::new(Capture::new(Some(w)));
        let switch = Instant::now();
        let appended_at_switch = match ks.begin_capture(&cap, || {
            if let Some(file) = file {
                self.writer
                    .rotate(file, SEGMENT_MAGIC.len() as u64, seg_path.clone())?;
            }
            Ok(self.writer.appended())
        }) {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(undo(&mut m, e));
            }
        };
        *self.switched.lock() = Some((n, appended_at_switch));
        let switch = switch.elapsed();
        // 4. The keys as of the switch; the capture always runs to its end
        // (it restores the keys' marks).
        let written = capture_all(ks, &cap)
            .and_then(|w| w.ok_or_else(|| std::io::Error::other("snapshot file lost")))
            .map_err(|e| io("writing snapshot", &tmp, e))
            .and_then(|w| {
                check(3)?;
                w.finish().map_err(|e| io("writing snapshot", &tmp, e))
            });
        let (keys, bytes, fsync) = match written {
            Ok(v) => v,
            Err(e) => {
                if !matches!(&e, Error::Io { op, .. } if op.starts_with("snapshot stopped")) {
                    let _ = std::fs::remove_file(&tmp);
                }
                return Err(e);
            }
        };
        check(4)?;
        // 5. Into place.
        std::fs::rename(&tmp, &snap_path).map_err(|e| io("renaming into place", &snap_path, e))?;
        check(5)?;
        dir::fsync_dir(&self.dir)?;
        check(6)?;
        // 6. MANIFEST names the new snapshot and only the new segment.
        let next = Manifest::new(Some(snap_name), vec![seg_name]);
        dir::write_manifest(&self.dir, &next)?;
        *m = next;
        check(7)?;
        // 7. What it replaced: everything numbered below the new snapshot.
        remove_superseded(&self.dir, &before)?;
        *self.switched.lock() = None;
        *self.last.lock() = Last {
            at: started,
            appended: appended_at_switch,
            retry_at: None,
        };
        Ok(SnapshotInfo {
            path: snap_path,
            keys,
            bytes,
            duration: started.elapsed(),
            switch,
            fsync,
        })
    }

    /// Whether a rule of `opts` calls for a snapshot now.
    pub(crate) fn due(&self, opts: &Options) -> bool {
        let last = self.last.lock();
        if last.retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let changes = self.writer.appended().saturating_sub(last.appended);
        if changes == 0 {
            return false;
        }
        let elapsed = last.at.elapsed();
        opts.save
            .iter()
            .any(|&(after, min)| elapsed >= after && changes >= min)
            || opts
                .compact_log_bytes
                .is_some_and(|b| self.writer.segment_len() >= b)
    }

    /// The MANIFEST in force.
    pub(crate) fn manifest(&self) -> Manifest {
        self.manifest.lock().clone()
    }

    /// Postpones the automatic rules by `delay` after a failed snapshot
    /// (Redis waits 5 s before retrying a failed BGSAVE).
    pub(crate) fn back_off(&self, delay: Duration) {
        self.last.lock().retry_at = Some(Instant::now() + delay);
    }
}

/// Makes `dir` (missing or empty of hashkv files) a database directory
/// whose state is the snapshot file `file`: checks the whole file first,
/// then copies it in as the directory's snapshot with an empty log.
/// Returns the number of keys.
pub(crate) fn restore(file: &Path, dir: &Path, opts: &Options) -> Result<u64, Error> {
    // Every checksum and entry is checked before anything is created.
    let loaded = format::read_file(file, opts, |_| Ok(()))?;
    std::fs::create_dir_all(dir).map_err(|e| io("creating directory", dir, e))?;
    let _lock = dir::lock(dir)?;
    if dir::read_manifest(dir)?.is_some() {
        return Err(Error::Io {
            op: "restoring into",
            path: dir.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the directory already holds a database; restore into a new directory",
            ),
        });
    }
    let snap_name = dir::snapshot_name(1);
    let dst = dir.join(&snap_name);
    let tmp = tmp_path(&dst);
    std::fs::copy(file, &tmp).map_err(|e| io("copying snapshot to", &tmp, e))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("syncing", &tmp, e))?;
    std::fs::rename(&tmp, &dst).map_err(|e| io("renaming into place", &dst, e))?;
    let seg = dir::segment_name(1);
    dir::create_segment(dir, &seg)?;
    dir::write_manifest(dir, &Manifest::new(Some(snap_name), vec![seg]))?;
    Ok(loaded.keys)
}

/// Removes the files `old` listed (the snapshot just committed covers
/// them), then fsyncs the directory.
fn remove_superseded(dir: &Path, old: &Manifest) -> Result<(), Error> {
    for name in old.snapshot.iter().chain(&old.segments) {
        let p = dir.join(name);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("removing", &p, e)),
        }
    }
    dir::fsync_dir(dir)
}
