//! The keyspace: every key, its hash and its TTL, split into shards that are
//! locked independently so commands on different keys run in parallel.
//!
//! Each [`Shard`] holds:
//! - `keys`: an [`ArenaTable`] from key to a payload `[tag][data]`, where data
//!   is the compact buffer itself (so a small hash costs one packed arena
//!   entry, key included) or the index of a dict in `dicts`;
//! - `dicts`: the dict-encoded hashes of the shard;
//! - `expires`: key -> absolute expiry (Unix ms, i64 LE), only for keys
//!   with a TTL; the payload tag's TTL bit says whether to look there.
//! - `dict_ttls`: the field TTLs of dicts that have any, by dict index;
//! - `hfe`: key -> earliest field expiry (i64 LE), only for hashes with a
//!   field TTL (tag bit [`FLAG_HFE`]); the active sweep walks it, and reads
//!   of hashes without the bit never look at a clock for their fields.
//!
//! Snapshots ([`Capture`]) are point-in-time without stopping writers: at
//! the switch every shard's `snap_bit` flips, which marks every key as
//! "not captured yet". The snapshot walks the shards capturing such keys,
//! and any change to a not-yet-captured key first captures its old state
//! ([`Shard::preserve`]), so the snapshot sees every key as it was at the
//! switch. Keys written after the switch carry the new bit and are skipped.
//!
//! Invariants: no key ever maps to an empty hash; a key has an `expires`
//! entry iff its tag has [`FLAG_TTL`]; a key has an `hfe` entry (equal to
//! its earliest field expiry) iff its tag has [`FLAG_HFE`]; outside a snapshot every key's
//! [`FLAG_SNAP`] equals its shard's `snap_bit`. Lock order for multi-key commands:
//! ascending shard index ([`Keyspace::lock_many`]).

pub(crate) mod effect;
pub(crate) mod tx;
pub(crate) mod watch;

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock, RwLockWriteGuard};

use crate::error::{CommandError, Error};
use std::collections::HashMap;

use crate::hash::table::{hash_name, ArenaTable};
use crate::hash::{
    compact, compact_ex, dict_from_compact, dict_from_triples, is_expired, FieldTtls, HashRef,
    NEVER,
};
use crate::options::{Now, Options};
use crate::snapshot::buf::BigBuf;
use crate::snapshot::format::SnapshotWriter;
pub(crate) use effect::Effect;
pub(crate) use tx::TxLog;

/// Where a command's effects go: to the journal, each logged before it is
/// applied; or to a transaction's [`TxLog`], logged together when it
/// commits (the transaction holds the shard locks until then).
#[derive(Clone, Copy)]
pub(crate) enum Sink<'a> {
    Journal,
    Tx(&'a RefCell<TxLog>),
}

const SHARD_BITS: u32 = 6;
/// Number of shards.
pub(crate) const SHARDS: usize = 1 << SHARD_BITS;

const TAG_COMPACT: u8 = 1;
const TAG_DICT: u8 = 2;
/// A compact buffer of field/value/TTL triples (`listpackex`).
const TAG_COMPACT_EX: u8 = 3;
const ENC_MASK: u8 = 0x0F;
/// The hash has a field with a TTL (and an entry in `hfe`).
const FLAG_HFE: u8 = 0x20;
/// The key has an entry in `expires`.
const FLAG_TTL: u8 = 0x80;
/// Snapshot capture bit: a key whose bit differs from its shard's
/// `snap_bit` belongs to the running snapshot and has not been captured yet.
const FLAG_SNAP: u8 = 0x40;

/// Redis refuses to grow a listpack past 1 GiB and converts instead.
const COMPACT_MAX_BYTES: usize = 1 << 30;

/// An owned hash, moved between keys by RENAME and built by COPY.
pub(crate) enum OwnedHash {
    Compact(Vec<u8>),
    /// Field/value/TTL triples.
    CompactEx(Vec<u8>),
    /// A dict and its field TTLs, if any.
    Dict(Box<ArenaTable>, Option<Box<FieldTtls>>),
}

/// One shard of the keyspace.
#[derive(Default)]
pub(crate) struct Shard {
    keys: ArenaTable,
    dicts: Vec<Option<ArenaTable>>,
    free_dicts: Vec<u32>,
    expires: ArenaTable,
    sweep_cursor: u64,
    /// Field TTLs of the dicts that have any, by dict index.
    dict_ttls: HashMap<u32, FieldTtls>,
    /// Key -> earliest field expiry, for hashes with field TTLs.
    hfe: ArenaTable,
    hfe_cursor: u64,
    /// The [`FLAG_SNAP`] value of a captured (or post-switch) key.
    snap_bit: u8,
    /// The running snapshot, while this shard is not fully captured.
    capture: Option<Arc<Capture>>,
}

/// A snapshot in progress: the file it is written to, where writers put
/// the old state of keys they are about to change, and where FLUSHDB
/// leaves the shards it empties.
pub(crate) struct Capture {
    /// Encoded entries (snapshot format) captured by writers, and their
    /// number, waiting for the snapshot thread to write them.
    pending: Mutex<(BigBuf, u64)>,
    /// The other half of the double buffer: what the snapshot thread
    /// writes out while writers fill `pending`.
    spare: Mutex<BigBuf>,
    /// The snapshot file (None: capture only, output discarded).
    file: Mutex<Option<SnapshotWriter>>,
    /// The first write error.
    err: Mutex<Option<std::io::Error>>,
    /// Shard contents replaced by FLUSHDB during the snapshot.
    orphans: Mutex<Vec<Shard>>,
    /// Whether the file's sections are compressed.
    compress: bool,
    /// Sections still to write without trying LZ4, after one that did not
    /// compress (data that does not compress rarely starts to).
    skip_lz4: std::sync::atomic::AtomicU32,
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
        }
    }

    /// The KEYS_LZ4 body for `entries`, unless a recent section did not
    /// compress (then LZ4 waits [`LZ4_BACKOFF`] sections).
    fn try_compress(&self, entries: &[u8]) -> Option<Vec<u8>> {
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

    /// Ends the capture: the file (None after an error) and the error.
    pub(crate) fn finish(&self) -> Result<Option<SnapshotWriter>, std::io::Error> {
        self.drain();
        match self.err.lock().take() {
            Some(e) => Err(e),
            None => Ok(self.file.lock().take()),
        }
    }

    pub(crate) fn take_orphans(&self) -> Vec<Shard> {
        std::mem::take(&mut *self.orphans.lock())
    }
}

/// Counts over the keyspace ([`Keyspace::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) keys: u64,
    pub(crate) fields: u64,
    pub(crate) listpack: u64,
    pub(crate) hashtable: u64,
    pub(crate) volatile: u64,
    pub(crate) field_ttl_hashes: u64,
    pub(crate) memory: u64,
}

/// What a lookup found.
pub(crate) enum Lookup<'a> {
    Live(HashRef<'a>),
    Expired,
    Missing,
}

