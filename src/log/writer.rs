//! [`LogWriter`]: appends framed records to the open segment and makes them
//! durable according to the [`FsyncPolicy`].
//!
//! - `append` runs with the effect's shard locks held: it encodes the record
//!   and copies it into the segment's mapping ([`MappedSegment`]; in the
//!   page cache at once, so a process crash loses nothing that was
//!   acknowledged). A failed or short write is cut back off the file, so the
//!   log never holds half a record and memory is never changed; if even that
//!   fails the writer is poisoned.
//! - `sync` runs after the locks are released. `Always`: group commit — one
//!   caller runs `fdatasync` for everything appended so far while the others
//!   wait for it and share it. `EverySec`: a background thread syncs once a
//!   second. `No`: the OS decides.
//! - After each completed fsync a sync mark records how far the segment is
//!   durable; before moving to the next segment the writer seals this one
//!   (see [`record`] and [`super::reader`] for how open uses them).
//! - A failed fsync poisons the writer (the kernel may have dropped the dirty
//!   pages; retrying cannot be trusted): further writes fail with
//!   [`Error::Poisoned`] naming the first error, reads keep working.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::file::{SegmentFile, SegmentSync};
use super::mapped::MappedSegment;
use super::record;
use crate::error::Error;
use crate::keyspace::{Effect, Journal};
use crate::options::FsyncPolicy;

/// At most this many yields while gathering writers for one group fsync.
const GATHER_YIELDS: usize = 32;

struct Inner {
    file: Box<dyn SegmentFile>,
    /// A second handle on the segment, for fsync without the append lock.
    sync_file: Arc<dyn SegmentSync>,
    path: PathBuf,
    len: u64,
    /// Records appended (what the snapshot rules count).
    seq: u64,
    /// Frames that must be durable for a sync to count (records and
    /// seals; sync marks are not, or every mark would call for a sync).
    written: u64,
    /// The end of the segment when the last sync mark was written (what
    /// needs no new mark).
    marked: u64,
    /// The segment is sealed: nothing more is written to it.
    sealed: bool,
    /// Counts segment switches, so a sync started on one segment does not
    /// write its mark into the next.
    generation: u64,
    /// The open segment's number (from its name).
    number: u64,
}

#[derive(Default)]
struct SyncState {
    synced: u64,
    syncing: bool,
}

/// The log writer of an open database.
pub(crate) struct LogWriter {
    inner: Mutex<Inner>,
    state: Mutex<SyncState>,
    cond: Condvar,
    poisoned: std::sync::atomic::AtomicBool,
    /// The error that poisoned the writer, for every later refusal.
    cause: Mutex<String>,
    policy: FsyncPolicy,
    /// Where each record is pushed as it is appended (for subscribers).
    feed: std::sync::OnceLock<Arc<crate::feed::Feed>>,
}

/// The number in a segment file's name (0 for a name that is not one).
fn number_of(path: &std::path::Path) -> u64 {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(crate::dir::segment_number)
        .unwrap_or(0)
}

fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

impl LogWriter {
    /// A writer appending to `file` (opened read-write) after `len`, the
    /// end of its last whole record, through a [`MappedSegment`].
    pub(crate) fn new(
        file: File,
        len: u64,
        path: PathBuf,
        policy: FsyncPolicy,
    ) -> Result<Arc<Self>, Error> {
        let sync_file = file
            .try_clone()
            .map_err(|e| io("cloning log handle", &path, e))?;
        let seg = MappedSegment::new(file, len).map_err(|e| io("reading size of", &path, e))?;
        Self::with_files(Box::new(seg), Arc::new(sync_file), len, path, policy)
    }

