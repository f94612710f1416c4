//! [`Db`]: the handle a program holds. Cheap to clone, `Send + Sync`; every
//! method goes through the command layer, so typed calls and
//! [`Db::execute`] behave identically. This module owns opening, closing,
//! snapshots, following and the background thread; the typed command
//! methods are `commands`'s, batch reads ([`Db::get_many`],
//! [`Db::view_many`]) `view`'s and batch writes ([`WriteBatch`]) `batch`'s.

mod batch;
mod commands;
mod load;
mod view;

pub use batch::WriteBatch;
pub(crate) use load::Staged;
pub use view::HashView;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::command::{Command, Ctx, Reply};
use crate::error::{CommandError, Error, Result};
use crate::feed::{Feed, LogPosition, Subscription};
use crate::follow::{Follower, ReaderStatus};
use crate::keyspace::tx::TxLogPool;
use crate::keyspace::Keyspace;
use crate::log::writer::LogWriter;
use crate::options::Options;
use crate::recovery::RecoveryReport;
use crate::snapshot::{SnapshotInfo, Store};

/// How often the active-expiry thread runs, and how many TTL entries it
/// may look at per shard per run (bounds the work done under a lock).
const SWEEP_EVERY: Duration = Duration::from_millis(100);
const SWEEP_BUDGET: usize = 200;

struct Shared {
    ks: Keyspace,
    opts: Options,
    path: Option<PathBuf>,
    /// The directory's log, MANIFEST and snapshot schedule (None in memory).
    store: Option<Store>,
    report: RecoveryReport,
    /// Held for the life of the handle: the directory's exclusive lock.
    _lock: Option<std::fs::File>,
    /// Dropped with the last handle, which wakes and ends the background
    /// thread.
    stop: parking_lot::Mutex<Option<mpsc::Sender<()>>>,
    /// The background thread, joined when the last handle goes: its work
    /// (a snapshot under way) ends before the directory's lock is let go.
    worker: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// `Db` handles alive (the background thread holds none).
    handles: std::sync::atomic::AtomicUsize,
    /// Transaction logs kept for reuse.
    tx_logs: TxLogPool,
    /// Bulk loads under way that asked the snapshot rules to wait (each
    /// ends with a snapshot of its own).
    bulk_loads: std::sync::atomic::AtomicUsize,
    /// The change feed (records pushed by the writer, or by catch-up).
    feed: Arc<Feed>,
    /// A read-only handle's view of the log it follows (None on a writer).
    follower: Option<parking_lot::Mutex<Follower>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.feed.close();
    }
}

impl Clone for Db {
    fn clone(&self) -> Db {
        self.shared
            .handles
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Db {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Db {
    /// The last handle ends the background thread and waits for it, so
    /// the directory is closed (its lock released) when this returns, and
    /// reopening it at once works.
    fn drop(&mut self) {
        if self
            .shared
            .handles
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            != 1
        {
            return;
        }
        drop(self.shared.stop.lock().take());
        if let Some(worker) = self.shared.worker.lock().take() {
            if worker.thread().id() != std::thread::current().id() {
                let _ = worker.join();
            }
        }
    }
}

impl Shared {
    /// A reader's catch-up (0 on a writer).
    fn catch_up(&self) -> Result<u64> {
        match &self.follower {
            Some(f) => f.lock().catch_up(&self.ks, &self.opts, Some(&self.feed)),
            None => Ok(0),
        }
    }
}

/// What [`Db::build`] makes a handle of.
struct Parts {
    ks: Keyspace,
    opts: Options,
    store: Option<Store>,
    report: RecoveryReport,
    lock: Option<std::fs::File>,
    feed: Arc<Feed>,
    follower: Option<Follower>,
    /// The directory of a reader (a writer's is its store's).
    path: Option<PathBuf>,
}

/// While alive, the automatic snapshot rules wait (see
/// [`Db::hold_auto_snapshots`]).
pub(crate) struct AutoSnapshotHold<'a>(&'a Db);

impl Drop for AutoSnapshotHold<'_> {
    fn drop(&mut self) {
        self.0
            .shared
            .bulk_loads
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// An open hashkv database.
///
/// `Db` is a handle around shared state: clone it to use it from several
/// threads. Commands on different keys run in parallel. Dropping the last
/// handle closes the database: it waits for background work (a snapshot
/// under way) and releases the directory.
pub struct Db {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.shared.path)
            .field("options", &self.shared.opts)
            .finish()
    }
}

impl Db {
    /// Opens (creating if missing) the database directory at `path` with
    /// default [`Options`].
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let db = hashkv::Db::open(dir.path())?;
    /// db.hset("user:1", &[("name", "Alice")])?;
    /// db.close()?;
    ///
    /// // The next open replays the log: the write is there.
    /// let db = hashkv::Db::open(dir.path())?;
    /// assert_eq!(db.hget("user:1", "name")?.as_deref(), Some(&b"Alice"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`] if the directory cannot be created.
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        Db::open_with(path, Options::default())
    }

