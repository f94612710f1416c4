//! The change feed: every change the log records, in log order, handed to
//! subscribers in the writer's process and in readers ([`crate::Db::subscribe`]).
//!
//! The feed is one bounded ring per database. The writer (or, in a reader,
//! the catch-up that applies the log) pushes each record's payload with
//! its [`LogPosition`] as it appends (applies) it, under the lock that
//! orders the log, so the ring's order is the log's order. With no
//! subscriber nothing is pushed (one atomic load per write). A push never
//! waits for a subscriber: past [`crate::Options::change_feed_capacity`]
//! changes (or 64 MiB) the oldest are dropped, and a subscriber that had
//! not read them is told how many it missed ([`RecvError::Lagged`]).
//! Subscribers decode the payloads themselves, outside the ring's lock.
//!
//! [`crate::Db::subscribe_from`] reads the log's segments from a position
//! first (`log::tail`), then joins the ring once the ring holds
//! the position it reached; the log is written before the ring is pushed,
//! so the segments always hold what the ring holds.

mod change;

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

pub use change::{Change, ChangeKind, FieldTtl};

use crate::dir;
use crate::error::{Error, Result};
use crate::log::tail::{SegmentTail, Stop};

/// A place in the log: a segment's number and a byte offset in it.
///
/// Positions order as the log does. A record's position is where its frame
/// ends, so the position of the last change applied is where the next one
/// starts: [`crate::Db::log_position`] on a writer and on a reader, and
/// [`Change::position`]. It prints and parses as `segment:offset`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct LogPosition {
    /// The segment's number (`log-NNNNNN.aof`).
    pub segment: u64,
    /// Bytes into the segment.
    pub offset: u64,
}

impl LogPosition {
    /// The position `offset` bytes into segment `segment`.
    pub fn new(segment: u64, offset: u64) -> LogPosition {
        LogPosition { segment, offset }
    }

    /// Bytes from `self` to `later` when both are in one segment; `None`
    /// across segments (or when `later` is earlier).
    pub fn bytes_to(&self, later: LogPosition) -> Option<u64> {
        (self.segment == later.segment && later.offset >= self.offset)
            .then(|| later.offset - self.offset)
    }
}

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}

impl FromStr for LogPosition {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (a, b) = s
            .split_once(':')
            .ok_or_else(|| format!("log position {s:?} is not segment:offset"))?;
        let n = |x: &str| {
            x.parse::<u64>()
                .map_err(|e| format!("log position {s:?}: {e}"))
        };
        Ok(LogPosition::new(n(a)?, n(b)?))
    }
}

/// Why a [`Subscription`] gave no change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// [`Subscription::try_recv`]: no change is waiting now.
    #[error("no change waiting")]
    Empty,
    /// [`Subscription::recv_timeout`]: no change came in time.
    #[error("no change within the timeout")]
    Timeout,
    /// The subscriber fell too far behind and this many changes were
    /// dropped (all of them: with a pattern, those it would have skipped
    /// count too); the next call goes on with the oldest change kept.
    #[error("the subscriber fell behind and missed {0} changes")]
    Lagged(u64),
    /// The changes cannot be followed one by one across this point: a
    /// reader reloaded from a newer snapshot (it had fallen behind the
    /// snapshots that dropped the log it was reading), or the log that
    /// [`crate::Db::subscribe_from`] was reading was dropped. Rebuild what
    /// depends on the changes from the current state; the next call goes
    /// on with the changes after this point.
    #[error("the change stream restarted from a newer state; rebuild from the current data")]
    Reset,
    /// The database was closed (its last handle dropped).
    #[error("the database was closed")]
    Closed,
}

/// Changes kept in the ring at most, by default.
pub(crate) const DEFAULT_CAPACITY: usize = 65_536;
/// Payload bytes kept in the ring at most.
const MAX_BYTES: usize = 64 << 20;

#[derive(Clone)]
enum Item {
    Record {
        start: LogPosition,
        end: LogPosition,
        payload: Arc<[u8]>,
    },
    Reset,
}

#[derive(Default)]
struct Ring {
    items: VecDeque<Item>,
    /// The sequence number of `items[0]`.
    first: u64,
    bytes: usize,
    closed: bool,
}

/// The feed of one database (shared by its handles and subscriptions).
pub(crate) struct Feed {
    subscribers: AtomicUsize,
    ring: Mutex<Ring>,
    cond: Condvar,
    capacity: usize,
    /// The directory, for reading back from a position.
    dir: Option<PathBuf>,
}

