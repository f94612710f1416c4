//! [`Options`]: the knobs of a [`crate::Db`], with Redis's defaults and names,
//! and the [`Clock`] seam that lets tests move time without sleeping.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

/// Source of the current Unix time in milliseconds.
///
/// Every TTL decision reads the clock through this trait, so tests can use
/// [`ManualClock`] and move time explicitly.
pub trait Clock: Send + Sync + 'static {
    /// Current Unix time in milliseconds.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: i64) -> Arc<Self> {
        Arc::new(ManualClock {
            now_ms: AtomicI64::new(now_ms),
        })
    }

    /// Sets the time.
    pub fn set(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// When log writes reach the disk, like Redis's `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// A write returns only after its record is on disk; concurrent writers
    /// share one fsync (group commit). Redis: `appendfsync always`.
    Always,
    /// A background thread fsyncs once a second: a power failure can lose
    /// about the last second of acknowledged writes, a process crash none.
    /// Redis: `appendfsync everysec` (its default, and ours).
    #[default]
    EverySec,
    /// Never fsync explicitly; the OS writes back when it decides.
    /// Redis: `appendfsync no`.
    No,
}

/// What opening does with a damaged log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Truncate a torn tail of the last segment (and report it); fail on
    /// any other damage with an error naming the file and offset.
    #[default]
    Strict,
    /// Keep every valid record, skip damaged ranges, report what was
    /// skipped, and rewrite the log without them.
    Salvage,
}

/// Options of a [`crate::Db`]. Build with [`Options::default`] and the
/// chained setters.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use hashkv::{Db, FsyncPolicy, Options};
/// let opts = Options::default()
///     .fsync(FsyncPolicy::EverySec)
///     // A snapshot after 60 s with at least 10,000 changes (Redis's `save`).
///     .save(Duration::from_secs(60), 10_000)
///     .hash_max_listpack_entries(256);
/// let dir = tempfile::tempdir()?;
/// let db = Db::open_with(dir.path(), opts)?;
/// assert_eq!(db.info()?.fsync, FsyncPolicy::EverySec);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Options {
    pub(crate) hash_max_listpack_entries: usize,
    pub(crate) hash_max_listpack_value: usize,
    pub(crate) active_expiry: bool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) fsync: FsyncPolicy,
    pub(crate) recovery: RecoveryMode,
    pub(crate) save: Vec<(Duration, u64)>,
    pub(crate) compact_log_bytes: Option<u64>,
    pub(crate) snapshot_compression: bool,
    pub(crate) pack_hex: bool,
    pub(crate) shapes: bool,
    pub(crate) follow: Option<Duration>,
    pub(crate) change_feed_capacity: usize,
}

/// How often a read-only handle catches up with the log by default.
pub(crate) const DEFAULT_FOLLOW: Duration = Duration::from_millis(2);

/// Redis's default `save` lines: after 3600 s if at least 1 change, 300 s
/// if 100, 60 s if 10000.
const DEFAULT_SAVE: [(u64, u64); 3] = [(3600, 1), (300, 100), (60, 10_000)];
/// Default log size that triggers a snapshot (Redis's
/// `auto-aof-rewrite-min-size`).
const DEFAULT_COMPACT_LOG_BYTES: u64 = 64 << 20;