    /// A writer over any [`SegmentFile`] (the fault-injection seam).
    pub(crate) fn with_files(
        file: Box<dyn SegmentFile>,
        sync_file: Arc<dyn SegmentSync>,
        len: u64,
        path: PathBuf,
        policy: FsyncPolicy,
    ) -> Result<Arc<Self>, Error> {
        let w = Arc::new(LogWriter {
            inner: Mutex::new(Inner {
                file,
                sync_file,
                path: path.clone(),
                len,
                seq: 0,
                written: 0,
                marked: 0,
                sealed: false,
                generation: 0,
                number: number_of(&path),
            }),
            state: Mutex::new(SyncState::default()),
            cond: Condvar::new(),
            poisoned: std::sync::atomic::AtomicBool::new(false),
            cause: Mutex::new(String::new()),
            policy,
            feed: std::sync::OnceLock::new(),
        });
        if policy == FsyncPolicy::EverySec {
            let weak = Arc::downgrade(&w);
            std::thread::Builder::new()
                .name("hashkv-fsync".into())
                .spawn(move || every_second(&weak))
                .map_err(|e| io("starting the fsync thread for", &path, e))?;
        }
        Ok(w)
    }

    /// Makes everything appended so far durable, whatever the policy.
    pub(crate) fn sync_now(&self) -> Result<(), Error> {
        self.sync_all()
    }

    /// Tells the writer a sync mark already vouches for the segment up to
    /// `offset` (found by recovery).
    pub(crate) fn set_marked(&self, offset: u64) {
        self.inner.lock().marked = offset;
    }

    /// Pushes every later record to `feed` as it is appended.
    pub(crate) fn set_feed(&self, feed: Arc<crate::feed::Feed>) {
        let _ = self.feed.set(feed);
    }

    /// The end of the last frame appended.
    pub(crate) fn position(&self) -> crate::feed::LogPosition {
        let inner = self.inner.lock();
        crate::feed::LogPosition::new(inner.number, inner.len)
    }

    /// Records appended since the writer started.
    pub(crate) fn appended(&self) -> u64 {
        self.inner.lock().seq
    }

    /// Bytes of the open segment.
    pub(crate) fn segment_len(&self) -> u64 {
        self.inner.lock().len
    }

    /// Seals the open segment and makes it durable, then continues in
    /// `file` (a new segment holding only its header, `len` bytes). Call
    /// with every shard locked, so no append runs meanwhile; a failure
    /// leaves the writer on the old segment (or poisoned, if the fsync
    /// failed).
    pub(crate) fn rotate(&self, file: File, len: u64, path: PathBuf) -> Result<(), Error> {
        self.check_poisoned()?;
        let sync_file = file
            .try_clone()
            .map_err(|e| io("cloning log handle", &path, e))?;
        let seg = MappedSegment::new(file, len).map_err(|e| io("reading size of", &path, e))?;
        {
            let mut inner = self.inner.lock();
            let at = inner.len;
            self.write_frame(&mut inner, &record::mark(record::MARK_SEAL, at), false)?;
            inner.sealed = true;
        }
        // On failure the seal stays and the failed fsync poisons the writer.
        self.sync_all()?;
        let mut inner = self.inner.lock();
        inner.file = Box::new(seg);
        inner.sync_file = Arc::new(sync_file);
        inner.number = number_of(&path);
        inner.path = path;
        inner.len = len;
        inner.marked = 0;
        inner.sealed = false;
        inner.generation += 1;
        Ok(())
    }