impl Feed {
    pub(crate) fn new(dir: Option<PathBuf>, capacity: usize) -> Arc<Feed> {
        Arc::new(Feed {
            subscribers: AtomicUsize::new(0),
            ring: Mutex::new(Ring::default()),
            cond: Condvar::new(),
            capacity: capacity.max(1),
            dir,
        })
    }

    /// Whether anyone subscribes (what a writer checks before pushing).
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.subscribers.load(Ordering::Relaxed) > 0
    }

    /// Pushes the record whose frame spans `start..end` of `segment`; call
    /// in log order.
    pub(crate) fn publish(&self, segment: u64, start: u64, end: u64, payload: &[u8]) {
        if !self.active() {
            return;
        }
        let item = Item::Record {
            start: LogPosition::new(segment, start),
            end: LogPosition::new(segment, end),
            payload: Arc::from(payload),
        };
        self.push(item, payload.len());
    }

    /// Tells subscribers the stream restarts from a newer state.
    pub(crate) fn publish_reset(&self) {
        if self.active() {
            self.push(Item::Reset, 0);
        }
    }

    fn push(&self, item: Item, bytes: usize) {
        let mut r = self.ring.lock();
        r.items.push_back(item);
        r.bytes += bytes;
        while r.items.len() > self.capacity || (r.bytes > MAX_BYTES && r.items.len() > 1) {
            if let Some(Item::Record { payload, .. }) = r.items.pop_front() {
                r.bytes -= payload.len();
            }
            r.first += 1;
        }
        drop(r);
        self.cond.notify_all();
    }

    /// Ends every subscription (the database is gone).
    pub(crate) fn close(&self) {
        self.ring.lock().closed = true;
        self.cond.notify_all();
    }

    /// A subscription to the changes pushed from now on.
    pub(crate) fn subscribe(self: &Arc<Feed>, pattern: Option<Vec<u8>>) -> Subscription {
        let mut r = self.ring.lock();
        if self.subscribers.fetch_add(1, Ordering::SeqCst) == 0 {
            // The first subscriber: what a push racing the last one's
            // departure left is dropped, so the ring holds every record
            // from its first item on, with no gap.
            let n = r.items.len() as u64;
            r.items.clear();
            r.first += n;
            r.bytes = 0;
        }
        let next = r.first + r.items.len() as u64;
        drop(r);
        Subscription {
            feed: self.clone(),
            next,
            pattern,
            disk: None,
            skip_before: None,
            queue: VecDeque::new(),
        }
    }

    /// A subscription to the changes after `from`, read from the log's
    /// segments until the ring holds them.
    pub(crate) fn subscribe_from(
        self: &Arc<Feed>,
        from: LogPosition,
        pattern: Option<Vec<u8>>,
    ) -> Result<Subscription> {
        let Some(dir) = self.dir.clone() else {
            return Err(Error::PositionGone {
                requested: from,
                why: "an in-memory database has no log".into(),
            });
        };
        // Registered first: from here on the ring keeps every change.
        let mut sub = self.subscribe(pattern);
        let tail = seek(&dir, from)?;
        sub.disk = Some(Disk { dir, tail });
        Ok(sub)
    }
}

/// The segment tail standing at `pos`, checked to be a frame boundary.
fn seek(dir: &Path, pos: LogPosition) -> Result<SegmentTail> {
    let gone = |why: String| Error::PositionGone {
        requested: pos,
        why,
    };
    let mut tail = open_segment(dir, pos.segment)?.ok_or_else(|| {
        gone(format!(
            "segment {} is not in {} (a snapshot dropped it)",
            dir::segment_name(pos.segment),
            dir.display()
        ))
    })?;
    let target = pos
        .offset
        .max(crate::log::record::SEGMENT_MAGIC.len() as u64);
    let stop = tail
        .advance(Some(target), u64::MAX, |_, _, _, _| {})
        .map_err(|b| Error::Corrupt {
            file: tail.path().display().to_string(),
            offset: b.offset,
            reason: b.reason,
        })?;
    match stop {
        Stop::Limit if tail.offset() == target => Ok(tail),
        Stop::Sealed if tail.offset() == target => {
            // The end of a sealed segment is the start of the next (or,
            // when MANIFEST lists it last, of what a writer reopening the
            // directory appended after the seal).
            match open_segment(dir, pos.segment + 1)? {
                Some(t) => Ok(t),
                None if listed_last(dir, pos.segment) => {
                    tail.read_past_seal();
                    Ok(tail)
                }
                None => Err(gone("the segment after it was dropped".into())),
            }
        }
        Stop::Sealed if listed_last(dir, pos.segment) => {
            // Records after a seal the writer reopened past: go on.
            tail.read_past_seal();
            match tail.advance(Some(target), u64::MAX, |_, _, _, _| {}) {
                Ok(Stop::Limit) if tail.offset() == target => Ok(tail),
                _ => Err(gone(format!(
                    "byte {} of {} is not where a frame ends",
                    pos.offset,
                    dir::segment_name(pos.segment)
                ))),
            }
        }
        Stop::Limit | Stop::Sealed => Err(gone(format!(
            "byte {} of {} is not where a frame ends",
            pos.offset,
            dir::segment_name(pos.segment)
        ))),
        Stop::Pending { .. } | Stop::Budget => Err(gone(format!(
            "past the end of the log ({} ends at byte {})",
            dir::segment_name(pos.segment),
            tail.offset()
        ))),
    }
}

