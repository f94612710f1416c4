//! Batch reads: [`Db::get_many`] and [`Db::view_many`] answer many keys in
//! one call through borrowed views ([`HashView`]) under the shard locks,
//! with no allocation per key.
//!
//! How a batch runs: every key is hashed once (the hash picks the shard
//! and the slot), each shard touched is read-locked once in ascending
//! order, and the keys are answered in order while the key table slot of
//! the key [`AHEAD`] x 2 places on and the entry of the key [`AHEAD`]
//! places on are prefetched, so the two dependent cache misses of every
//! lookup overlap with the work on the keys before it. Values stored as
//! integers or packed hex digits are printed into one buffer reused for
//! the whole batch (and kept per thread between batches).
//!
//! Expiry follows the single calls: an expired key or field reads as
//! missing; on a writer, expired keys (and, for [`Db::get_many`], the
//! expired field asked for) are deleted after the locks are released,
//! logged as [`Db::hget`] logs them; a read-only handle deletes nothing.

use std::cell::Cell;

use parking_lot::RwLockReadGuard;

use super::Db;
use crate::error::Result;
use crate::hash::compact::{Elem, Probe};
use crate::hash::table::hash_name;
use crate::hash::{HashRef, NEVER};
use crate::keyspace::{shard_of_hash, Lookup, Shard, Sink, SHARDS};
use crate::options::Now;

/// How many keys ahead of the one being answered its entry is
/// prefetched (its table slot twice as far ahead).
pub(crate) const AHEAD: usize = 16;

/// Buffers of one batch read, kept per thread for the next one (a batch
/// then allocates nothing once they have grown to the thread's batches).
#[derive(Default)]
struct Scratch {
    /// Each key's hash and shard.
    hashed: Vec<(u64, usize)>,
    /// Values printed from integers or packed hex digits.
    text: Vec<u8>,
}

/// Scratch buffers larger than this are freed rather than kept.
const KEEP_KEYS: usize = 1 << 16;

thread_local! {
    static SPARE: Cell<Option<Scratch>> = const { Cell::new(None) };
}

fn take_scratch() -> Scratch {
    SPARE
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn give_scratch(mut s: Scratch) {
    if s.hashed.capacity() > KEEP_KEYS {
        return;
    }
    s.hashed.clear();
    // During thread teardown the slot may be gone: then they are freed.
    let _ = SPARE.try_with(|slot| slot.set(Some(s)));
}

/// A read-only view of one hash, lent by [`Db::view_many`] for the time of
/// one callback: its live fields (fields whose TTL has passed are
/// invisible), read where they are stored.
///
/// Values kept as integers or as packed hex digits are printed into a
/// buffer the batch reuses, so [`HashView::get`] and [`HashView::for_each`]
/// take `&mut self` and lend one value (or pair) at a time.
///
/// # Examples
/// ```
/// let db = hashkv::Db::in_memory(hashkv::Options::default());
/// db.hset("user:1", &[("name", "Alice"), ("visits", "3")])?;
/// db.view_many(&["user:1", "user:2"], |i, view| match view {
///     Some(mut h) => {
///         assert_eq!((i, h.len()), (0, 2));
///         assert_eq!(h.get(b"visits"), Some(&b"3"[..]));
///         let mut fields = Vec::new();
///         h.for_each(|f, _| fields.push(f.to_vec()));
///         assert_eq!(fields, [b"name".to_vec(), b"visits".to_vec()]);
///     }
///     None => assert_eq!(i, 1),
/// })?;
/// # Ok::<(), hashkv::Error>(())
/// ```
pub struct HashView<'a> {
    hash: HashRef<'a>,
    text: &'a mut Vec<u8>,
}

impl std::fmt::Debug for HashView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashView")
            .field("encoding", &self.hash.encoding())
            .finish_non_exhaustive()
    }
}

/// The client-visible bytes of `e`: the element's own for a string,
/// else printed into `text` (cleared first).
#[inline]
fn bytes_of<'a>(e: Elem<'a>, text: &'a mut Vec<u8>) -> &'a [u8] {
    match e {
        Elem::Str(s) => s,
        other => {
            text.clear();
            other.push_to(text);
            text
        }
    }
}

