//! Snapshot capture: [`Capture`] (a snapshot in progress: its file, the
//! old states writers hand it, the shards FLUSHDB emptied), the switch that
//! starts one, the walk that captures each shard in batches, and
//! [`Shard::preserve`], which captures a key's old state before any change.

use std::sync::Arc;

use parking_lot::Mutex;

use super::*;
use crate::snapshot::format::SnapShapes;

/// A snapshot in progress: the file it is written to, where writers put
/// the old state of keys they are about to change, and where FLUSHDB
/// leaves the shards it empties.
pub(crate) struct Capture {
    /// Encoded entries (snapshot format) captured by writers, and their
    /// number, waiting for the snapshot thread to write them.
    pub(super) pending: Mutex<(BigBuf, u64)>,
    /// The other half of the double buffer: what the snapshot thread
    /// writes out while writers fill `pending`.
    pub(super) spare: Mutex<BigBuf>,
    /// The snapshot file (None: capture only, output discarded).
    pub(super) file: Mutex<Option<SnapshotWriter>>,
    /// The first write error.
    pub(super) err: Mutex<Option<std::io::Error>>,
    /// Shard contents replaced by FLUSHDB during the snapshot.
    pub(super) orphans: Mutex<Vec<Shard>>,
    /// Whether the file's sections are compressed.
    pub(super) compress: bool,
    /// Sections still to write without trying LZ4, after one that did not
    /// compress (data that does not compress rarely starts to).
    skip_lz4: std::sync::atomic::AtomicU32,
    /// The shapes the captured entries refer to (written at the end).
    pub(super) shapes: Mutex<SnapShapes>,
}

/// Sections written plain after one that did not compress, before LZ4 is
/// tried again.
const LZ4_BACKOFF: u32 = 15;

/// Most bytes writers' captures may hold in memory. Past it a writer
/// writes its capture to the snapshot file itself: memory stays bounded
/// whatever the write load, at the cost of that write's latency.
const PENDING_CAP: usize = 4 << 20;

impl Capture {
    pub(crate) fn new(file: Option<SnapshotWriter>) -> Capture {
        Capture {
            compress: file.as_ref().is_some_and(SnapshotWriter::compresses),
            skip_lz4: std::sync::atomic::AtomicU32::new(0),
            pending: Mutex::new((BigBuf::with_capacity(PENDING_CAP), 0)),
            spare: Mutex::new(BigBuf::with_capacity(PENDING_CAP)),
            file: Mutex::new(file),
            err: Mutex::new(None),
            orphans: Mutex::new(Vec::new()),
            shapes: Mutex::new(SnapShapes::default()),
        }
    }

    /// The KEYS_LZ4 body for `entries`, unless a recent section did not
    /// compress (then LZ4 waits [`LZ4_BACKOFF`] sections).
    pub(super) fn try_compress(&self, entries: &[u8]) -> Option<Vec<u8>> {
        use std::sync::atomic::Ordering::Relaxed;
        let skip = self.skip_lz4.load(Relaxed);
        if skip > 0 {
            self.skip_lz4.store(skip - 1, Relaxed);
            return None;
        }
        let packed = crate::snapshot::format::compress_section(entries);
        if packed.is_none() {
            self.skip_lz4.store(LZ4_BACKOFF, Relaxed);
        }
        packed
    }

    /// Writes `n` encoded entries as a section (or drops them after an
    /// error, or without a file). With `pack`, compresses them first if the
    /// snapshot compresses, before taking the file's lock, so a writer that
    /// must write its own capture never waits behind a compression.
    pub(crate) fn emit(&self, entries: &[u8], n: u64, pack: bool) {
        if n == 0 {
            return;
        }
        let packed = if pack && self.compress {
            self.try_compress(entries)
        } else {
            None
        };
        let mut f = self.file.lock();
        if let Some(w) = f.as_mut() {
            if let Err(e) = w.keys_prepared(entries, n, packed.as_deref()) {
                *f = None;
                self.err.lock().get_or_insert(e);
            }
        }
    }