impl Shard {
    /// If a snapshot is running and `key` is not captured yet, captures its
    /// current state first. Called before every change to a key.
    #[inline]
    fn preserve(&mut self, key: &[u8]) {
        if self.capture.is_some() {
            self.preserve_slow(key);
        }
    }

    #[cold]
    fn preserve_slow(&mut self, key: &[u8]) {
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
                HashRef::Compact(b) | HashRef::CompactEx(b, _) => {
                    Some(crate::snapshot::format::MAX_ENTRY_OVERHEAD + key.len() + b.len())
                }
                HashRef::Dict(..) => None,
            };
            let mut p = cap.pending.lock();
            if size.is_some_and(|n| p.0.len() + n <= PENDING_CAP) {
                crate::snapshot::format::encode_entry(&mut p.0, key, h, ttl);
                p.1 += 1;
            } else {
                drop(p);
                let mut own = Vec::new();
                crate::snapshot::format::encode_entry(&mut own, key, h, ttl);
                // One entry, on a writer's path: not worth compressing.
                cap.emit(&own, 1, false);
            }
        }
        let bit = self.snap_bit;
        if let Some(p) = self.keys.get_mut(key) {
            p[0] = (p[0] & !FLAG_SNAP) | bit;
        }
    }

    /// A shard with nothing in it that continues this one's snapshot state.
    fn emptied(&self) -> Shard {
        Shard {
            snap_bit: self.snap_bit,
            capture: self.capture.clone(),
            ..Shard::default()
        }
    }

    fn raw(&self, key: &[u8]) -> Option<(u8, &[u8])> {
        self.raw_hashed(key, hash_name(key))
    }

    #[inline]
    fn raw_hashed(&self, key: &[u8], hash: u64) -> Option<(u8, &[u8])> {
        let p = self.keys.get_hashed(hash, key)?;
        let (&tag, data) = p.split_first()?;
        Some((tag, data))
    }

    fn view<'a>(&'a self, tag: u8, data: &'a [u8], now: i64) -> Option<HashRef<'a>> {
        view_in(&self.dicts, &self.dict_ttls, tag, data, now)
    }

    /// The earliest field expiry of `key`, if its hash has field TTLs.
    pub(crate) fn min_field_ttl(&self, key: &[u8]) -> Option<i64> {
        let (tag, _) = self.raw(key)?;
        if tag & FLAG_HFE == 0 {
            return None;
        }
        let b: [u8; 8] = self.hfe.get(key)?.try_into().ok()?;
        Some(i64::from_le_bytes(b))
    }

    /// The key's absolute expiry in Unix ms, if it has one.
    pub(crate) fn ttl_of(&self, key: &[u8]) -> Option<i64> {
        let (tag, _) = self.raw(key)?;
        if tag & FLAG_TTL == 0 {
            return None;
        }
        self.expiry_hashed(key, hash_name(key))
    }

    /// The stored expiry of `key` (whose hash is `hash`), flag unchecked.
    fn expiry_hashed(&self, key: &[u8], hash: u64) -> Option<i64> {
        let b: [u8; 8] = self.expires.get_hashed(hash, key)?.try_into().ok()?;
        Some(i64::from_le_bytes(b))
    }

    /// Looks `key` up as of `now`, without deleting anything.
    #[inline]
    pub(crate) fn lookup(&self, key: &[u8], now: &Now<'_>) -> Lookup<'_> {
        self.lookup_hashed(key, hash_name(key), now)
    }

    /// [`Shard::lookup`] with the key's [`hash_name`] already computed.
    #[inline]
    pub(crate) fn lookup_hashed(&self, key: &[u8], hash: u64, now: &Now<'_>) -> Lookup<'_> {
        let Some((tag, data)) = self.raw_hashed(key, hash) else {
            return Lookup::Missing;
        };
        if tag & FLAG_TTL != 0 {
            if let Some(at) = self.expiry_hashed(key, hash) {
                // A key is expired when now > expire time (Redis keyIsExpired).
                if now.get() > at {
                    return Lookup::Expired;
                }
            }
        }
        // Only hashes with field TTLs look at the clock for their fields.
        let t = if tag & FLAG_HFE != 0 {
            now.get()
        } else {
            NEVER
        };
        self.view(tag, data, t)
            .map_or(Lookup::Missing, Lookup::Live)
    }

    /// The hash at `key`, expired or not, every field shown (replay never
    /// looks at the clock).
    pub(crate) fn hash_ref(&self, key: &[u8]) -> Option<HashRef<'_>> {
        let (tag, data) = self.raw(key)?;
        self.view(tag, data, NEVER)
    }

    /// The live hash at `key`.
    pub(crate) fn get(&self, key: &[u8], now: &Now<'_>) -> Option<HashRef<'_>> {
        match self.lookup(key, now) {
            Lookup::Live(h) => Some(h),
            _ => None,
        }
    }

    /// Removes `key` with its hash and TTL; true when it existed. Unlike
    /// [`Shard::take`] it copies nothing out of the table.
    pub(crate) fn delete(&mut self, key: &[u8]) -> bool {
        self.preserve(key);
        let Some((tag, data)) = self.raw(key) else {
            return false;
        };
        if tag & ENC_MASK == TAG_DICT {
            if let Ok(id) = <[u8; 4]>::try_from(data).map(u32::from_le_bytes) {
                // Dropped after the table entry goes (the dict may be big).
                let d = self.dicts.get_mut(id as usize).and_then(Option::take);
                if d.is_some() {
                    self.free_dicts.push(id);
                }
                self.dict_ttls.remove(&id);
                self.keys.remove(key);
                drop(d);
            }
        } else {
            self.keys.remove(key);
        }
        if tag & FLAG_TTL != 0 {
            self.expires.remove(key);
        }
        if tag & FLAG_HFE != 0 {
            self.hfe.remove(key);
        }
        true
    }

    /// Removes `key` and returns its hash and TTL.
    pub(crate) fn take(&mut self, key: &[u8]) -> Option<(OwnedHash, Option<i64>)> {
        self.preserve(key);
        let (tag, data) = self.raw(key)?;
        let ttl = if tag & FLAG_TTL != 0 {
            self.ttl_of(key)
        } else {
            None
        };
        let hash = match tag & ENC_MASK {
            TAG_DICT => {
                let id = u32::from_le_bytes(data.try_into().ok()?);
                let d = self.dicts.get_mut(id as usize)?.take()?;
                self.free_dicts.push(id);
                let ttls = self.dict_ttls.remove(&id).map(Box::new);
                OwnedHash::Dict(Box::new(d), ttls)
            }
            TAG_COMPACT_EX => OwnedHash::CompactEx(data.to_vec()),
            _ => OwnedHash::Compact(data.to_vec()),
        };
        self.keys.remove(key);
        if ttl.is_some() {
            self.expires.remove(key);
        }
        if tag & FLAG_HFE != 0 {
            self.hfe.remove(key);
        }
        Some((hash, ttl))
    }

    /// Stores `hash` at `key` (replacing anything there) with `ttl`.
    pub(crate) fn put(
        &mut self,
        key: &[u8],
        hash: OwnedHash,
        ttl: Option<i64>,
    ) -> Result<(), CommandError> {
        match hash {
            OwnedHash::Compact(buf) => self.put_compact(key, &buf, ttl),
            other => self.put_hash(key, other, ttl),
        }
    }

    /// Stores the compact hash `buf` at `key` (copied straight into the
    /// table: snapshot loading copies from the mapped file once).
    pub(crate) fn put_compact(
        &mut self,
        key: &[u8],
        buf: &[u8],
        ttl: Option<i64>,
    ) -> Result<(), CommandError> {
        self.delete(key);
        let flag = if ttl.is_some() { FLAG_TTL } else { 0 } | self.snap_bit;
        self.keys
            .set_parts(key, &[&[TAG_COMPACT | flag], buf])
            .map_err(|_| CommandError::too_large())?;
        if let Some(at) = ttl {
            self.expires
                .set(key, &at.to_le_bytes())
                .map_err(|_| CommandError::too_large())?;
        }
        Ok(())
    }

    fn put_hash(
        &mut self,
        key: &[u8],
        hash: OwnedHash,
        ttl: Option<i64>,
    ) -> Result<(), CommandError> {
        self.delete(key);
        let flag = if ttl.is_some() { FLAG_TTL } else { 0 } | self.snap_bit;
        let min = match hash {
            OwnedHash::Compact(buf) => {
                self.keys
                    .set_parts(key, &[&[TAG_COMPACT | flag], &buf])
                    .map_err(|_| CommandError::too_large())?;
                None
            }
            OwnedHash::CompactEx(buf) => {
                self.keys
                    .set_parts(key, &[&[TAG_COMPACT_EX | flag], &buf])
                    .map_err(|_| CommandError::too_large())?;
                compact_ex::min_ttl(&buf)
            }
            OwnedHash::Dict(d, ttls) => {
                let id = self.alloc_dict(*d);
                let ttls = ttls.filter(|t| !t.is_empty());
                let min = ttls.as_ref().and_then(|t| t.min());
                if let Some(t) = ttls {
                    self.dict_ttls.insert(id, *t);
                }
                self.keys
                    .set_parts(key, &[&[TAG_DICT | flag], &id.to_le_bytes()])
                    .map_err(|_| CommandError::too_large())?;
                min
            }
        };
        if let Some(at) = ttl {
            self.expires
                .set(key, &at.to_le_bytes())
                .map_err(|_| CommandError::too_large())?;
        }
        match min {
            Some(_) => set_side(&mut self.keys, &mut self.hfe, FLAG_HFE, key, min).map(|_| ()),
            None => Ok(()),
        }
    }

    fn alloc_dict(&mut self, d: ArenaTable) -> u32 {
        if let Some(id) = self.free_dicts.pop() {
            self.dict_ttls.remove(&id);
            self.dicts[id as usize] = Some(d);
            id
        } else {
            self.dicts.push(Some(d));
            (self.dicts.len() - 1) as u32
        }
    }

    /// Sets or clears the TTL of an existing key; false if the key is missing.
    pub(crate) fn set_ttl(&mut self, key: &[u8], ttl: Option<i64>) -> Result<bool, CommandError> {
        self.preserve(key);
        set_side(&mut self.keys, &mut self.expires, FLAG_TTL, key, ttl)
    }

    /// Number of keys, expired-but-unreclaimed included (DBSIZE).
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Every key name (no expiry check).
    pub(crate) fn key_names(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.keys.iter().map(|(k, _)| k)
    }

    /// One SCAN step over this shard's keys.
    pub(crate) fn scan_keys<'a>(&'a self, cursor: u64, f: impl FnMut(&'a [u8], &'a [u8])) -> u64 {
        self.keys.scan(cursor, f)
    }

    /// Bytes held for `key`: its entry, its dict, its TTL entry.
    pub(crate) fn memory_usage(&self, key: &[u8]) -> Option<usize> {
        let (tag, data) = self.raw(key)?;
        let mut n = self.keys.entry_bytes(key.len(), data.len() + 1);
        if let Some(HashRef::Dict(d, t, _)) = self.view(tag, data, NEVER) {
            n += d.memory_bytes() + t.map_or(0, FieldTtls::memory_bytes);
        }
        if tag & FLAG_TTL != 0 {
            n += self.expires.entry_bytes(key.len(), 8);
        }
        if tag & FLAG_HFE != 0 {
            n += self.hfe.entry_bytes(key.len(), 8);
        }
        Some(n)
    }

    /// Finds expired keys while walking the TTL index from where the last
    /// sweep stopped, visiting at most `budget` keys.
    pub(crate) fn expired_keys(&mut self, now: i64, budget: usize) -> Vec<Vec<u8>> {
        due_in(&self.expires, &mut self.sweep_cursor, now, budget)
    }

    /// Number of keys with a TTL.
    pub(crate) fn volatile_len(&self) -> usize {
        self.expires.len()
    }

    /// Number of hashes with field TTLs.
    pub(crate) fn hfe_len(&self) -> usize {
        self.hfe.len()
    }

    /// Keys with fields expired at `now`, walking the field-expiry index
    /// from where the last sweep stopped and visiting at most `budget` keys.
    pub(crate) fn keys_with_expired_fields(&mut self, now: i64, budget: usize) -> Vec<Vec<u8>> {
        due_in(&self.hfe, &mut self.hfe_cursor, now, budget)
    }

    /// Up to `limit` fields of `key` expired at `now` (earliest first for
    /// hashes whose TTLs are kept in order).
    pub(crate) fn expired_fields(&self, key: &[u8], now: i64, limit: usize) -> Vec<Vec<u8>> {
        let Some((tag, data)) = self.raw(key) else {
            return Vec::new();
        };
        if tag & FLAG_HFE == 0 {
            return Vec::new();
        }
        match self.view(tag, data, NEVER) {
            Some(HashRef::CompactEx(b, _)) => compact_ex::triples(b)
                .take_while(|(_, _, t)| is_expired(*t, now))
                .take(limit)
                .map(|(f, _, _)| f.to_bytes())
                .collect(),
            Some(HashRef::Dict(_, Some(t), _)) => t.expired(now, limit),
            _ => Vec::new(),
        }
    }

    /// Opens the hash at `key` for writing, creating it (empty, not yet
    /// stored) if missing. Call [`HashEdit::finish`] to store the result.
    pub(crate) fn edit<'s>(&'s mut self, key: &'s [u8], opts: &'s Options) -> HashEdit<'s> {
        self.preserve(key);
        let raw = self.raw(key);
        let had_hfe = raw.is_some_and(|(t, _)| t & FLAG_HFE != 0);
        let (work, flag, existed, count) = match raw {
            Some((tag, data)) => match tag & ENC_MASK {
                TAG_DICT => {
                    let id = data.try_into().map(u32::from_le_bytes).unwrap_or(u32::MAX);
                    (Work::Dict(id), tag & FLAG_TTL, true, None)
                }
                TAG_COMPACT_EX => (Work::CompactEx(data.to_vec()), tag & FLAG_TTL, true, None),
                // Counting a big compact hash is a scan: done only if a
                // field is added (for the conversion check).
                _ => (Work::Compact(data.to_vec()), tag & FLAG_TTL, true, None),
            },
            None => (Work::Compact(Vec::new()), 0, false, Some(0)),
        };
        HashEdit {
            shard: self,
            key,
            opts,
            work,
            flag,
            existed,
            dirty: false,
            count,
            had_hfe,
        }
    }
}