    /// Opens the database directory at `path` with `opts`: takes its lock,
    /// replays its log (cutting a torn tail, see [`Db::recovery_report`]),
    /// and logs every later write according to the fsync policy.
    ///
    /// # Examples
    /// ```
    /// use hashkv::{Db, FsyncPolicy, Options};
    /// let dir = tempfile::tempdir()?;
    /// // Every write is on disk before its call returns.
    /// let opts = Options::default().fsync(FsyncPolicy::Always);
    /// let db = Db::open_with(dir.path(), opts.clone())?;
    /// db.hset("stock:42", &[("units", "3")])?;
    ///
    /// // The directory has one writer at a time.
    /// assert!(matches!(
    ///     Db::open_with(dir.path(), opts),
    ///     Err(hashkv::Error::Locked { .. })
    /// ));
    /// assert!(db.recovery_report().torn_tail.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Locked`] if another handle has the directory open,
    /// [`Error::Corrupt`] for a damaged log (unless salvaging),
    /// [`Error::Io`] for file-system failures.
    pub fn open_with(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let path = path.as_ref();
        std::fs::create_dir_all(path).map_err(|source| Error::Io {
            op: "creating directory",
            path: path.display().to_string(),
            source,
        })?;
        let lock = crate::dir::lock(path)?;
        let ks = Keyspace::default();
        ks.set_shapes(opts.shapes);
        let (report, log, manifest) = crate::recovery::recover(path, &ks, &opts)?;
        let writer = LogWriter::new(log.file, log.len, log.path, opts.fsync)?;
        writer.set_marked(log.marked);
        let feed = Feed::new(Some(path.to_path_buf()), opts.change_feed_capacity);
        writer.set_feed(feed.clone());
        ks.set_journal(writer.clone());
        let store = Store::new(path.to_path_buf(), writer, manifest);
        Ok(Db::build(Parts {
            ks,
            opts,
            store: Some(store),
            report,
            lock: Some(lock),
            feed,
            follower: None,
            path: None,
        }))
    }

