//! Expiry: lazy deletion of expired keys and fields under a held shard
//! lock (each deletion logged, or kept by a transaction, first), and the
//! active sweep over every shard.

use super::*;
use std::sync::atomic::Ordering::Relaxed;

/// The keys of a side table of times (`expires`, `hfe`) whose time is
/// before `now`, walking it from `cursor` (left where the walk stopped)
/// until its end or `budget` keys visited.
pub(super) fn due_in(
    table: &ArenaTable,
    cursor: &mut u64,
    now: i64,
    budget: usize,
) -> Vec<Vec<u8>> {
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

impl Keyspace {
    /// Deletes `key` from its locked shard if it has expired, logging the
    /// deletion first. True when it was deleted.
    pub(crate) fn expire_locked(
        &self,
        sink: Sink<'_>,
        shard: &mut Shard,
        key: &[u8],
        now: &Now<'_>,
    ) -> Result<bool, Error> {
        // Only a key with a TTL can have expired: a shard without any
        // (the common case) needs no lookup. A follower deletes nothing:
        // the writer's deletion arrives through the log.
        if self.is_read_only()
            || shard.volatile_len() == 0
            || !matches!(shard.lookup(key, now), Lookup::Expired)
        {
            return Ok(false);
        }
        self.log_in(sink, shard, &Effect::Del { keys: vec![key] })?;
        shard.delete(key);
        self.counters.expired_keys.fetch_add(1, Relaxed);
        Ok(true)
    }

    /// Removes expired fields of the shard's hashes with field TTLs, at most
    /// `budget` fields (and keys visited). Returns the fields removed.
    pub(super) fn sweep_fields(
        &self,
        shard: &mut Shard,
        now: i64,
        budget: usize,
    ) -> Result<usize, Error> {
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
    pub(super) fn remove_fields(
        &self,
        sink: Sink<'_>,
        shard: &mut Shard,
        key: &[u8],
        fields: Vec<&[u8]>,
    ) -> Result<usize, Error> {
        if fields.is_empty() || self.is_read_only() {
            return Ok(0);
        }
        let e = Effect::HDel { key, fields };
        self.log_in(sink, shard, &e)?;
        let n = effect::apply_in_shard(shard, &e, no_opts())? as usize;
        self.counters.expired_fields.fetch_add(n as u64, Relaxed);
        Ok(n)
    }

    /// The time at which `key`'s fields are to be expired now, if any of
    /// them is (None: no field TTL due, and the clock is not read).
    pub(super) fn fields_due(shard: &Shard, key: &[u8], now: &Now<'_>) -> Option<i64> {
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
        if due && !self.is_read_only() {
            // If the removal cannot be logged the fields stay (still
            // invisible) and a later access or the sweep retries.
            let mut shard = self.shard(key).write();
            let _ = self.expire_fields_locked(Sink::Journal, &mut shard, key, fields, now);
        }
        r
    }

    /// One active-expiry pass over every shard, in batches of `budget`
    /// keys or fields under a shard's lock. Like Redis's cycle it works
    /// harder when expired items abound: a shard's batch is repeated while
    /// it removed a full batch of fields (or a tenth of a batch of keys),
    /// for at most [`SWEEP_TIME`] a pass, releasing the lock between
    /// batches so writers never wait long. Returns the number of keys
    /// deleted; each deletion is logged first.
    pub(crate) fn sweep(&self, now: i64, budget: usize) -> Result<usize, Error> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let deadline = std::time::Instant::now() + SWEEP_TIME;
        let mut deleted = 0;
        for s in self.shards.iter() {
            let (volatile, hfe) = {
                let g = s.read();
                (g.volatile_len(), g.hfe_len())
            };
            if hfe > 0 {
                while self.sweep_fields(&mut s.write(), now, budget)? >= budget
                    && std::time::Instant::now() < deadline
                {}
            }
            if volatile == 0 {
                continue;
            }
            loop {
                let mut shard = s.write();
                let keys = shard.expired_keys(now, budget);
                if keys.is_empty() {
                    break;
                }
                let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
                self.log(&Effect::Del { keys: refs.clone() })?;
                for k in refs {
                    let gone = shard.delete(k);
                    deleted += usize::from(gone);
                    self.counters
                        .expired_keys
                        .fetch_add(u64::from(gone), Relaxed);
                }
                drop(shard);
                if keys.len() * 10 < budget || std::time::Instant::now() >= deadline {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

/// The most one active-expiry pass works when expired items abound (a
/// quarter of the 100 ms between passes, as Redis's slow cycle).
const SWEEP_TIME: std::time::Duration = std::time::Duration::from_millis(25);