impl<'a> HashView<'a> {
    /// Number of live fields (fields whose TTL has passed are not
    /// counted, unlike `HLEN`, which counts them until they are removed).
    pub fn len(&self) -> usize {
        if self.hash.now() == NEVER || !self.hash.has_field_ttls() {
            return self.hash.len();
        }
        let mut n = 0;
        self.hash.for_each(|_, _| n += 1);
        n
    }

    /// Whether the hash has no live field.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `field` is there and live (`HEXISTS`).
    pub fn contains(&self, field: impl AsRef<[u8]>) -> bool {
        self.hash.get(field.as_ref()).is_some()
    }

    /// The value of a live `field` (`HGET`), borrowed until the next call
    /// on this view.
    pub fn get(&mut self, field: impl AsRef<[u8]>) -> Option<&[u8]> {
        let v = self.hash.get(field.as_ref())?;
        Some(bytes_of(v, self.text))
    }

    /// Calls `f` with each live field and its value, in `HGETALL` order.
    pub fn for_each(&mut self, mut f: impl FnMut(&[u8], &[u8])) {
        let h = self.hash;
        let text = &mut *self.text;
        h.for_each(|k, v| match (k, v) {
            (Elem::Str(k), Elem::Str(v)) => f(k, v),
            (Elem::Str(k), v) => f(k, bytes_of(v, text)),
            (k, v) => {
                text.clear();
                k.push_to(text);
                let at = text.len();
                v.push_to(text);
                let (k, v) = text.split_at(at);
                f(k, v);
            }
        });
    }

    /// `OBJECT ENCODING` of the hash: `listpack`, `listpackex` or
    /// `hashtable`.
    pub fn encoding(&self) -> &'static str {
        self.hash.encoding()
    }
}