/// Whether MANIFEST lists segment `n` as its last (a writer reopening the
/// directory appends after a seal there).
fn listed_last(dir: &Path, n: u64) -> bool {
    dir::read_manifest(dir)
        .ok()
        .flatten()
        .is_some_and(|m| m.segments.last().and_then(|s| dir::segment_number(s)) == Some(n))
}

/// Segment `n` of `dir` opened for following, or `None` when it is gone.
fn open_segment(dir: &Path, n: u64) -> Result<Option<SegmentTail>> {
    let path = dir.join(dir::segment_name(n));
    match std::fs::File::open(&path) {
        Ok(f) => Ok(Some(SegmentTail::new(n, path, f))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            op: "opening",
            path: path.display().to_string(),
            source: e,
        }),
    }
}

/// A [`crate::Db::subscribe_from`] subscription still reading the log.
struct Disk {
    dir: PathBuf,
    tail: SegmentTail,
}

/// Records read from the log per step of a subscription catching up.
const DISK_STEP: u64 = 512;
/// How often a subscription that has caught up with the log but not yet
/// with the ring looks at the log again.
const DISK_POLL: Duration = Duration::from_millis(2);

/// A stream of [`Change`]s ([`crate::Db::subscribe`] and friends).
///
/// Bounded: a subscriber that falls more than the feed's capacity behind
/// loses the oldest changes and is told how many ([`RecvError::Lagged`]);
/// it never slows the writer. Dropping it unsubscribes.
pub struct Subscription {
    feed: Arc<Feed>,
    /// The ring sequence number of the next item to read.
    next: u64,
    pattern: Option<Vec<u8>>,
    disk: Option<Disk>,
    /// After joining the ring from the log: ring records starting before
    /// this were already read from the log.
    skip_before: Option<LogPosition>,
    /// Changes read from the log, not yet handed out.
    queue: VecDeque<Change>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("next", &self.next)
            .field("reading_log", &self.disk.is_some())
            .field(
                "pattern",
                &self.pattern.as_deref().map(String::from_utf8_lossy),
            )
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut r = self.feed.ring.lock();
        if self.feed.subscribers.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Nobody left: the ring starts again empty (so it never holds
            // a gap when someone subscribes later).
            let n = r.items.len() as u64;
            r.items.clear();
            r.first += n;
            r.bytes = 0;
        }
    }
}

impl Subscription {
    /// The next change, waiting for one.
    ///
    /// # Errors
    /// [`RecvError::Lagged`], [`RecvError::Reset`] or [`RecvError::Closed`].
    pub fn recv(&mut self) -> std::result::Result<Change, RecvError> {
        self.recv_until(None)
    }

    /// The next change if one is waiting.
    ///
    /// # Errors
    /// [`RecvError::Empty`] when none is, or as [`Subscription::recv`].
    pub fn try_recv(&mut self) -> std::result::Result<Change, RecvError> {
        match self.recv_until(Some(Instant::now())) {
            Err(RecvError::Timeout) => Err(RecvError::Empty),
            other => other,
        }
    }

