//! Batched HSETs ([`Keyspace::hset_batch`]): many HSETs under one set of
//! shard locks, their records appended to the log in one write, with one
//! wait for durability afterwards (the caller's).
//!
//! The log holds exactly what the same HSETs made one call at a time
//! write: per command, a `Del` first when its key had expired, then its
//! `HSet`, each a whole checksummed frame; readers following the log and
//! the change feed see them frame by frame, in order. What changes is how
//! they get there:
//!
//! 1. Every key's shard is write-locked (once, in ascending order), so no
//!    other thread sees or changes a key of the batch until it ends.
//! 2. The records are encoded into one buffer, before the log's lock.
//! 3. The log reserves room for the whole buffer, then copies it
//!    ([`Journal::append_frames`]): once the room is there the copy cannot
//!    fail, so the batch is logged whole, or (a full disk, a poisoned log)
//!    not at all and nothing in memory has changed: every command fails
//!    with the error. No undo copy of any key is needed.
//! 4. The commands are applied in order, each key's table slot and entry
//!    prefetched [`AHEAD`] commands before. An apply error (a hash
//!    outgrowing hashkv's limits) is that command's alone, as for a single
//!    call, which also meets it after logging; replay meets it the same way.

use std::sync::atomic::Ordering::Relaxed;

use super::effect::set_pairs;
use super::{shard_of_hash, Effect, Keyspace, Lookup, MultiGuard, Shard};
use crate::error::{CommandError, Error};
use crate::hash::table::hash_name;
use crate::log::record;
use crate::options::{Now, Options};

/// How many commands ahead of the one being applied its key's entry is
/// prefetched (its table slot twice as far ahead).
const AHEAD: usize = 16;

/// One HSET of a batch.
#[derive(Clone, Copy)]
pub(crate) struct HSetItem<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) pairs: &'a [(&'a [u8], &'a [u8])],
}

thread_local! {
    /// The encoded records of the thread's last batch (kept for the next).
    static FRAMES: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Frame buffers larger than this are freed rather than kept.
const KEEP_FRAMES: usize = 4 << 20;

/// A batch of HSETs with its shards locked: each item's key hash, the
/// guard over their shards, and the items whose key had expired (to be
/// deleted, and logged as deleted, before their HSET), ascending.
pub(super) struct Items<'k> {
    pub(super) hashes: Vec<u64>,
    pub(super) guard: MultiGuard<'k>,
    pub(super) expired: Vec<usize>,
}

impl Keyspace {
    /// Hashes the keys of `items`, write-locks their shards once (in
    /// ascending order) and finds the keys that had expired: what a batch
    /// of HSETs and a load batch do before logging.
    pub(super) fn lock_items(
        &self,
        items: &[HSetItem<'_>],
        now: &Now<'_>,
    ) -> Result<Items<'_>, Error> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let mut mask = 0u64;
        let hashes: Vec<u64> = items
            .iter()
            .map(|it| {
                let h = hash_name(it.key);
                mask |= 1 << shard_of_hash(h);
                h
            })
            .collect();
        let mut guard = self.lock_mask(mask);
        for &h in &hashes[..items.len().min(2 * AHEAD)] {
            if let Some(s) = guard.try_shard_at(shard_of_hash(h)) {
                s.prefetch_slot(h);
            }
        }
        // Rare, so allocated only when met.
        let mut expired: Vec<usize> = Vec::new();
        for (i, (it, &h)) in items.iter().zip(&hashes).enumerate() {
            let Some(shard) = guard.try_shard_at(shard_of_hash(h)) else {
                continue;
            };
            // Only a key with a TTL can have expired, and a key an earlier
            // command of the batch wrote has none (it was written after
            // its expiry's deletion, or had not expired).
            if shard.volatile_len() > 0
                && matches!(shard.lookup_hashed(it.key, h, now), Lookup::Expired)
                && !items[..i].iter().any(|e| e.key == it.key)
            {
                expired.push(i);
            }
        }
        Ok(Items {
            hashes,
            guard,
            expired,
        })
    }