enum Work {
    Compact(Vec<u8>),
    /// Field/value/TTL triples.
    CompactEx(Vec<u8>),
    Dict(u32),
}

/// A hash opened for writing; see [`Shard::edit`].
pub(crate) struct HashEdit<'s> {
    shard: &'s mut Shard,
    key: &'s [u8],
    opts: &'s Options,
    work: Work,
    flag: u8,
    existed: bool,
    dirty: bool,
    /// Pair count of a compact working buffer, once known.
    count: Option<usize>,
    /// The hash had field TTLs before the edit.
    had_hfe: bool,
}

impl HashEdit<'_> {
    fn dict(&self, id: u32) -> Option<&ArenaTable> {
        self.shard.dicts.get(id as usize)?.as_ref()
    }

    fn dict_mut(&mut self, id: u32) -> Option<&mut ArenaTable> {
        self.shard.dicts.get_mut(id as usize)?.as_mut()
    }

    /// Whether the key existed before this edit.
    pub(crate) fn existed(&self) -> bool {
        self.existed
    }

    /// Whether the hash has no field (no scan of a compact buffer).
    pub(crate) fn is_empty(&self) -> bool {
        match &self.work {
            Work::Compact(buf) | Work::CompactEx(buf) => buf.is_empty(),
            Work::Dict(id) => self.dict(*id).is_none_or(|d| d.len() == 0),
        }
    }

    /// Converts to a dict now (field TTLs carried over).
    fn convert(&mut self) -> Result<(), CommandError> {
        match &self.work {
            Work::Compact(buf) => {
                let d = dict_from_compact(buf).map_err(|_| CommandError::too_large())?;
                let id = self.shard.alloc_dict(d);
                self.work = Work::Dict(id);
                self.dirty = true;
            }
            Work::CompactEx(buf) => {
                let (d, t) = dict_from_triples(buf).map_err(|_| CommandError::too_large())?;
                let id = self.shard.alloc_dict(d);
                if !t.is_empty() {
                    self.shard.dict_ttls.insert(id, t);
                }
                self.work = Work::Dict(id);
                self.dirty = true;
            }
            Work::Dict(_) => {}
        }
        Ok(())
    }

    /// Switches a compact hash to the layout with field TTLs, as Redis does
    /// on the first field-TTL command (even one that changes nothing).
    pub(crate) fn make_ex(&mut self) {
        if let Work::Compact(buf) = &self.work {
            self.work = Work::CompactEx(compact_ex::from_pairs(buf));
            self.dirty = true;
        }
    }

    /// Redis's pre-check before a write of field/value pairs whose longest
    /// argument is `max_len` bytes: converts first if it passes the value
    /// limit, or if `pairs` (0 to skip this part) passes the entries limit
    /// even if the pairs repeat or already exist.
    pub(crate) fn precheck(&mut self, pairs: usize, max_len: usize) -> Result<(), CommandError> {
        if matches!(self.work, Work::Compact(_) | Work::CompactEx(_))
            && (pairs > self.opts.hash_max_listpack_entries
                || max_len > self.opts.hash_max_listpack_value)
        {
            self.convert()?;
        }
        Ok(())
    }

    /// Sets `field` to `value`, keeping an existing field's TTL when
    /// `keep_ttl`; true when the field is new. Converts to a dict when the
    /// value or field is too long or the hash too big.
    pub(crate) fn set_with(
        &mut self,
        field: &[u8],
        value: &[u8],
        keep_ttl: bool,
    ) -> Result<bool, CommandError> {
        if let Work::Compact(buf) | Work::CompactEx(buf) = &self.work {
            let limit = self.opts.hash_max_listpack_value;
            if field.len() > limit
                || value.len() > limit
                || buf.len() + field.len() + value.len() + 20 > COMPACT_MAX_BYTES
            {
                self.convert()?;
            }
        }
        let new = match &mut self.work {
            Work::Compact(buf) => {
                let new = compact::set(buf, field, value);
                self.counted(new)?;
                new
            }
            Work::CompactEx(buf) => {
                let new = compact_ex::set(buf, field, value, keep_ttl);
                self.counted(new)?;
                new
            }
            Work::Dict(id) => {
                let id = *id;
                let d = self.dict_mut(id).ok_or_else(CommandError::too_large)?;
                let new = d.set(field, value).map_err(|_| CommandError::too_large())?;
                if !new && !keep_ttl {
                    if let Some(t) = self.shard.dict_ttls.get_mut(&id) {
                        t.remove(field);
                    }
                }
                new
            }
        };
        Ok(new)
    }

    /// After a write to the compact buffer: counts a new field (scanning
    /// only if the count is not known yet) and converts to a dict past the
    /// entries limit.
    fn counted(&mut self, new: bool) -> Result<(), CommandError> {
        self.dirty = true;
        if !new {
            return Ok(());
        }
        let n = match (self.count, &self.work) {
            (Some(c), _) => c + 1,
            (None, Work::Compact(buf)) => compact::len(buf),
            (None, Work::CompactEx(buf)) => compact_ex::len(buf),
            (None, Work::Dict(_)) => return Ok(()),
        };
        self.count = Some(n);
        if n > self.opts.hash_max_listpack_entries {
            self.convert()?;
        }
        Ok(())
    }

    /// The TTL element of `field` (0 = none), expired or not; None when the
    /// field is missing.
    pub(crate) fn field_ttl(&self, field: &[u8]) -> Option<i64> {
        match &self.work {
            Work::Compact(buf) => compact::find(buf, &compact::Probe::new(field)).map(|_| 0),
            Work::CompactEx(buf) => {
                compact_ex::find(buf, &compact::Probe::new(field)).map(|f| f.ttl)
            }
            Work::Dict(id) => {
                self.dict(*id)?.get(field)?;
                Some(
                    self.shard
                        .dict_ttls
                        .get(id)
                        .and_then(|t| t.get(field))
                        .unwrap_or(0),
                )
            }
        }
    }

    /// Sets the TTL of an existing `field` to `at` (Unix ms), or removes it
    /// when `at` is 0; false when the field is missing.
    pub(crate) fn set_field_ttl(&mut self, field: &[u8], at: i64) -> bool {
        match self.field_ttl(field) {
            None => return false,
            // Setting a TTL again still moves the triple (Redis re-inserts
            // it before the others with that expiry); removing none is a
            // no-op.
            Some(cur) if cur == at && at == compact_ex::NO_TTL => return true,
            Some(_) => {}
        }
        self.make_ex();
        match &mut self.work {
            Work::Compact(_) => false,
            Work::CompactEx(buf) => {
                self.dirty = true;
                compact_ex::set_ttl(buf, field, at)
            }
            Work::Dict(id) => {
                let id = *id;
                if at == compact_ex::NO_TTL {
                    if let Some(t) = self.shard.dict_ttls.get_mut(&id) {
                        t.remove(field);
                    }
                } else {
                    self.shard.dict_ttls.entry(id).or_default().set(field, at);
                }
                true
            }
        }
    }

    /// Removes `field`; true when it was present.
    pub(crate) fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.work {
            Work::Compact(buf) => {
                let gone = compact::remove(buf, field);
                if gone {
                    self.count = self.count.map(|c| c - 1);
                    self.dirty = true;
                }
                gone
            }
            Work::CompactEx(buf) => {
                let gone = compact_ex::remove(buf, field);
                if gone {
                    self.count = self.count.map(|c| c - 1);
                    self.dirty = true;
                }
                gone
            }
            Work::Dict(id) => {
                let id = *id;
                let gone = self.dict_mut(id).is_some_and(|d| d.remove(field));
                if gone {
                    if let Some(t) = self.shard.dict_ttls.get_mut(&id) {
                        t.remove(field);
                    }
                }
                gone
            }
        }
    }

    /// Stores the result: writes the compact buffer back, records a new
    /// dict, or deletes the key when the hash is empty; then brings the
    /// field-expiry index up to date.
    pub(crate) fn finish(self) -> Result<(), CommandError> {
        if self.is_empty() {
            if let Work::Dict(id) = self.work {
                if !self.existed {
                    // A dict created by this edit and emptied again.
                    if let Some(slot) = self.shard.dicts.get_mut(id as usize) {
                        *slot = None;
                        self.shard.free_dicts.push(id);
                        self.shard.dict_ttls.remove(&id);
                    }
                }
            }
            if self.existed {
                self.shard.delete(self.key);
            }
            return Ok(());
        }
        let min = match &self.work {
            Work::Compact(_) => None,
            Work::CompactEx(buf) => compact_ex::min_ttl(buf),
            Work::Dict(id) => {
                let id = *id;
                if self
                    .shard
                    .dict_ttls
                    .get(&id)
                    .is_some_and(FieldTtls::is_empty)
                {
                    self.shard.dict_ttls.remove(&id);
                }
                self.shard.dict_ttls.get(&id).and_then(FieldTtls::min)
            }
        };
        if !self.dirty && !self.had_hfe && min.is_none() {
            return Ok(());
        }
        if self.dirty {
            let flag = self.flag | self.shard.snap_bit;
            let res = match &self.work {
                Work::Compact(buf) => self
                    .shard
                    .keys
                    .set_parts(self.key, &[&[TAG_COMPACT | flag], buf]),
                Work::CompactEx(buf) => self
                    .shard
                    .keys
                    .set_parts(self.key, &[&[TAG_COMPACT_EX | flag], buf]),
                // Written for a new dict too: the key may still point at its
                // old compact payload (or at nothing). A new key has no TTL
                // flag.
                Work::Dict(id) => self
                    .shard
                    .keys
                    .set_parts(self.key, &[&[TAG_DICT | flag], &id.to_le_bytes()]),
            };
            res.map_err(|_| CommandError::too_large())?;
        }
        if self.had_hfe || min.is_some() {
            let Shard { keys, hfe, .. } = &mut *self.shard;
            set_side(keys, hfe, FLAG_HFE, self.key, min)?;
        }
        Ok(())
    }
}

