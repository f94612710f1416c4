//! The keyspace: every key, its hash and its TTL, split into shards that are
//! locked independently so commands on different keys run in parallel.
//!
//! Each [`Shard`] holds:
//! - `keys`: an [`ArenaTable`] from key to a payload `[tag][data]`, where data
//!   is the compact buffer itself (so a small hash costs one packed arena
//!   entry, key included), a shape id and the values (a compact hash whose
//!   field list is shared, `hash::shape`), or the index of a dict in `dicts`;
//! - `shapes`: the shard's shared field lists, each payload holding one
//!   reference to its shape;
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
//!
//! Submodules: `batch` (many HSETs logged in one append), `edit` (a hash
//! opened for writing), `effect` (what commands change, as logged and
//! applied), `expiry` (lazy and active expiry),
//! `capture` (snapshots while writers run), `tx` (transactions' effects
//! and undo), `watch` (WATCH), `shard` (one shard's tables and what is
//! read and stored there whole). This module owns the [`Keyspace`] (the
//! shards and their locks, the journal, loading and state records) and the
//! payload tags.

mod batch;
mod capture;
mod edit;
pub(crate) mod effect;
mod expiry;
mod load;
mod shard;
pub(crate) mod tx;
pub(crate) mod watch;

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock, RwLockWriteGuard};

use crate::error::{CommandError, Error};

use crate::hash::dict::Dict;
use crate::hash::shape;
use crate::hash::table::{hash_name, ArenaTable};
use crate::hash::{
    compact, compact_ex, dict_from_compact, dict_from_triples, is_expired, FieldTtls, HashRef,
    OwnedHash, NEVER,
};
use crate::options::{Now, Options};
use crate::snapshot::buf::BigBuf;
use crate::snapshot::format::SnapshotWriter;
pub(crate) use batch::HSetItem;
use capture::retire;
pub(crate) use capture::Capture;
pub(crate) use effect::Effect;
use shard::{set_side, shape_of, view_in};
pub(crate) use shard::{Lookup, Shard};
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
/// A compact hash sharing its field list: `[shape id u16 LE][values]`
/// (see `hash::shape`).
const TAG_SHAPED: u8 = 4;
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
    /// Compact hashes sharing a field list, and the lists.
    pub(crate) shaped: u64,
    pub(crate) shapes: u64,
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
    /// Appends `count` records already framed, back to back in `frames`,
    /// in one write: all of them or, on error, none; returns the ticket of
    /// the last. (This default appends them one by one, for journals that
    /// cannot fail part way.)
    fn append_frames(&self, frames: &[u8], count: u64) -> Result<u64, Error> {
        let _ = count;
        let mut ticket = 0;
        for (a, b) in crate::log::record::frame_spans(frames) {
            ticket = self.append_frame(&frames[a..b])?;
        }
        Ok(ticket)
    }
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
    /// A follower's keyspace (`Db::open_read_only`): only the log it
    /// follows changes it; expired keys and fields stay (invisible) until
    /// the writer's deletions arrive.
    read_only: std::sync::atomic::AtomicBool,
    /// What expiry removed since the keyspace was made.
    pub(crate) counters: Counters,
}

/// Counts of what expiry removed (lazily or by the sweep), as Redis's INFO
/// stats `expired_keys` and `expired_subkeys`.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) expired_keys: std::sync::atomic::AtomicU64,
    pub(crate) expired_fields: std::sync::atomic::AtomicU64,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            journal: OnceLock::new(),
            capture_lock: Mutex::new(()),
            watches: watch::Watches::default(),
            read_only: std::sync::atomic::AtomicBool::new(false),
            counters: Counters::default(),
        }
    }
}

/// The journal of a read-only keyspace: every append is refused, so a
/// write that got past the command layer's check still changes nothing
/// (effects are logged before they are applied).
struct RefuseWrites;