    /// Applies a logged batch in order: marks the watchers of its keys,
    /// then for each item prefetches the table slots (and, with `entries`,
    /// the entries) of the items ahead, deletes its key if it had expired
    /// (logged before its HSET, as a single call logs it), and gives
    /// `done` the result of `apply` on its shard.
    pub(super) fn apply_items(
        &self,
        items: &[HSetItem<'_>],
        locked: &mut Items<'_>,
        entries: bool,
        mut done: impl FnMut(usize, Result<i64, CommandError>),
        mut apply: impl FnMut(usize, &mut Shard, u64) -> Result<i64, CommandError>,
    ) {
        let Items {
            hashes,
            guard,
            expired,
        } = locked;
        for &i in expired.iter() {
            self.watches.touch(&Effect::Del {
                keys: vec![items[i].key],
            });
        }
        for it in items {
            self.watches.touch(&Effect::HSet {
                key: it.key,
                pairs: Vec::new(),
            });
        }
        let slots_ahead = if entries { 2 * AHEAD } else { AHEAD };
        let mut next_expired = expired.iter().peekable();
        for (i, (it, &h)) in items.iter().zip(hashes.iter()).enumerate() {
            if let Some(&h) = hashes.get(i + slots_ahead) {
                if let Some(s) = guard.try_shard_at(shard_of_hash(h)) {
                    s.prefetch_slot(h);
                }
            }
            if entries {
                if let Some(&h) = hashes.get(i + AHEAD) {
                    if let Some(s) = guard.try_shard_at(shard_of_hash(h)) {
                        s.prefetch_entry(h);
                    }
                }
            }
            let gone = next_expired.next_if_eq(&&i).is_some();
            let Some(shard) = guard.try_shard_at(shard_of_hash(h)) else {
                done(
                    i,
                    Err(CommandError::err("internal: batch: a key was not locked")),
                );
                continue;
            };
            if gone {
                shard.delete(it.key);
                self.counters.expired_keys.fetch_add(1, Relaxed);
            }
            done(i, apply(i, shard, h));
        }
    }

    /// Runs the HSETs of `items` in order as one batch (see the module
    /// doc): `done` gets each command's index and its count of new fields,
    /// or its error. Returns the ticket to wait for durability with, after
    /// the caller has nothing locked; `Err` when the records could not be
    /// logged, and then nothing was applied.
    pub(crate) fn hset_batch(
        &self,
        items: &[HSetItem<'_>],
        now: &Now<'_>,
        opts: &Options,
        done: impl FnMut(usize, Result<i64, CommandError>),
    ) -> Result<Option<u64>, Error> {
        let mut locked = self.lock_items(items, now)?;
        // Commands refused before logging (too large for one record): rare,
        // so allocated only when met, and ascending.
        let mut refused: Vec<(usize, String)> = Vec::new();
        let journal = self.journal.get();
        let mut frames = FRAMES.try_with(std::cell::Cell::take).unwrap_or_default();
        frames.clear();
        let mut count = 0u64;
        if journal.is_some() {
            let mut scratch = Vec::new();
            let mut next_expired = locked.expired.iter().peekable();
            for (i, it) in items.iter().enumerate() {
                if next_expired.next_if_eq(&&i).is_some() {
                    let len = record::encode(&Effect::Del { keys: vec![it.key] }, &mut scratch)
                        .map_err(|m| Error::Command(CommandError::err(m)))?;
                    frames.extend_from_slice(&scratch[..len]);
                    count += 1;
                }
                match record::push_hset(&mut frames, it.key, it.pairs) {
                    Ok(()) => count += 1,
                    Err(m) => refused.push((i, m)),
                }
            }
        }
        let logged = match journal {
            Some(j) if count > 0 => j.append_frames(&frames, count).map(Some),
            _ => Ok(None),
        };
        if frames.capacity() <= KEEP_FRAMES {
            let _ = FRAMES.try_with(|c| c.set(frames));
        }
        let ticket = logged?;
        // Logged: from here on nothing fails as a batch.
        let mut next_refused = refused.into_iter().peekable();
        self.apply_items(
            items,
            &mut locked,
            true,
            done,
            |i, shard, _| match next_refused.next_if(|(j, _)| *j == i) {
                Some((_, m)) => Err(CommandError::err(m)),
                None => set_pairs(shard, items[i].key, items[i].pairs, 0, false, opts),
            },
        );
        Ok(ticket)
    }
}