/// Where effects are made durable (the log writer, once the data directory
/// has one). `append` is called with the shard lock(s) of the effect held,
/// so the log order is the apply order for every key; `sync` is called after
/// the locks are released, so writers can share fsyncs and readers never
/// wait for one.
pub(crate) trait Journal: Send + Sync {
    /// Appends `e`; returns a ticket for [`Journal::sync`].
    fn append(&self, e: &Effect<'_>) -> Result<u64, Error>;
    /// Appends a record already framed (see `log::record`); returns a
    /// ticket for [`Journal::sync`].
    fn append_frame(&self, frame: &[u8]) -> Result<u64, Error>;
    /// Returns once the record with `ticket` is as durable as the fsync
    /// policy promises.
    fn sync(&self, ticket: u64) -> Result<(), Error>;
}

/// All shards.
pub(crate) struct Keyspace {
    shards: Box<[RwLock<Shard>]>,
    /// Set once recovery is done; effects applied before that (replay) are
    /// not logged again.
    journal: OnceLock<Arc<dyn Journal>>,
    /// Held for the whole of a snapshot: one capture at a time.
    pub(crate) capture_lock: Mutex<()>,
    /// The keys sessions WATCH.
    pub(crate) watches: watch::Watches,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            journal: OnceLock::new(),
            capture_lock: Mutex::new(()),
            watches: watch::Watches::default(),
        }
    }
}