    /// Writes what writers captured so far.
    pub(crate) fn drain(&self) {
        let mut spare = self.spare.lock();
        let n = {
            let mut p = self.pending.lock();
            std::mem::swap(&mut p.0, &mut *spare);
            std::mem::take(&mut p.1)
        };
        self.emit(spare.as_slice(), n, true);
        spare.clear();
    }

    /// Bytes writers captured that are not written yet.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.pending.lock().0.len()
    }

    /// Ends the capture: writes the shapes the entries referred to, and
    /// returns the file (None after an error) or the error.
    pub(crate) fn finish(&self) -> Result<Option<SnapshotWriter>, std::io::Error> {
        self.drain();
        if let Some(body) = self.shapes.lock().section_body() {
            let mut f = self.file.lock();
            if let Some(w) = f.as_mut() {
                if let Err(e) = w.shapes(&body) {
                    *f = None;
                    self.err.lock().get_or_insert(e);
                }
            }
        }
        match self.err.lock().take() {
            Some(e) => Err(e),
            None => Ok(self.file.lock().take()),
        }
    }

    pub(crate) fn take_orphans(&self) -> Vec<Shard> {
        std::mem::take(&mut *self.orphans.lock())
    }
}

/// Encodes into `out` every key of `shard` whose capture bit is not `bit`
/// (visited by `keys.scan` from `cursor`, until the scan ends or `budget`
/// keys or bytes are reached), numbering shapes in `shapes`, and returns
/// the keys encoded and the next cursor.
pub(super) fn capture_batch(
    shard: &Shard,
    bit: u8,
    mut cursor: u64,
    out: &mut BigBuf,
    count: &mut u64,
    snap_shapes: &Mutex<SnapShapes>,
) -> (Vec<Vec<u8>>, u64) {
    const BATCH_KEYS: usize = 256;
    const BATCH_BYTES: usize = 64 << 10;
    let Shard {
        keys,
        dicts,
        dict_ttls,
        expires,
        shapes,
        ..
    } = shard;
    let start = out.len();
    let mut marks = Vec::new();
    loop {
        cursor = keys.scan(cursor, |k, p| {
            let Some((&tag, data)) = p.split_first() else {
                return;
            };
            if tag & FLAG_SNAP == bit {
                return;
            }
            let ttl = if tag & FLAG_TTL != 0 {
                expires
                    .get(k)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(i64::from_le_bytes)
            } else {
                None
            };
            if let Some(h) = view_in(dicts, dict_ttls, shapes, tag, data, NEVER) {
                crate::snapshot::format::encode_entry(out, k, h, ttl, snap_shapes);
                *count += 1;
            }
            marks.push(k.to_vec());
        });
        if cursor == 0 || marks.len() >= BATCH_KEYS || out.len() - start >= BATCH_BYTES {
            return (marks, cursor);
        }
    }
}

/// Hands the contents of an emptied shard to the running snapshot if it
/// still has keys to capture from them (call with the shard's lock held,
/// so the snapshot cannot finish first); otherwise returns them to drop.
pub(super) fn retire(old: Shard) -> Option<Shard> {
    match old.capture.clone() {
        Some(cap) => {
            cap.orphans.lock().push(old);
            None
        }
        None => Some(old),
    }
}

impl Shard {
    /// If a snapshot is running and `key` is not captured yet, captures its
    /// current state first. Called before every change to a key.
    #[inline]
    pub(super) fn preserve(&mut self, key: &[u8]) {
        if self.capture.is_some() {
            self.preserve_slow(key);
        }
    }