    /// The next change, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`] when none came, or as [`Subscription::recv`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> std::result::Result<Change, RecvError> {
        self.recv_until(Some(Instant::now() + timeout))
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> std::result::Result<Change, RecvError> {
        loop {
            if let Some(c) = self.queue.pop_front() {
                return Ok(c);
            }
            if self.disk.is_some() {
                if self.step_disk()? {
                    continue;
                }
                let now = Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    return Err(RecvError::Timeout);
                }
                let wait = deadline.map_or(DISK_POLL, |d| (d - now).min(DISK_POLL));
                let mut r = self.feed.ring.lock();
                if r.closed {
                    return Err(RecvError::Closed);
                }
                let _ = self.feed.cond.wait_for(&mut r, wait);
                continue;
            }
            let item = {
                let mut r = self.feed.ring.lock();
                let mut waited_out = false;
                loop {
                    if self.next < r.first {
                        let missed = r.first - self.next;
                        self.next = r.first;
                        return Err(RecvError::Lagged(missed));
                    }
                    let i = (self.next - r.first) as usize;
                    if let Some(item) = r.items.get(i) {
                        break item.clone();
                    }
                    if r.closed {
                        return Err(RecvError::Closed);
                    }
                    if waited_out {
                        return Err(RecvError::Timeout);
                    }
                    match deadline {
                        None => self.feed.cond.wait(&mut r),
                        Some(d) if Instant::now() >= d => waited_out = true,
                        Some(d) => waited_out = self.feed.cond.wait_until(&mut r, d).timed_out(),
                    }
                }
            };
            self.next += 1;
            match item {
                Item::Reset => {
                    self.skip_before = None;
                    return Err(RecvError::Reset);
                }
                Item::Record {
                    start,
                    end,
                    payload,
                } => {
                    if self.skip_before.is_some_and(|p| start < p) {
                        continue;
                    }
                    self.skip_before = None;
                    if let Some(c) = self.change_of(&payload, end) {
                        return Ok(c);
                    }
                }
            }
        }
    }

    /// The change a record's payload holds, if it concerns this
    /// subscription's keys.
    fn change_of(&self, payload: &[u8], end: LogPosition) -> Option<Change> {
        let e = crate::log::record::decode(payload).ok()?;
        change_from(&e, end, self.pattern.as_deref())
    }

    /// One step of reading the log: joins the ring when it holds the
    /// position reached, else reads some records into the queue. Returns
    /// whether anything happened.
    fn step_disk(&mut self) -> std::result::Result<bool, RecvError> {
        let Some(disk) = self.disk.as_mut() else {
            return Ok(true);
        };
        let pos = LogPosition::new(disk.tail.number(), disk.tail.offset());
        {
            let r = self.feed.ring.lock();
            let first = r.items.iter().enumerate().find_map(|(i, it)| match it {
                Item::Record { start, .. } => Some((i, *start)),
                Item::Reset => None,
            });
            if let Some((i, start)) = first {
                if start <= pos {
                    self.next = r.first + i as u64;
                    self.skip_before = Some(pos);
                    self.disk = None;
                    return Ok(true);
                }
            }
        }
        let n = disk.tail.number();
        let (pattern, queue) = (self.pattern.as_deref(), &mut self.queue);
        let stop = disk.tail.advance(None, DISK_STEP, |e, _, _, end| {
            queue.extend(change_from(&e, LogPosition::new(n, end), pattern));
        });
        match stop {
            Ok(Stop::Sealed) => match open_segment(&disk.dir, n + 1) {
                Ok(Some(t)) => {
                    disk.tail = t;
                    Ok(true)
                }
                Ok(None) if listed_last(&disk.dir, n) => {
                    disk.tail.read_past_seal();
                    Ok(true)
                }
                _ => Err(self.reset_to_live()),
            },
            Ok(Stop::Budget | Stop::Limit) => Ok(true),
            Ok(Stop::Pending { .. }) => Ok(!self.queue.is_empty()),
            Err(_) => Err(self.reset_to_live()),
        }
    }

    /// The log this subscription was reading is gone (or damaged): go on
    /// with the live changes, after telling the caller.
    fn reset_to_live(&mut self) -> RecvError {
        self.disk = None;
        self.queue.clear();
        let r = self.feed.ring.lock();
        self.next = r.first + r.items.len() as u64;
        RecvError::Reset
    }
}

/// The change `e` stands for, ending at `end`, if it concerns `pattern`.
fn change_from(
    e: &crate::keyspace::Effect<'_>,
    end: LogPosition,
    pattern: Option<&[u8]>,
) -> Option<Change> {
    let kind = ChangeKind::from_effect(e);
    let kind = match pattern {
        Some(p) => kind.matching(p)?,
        None => kind,
    };
    Some(Change {
        position: end,
        kind,
    })
}

impl Iterator for Subscription {
    type Item = std::result::Result<Change, RecvError>;

    /// [`Subscription::recv`]; ends when the database is closed.
    fn next(&mut self) -> Option<Self::Item> {
        match self.recv() {
            Err(RecvError::Closed) => None,
            other => Some(other),
        }
    }
}