    /// Whether an earlier error poisoned the writer.
    fn is_poisoned(&self) -> bool {
        self.poisoned.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `Err(Poisoned)` naming the first error, once the writer is poisoned.
    fn check_poisoned(&self) -> Result<(), Error> {
        if self.is_poisoned() {
            return Err(Error::Poisoned {
                cause: self.cause.lock().clone(),
            });
        }
        Ok(())
    }

    fn poison(&self, cause: &Error) {
        let mut c = self.cause.lock();
        if c.is_empty() {
            *c = cause.to_string();
        }
        self.poisoned
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Syncs everything appended so far; used by `Always` and on close.
    fn sync_all(&self) -> Result<(), Error> {
        let target = self.inner.lock().written;
        self.sync_upto(target)
    }

    /// Appends a sync mark saying the segment of `generation` is durable up
    /// to `offset`, unless the segment changed, is sealed, or an equal
    /// mark exists. The mark itself becomes durable with the next fsync.
    fn mark_synced(&self, generation: u64, offset: u64) {
        let mut inner = self.inner.lock();
        if inner.generation != generation || inner.sealed || offset <= inner.marked {
            return;
        }
        if self
            .write_frame(
                &mut inner,
                &record::mark(record::MARK_SYNCED, offset),
                false,
            )
            .is_ok()
        {
            // The mark itself needs no mark: until more is written, the
            // segment up to its end is vouched for.
            inner.marked = inner.len;
        }
    }

    fn sync_upto(&self, ticket: u64) -> Result<(), Error> {
        let mut st = self.state.lock();
        loop {
            if st.synced >= ticket {
                return Ok(());
            }
            self.check_poisoned()?;
            if st.syncing {
                self.cond.wait(&mut st);
                continue;
            }
            st.syncing = true;
            drop(st);
            // Everything appended before this point is covered by the fsync.
            // Writers woken by the last fsync are appending right now: let
            // them finish (a yield or a few) so one fsync serves them all. A
            // lone writer sees nothing new after one yield and goes on.
            let mut target = self.inner.lock().written;
            if self.policy == FsyncPolicy::Always {
                for _ in 0..GATHER_YIELDS {
                    std::thread::yield_now();
                    let now = self.inner.lock().written;
                    if now == target {
                        break;
                    }
                    target = now;
                }
            }
            // The target and the handle are read together: a rotation in
            // between would otherwise sync the wrong segment for them (it
            // syncs the old segment itself, under the same lock).
            let (target, file, path, generation, len) = {
                let inner = self.inner.lock();
                (
                    inner.written,
                    inner.sync_file.clone(),
                    inner.path.clone(),
                    inner.generation,
                    inner.len,
                )
            };
            let res = file.sync_data();
            if res.is_ok() {
                self.mark_synced(generation, len);
            }
            st = self.state.lock();
            st.syncing = false;
            match res {
                Ok(()) => st.synced = st.synced.max(target),
                Err(e) => {
                    let err = io("syncing log", &path, e);
                    self.poison(&err);
                    self.cond.notify_all();
                    return Err(err);
                }
            }
            self.cond.notify_all();
        }
    }
}

impl Journal for LogWriter {
    fn append(&self, e: &Effect<'_>) -> Result<u64, Error> {
        self.check_poisoned()?;
        // Encode before taking the log's lock (each thread has its own
        // buffer), so writers on different shards hold it only for the copy.
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> =
                std::cell::RefCell::new(Vec::with_capacity(256));
        }
        SCRATCH.with(|scratch| {
            let mut buf = scratch.borrow_mut();
            let n = record::encode(e, &mut buf).map_err(|m| {
                io(
                    "encoding a record for",
                    &self.inner.lock().path,
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, m),
                )
            })?;
            self.write_record(&buf[..n])
        })
    }

    fn append_frame(&self, frame: &[u8]) -> Result<u64, Error> {
        self.check_poisoned()?;
        self.write_record(frame)
    }

    fn append_frames(&self, frames: &[u8], count: u64) -> Result<u64, Error> {
        self.check_poisoned()?;
        let mut inner = self.inner.lock();
        if inner.sealed {
            return Err(self.sealed_error(&inner));
        }
        let start = inner.len;
        let n = frames.len();
        // Room for the whole batch first: once it is reserved, the copy
        // into the mapping cannot fail, so the batch is logged whole or
        // (here, before anything is written) not at all.
        if let Err(err) = inner.file.reserve(n) {
            return Err(self.write_failed(&mut inner, n, err));
        }
        if let Err(err) = inner.file.write_all(frames) {
            return Err(self.write_failed(&mut inner, n, err));
        }
        inner.len += n as u64;
        inner.seq += count;
        inner.written += count;
        if let Some(feed) = self.feed.get().filter(|f| f.active()) {
            // Frame by frame, under the lock that orders the log, as
            // single appends publish.
            for (a, b) in record::frame_spans(frames) {
                feed.publish(
                    inner.number,
                    start + a as u64,
                    start + b as u64,
                    &frames[a + record::FRAME_HEADER..b],
                );
            }
        }
        Ok(inner.written)
    }