impl Journal for RefuseWrites {
    fn append(&self, _: &Effect<'_>) -> Result<u64, Error> {
        Err(Error::ReadOnly)
    }
    fn append_frame(&self, _: &[u8]) -> Result<u64, Error> {
        Err(Error::ReadOnly)
    }
    fn append_frames(&self, _: &[u8], _: u64) -> Result<u64, Error> {
        Err(Error::ReadOnly)
    }
    fn sync(&self, _: u64) -> Result<(), Error> {
        Ok(())
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

/// Options for effects whose application never converts an encoding
/// (field removals).
pub(super) fn no_opts() -> &'static Options {
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
pub(crate) fn shard_of_hash(hash: u64) -> usize {
    (hash >> (64 - SHARD_BITS)) as usize
}

impl Keyspace {
    /// Turns the sharing of field lists ([`Options::shapes`]) on or off for
    /// hashes stored from now on.
    pub(crate) fn set_shapes(&self, on: bool) {
        for s in self.shards.iter() {
            s.write().shapes.set_enabled(on);
        }
    }

    /// Makes the keyspace a follower's: commands that write are refused,
    /// reads never delete what expired, and nothing is logged.
    pub(crate) fn set_read_only(&self) {
        self.read_only
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.journal.set(Arc::new(RefuseWrites));
    }

    /// Whether this is a follower's keyspace.
    #[inline]
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Replaces everything this keyspace holds with what `fresh` holds
    /// (a follower reloading from a newer snapshot): every shard is locked
    /// for the swap, so a reader sees the old state or the new one, never
    /// a mix. Returns `fresh` holding the old contents, to be dropped by
    /// the caller outside the locks.
    pub(crate) fn replace_contents(&self, fresh: Keyspace) -> Keyspace {
        {
            let mut mine = self.lock_all();
            let mut theirs = fresh.lock_all();
            for i in 0..SHARDS {
                std::mem::swap(mine.shard_at(i), theirs.shard_at(i));
            }
        }
        fresh
    }

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
                    v.with_bytes(|v| compact::push_value(&mut buf, v, opts.pack_hex));
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

    /// Logs the whole state of `key` in its (locked) `shard`, after a
    /// change made without an effect (an RDB import's put): one record
    /// that deletes the key if `replaced`, then sets its fields, their
    /// TTLs and its TTL. Readers and subscribers then see the key as the
    /// writer has it, whole.
    pub(crate) fn log_key_state(
        &self,
        shard: &Shard,
        key: &[u8],
        replaced: bool,
    ) -> Result<(), Error> {
        if self.journal.get().is_none() {
            return Ok(());
        }
        let Some(h) = shard.hash_ref(key) else {
            return Ok(());
        };
        // The fields and values printed into one buffer (no allocation
        // per element).
        let mut text = Vec::new();
        let mut spans = Vec::with_capacity(h.len());
        h.for_each(|f, v| {
            let a = text.len();
            f.push_to(&mut text);
            let b = text.len();
            v.push_to(&mut text);
            spans.push((a, b, text.len()));
        });
        let mut field_ttls: Vec<(Vec<u8>, i64)> = Vec::new();
        h.for_each_with_ttl(|f, _, t| {
            if t != compact_ex::NO_TTL {
                field_ttls.push((f.to_bytes(), t));
            }
        });
        let mut effects = Vec::new();
        if replaced {
            effects.push(Effect::Del { keys: vec![key] });
        }
        effects.push(Effect::HSet {
            key,
            pairs: spans
                .iter()
                .map(|&(a, b, c)| (&text[a..b], &text[b..c]))
                .collect(),
        });
        for (field, at_ms) in &field_ttls {
            effects.push(Effect::HPExpireAt {
                key,
                at_ms: *at_ms,
                fields: vec![field],
            });
        }
        if let Some(at_ms) = shard.ttl_of(key) {
            effects.push(Effect::PExpireAt { key, at_ms });
        }
        let e = if effects.len() == 1 {
            effects.pop().expect("one effect")
        } else {
            Effect::Batch { effects }
        };
        self.log(&e).map(|_| ())
    }

    /// Logs `e` (when there is a journal); call with the effect's shard
    /// locks held, before applying it.
    #[inline]
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

    /// Puts a batch of snapshot entries into their shards: the batch sorted
    /// by shard, each shard locked once, the key slots of its entries
    /// prefetched before they are written. Errors carry the entry's offset.
    pub(crate) fn load_batch(
        &self,
        batch: &mut crate::snapshot::format::Batch<'_>,
    ) -> Result<(), (usize, String)> {
        use crate::snapshot::format::EntryHash;
        let mut order: Vec<(usize, u64, usize)> = batch
            .iter()
            .enumerate()
            .map(|(i, (_, e))| {
                let h = hash_name(e.key);
                (shard_of_hash(h), h, i)
            })
            .collect();
        order.sort_unstable_by_key(|&(s, _, i)| (s, i));
        let mut entries: Vec<Option<(usize, crate::snapshot::format::Entry<'_>)>> =
            batch.drain(..).map(Some).collect();
        for run in order.chunk_by(|a, b| a.0 == b.0) {
            let mut shard = self.shards[run[0].0].write();
            for &(_, h, _) in run {
                shard.prefetch_slot(h);
            }
            // The shape of the run's last shaped hash.
            let mut hint = None;
            for &(_, _, i) in run {
                let Some((at, e)) = entries[i].take() else {
                    continue;
                };
                match e.hash {
                    EntryHash::Compact(buf) => shard.put_compact(e.key, buf, e.ttl),
                    EntryHash::Shaped {
                        fields,
                        len,
                        values,
                    } => shard.put_shaped(e.key, fields, len, values, e.ttl, &mut hint),
                    EntryHash::Owned(h) => shard.put(e.key, h, e.ttl),
                }
                .map_err(|err| {
                    (
                        at,
                        format!("key {:?}: {err}", String::from_utf8_lossy(e.key)),
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Background upkeep of the key tables: finishes migrations and page
    /// compactions that writes left in progress (a read-mostly workload
    /// would otherwise probe two slot arrays per lookup for good), at most
    /// `moves` entries per shard per call, each shard locked briefly.
    pub(crate) fn tidy(&self, moves: usize) {
        for s in self.shards.iter() {
            if s.read().keys.has_pending_work() {
                s.write().keys.tidy(moves);
            }
        }
    }

    /// Sizes every empty shard's key table for its share of `keys` (with
    /// some room for an uneven spread), before a snapshot is loaded.
    pub(crate) fn reserve_keys(&self, keys: u64) {
        let per = (keys as usize / SHARDS).saturating_mul(9) / 8;
        for s in self.shards.iter() {
            s.write().keys.reserve_empty(per);
        }
    }

    pub(crate) fn shard(&self, key: &[u8]) -> &RwLock<Shard> {
        &self.shards[shard_index(key)]
    }

    pub(crate) fn shard_at(&self, i: usize) -> &RwLock<Shard> {
        &self.shards[i]
    }

    /// Keys with a TTL (expired ones not yet removed included), shard by
    /// shard without a whole-keyspace lock.
    pub(crate) fn volatile_keys(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.read().volatile_len() as u64)
            .sum()
    }

    /// Locks for writing the shards whose bits are set in `mask`, in
    /// ascending shard order.
    pub(crate) fn lock_mask(&self, mask: u64) -> MultiGuard<'_> {
        const _: () = assert!(SHARDS <= 64, "a shard set is a u64 mask");
        let mut guards = Vec::with_capacity(mask.count_ones() as usize);
        let mut m = mask;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            guards.push((i, self.shards[i].write()));
            m &= m - 1;
        }
        MultiGuard { guards }
    }

    /// Locks the shards of all `keys` for writing, in ascending shard order.
    pub(crate) fn lock_many(&self, keys: &[&[u8]]) -> MultiGuard<'_> {
        self.lock_mask(keys.iter().fold(0, |m, k| m | 1 << shard_index(k)))
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
        if expired && !self.is_read_only() {
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
        if expired && !self.is_read_only() {
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
            st.shapes += shard.shapes.len() as u64;
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
                    HashRef::Shaped(..) => {
                        st.listpack += 1;
                        st.shaped += 1;
                    }
                    HashRef::Compact(_) | HashRef::CompactEx(..) => st.listpack += 1,
                    HashRef::Dict(..) => st.hashtable += 1,
                }
                st.memory += shard.memory_usage(k).unwrap_or(0) as u64;
            }
        }
        st
    }
}