/// Write locks on the shards of several keys, taken in ascending order.
pub(crate) struct MultiGuard<'a> {
    guards: Vec<(usize, RwLockWriteGuard<'a, Shard>)>,
}

impl MultiGuard<'_> {
    /// Whether every shard is locked.
    pub(crate) fn holds_all(&self) -> bool {
        self.guards.len() == SHARDS
    }

    /// FLUSHDB under a guard holding every shard: each shard emptied, what
    /// it held handed to a running snapshot (as [`Keyspace::flush`] does).
    pub(crate) fn clear_all(&mut self) {
        let old: Vec<Option<Shard>> = self
            .guards
            .iter_mut()
            .map(|(_, g)| {
                let fresh = g.emptied();
                retire(std::mem::replace(&mut **g, fresh))
            })
            .collect();
        drop(old);
    }

    /// Shard `i` (which must be locked).
    pub(crate) fn shard_at(&mut self, i: usize) -> &mut Shard {
        let pos = self
            .guards
            .binary_search_by_key(&i, |(j, _)| *j)
            .unwrap_or_else(|_| unreachable_shard());
        &mut self.guards[pos].1
    }

    /// Shard `i`, if it is locked.
    pub(crate) fn try_shard_at(&mut self, i: usize) -> Option<&mut Shard> {
        let pos = self.guards.binary_search_by_key(&i, |(j, _)| *j).ok()?;
        Some(&mut self.guards[pos].1)
    }

    /// The shard holding `key`, if it is locked.
    pub(crate) fn try_shard(&mut self, key: &[u8]) -> Option<&mut Shard> {
        self.try_shard_at(shard_index(key))
    }

    /// The shard holding `key` (which must be one of the locked keys).
    pub(crate) fn shard(&mut self, key: &[u8]) -> &mut Shard {
        let idx = shard_index(key);
        let pos = self
            .guards
            .binary_search_by_key(&idx, |(i, _)| *i)
            .unwrap_or_else(|_| unreachable_shard());
        &mut self.guards[pos].1
    }
}