    fn sync(&self, ticket: u64) -> Result<(), Error> {
        match self.policy {
            FsyncPolicy::Always => self.sync_upto(ticket),
            FsyncPolicy::EverySec | FsyncPolicy::No => self.check_poisoned(),
        }
    }
}

impl LogWriter {
    /// Copies one encoded record into the segment.
    #[inline]
    fn write_record(&self, rec: &[u8]) -> Result<u64, Error> {
        let mut inner = self.inner.lock();
        let start = inner.len;
        self.write_frame(&mut inner, rec, true)?;
        if let Some(feed) = self.feed.get().filter(|f| f.active()) {
            // Under the lock that orders the log: the feed's order is the
            // log's.
            feed.publish(inner.number, start, inner.len, &rec[record::FRAME_HEADER..]);
        }
        Ok(inner.written)
    }

    /// Copies one frame into the segment; a record (not a mark) counts in
    /// `seq`. A failed write is cut back off, or poisons the writer.
    #[inline]
    fn write_frame(&self, inner: &mut Inner, frame: &[u8], is_record: bool) -> Result<(), Error> {
        if inner.sealed {
            return Err(self.sealed_error(inner));
        }
        let n = frame.len();
        match inner.file.write_all(frame) {
            Ok(()) => {
                inner.len += n as u64;
                if is_record {
                    inner.seq += 1;
                }
                inner.written += 1;
                Ok(())
            }
            Err(err) => Err(self.write_failed(inner, n, err)),
        }
    }

    #[cold]
    fn sealed_error(&self, inner: &Inner) -> Error {
        io(
            "appending to log",
            &inner.path,
            std::io::Error::other("segment already sealed"),
        )
    }

    /// A failed append: the error to report, after cutting the partial
    /// record back off (or poisoning the writer when that fails too).
    #[cold]
    fn write_failed(&self, inner: &mut Inner, n: usize, err: std::io::Error) -> Error {
        let err = if err.raw_os_error() == Some(libc::ENOSPC) {
            let dir = inner.path.parent().unwrap_or(&inner.path);
            std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "no space left on the device of {}: {n} bytes needed for this append ({err})",
                    dir.display()
                ),
            )
        } else {
            err
        };
        let err = io("appending to log", &inner.path, err);
        // Cut a partial record back off, so the log stays whole and the
        // next write (once the disk has room) starts clean.
        if inner.file.set_len(inner.len).is_err() {
            self.poison(&err);
        }
        err
    }
}

impl LogWriter {
    /// Makes everything durable and vouches for it with a final sync mark
    /// (itself fsynced), so damage anywhere in a cleanly closed log reads
    /// as damage, not as a torn tail.
    pub(crate) fn close(&self) -> Result<(), Error> {
        self.check_poisoned()?;
        self.sync_all()?;
        let (generation, len) = {
            let inner = self.inner.lock();
            (inner.generation, inner.len)
        };
        self.mark_synced(generation, len);
        let (file, path) = {
            let inner = self.inner.lock();
            (inner.sync_file.clone(), inner.path.clone())
        };
        file.sync_data().map_err(|e| {
            let err = io("syncing log", &path, e);
            self.poison(&err);
            err
        })
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.policy != FsyncPolicy::No && !self.is_poisoned() {
            let _ = self.close();
        }
    }
}

fn every_second(w: &Weak<LogWriter>) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let Some(w) = w.upgrade() else { return };
        if w.is_poisoned() {
            return;
        }
        // A failure poisons the writer with its cause; every later write
        // reports it.
        let _ = w.sync_all();
    }
}

#[cfg(test)]
mod tests {
    //! Fault injection through the [`SegmentFile`] seam: ENOSPC and EIO on
    //! writes, failed truncation, failed fsync.
    use std::sync::atomic::{AtomicU8, Ordering};

    use super::*;
    use crate::db::Db;
    use crate::keyspace::Keyspace;
    use crate::log::reader;
    use crate::options::Options;