impl Default for Options {
    fn default() -> Self {
        Options {
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            active_expiry: true,
            clock: Arc::new(SystemClock),
            fsync: FsyncPolicy::EverySec,
            recovery: RecoveryMode::Strict,
            save: DEFAULT_SAVE
                .iter()
                .map(|&(s, n)| (Duration::from_secs(s), n))
                .collect(),
            compact_log_bytes: Some(DEFAULT_COMPACT_LOG_BYTES),
            snapshot_compression: true,
            pack_hex: true,
            shapes: true,
            follow: Some(DEFAULT_FOLLOW),
            change_feed_capacity: crate::feed::DEFAULT_CAPACITY,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("hash_max_listpack_entries", &self.hash_max_listpack_entries)
            .field("hash_max_listpack_value", &self.hash_max_listpack_value)
            .field("active_expiry", &self.active_expiry)
            .field("fsync", &self.fsync)
            .field("recovery", &self.recovery)
            .field("save", &self.save)
            .field("compact_log_bytes", &self.compact_log_bytes)
            .field("snapshot_compression", &self.snapshot_compression)
            .field("pack_hex", &self.pack_hex)
            .field("shapes", &self.shapes)
            .field("follow", &self.follow)
            .field("change_feed_capacity", &self.change_feed_capacity)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Most fields a hash keeps in the compact encoding; one more converts
    /// it to a dict. Default = 512. Redis: `hash-max-listpack-entries`
    /// (formerly `hash-max-ziplist-entries`). 0 makes every hash a dict.
    #[must_use]
    pub fn hash_max_listpack_entries(mut self, n: usize) -> Self {
        self.hash_max_listpack_entries = n;
        self
    }

    /// Longest field or value (bytes) a compact hash may hold; a longer one
    /// converts it to a dict. Default = 64. Redis: `hash-max-listpack-value`
    /// (formerly `hash-max-ziplist-value`).
    #[must_use]
    pub fn hash_max_listpack_value(mut self, n: usize) -> Self {
        self.hash_max_listpack_value = n;
        self
    }

    /// Whether a background thread deletes expired keys nobody reads.
    /// Default = true. Turning it off is Redis's `DEBUG SET-ACTIVE-EXPIRE 0`,
    /// useful in tests that look at expired-but-unreclaimed state.
    #[must_use]
    pub fn active_expiry(mut self, on: bool) -> Self {
        self.active_expiry = on;
        self
    }

    /// When log writes are fsynced. Default = [`FsyncPolicy::EverySec`].
    /// Redis: `appendfsync`.
    #[must_use]
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// What opening does with a damaged log. Default = [`RecoveryMode::Strict`].
    #[must_use]
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.recovery = mode;
        self
    }

    /// Adds an automatic snapshot rule: snapshot when `after` has passed
    /// since the last snapshot (or open) and at least `changes` writes were
    /// logged meanwhile. Redis: a `save <seconds> <changes>` line. The
    /// defaults are Redis's (`3600 1`, `300 100`, `60 10000`); call
    /// [`Options::no_auto_snapshots`] first to replace them.
    #[must_use]
    pub fn save(mut self, after: Duration, changes: u64) -> Self {
        self.save.push((after, changes));
        self
    }

    /// Turns automatic snapshots off: no `save` rules and no log-size
    /// trigger ([`crate::Db::snapshot`] still works).
    #[must_use]
    pub fn no_auto_snapshots(mut self) -> Self {
        self.save.clear();
        self.compact_log_bytes = None;
        self
    }

    /// Snapshot (and so drop the log it covers) once the log written since
    /// the last snapshot passes `bytes`; `None` turns this trigger off.
    /// Default = 64 MiB (Redis's `auto-aof-rewrite-min-size`).
    #[must_use]
    pub fn compact_log_at(mut self, bytes: Option<u64>) -> Self {
        self.compact_log_bytes = bytes;
        self
    }

    /// Whether snapshot sections are compressed (LZ4; a section is stored
    /// as is when compression would save less than an eighth of it).
    /// Default = true, like Redis's `rdbcompression yes`. Loading reads
    /// either kind whatever this says.
    #[must_use]
    pub fn snapshot_compression(mut self, on: bool) -> Self {
        self.snapshot_compression = on;
        self
    }

    /// Whether compact hashes store values that are runs of hex digits
    /// (object hashes, digests, UUIDs without dashes; at least 8 digits, an
    /// even number, all letters of one case) packed two digits a byte.
    /// Replies are the same byte for byte either way; only memory differs.
    /// Default = true.
    #[must_use]
    pub fn pack_hex(mut self, on: bool) -> Self {
        self.pack_hex = on;
        self
    }

    /// Whether compact hashes with the same field names in the same order
    /// (profiles, sessions: "shapes") share one copy of the names, each
    /// hash keeping only its values. Nothing a command returns changes:
    /// `OBJECT ENCODING` is still `listpack`, field order and conversions
    /// are the same. Default = true.
    #[must_use]
    pub fn shapes(mut self, on: bool) -> Self {
        self.shapes = on;
        self
    }

    /// How often a read-only handle ([`crate::Db::open_read_only_with`])
    /// catches up with the writer's log in the background: `None` only
    /// when [`crate::Db::catch_up`] is called. A catch-up with nothing new
    /// reads a few KiB of the open segment. Default = every 2 ms. Ignored
    /// by writers. Redis has no such knob (a replica is pushed to).
    #[must_use]
    pub fn follow(mut self, every: Option<Duration>) -> Self {
        self.follow = every;
        self
    }

    /// How many changes the change feed keeps for subscribers that fall
    /// behind ([`crate::Db::subscribe`]); a subscriber further behind
    /// misses the oldest and is told how many
    /// ([`crate::feed::RecvError::Lagged`]). The feed also keeps at most
    /// 64 MiB of changes. Default = 65,536. Redis: a client's
    /// `client-output-buffer-limit pubsub` plays this part.
    #[must_use]
    pub fn change_feed_capacity(mut self, changes: usize) -> Self {
        self.change_feed_capacity = changes.max(1);
        self
    }

    /// The clock TTLs are measured against. Default = the system clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// One command's "now": sampled from the clock at most once, and only if a
/// TTL decision needs it (most keys have no TTL, and reading the clock is a
/// measurable part of a fast HGET).
pub(crate) struct Now<'a> {
    clock: Option<&'a dyn Clock>,
    cached: Cell<Option<i64>>,
    /// A transaction's one time, shared by its commands.
    shared: Option<&'a Cell<Option<i64>>>,
}

impl<'a> Now<'a> {
    pub(crate) fn lazy(clock: &'a dyn Clock) -> Self {
        Now {
            clock: Some(clock),
            cached: Cell::new(None),
            shared: None,
        }
    }

    /// The time of a transaction: sampled once, at the first command that
    /// needs it, for every command in it (Redis freezes the clock for an
    /// EXEC).
    pub(crate) fn shared(cell: &'a Cell<Option<i64>>, clock: &'a dyn Clock) -> Self {
        Now {
            clock: Some(clock),
            cached: Cell::new(None),
            shared: Some(cell),
        }
    }

    /// The time in Unix ms, the same for every call on this value.
    #[inline]
    pub(crate) fn get(&self) -> i64 {
        if let Some(v) = self.cached.get() {
            return v;
        }
        let v = match self.shared.and_then(Cell::get) {
            Some(v) => v,
            None => {
                let v = self.clock.map_or(0, Clock::now_ms);
                if let Some(s) = self.shared {
                    s.set(Some(v));
                }
                v
            }
        };
        self.cached.set(Some(v));
        v
    }
}