    #[cold]
    pub(super) fn preserve_slow(&mut self, key: &[u8]) {
        let Some(cap) = self.capture.clone() else {
            return;
        };
        let Some((tag, data)) = self.raw(key) else {
            return;
        };
        if tag & FLAG_SNAP == self.snap_bit {
            return;
        }
        let ttl = if tag & FLAG_TTL != 0 {
            self.ttl_of(key)
        } else {
            None
        };
        if let Some(h) = self.view(tag, data, NEVER) {
            // Into the preallocated buffer when it has room (no allocation
            // or remapping on a writer's path); else written out directly.
            let size = match h {
                HashRef::Compact(b) | HashRef::CompactEx(b, _) | HashRef::Shaped(_, b) => {
                    Some(crate::snapshot::format::MAX_ENTRY_OVERHEAD + key.len() + b.len())
                }
                HashRef::Dict(..) => None,
            };
            let mut p = cap.pending.lock();
            if size.is_some_and(|n| p.0.len() + n <= PENDING_CAP) {
                crate::snapshot::format::encode_entry(&mut p.0, key, h, ttl, &cap.shapes);
                p.1 += 1;
            } else {
                drop(p);
                let mut own = Vec::new();
                crate::snapshot::format::encode_entry(&mut own, key, h, ttl, &cap.shapes);
                // One entry, on a writer's path: not worth compressing.
                cap.emit(&own, 1, false);
            }
        }
        let bit = self.snap_bit;
        if let Some(p) = self.keys.get_mut(key) {
            p[0] = (p[0] & !FLAG_SNAP) | bit;
        }
    }
}

impl Keyspace {
    /// The switch of a snapshot: with every shard write-locked, runs
    /// `at_switch` (the log rotation) and, if it succeeds, marks every key
    /// as not captured and installs `cap`. Nothing is copied here, so
    /// writers wait only for `at_switch`.
    pub(crate) fn begin_capture<R>(
        &self,
        cap: &Arc<Capture>,
        at_switch: impl FnOnce() -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut guards: Vec<_> = self.shards.iter().map(|s| s.write()).collect();
        let r = at_switch()?;
        for g in &mut guards {
            g.snap_bit ^= FLAG_SNAP;
            g.capture = Some(cap.clone());
        }
        Ok(r)
    }

    /// Captures every key of shard `i` not captured yet, in batches under
    /// its write lock (writers wait at most one batch), appending entries to
    /// `out` and counting them in `count`; `flush` is called after each
    /// batch, without the lock. Then the shard's capture ends.
    pub(crate) fn capture_shard(
        &self,
        i: usize,
        out: &mut BigBuf,
        count: &mut u64,
        flush: &mut dyn FnMut(&mut BigBuf, &mut u64),
    ) {
        let mut cursor = 0;
        loop {
            let mut g = self.shards[i].write();
            if g.capture.is_none() {
                return;
            }
            let bit = g.snap_bit;
            let Some(cap) = g.capture.clone() else {
                return;
            };
            let (marks, next) = capture_batch(&g, bit, cursor, out, count, &cap.shapes);
            for k in &marks {
                if let Some(p) = g.keys.get_mut(k) {
                    p[0] = (p[0] & !FLAG_SNAP) | bit;
                }
            }
            cursor = next;
            if cursor == 0 {
                g.capture = None;
            }
            drop(g);
            flush(out, count);
            if cursor == 0 {
                return;
            }
        }
    }

    /// Captures what FLUSHDB took away during the snapshot (call after every
    /// shard is captured).
    pub(crate) fn capture_orphans(
        &self,
        cap: &Capture,
        out: &mut BigBuf,
        count: &mut u64,
        flush: &mut dyn FnMut(&mut BigBuf, &mut u64),
    ) {
        for mut o in cap.take_orphans() {
            // Break the Shard -> Capture -> Shard cycle.
            o.capture = None;
            let mut cursor = 0;
            loop {
                let (_, next) = capture_batch(&o, o.snap_bit, cursor, out, count, &cap.shapes);
                cursor = next;
                flush(out, count);
                if cursor == 0 {
                    break;
                }
            }
        }
    }
}