    /// What the next operation does: 0 ok, 1 ENOSPC after writing half, 2
    /// EIO, 3 ENOSPC and the truncation fails too.
    #[derive(Default)]
    struct Disk {
        bytes: Mutex<Vec<u8>>,
        fault: AtomicU8,
        sync_fault: AtomicU8,
    }

    struct FakeFile(Arc<Disk>);

    impl SegmentFile for FakeFile {
        fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
            let mut b = self.0.bytes.lock();
            match self.0.fault.load(Ordering::SeqCst) {
                0 => {
                    b.extend_from_slice(buf);
                    Ok(())
                }
                2 => Err(std::io::Error::other("EIO")),
                _ => {
                    // A short write: half the record lands, then the disk is full.
                    b.extend_from_slice(&buf[..buf.len() / 2]);
                    Err(std::io::Error::from_raw_os_error(28))
                }
            }
        }
        fn set_len(&mut self, len: u64) -> std::io::Result<()> {
            if self.0.fault.load(Ordering::SeqCst) == 3 {
                return Err(std::io::Error::other("EIO on truncate"));
            }
            self.0.bytes.lock().truncate(len as usize);
            Ok(())
        }
    }

    impl SegmentSync for FakeFile {
        fn sync_data(&self) -> std::io::Result<()> {
            if self.0.sync_fault.load(Ordering::SeqCst) != 0 {
                return Err(std::io::Error::other("EIO on fsync"));
            }
            Ok(())
        }
    }

    fn db_on(disk: &Arc<Disk>, policy: FsyncPolicy) -> Db {
        disk.bytes
            .lock()
            .extend_from_slice(super::record::SEGMENT_MAGIC);
        let len = disk.bytes.lock().len() as u64;
        let w = LogWriter::with_files(
            Box::new(FakeFile(disk.clone())),
            Arc::new(FakeFile(disk.clone())),
            len,
            PathBuf::from("fake/log-000001.aof"),
            policy,
        )
        .unwrap();
        let ks = Keyspace::default();
        ks.set_journal(w);
        Db::with_keyspace(ks, Options::default().active_expiry(false))
    }

    /// The state a fresh replay of the disk's bytes gives.
    fn replayed(disk: &Disk) -> Vec<(Vec<u8>, Vec<u8>)> {
        let ks = Keyspace::default();
        let opts = Options::default();
        let bytes = disk.bytes.lock().clone();
        let scan = reader::scan(&bytes, true, false, |e| {
            let _ = ks.apply(&e, &opts);
        })
        .unwrap();
        assert_eq!(scan.torn_bytes, 0, "no half record may stay in the log");
        let db = Db::with_keyspace(ks, opts);
        let mut v = db.hgetall("h").unwrap();
        v.sort();
        v
    }

    fn pairs(db: &Db) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut v = db.hgetall("h").unwrap();
        v.sort();
        v
    }

    #[test]
    fn enospc_and_eio_fail_the_write_leave_memory_alone_and_clear_when_the_disk_does() {
        for fault in [1u8, 2] {
            let disk = Arc::new(Disk::default());
            let db = db_on(&disk, FsyncPolicy::Always);
            db.hset("h", &[("a", "1")]).unwrap();
            disk.fault.store(fault, Ordering::SeqCst);
            let err = db.hset("h", &[("b", "2")]).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Io {
                        op: "appending to log",
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains("fake/log-000001.aof"), "{err}");
            let err = db.hincrby("h", "a", 5).unwrap_err();
            assert!(matches!(err, Error::Io { .. }));
            // Memory did not move ahead of the log; reads still work.
            assert_eq!(pairs(&db), vec![(b"a".to_vec(), b"1".to_vec())]);
            assert_eq!(replayed(&disk), pairs(&db));
            // The disk has room again: writes work, and the log agrees.
            disk.fault.store(0, Ordering::SeqCst);
            db.hset("h", &[("b", "2")]).unwrap();
            assert_eq!(db.hincrby("h", "a", 5).unwrap(), 6);
            assert_eq!(replayed(&disk), pairs(&db));
        }
    }

    /// A batch whose append fails (a full disk, EIO) changes nothing: no
    /// command of it is applied, the log holds none of its records, and
    /// the same batch goes through once the disk has room.
    #[test]
    fn a_batch_that_cannot_be_logged_applies_nothing() {
        for fault in [1u8, 2] {
            let disk = Arc::new(Disk::default());
            let db = db_on(&disk, FsyncPolicy::Always);
            db.hset("h", &[("a", "1")]).unwrap();
            let mut batch = crate::db::WriteBatch::new();
            batch
                .hset("h", &[("a", "2")])
                .hset("h", &[("b", "3")])
                .hset("other", &[("x", "y")]);
            disk.fault.store(fault, Ordering::SeqCst);
            let err = db.write_batch(&batch).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Io {
                        op: "appending to log",
                        ..
                    }
                ),
                "{err}"
            );
            assert_eq!(pairs(&db), vec![(b"a".to_vec(), b"1".to_vec())]);
            assert_eq!(db.hget("other", "x").unwrap(), None);
            assert_eq!(replayed(&disk), pairs(&db));
            // Through a pipeline: every command reports the failure.
            let mut p = db.pipeline();
            p.hset("h", &[("c", "4")]).hset("other", &[("x", "z")]);
            for r in p.run() {
                assert!(r.unwrap_err().to_string().contains("appending to log"));
            }
            assert_eq!(pairs(&db), vec![(b"a".to_vec(), b"1".to_vec())]);
            disk.fault.store(0, Ordering::SeqCst);
            assert_eq!(db.write_batch(&batch).unwrap(), 2);
            assert_eq!(replayed(&disk), pairs(&db));
            assert_eq!(db.hget("other", "x").unwrap().as_deref(), Some(&b"y"[..]));
        }
    }

    /// The every-second thread's failed fsync is kept: every later write
    /// reports it (cause and file), not a bare "poisoned".
    #[test]
    fn a_failed_background_fsync_is_reported_by_every_later_write() {
        let disk = Arc::new(Disk::default());
        let db = db_on(&disk, FsyncPolicy::EverySec);
        disk.sync_fault.store(1, Ordering::SeqCst);
        db.hset("h", &[("a", "1")]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let err = loop {
            match db.hset("h", &[("b", "2")]) {
                Err(e) => break e,
                Ok(_) => {
                    assert!(std::time::Instant::now() < deadline, "never reported");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        for e in [err, db.hset("h", &[("c", "3")]).unwrap_err()] {
            let text = e.to_string();
            assert!(matches!(e, Error::Poisoned { .. }), "{text}");
            assert!(
                text.contains("EIO on fsync") && text.contains("fake/log-000001.aof"),
                "{text}"
            );
        }
        assert_eq!(db.hget("h", "a").unwrap().as_deref(), Some(&b"1"[..]));
    }

    #[test]
    fn a_write_that_cannot_be_undone_or_a_failed_fsync_poisons_writes_not_reads() {
        let disk = Arc::new(Disk::default());
        let db = db_on(&disk, FsyncPolicy::Always);
        db.hset("h", &[("a", "1")]).unwrap();
        disk.fault.store(3, Ordering::SeqCst);
        assert!(db.hset("h", &[("b", "2")]).is_err());
        disk.fault.store(0, Ordering::SeqCst);
        let err = db.hset("h", &[("c", "3")]).unwrap_err();
        assert!(matches!(err, Error::Poisoned { .. }), "{err}");
        assert!(err.to_string().contains("appending to log"), "{err}");
        assert_eq!(db.hget("h", "a").unwrap().as_deref(), Some(&b"1"[..]));

        let disk = Arc::new(Disk::default());
        let db = db_on(&disk, FsyncPolicy::Always);
        disk.sync_fault.store(1, Ordering::SeqCst);
        let err = db.hset("h", &[("a", "1")]).unwrap_err();
        assert!(err.to_string().contains("syncing log"), "{err}");
        disk.sync_fault.store(0, Ordering::SeqCst);
        let err = db.hset("h", &[("b", "2")]).unwrap_err();
        assert!(err.to_string().contains("EIO on fsync"), "{err}");
        assert!(db.hget("h", "a").is_ok());
    }
}