    /// Opens the database directory at `path` read-only with default
    /// [`Options`]; see [`Db::open_read_only_with`].
    ///
    /// # Errors
    /// As [`Db::open_read_only_with`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Db> {
        Db::open_read_only_with(path, Options::default())
    }

    /// Opens the database directory at `path` read-only, whether or not a
    /// writer (in this or another process) or other readers have it open,
    /// like a Redis replica of the writer.
    ///
    /// The handle loads the snapshot MANIFEST names and replays the log up
    /// to its last whole record, then follows the writer: every
    /// [`Options::follow`] (2 ms by default) a background thread applies
    /// what was appended since ([`Db::catch_up`]), across segment switches
    /// and snapshots, and across the writer's crash and restart. Its state
    /// is always the writer's after some prefix of the log (a transaction
    /// whole). Reads answer as on the writer; every write answers
    /// [`Error::ReadOnly`] (`READONLY You can't write against a read only
    /// replica.`) and changes nothing. Expired keys and fields are
    /// invisible but not deleted: the writer's deletions arrive through the
    /// log. The handle writes, creates, moves, cuts and locks nothing in
    /// the directory, and holds its own copy of the data in memory.
    ///
    /// # Errors
    /// [`Error::Io`] when there is no database at `path` (no MANIFEST);
    /// [`Error::Corrupt`] for a damaged MANIFEST, snapshot or record (a
    /// frame at the end of the log that is not whole yet is not damage: it
    /// is read once it is).
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let writer = hashkv::Db::open(dir.path())?;
    /// writer.hset("user:1", &[("name", "Alice")])?;
    /// let reader = hashkv::Db::open_read_only_with(
    ///     dir.path(),
    ///     hashkv::Options::default().follow(None), // catch up by hand here
    /// )?;
    /// assert_eq!(reader.hget("user:1", "name")?.as_deref(), Some(&b"Alice"[..]));
    /// writer.hset("user:1", &[("age", "25")])?;
    /// assert_eq!(reader.catch_up()?, 1);
    /// assert_eq!(reader.hget("user:1", "age")?.as_deref(), Some(&b"25"[..]));
    /// assert_eq!(reader.log_position(), writer.log_position());
    /// let err = reader.hset("user:1", &[("age", "26")]).unwrap_err();
    /// assert_eq!(err.to_string(), "READONLY You can't write against a read only replica.");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_read_only_with(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        Db::open_read_only_until(path.as_ref(), opts, None)
    }

    /// [`Db::open_read_only_with`] whose state is the writer's right after
    /// the record ending at `until` (when given) rather than at the end of
    /// the log: what follows every change after a saved position one by one
    /// ([`Db::follow_with`]) starts from.
    ///
    /// # Errors
    /// As [`Db::open_read_only_with`], and [`Error::PositionGone`] when the
    /// log no longer holds `until`.
    pub(crate) fn open_read_only_until(
        path: &Path,
        opts: Options,
        until: Option<LogPosition>,
    ) -> Result<Db> {
        if !path.is_dir() {
            return Err(Error::Io {
                op: "opening read-only",
                path: path.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            });
        }
        let ks = Keyspace::default();
        ks.set_shapes(opts.shapes);
        ks.set_read_only();
        let (follower, report) = Follower::load_until(path, &ks, &opts, until)?;
        let feed = Feed::new(Some(path.to_path_buf()), opts.change_feed_capacity);
        let db = Db::build(Parts {
            ks,
            opts,
            store: None,
            report,
            lock: None,
            feed,
            follower: Some(follower),
            path: Some(path.to_path_buf()),
        });
        Ok(db)
    }

    /// Whether this handle was opened read-only ([`Db::open_read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.shared.follower.is_some()
    }

    /// On a read-only handle: applies every whole record the writer
    /// appended since the last catch-up and returns how many. The
    /// background thread does this every [`Options::follow`]; call it to
    /// see a write at once. On a writer (or in memory): `Ok(0)`.
    ///
    /// A record still being written is left for next time. A record proven
    /// complete but bad (a sync mark or a later segment vouches for it) is
    /// damage: reported by this and every later call, while the handle
    /// keeps serving its last good state. When snapshots dropped the log
    /// ahead of the reader, it loads the directory again (see
    /// [`Db::reader_status`]) and subscribers get
    /// [`crate::feed::RecvError::Reset`].
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the file and offset of the damage;
    /// [`Error::Io`] when a file cannot be read.
    pub fn catch_up(&self) -> Result<u64> {
        self.shared.catch_up()
    }

    /// On a read-only handle: [`Db::catch_up`] of at most `budget` records,
    /// showing `visit` each record before and after it is applied (and
    /// each reload), so a caller sees the state around every change. On a
    /// writer: `Ok(0)`. Meant for a handle opened with `follow(None)`, or
    /// the background thread applies records the visitor never sees.
    ///
    /// # Errors
    /// As [`Db::catch_up`].
    pub(crate) fn follow_with(
        &self,
        budget: u64,
        visit: &mut dyn FnMut(crate::follow::Visit<'_, '_>),
    ) -> Result<u64> {
        match &self.shared.follower {
            Some(f) => f.lock().catch_up_with(
                &self.shared.ks,
                &self.shared.opts,
                Some(&self.shared.feed),
                None,
                budget,
                visit,
            ),
            None => Ok(0),
        }
    }

    /// Where this handle is in the directory's log: on a writer, the end
    /// of the last record appended; on a reader, the end of the last record
    /// applied. A reader's lag is the difference to the writer's. In
    /// memory: `0:0`.
    pub fn log_position(&self) -> LogPosition {
        if let Some(f) = &self.shared.follower {
            return f.lock().position();
        }
        match &self.shared.store {
            Some(store) => store.writer.position(),
            None => LogPosition::default(),
        }
    }

    /// On a read-only handle: bytes of whole records the writer has
    /// appended past this handle's position (what the next catch-up would
    /// apply); `None` on a writer.
    ///
    /// # Errors
    /// [`Error::Io`] when the log cannot be read.
    pub fn reader_lag_bytes(&self) -> Result<Option<u64>> {
        match &self.shared.follower {
            Some(f) => f.lock().lag_bytes().map(Some),
            None => Ok(None),
        }
    }

    /// [`Db::reader_lag_bytes`] with the number of records too.
    pub(crate) fn reader_lag(&self) -> Result<Option<(u64, u64)>> {
        match &self.shared.follower {
            Some(f) => f.lock().lag().map(Some),
            None => Ok(None),
        }
    }

    /// A read-only handle's position, what it applied, and any damage it
    /// met; `None` on a writer.
    pub fn reader_status(&self) -> Option<ReaderStatus> {
        self.shared.follower.as_ref().map(|f| f.lock().status())
    }

    /// Every change applied from now on, in log order ([`crate::feed`]):
    /// on a writer as its commands make them, on a reader as it applies
    /// them. Bounded ([`Options::change_feed_capacity`]); never slows the
    /// writer. An in-memory database has no log and feeds nothing.
    ///
    /// # Examples
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use hashkv::feed::ChangeKind;
    /// let db = hashkv::Db::open(dir.path())?;
    /// let mut changes = db.subscribe();
    /// db.hset("user:1", &[("name", "Alice")])?;
    /// let c = changes.try_recv().expect("one change");
    /// assert_eq!(c.to_cli_line(), "hset user:1 name Alice");
    /// assert!(matches!(c.kind, ChangeKind::HSet { .. }));
    /// assert_eq!(c.position, db.log_position());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn subscribe(&self) -> Subscription {
        self.shared.feed.subscribe(None)
    }

    /// [`Db::subscribe`], keeping only what concerns keys matching
    /// `pattern` (Redis's glob rules, as KEYS; see
    /// [`crate::feed::ChangeKind::matching`]).
    pub fn subscribe_matching(&self, pattern: impl AsRef<[u8]>) -> Subscription {
        self.shared.feed.subscribe(Some(pattern.as_ref().to_vec()))
    }

    /// The changes after `position` (a [`crate::feed::Change::position`]
    /// or a [`Db::log_position`] saved earlier), read back from the log's
    /// segments, then every later change as [`Db::subscribe`] gives them:
    /// what anything that must resume after a restart builds on.
    ///
    /// # Errors
    /// [`Error::PositionGone`] when a snapshot dropped the segment (start
    /// again from a full copy) or `position` is not where a record ends.
    pub fn subscribe_from(&self, position: LogPosition) -> Result<Subscription> {
        self.shared.feed.subscribe_from(position, None)
    }

    /// [`Db::subscribe_from`] with [`Db::subscribe_matching`]'s filter.
    ///
    /// # Errors
    /// As [`Db::subscribe_from`].
    pub fn subscribe_from_matching(
        &self,
        position: LogPosition,
        pattern: impl AsRef<[u8]>,
    ) -> Result<Subscription> {
        self.shared
            .feed
            .subscribe_from(position, Some(pattern.as_ref().to_vec()))
    }

    /// A database that lives only in memory (nothing is logged).
    ///
    /// # Examples
    /// ```
    /// use hashkv::{Db, Options};
    /// let db = Db::in_memory(Options::default());
    /// db.hset("cart:7", &[("apples", "3"), ("pears", "1")])?;
    /// assert_eq!(db.hlen("cart:7")?, 2);
    /// // Handles are cheap clones of one database.
    /// let other = db.clone();
    /// assert_eq!(other.hincrby("cart:7", "apples", 2)?, 5);
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn in_memory(opts: Options) -> Db {
        let feed = Feed::new(None, opts.change_feed_capacity);
        Db::build(Parts {
            ks: Keyspace::default(),
            opts,
            store: None,
            report: RecoveryReport::default(),
            lock: None,
            feed,
            follower: None,
            path: None,
        })
    }

    /// Takes a snapshot of the database into its directory and drops the
    /// log segments it covers (Redis's BGSAVE plus BGREWRITEAOF). Writers
    /// keep going while it runs (they wait only for a brief switch); the
    /// snapshot holds the state as of that switch. One snapshot runs at a
    /// time; a second call waits for the first. Also run automatically by
    /// the rules of [`Options::save`] and [`Options::compact_log_at`].
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let db = hashkv::Db::open(dir.path())?;
    /// for i in 0..1000 {
    ///     db.hset(format!("user:{i}"), &[("visits", i.to_string())])?;
    /// }
    /// let info = db.snapshot()?;
    /// assert_eq!(info.keys, 1000);
    /// assert!(info.path.starts_with(dir.path()));
    /// // The next open loads the snapshot instead of replaying 1,000 writes.
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be written (the directory then
    /// still opens to the same state); [`Error::Command`] with "ERR" for a
    /// database without a directory.
    pub fn snapshot(&self) -> Result<SnapshotInfo> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        match &self.shared.store {
            Some(store) => store.snapshot(&self.shared.ks, &self.shared.opts),
            None => Err(Error::Command(CommandError::err(
                "ERR an in-memory database has no directory to snapshot into; use snapshot_to",
            ))),
        }
    }

    /// Writes a snapshot of the database as of now to the file `path`
    /// (through `path.tmp` and a rename), without changing the database's
    /// directory: a portable copy for `hashkv restore`. Works for in-memory
    /// databases too.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn snapshot_to(&self, path: impl AsRef<Path>) -> Result<SnapshotInfo> {
        crate::snapshot::write_standalone(&self.shared.ks, &self.shared.opts, path.as_ref())
    }

    /// Makes `dir` (new, or without a database in it) a database directory
    /// holding the state of the snapshot file `file` (written by
    /// [`Db::snapshot_to`] or `hashkv snapshot --output`). The whole file is
    /// checked first. Returns the number of keys; open the directory with
    /// [`Db::open`] afterwards.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the offset for a damaged file,
    /// [`Error::Io`] if `dir` already holds a database or a file cannot be
    /// written, [`Error::Locked`] if `dir` is open.
    pub fn restore(file: impl AsRef<Path>, dir: impl AsRef<Path>, opts: &Options) -> Result<u64> {
        crate::snapshot::restore(file.as_ref(), dir.as_ref(), opts)
    }

    /// Test support: the next [`Db::snapshot`] stops after `steps` of its
    /// file-system steps and leaves the files as a crash there would.
    #[doc(hidden)]
    pub fn stop_next_snapshot_after(&self, steps: usize) {
        if let Some(store) = &self.shared.store {
            store.stop_next_snapshot_after(steps);
        }
    }

    /// A handle over an already built keyspace (fault-injection tests and
    /// the fuzzing entry points).
    pub(crate) fn with_keyspace(ks: Keyspace, opts: Options) -> Db {
        let feed = Feed::new(None, opts.change_feed_capacity);
        Db::build(Parts {
            ks,
            opts,
            store: None,
            report: RecoveryReport::default(),
            lock: None,
            feed,
            follower: None,
            path: None,
        })
    }

    /// What opening the directory found and did: records replayed, a torn
    /// tail cut (and where its bytes were saved), damaged ranges skipped,
    /// files removed or moved aside. [`RecoveryReport::lines`] says it in
    /// words.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.shared.report
    }

    /// Makes every write acknowledged before the call durable, whatever the
    /// fsync policy (a no-op for an in-memory database).
    ///
    /// # Errors
    /// [`Error::Io`] when the fsync fails (the handle then refuses writes,
    /// [`Error::Poisoned`]).
    pub fn sync(&self) -> Result<()> {
        match &self.shared.store {
            Some(store) => store.writer.sync_now(),
            None => Ok(()),
        }
    }

    /// Closes this handle: makes everything durable and marks the log as
    /// synced to its end, reporting the errors that dropping the handle
    /// would have to swallow. Other clones of the handle stay usable.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Poisoned`] when the log cannot be made
    /// durable.
    pub fn close(self) -> Result<()> {
        match &self.shared.store {
            Some(store) => store.writer.close(),
            None => Ok(()),
        }
    }

    fn build(parts: Parts) -> Db {
        let Parts {
            ks,
            opts,
            store,
            report,
            lock,
            feed,
            follower,
            path,
        } = parts;
        ks.set_shapes(opts.shapes);
        let (tx, rx) = mpsc::channel::<()>();
        let reader = follower.is_some();
        let active = opts.active_expiry && !reader;
        let auto = store.is_some() && (!opts.save.is_empty() || opts.compact_log_bytes.is_some());
        let follow_every = opts.follow;
        let path = store.as_ref().map(|s| s.dir.clone()).or(path);
        let shared = Arc::new(Shared {
            ks,
            opts,
            path,
            store,
            report,
            _lock: lock,
            stop: parking_lot::Mutex::new(Some(tx)),
            worker: parking_lot::Mutex::new(None),
            handles: std::sync::atomic::AtomicUsize::new(1),
            tx_logs: TxLogPool::default(),
            bulk_loads: std::sync::atomic::AtomicUsize::new(0),
            feed,
            follower: follower.map(parking_lot::Mutex::new),
        });
        // One background thread: a reader's catch-up, or a writer's active
        // expiry and snapshot rules; it ends when the last handle drops
        // the sender.
        let weak = Arc::downgrade(&shared);
        let worker = if reader {
            std::thread::Builder::new()
                .name("hashkv-follow".into())
                .spawn(move || follow(&weak, &rx, follow_every))
                .ok()
        } else if active || auto {
            std::thread::Builder::new()
                .name("hashkv-background".into())
                .spawn(move || background(&weak, &rx, active, auto))
                .ok()
        } else {
            None
        };
        *shared.worker.lock() = worker;
        Db { shared }
    }

    pub(crate) fn keyspace(&self) -> &Keyspace {
        &self.shared.ks
    }

    pub(crate) fn store(&self) -> Option<&Store> {
        self.shared.store.as_ref()
    }

    /// The database's directory (None in memory).
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// The options this database was opened with.
    pub fn options(&self) -> &Options {
        &self.shared.opts
    }

    /// Makes the automatic snapshot rules wait until the returned guard
    /// drops: a bulk load (import) would otherwise snapshot a growing
    /// keyspace again and again; it takes one snapshot at its end instead.
    pub(crate) fn hold_auto_snapshots(&self) -> AutoSnapshotHold<'_> {
        self.shared
            .bulk_loads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        AutoSnapshotHold(self)
    }

    /// The transaction logs kept for reuse by this database.
    pub(crate) fn tx_logs(&self) -> &TxLogPool {
        &self.shared.tx_logs
    }

    fn ctx(&self) -> Ctx<'_, '_> {
        Ctx::new(&self.shared.ks, &self.shared.opts)
    }

    pub(crate) fn run(&self, cmd: Command<'_>) -> Result<Reply> {
        cmd.execute(&self.ctx())
    }
}