/// The hash a key payload `[tag][data]` stands for, seen at `now`.
fn view_in<'a>(
    dicts: &'a [Option<ArenaTable>],
    dict_ttls: &'a HashMap<u32, FieldTtls>,
    tag: u8,
    data: &'a [u8],
    now: i64,
) -> Option<HashRef<'a>> {
    match tag & ENC_MASK {
        TAG_COMPACT => Some(HashRef::Compact(data)),
        TAG_COMPACT_EX => Some(HashRef::CompactEx(data, now)),
        TAG_DICT => {
            let id = u32::from_le_bytes(data.try_into().ok()?);
            let d = dicts.get(id as usize)?.as_ref()?;
            let t = if tag & FLAG_HFE != 0 {
                dict_ttls.get(&id)
            } else {
                None
            };
            Some(HashRef::Dict(d, t, now))
        }
        _ => None,
    }
}

/// The keys of a side table of times (`expires`, `hfe`) whose time is
/// before `now`, walking it from `cursor` (left where the walk stopped)
/// until its end or `budget` keys visited.
fn due_in(table: &ArenaTable, cursor: &mut u64, now: i64, budget: usize) -> Vec<Vec<u8>> {
    let mut due: Vec<Vec<u8>> = Vec::new();
    let mut visited = 0;
    loop {
        *cursor = table.scan(*cursor, |k, v| {
            visited += 1;
            if let Ok(b) = <[u8; 8]>::try_from(v) {
                // Expired when now > the time (Redis, for keys and fields).
                if now > i64::from_le_bytes(b) {
                    due.push(k.to_vec());
                }
            }
        });
        if *cursor == 0 || visited >= budget {
            return due;
        }
    }
}

/// Sets (`Some`) or clears (`None`) the entry of `key` in a side table of
/// its shard (`expires`, `hfe`) together with its tag bit `flag`; false
/// when the key is missing.
fn set_side(
    keys: &mut ArenaTable,
    side: &mut ArenaTable,
    flag: u8,
    key: &[u8],
    value: Option<i64>,
) -> Result<bool, CommandError> {
    let Some(p) = keys.get_mut(key) else {
        return Ok(false);
    };
    match value {
        Some(at) => {
            p[0] |= flag;
            side.set(key, &at.to_le_bytes())
                .map_err(|_| CommandError::too_large())?;
        }
        None => {
            p[0] &= !flag;
            side.remove(key);
        }
    }
    Ok(true)
}

/// Options for effects whose application never converts an encoding
/// (field removals).
fn no_opts() -> &'static Options {
    static OPTS: OnceLock<Options> = OnceLock::new();
    OPTS.get_or_init(Options::default)
}

/// The triples of pair buffer `buf` with the TTLs of `ttls`, in
/// `listpackex` order.
fn triples_with(buf: &[u8], ttls: &FieldTtls) -> Vec<u8> {
    let mut ex = compact_ex::from_pairs(buf);
    for (f, t) in ttls.iter() {
        compact_ex::set_ttl(&mut ex, f, t);
    }
    ex
}