impl Db {
    /// `HGET key field` for every key of `keys` in one call: `f` gets each
    /// key's index in `keys` and the value (`None` for a missing key or
    /// field), in order, without an allocation per key.
    ///
    /// The keys' shards are read-locked once for the whole batch and the
    /// lookups prefetched ahead, so their cache misses overlap: use it to
    /// resolve many ids at once. The value is borrowed from the store (or
    /// from a buffer the batch reuses, for integers and packed hex values)
    /// for the time of the call.
    ///
    /// `f` runs while the shard locks are held: it must not call this
    /// database (or a clone of it), or it may wait for itself. An expired
    /// key or field reads as missing and is then deleted as [`Db::hget`]
    /// deletes it (not on a read-only handle).
    ///
    /// # Errors
    /// None in practice; the signature leaves room for I/O-backed reads.
    ///
    /// # Examples
    /// ```
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// db.hset("object:1", &[("addr", "9f86d081884c7d65")])?;
    /// let mut found = Vec::new();
    /// db.get_many(&["object:1", "object:2"], "addr", |i, v| {
    ///     found.push((i, v.map(<[u8]>::to_vec)));
    /// })?;
    /// assert_eq!(found, [(0, Some(b"9f86d081884c7d65".to_vec())), (1, None)]);
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn get_many<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        field: impl AsRef<[u8]>,
        mut f: impl FnMut(usize, Option<&[u8]>),
    ) -> Result<()> {
        let field = field.as_ref();
        // The field encoded once for every hash of the batch.
        let probe = Probe::new(field);
        self.visit_many(keys, Some(field), |i, h, text| match h {
            Some(h) => match h.get_probed(field, &probe) {
                Some(v) => f(i, Some(bytes_of(v, text))),
                None => f(i, None),
            },
            None => f(i, None),
        });
        Ok(())
    }

    /// Lends `f` a read-only [`HashView`] of each key of `keys` in one call
    /// (`None` for a missing key), with each key's index in `keys`, in
    /// order, without an allocation per key: [`Db::get_many`] for reads of
    /// several fields, the field count or the whole hash.
    ///
    /// As for [`Db::get_many`], `f` runs with the keys' shards read-locked
    /// and must not call this database; an expired key reads as missing
    /// (and is then deleted, on a writer), expired fields are invisible.
    ///
    /// # Errors
    /// None in practice; the signature leaves room for I/O-backed reads.
    ///
    /// # Examples
    /// ```
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// db.hset("user:1", &[("name", "Alice"), ("age", "25")])?;
    /// db.hset("user:2", &[("name", "Bob")])?;
    /// let mut ages = Vec::new();
    /// db.view_many(&["user:1", "user:2", "user:3"], |_, view| {
    ///     ages.push(view.and_then(|mut h| h.get("age").map(<[u8]>::to_vec)));
    /// })?;
    /// assert_eq!(ages, [Some(b"25".to_vec()), None, None]);
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn view_many<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        mut f: impl FnMut(usize, Option<HashView<'_>>),
    ) -> Result<()> {
        self.visit_many(keys, None, |i, h, text| {
            f(i, h.map(|hash| HashView { hash, text }));
        });
        Ok(())
    }

    /// The batch read both calls share: `answer` gets each key's live
    /// hash and the batch's text buffer; `field`, when given, is the one
    /// field a lazy expiry removes afterwards.
    fn visit_many<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        field: Option<&[u8]>,
        mut answer: impl FnMut(usize, Option<HashRef<'_>>, &mut Vec<u8>),
    ) {
        const _: () = assert!(SHARDS <= 64, "the shard set is a u64 mask");
        let ks = self.keyspace();
        let now = Now::lazy(&*self.options().clock);
        let mut scratch = take_scratch();
        let mut mask = 0u64;
        scratch.hashed.extend(keys.iter().map(|k| {
            let h = hash_name(k.as_ref());
            let s = shard_of_hash(h);
            mask |= 1 << s;
            (h, s)
        }));
        // Keys to expire once the locks are gone (allocated only when one
        // turns up): (index, whether the whole key expired).
        let mut due: Vec<(usize, bool)> = Vec::new();
        let lazy = !ks.is_read_only();
        {
            // Ascending shard order, as every multi-shard lock is taken.
            let mut guards: [Option<RwLockReadGuard<'_, Shard>>; SHARDS] =
                std::array::from_fn(|_| None);
            let mut m = mask;
            while m != 0 {
                let s = m.trailing_zeros() as usize;
                guards[s] = Some(ks.shard_at(s).read());
                m &= m - 1;
            }
            let shard = |s: usize| guards[s].as_deref();
            let hashed = &scratch.hashed;
            let slot = |j: usize| {
                let (h, s) = hashed[j];
                if let Some(g) = shard(s) {
                    g.prefetch_slot(h);
                }
            };
            let entry = |j: usize| {
                let (h, s) = hashed[j];
                if let Some(g) = shard(s) {
                    g.prefetch_entry(h);
                }
            };
            let n = hashed.len();
            (0..n.min(2 * AHEAD)).for_each(slot);
            (0..n.min(AHEAD)).for_each(entry);
            for (i, k) in keys.iter().enumerate() {
                if i + 2 * AHEAD < n {
                    slot(i + 2 * AHEAD);
                }
                if i + AHEAD < n {
                    entry(i + AHEAD);
                }
                let (h, s) = hashed[i];
                let Some(g) = shard(s) else {
                    answer(i, None, &mut scratch.text);
                    continue;
                };
                match g.lookup_hashed(k.as_ref(), h, &now) {
                    Lookup::Live(hr) => {
                        if lazy
                            && hr.now() != NEVER
                            && field.is_some_and(|f| hr.is_field_expired(f))
                        {
                            due.push((i, false));
                        }
                        answer(i, Some(hr), &mut scratch.text);
                    }
                    Lookup::Expired => {
                        if lazy {
                            due.push((i, true));
                        }
                        answer(i, None, &mut scratch.text);
                    }
                    Lookup::Missing => answer(i, None, &mut scratch.text),
                }
            }
        }
        give_scratch(scratch);
        // Lazy expiry, as the single calls do it; a deletion that cannot
        // be logged leaves the key or field (still invisible) for a later
        // access or the sweep.
        for (i, whole) in due {
            let key = keys[i].as_ref();
            let mut shard = ks.shard(key).write();
            if whole {
                let _ = ks.expire_locked(Sink::Journal, &mut shard, key, &now);
            } else if let Some(f) = field {
                let _ = ks.expire_fields_locked(Sink::Journal, &mut shard, key, &[f], &now);
            }
        }
    }
}