/// Key-table entries moved per shard per background pass (see
/// `Keyspace::tidy`): a pass holds a shard's lock for at most ~100 µs.
const TIDY_MOVES: usize = 2048;

/// How long automatic snapshots wait after a failed one.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(5);

/// A reader's background thread: catch-up every `every` (errors stay in
/// [`Db::reader_status`]), and the key tables' incremental moves.
fn follow(shared: &Weak<Shared>, stop: &mpsc::Receiver<()>, every: Option<Duration>) {
    let mut tidied = std::time::Instant::now();
    loop {
        match stop.recv_timeout(every.unwrap_or(SWEEP_EVERY).min(SWEEP_EVERY)) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let Some(s) = shared.upgrade() else { return };
        if every.is_some() {
            let _ = s.catch_up();
        }
        if tidied.elapsed() >= SWEEP_EVERY {
            s.ks.tidy(TIDY_MOVES);
            tidied = std::time::Instant::now();
        }
    }
}

fn background(shared: &Weak<Shared>, stop: &mpsc::Receiver<()>, expire: bool, auto: bool) {
    loop {
        match stop.recv_timeout(SWEEP_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let Some(s) = shared.upgrade() else { return };
        s.ks.tidy(TIDY_MOVES);
        if expire {
            // A failed log write stops this pass; the next one retries.
            let _ = s.ks.sweep(s.opts.clock.now_ms(), SWEEP_BUDGET);
        }
        let held = s.bulk_loads.load(std::sync::atomic::Ordering::SeqCst) > 0;
        if let (true, false, Some(store)) = (auto, held, &s.store) {
            if store.due(&s.opts) && store.snapshot(&s.ks, &s.opts).is_err() {
                store.back_off(SNAPSHOT_RETRY);
            }
        }
    }
}