/// Encodes into `out` every key of `shard` whose capture bit is not `bit`
/// (visited by `keys.scan` from `cursor`, until the scan ends or `budget`
/// keys or bytes are reached), and returns the keys encoded and the next
/// cursor.
fn capture_batch(
    shard: &Shard,
    bit: u8,
    mut cursor: u64,
    out: &mut BigBuf,
    count: &mut u64,
) -> (Vec<Vec<u8>>, u64) {
    const BATCH_KEYS: usize = 256;
    const BATCH_BYTES: usize = 64 << 10;
    let Shard {
        keys,
        dicts,
        dict_ttls,
        expires,
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
            if let Some(h) = view_in(dicts, dict_ttls, tag, data, NEVER) {
                crate::snapshot::format::encode_entry(out, k, h, ttl);
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
fn retire(old: Shard) -> Option<Shard> {
    match old.capture.clone() {
        Some(cap) => {
            cap.orphans.lock().push(old);
            None
        }
        None => Some(old),
    }
}

#[cold]
fn unreachable_shard() -> usize {
    // lock_many locks the shard of every key it is given; asking for another
    // key is a programming error inside this crate.
    panic!("MultiGuard::shard called for a key that was not locked")
}

#[inline]
pub(crate) fn shard_index(key: &[u8]) -> usize {
    shard_of_hash(hash_name(key))
}

/// The shard of a key whose [`hash_name`] is `hash` (its top bits; the
/// tables inside a shard use the low bits and bits 32..39, so the same hash
/// serves both).
#[inline]
fn shard_of_hash(hash: u64) -> usize {
    (hash >> (64 - SHARD_BITS)) as usize
}

impl Keyspace {
    /// Starts logging every later effect to `journal`.
    pub(crate) fn set_journal(&self, journal: Arc<dyn Journal>) {
        let _ = self.journal.set(journal);
    }

    /// Chooses each hash's encoding again from its contents under `opts`
    /// (after replay): a dict that fits the compact limits becomes compact.
    /// Compact hashes need no look: every one was loaded from a snapshot
    /// after a check against `opts`, or built by replayed edits, which
    /// convert to a dict as soon as a hash passes the limits of `opts`.
    pub(crate) fn rebuild_encodings(&self, opts: &Options) {
        for s in self.shards.iter() {
            let mut shard = s.write();
            if shard.dicts.iter().all(Option::is_none) {
                continue;
            }
            let mut change: Vec<Vec<u8>> = Vec::new();
            for (k, p) in shard.keys.iter() {
                let Some((&tag, data)) = p.split_first() else {
                    continue;
                };
                if tag & ENC_MASK != TAG_DICT {
                    continue;
                }
                let Some(h) = shard.view(tag, data, NEVER) else {
                    continue;
                };
                let fits = h.len() <= opts.hash_max_listpack_entries && {
                    let mut ok = true;
                    h.for_each(|f, v| {
                        ok &= f.len() <= opts.hash_max_listpack_value
                            && v.len() <= opts.hash_max_listpack_value
                    });
                    ok
                };
                if fits {
                    change.push(k.to_vec());
                }
            }
            for k in change {
                let Some((OwnedHash::Dict(d, ttls), ttl)) = shard.take(&k) else {
                    continue;
                };
                let mut buf = Vec::new();
                for (f, v) in d.iter() {
                    compact::push_elem(&mut buf, f);
                    compact::push_elem(&mut buf, v);
                }
                let hash = match ttls {
                    Some(t) => OwnedHash::CompactEx(triples_with(&buf, &t)),
                    None => OwnedHash::Compact(buf),
                };
                let _ = shard.put(&k, hash, ttl);
            }
        }
    }

    /// Calls `f` with effects that rebuild the whole current state (the log
    /// rewrite): HSET in chunks of at most 1000 pairs, HPEXPIREAT per field
    /// TTL, then PEXPIREAT.
    pub(crate) fn for_each_state_effect(&self, mut f: impl FnMut(&Effect<'_>)) {
        for s in self.shards.iter() {
            let shard = s.read();
            for (k, p) in shard.keys.iter() {
                let Some((&tag, data)) = p.split_first() else {
                    continue;
                };
                let Some(h) = shard.view(tag, data, NEVER) else {
                    continue;
                };
                let pairs = h.to_pairs();
                let mut field_ttls: Vec<(Vec<u8>, i64)> = Vec::new();
                h.for_each_with_ttl(|f, _, t| {
                    if t != compact_ex::NO_TTL {
                        field_ttls.push((f.to_bytes(), t));
                    }
                });
                for chunk in pairs.chunks(1000) {
                    let refs: Vec<(&[u8], &[u8])> = chunk
                        .iter()
                        .map(|(a, b)| (a.as_slice(), b.as_slice()))
                        .collect();
                    f(&Effect::HSet {
                        key: k,
                        pairs: refs,
                    });
                }
                for (field, at_ms) in &field_ttls {
                    f(&Effect::HPExpireAt {
                        key: k,
                        at_ms: *at_ms,
                        fields: vec![field],
                    });
                }
                if let Some(at_ms) = shard.ttl_of(k) {
                    f(&Effect::PExpireAt { key: k, at_ms });
                }
            }
        }
    }

    /// Logs `e` (when there is a journal); call with the effect's shard
    /// locks held, before applying it.
    pub(crate) fn log(&self, e: &Effect<'_>) -> Result<Option<u64>, Error> {
        let t = match self.journal.get() {
            Some(j) => j.append(e).map(Some)?,
            None => None,
        };
        self.watches.touch(e);
        Ok(t)
    }

    /// Logs `e` where `sink` says, before it is applied to `shard` (which
    /// holds all its keys).
    #[inline]
    pub(crate) fn log_in(
        &self,
        sink: Sink<'_>,
        shard: &Shard,
        e: &Effect<'_>,
    ) -> Result<Option<u64>, Error> {
        match sink {
            Sink::Journal => self.log(e),
            Sink::Tx(tx) => {
                tx.borrow_mut().before_in_shard(shard, e)?;
                Ok(None)
            }
        }
    }

    /// Appends a framed record (a transaction's; the caller marks the
    /// watchers); call with the locks of the keys it changes held.
    pub(crate) fn append_frame(&self, frame: &[u8]) -> Result<Option<u64>, Error> {
        Ok(match self.journal.get() {
            Some(j) => Some(j.append_frame(frame)?),
            None => None,
        })
    }

    /// Waits for the durability of a logged effect; call without locks.
    pub(crate) fn sync(&self, ticket: Option<u64>) -> Result<(), Error> {
        match (self.journal.get(), ticket) {
            (Some(j), Some(t)) => j.sync(t),
            _ => Ok(()),
        }
    }

    /// Deletes `key` from its locked shard if it has expired, logging the
    /// deletion first. True when it was deleted.
    pub(crate) fn expire_locked(
        &self,
        sink: Sink<'_>,
        shard: &mut Shard,
        key: &[u8],
        now: &Now<'_>,
    ) -> Result<bool, Error> {
        if !matches!(shard.lookup(key, now), Lookup::Expired) {
            return Ok(false);
        }
        self.log_in(sink, shard, &Effect::Del { keys: vec![key] })?;
        shard.delete(key);
        Ok(true)
    }

    pub(crate) fn shard(&self, key: &[u8]) -> &RwLock<Shard> {
        &self.shards[shard_index(key)]
    }

    pub(crate) fn shard_at(&self, i: usize) -> &RwLock<Shard> {
        &self.shards[i]
    }

    /// Locks the shards of all `keys` for writing, in ascending shard order.
    pub(crate) fn lock_many(&self, keys: &[&[u8]]) -> MultiGuard<'_> {
        let mut idx: Vec<usize> = keys.iter().map(|k| shard_index(k)).collect();
        idx.sort_unstable();
        idx.dedup();
        MultiGuard {
            guards: idx
                .into_iter()
                .map(|i| (i, self.shards[i].write()))
                .collect(),
        }
    }

    /// Locks every shard for writing, in order.
    pub(crate) fn lock_all(&self) -> MultiGuard<'_> {
        MultiGuard {
            guards: self.shards.iter().map(|s| s.write()).enumerate().collect(),
        }
    }

    /// Runs `f` on the live hash at `key` under a read lock. An expired key
    /// reads as missing and is then deleted (lazy expiry).
    #[inline]
    pub(crate) fn read<R>(
        &self,
        key: &[u8],
        now: &Now<'_>,
        f: impl FnOnce(Option<HashRef<'_>>) -> R,
    ) -> R {
        // One hash of the key picks the shard and finds the key in it.
        let hash = hash_name(key);
        let lock = &self.shards[shard_of_hash(hash)];
        let shard = lock.read();
        let (r, expired) = match shard.lookup_hashed(key, hash, now) {
            Lookup::Live(h) => (f(Some(h)), false),
            Lookup::Expired => (f(None), true),
            Lookup::Missing => (f(None), false),
        };
        drop(shard);
        if expired {
            // Lazy expiry; if the deletion cannot be logged the key stays
            // (still invisible) and a later access or sweep retries.
            let _ = self.expire_locked(Sink::Journal, &mut lock.write(), key, now);
        }
        r
    }

    /// Runs `f` on the shard of `key` under a read lock (for commands that
    /// need more than the hash, such as its TTL), then deletes `key` if it
    /// turned out to be expired.
    pub(crate) fn read_shard<R>(
        &self,
        key: &[u8],
        now: &Now<'_>,
        f: impl FnOnce(&Shard) -> R,
    ) -> R {
        let lock = self.shard(key);
        let shard = lock.read();
        let expired = matches!(shard.lookup(key, now), Lookup::Expired);
        let r = f(&shard);
        drop(shard);
        if expired {
            let _ = self.expire_locked(Sink::Journal, &mut lock.write(), key, now);
        }
        r
    }

    /// Runs `f` on the shard of `key` under its write lock, after deleting
    /// `key` if it has expired.
    #[inline]
    pub(crate) fn write<R>(
        &self,
        key: &[u8],
        now: &Now<'_>,
        f: impl FnOnce(&mut Shard) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut shard = self.shard(key).write();
        self.expire_locked(Sink::Journal, &mut shard, key, now)?;
        f(&mut shard)
    }

    /// Removes every key (no logging; see [`Keyspace::flush`]).
    pub(crate) fn clear(&self) {
        for s in self.shards.iter() {
            let mut g = s.write();
            let fresh = g.emptied();
            let old = retire(std::mem::replace(&mut *g, fresh));
            drop(g);
            drop(old);
        }
    }

    /// FLUSHDB: takes every shard lock in order, logs, clears.
    pub(crate) fn flush(&self) -> Result<Option<u64>, Error> {
        let mut guards: Vec<_> = self.shards.iter().map(|s| s.write()).collect();
        let t = self.log(&Effect::FlushDb)?;
        self.watches
            .touch_existing(&mut |k| guards[shard_index(k)].hash_ref(k).is_some());
        // Handed to a running snapshot before the locks go, so it cannot
        // finish without them; dropped (the slow part) after.
        let old: Vec<Option<Shard>> = guards
            .iter_mut()
            .map(|g| {
                let fresh = g.emptied();
                retire(std::mem::replace(&mut **g, fresh))
            })
            .collect();
        drop(guards);
        drop(old);
        Ok(t)
    }

    /// Counts over the whole keyspace (expired-but-unreclaimed keys
    /// included, as in DBSIZE), one shard at a time under its read lock.
    pub(crate) fn stats(&self) -> Stats {
        let mut st = Stats::default();
        for s in self.shards.iter() {
            let shard = s.read();
            st.volatile += shard.volatile_len() as u64;
            st.field_ttl_hashes += shard.hfe_len() as u64;
            for (k, p) in shard.keys.iter() {
                let Some((&tag, data)) = p.split_first() else {
                    continue;
                };
                let Some(h) = shard.view(tag, data, NEVER) else {
                    continue;
                };
                st.keys += 1;
                st.fields += h.len() as u64;
                match h {
                    HashRef::Compact(_) | HashRef::CompactEx(..) => st.listpack += 1,
                    HashRef::Dict(..) => st.hashtable += 1,
                }
                st.memory += shard.memory_usage(k).unwrap_or(0) as u64;
            }
        }
        st
    }

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
            let (marks, next) = capture_batch(&g, bit, cursor, out, count);
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
                let (_, next) = capture_batch(&o, o.snap_bit, cursor, out, count);
                cursor = next;
                flush(out, count);
                if cursor == 0 {
                    break;
                }
            }
        }
    }

    /// Removes expired fields of the shard's hashes with field TTLs, at most
    /// `budget` fields (and keys visited). Returns the fields removed.
    fn sweep_fields(&self, shard: &mut Shard, now: i64, budget: usize) -> Result<usize, Error> {
        let keys = shard.keys_with_expired_fields(now, budget);
        let mut removed = 0;
        for k in keys {
            if removed >= budget {
                break;
            }
            let fields = shard.expired_fields(&k, now, budget - removed);
            let fields = fields.iter().map(Vec::as_slice).collect();
            removed += self.remove_fields(Sink::Journal, shard, &k, fields)?;
        }
        Ok(removed)
    }

    /// Removes `fields` of `key` because their time passed: logged first as
    /// one HDEL (the key goes with its last field). Returns how many went.
    fn remove_fields(
        &self,
        sink: Sink<'_>,
        shard: &mut Shard,
        key: &[u8],
        fields: Vec<&[u8]>,
    ) -> Result<usize, Error> {
        if fields.is_empty() {
            return Ok(0);
        }
        let e = Effect::HDel { key, fields };
        self.log_in(sink, shard, &e)?;
        Ok(effect::apply_in_shard(shard, &e, no_opts())? as usize)
    }

    /// The time at which `key`'s fields are to be expired now, if any of
    /// them is (None: no field TTL due, and the clock is not read).
    fn fields_due(shard: &Shard, key: &[u8], now: &Now<'_>) -> Option<i64> {
        let min = shard.min_field_ttl(key)?;
        let now = now.get();
        is_expired(min, now).then_some(now)
    }

    /// Lazy field expiry under the shard's write lock: removes those of
    /// `fields` that exist and are expired at `now` (logged as one HDEL
    /// first; the key goes if it empties). Returns how many went.
    pub(crate) fn expire_fields_locked(
        &self,
        sink: Sink<'_>,
        shard: &mut Shard,
        key: &[u8],
        fields: &[&[u8]],
        now: &Now<'_>,
    ) -> Result<usize, Error> {
        let Some(now) = Self::fields_due(shard, key, now) else {
            return Ok(0);
        };
        let Some(h) = shard.hash_ref(key).map(|h| h.at(now)) else {
            return Ok(0);
        };
        let mut seen = std::collections::HashSet::new();
        let gone: Vec<&[u8]> = fields
            .iter()
            .copied()
            .filter(|f| h.is_field_expired(f) && seen.insert(*f))
            .collect();
        self.remove_fields(sink, shard, key, gone)
    }

    /// Removes every field of `key` expired at `now` (HRANDFIELD's purge),
    /// logged as one HDEL.
    pub(crate) fn expire_all_fields_locked(
        &self,
        sink: Sink<'_>,
        shard: &mut Shard,
        key: &[u8],
        now: &Now<'_>,
    ) -> Result<usize, Error> {
        let Some(now) = Self::fields_due(shard, key, now) else {
            return Ok(0);
        };
        let fields = shard.expired_fields(key, now, usize::MAX);
        self.remove_fields(sink, shard, key, fields.iter().map(Vec::as_slice).collect())
    }

    /// [`Keyspace::read`] for commands that address `fields` (HGET, HMGET,
    /// HEXISTS, HSTRLEN): an expired field among them reads as missing and
    /// is then removed (lazy field expiry).
    #[inline]
    pub(crate) fn read_fields<R>(
        &self,
        key: &[u8],
        fields: &[&[u8]],
        now: &Now<'_>,
        f: impl FnOnce(Option<HashRef<'_>>) -> R,
    ) -> R {
        let mut due = false;
        let r = self.read(key, now, |h| {
            if let Some(h) = h {
                due = h.now() != NEVER && fields.iter().any(|f| h.is_field_expired(f));
            }
            f(h)
        });
        if due {
            // If the removal cannot be logged the fields stay (still
            // invisible) and a later access or the sweep retries.
            let mut shard = self.shard(key).write();
            let _ = self.expire_fields_locked(Sink::Journal, &mut shard, key, fields, now);
        }
        r
    }

    /// One active-expiry pass over every shard with a per-shard budget.
    /// Returns the number of keys deleted; each deletion is logged first.
    pub(crate) fn sweep(&self, now: i64, budget: usize) -> Result<usize, Error> {
        let mut deleted = 0;
        for s in self.shards.iter() {
            let (volatile, hfe) = {
                let g = s.read();
                (g.volatile_len(), g.hfe_len())
            };
            if hfe > 0 {
                self.sweep_fields(&mut s.write(), now, budget)?;
            }
            if volatile == 0 {
                continue;
            }
            let mut shard = s.write();
            let keys = shard.expired_keys(now, budget);
            if keys.is_empty() {
                continue;
            }
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            self.log(&Effect::Del { keys: refs.clone() })?;
            for k in refs {
                deleted += usize::from(shard.delete(k));
            }
        }
        Ok(deleted)
    }
}
