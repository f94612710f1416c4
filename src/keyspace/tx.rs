//! What a transaction keeps while its commands run directly on the shards
//! it has locked ([`TxLog`]): the effects, framed as log records, to log as
//! one record at the end; and what every change replaced, to put back if
//! the transaction does not commit. A change to some fields of a dict hash
//! keeps only those fields (their values and TTLs), so undo costs what the
//! transaction changes, not the size of the hash; anything else keeps the
//! key's whole state before its first change (a compact hash is a few
//! hundred bytes at most). Spent logs go back to a [`TxLogPool`] for the
//! next transaction.
//!
//! The shards stay write-locked from the first command to the commit or
//! rollback, so no other thread sees a change before it is logged, and a
//! snapshot cannot start in between (its switch takes every shard lock). A
//! snapshot already running sees each key as it was at its switch, as for
//! any write ([`Shard::preserve`] runs on every change, the rollback's
//! included).

use std::collections::HashSet;

use parking_lot::Mutex;

use super::effect::clone_hash;
use super::{retire, shard_index, Effect, Keyspace, MultiGuard, Shard};
use crate::error::{CommandError, Error};
use crate::hash::{HashRef, OwnedHash};
use crate::log::record;

/// A key's state before the transaction changed it.
enum Before {
    Missing,
    /// A compact hash: its bytes in [`TxLog::arena`].
    Compact {
        start: usize,
        end: usize,
        ttl: Option<i64>,
    },
    Owned(OwnedHash, Option<i64>),
}

/// A field as it was: its value and TTL (0 = none), or missing.
type FieldBefore = (Vec<u8>, Option<(Vec<u8>, i64)>);

/// One step to undo, in the order they happened.
enum Undo {
    /// Key number `key` (in [`TxLog::keys`]) had the state `before`.
    Key { key: usize, before: Before },
    /// Some fields of key number `key`, a dict hash, as they were before
    /// one effect changed them (the hash is not emptied by it).
    Fields {
        key: usize,
        fields: Vec<FieldBefore>,
    },
    /// FLUSHDB replaced every shard; these are the old ones, by index.
    Flush(Vec<Shard>),
}

/// A transaction's effects and undo steps. Reused between transactions
/// (its buffers keep their capacity).
#[derive(Default)]
pub(crate) struct TxLog {
    /// The effects' records, framed, back to back.
    frames: Vec<u8>,
    effects: usize,
    /// Encoding space.
    scratch: Vec<u8>,
    /// Every key changed, back to back, with their ends.
    key_bytes: Vec<u8>,
    key_ends: Vec<usize>,
    /// Keys changed, for the membership test once there are many.
    seen: Option<HashSet<Vec<u8>>>,
    undo: Vec<Undo>,
    arena: Vec<u8>,
    /// For WATCH at commit: (key number, changed by a deletion).
    watch: Vec<(usize, bool)>,
    /// Per key number: whether an [`Undo::Key`] keeps its whole state from
    /// before its first change (then later changes need nothing more).
    whole: Vec<bool>,
    /// For WATCH at commit: the watchers of keys a FLUSHDB in the
    /// transaction deleted (marked only if it commits).
    flushed: Vec<std::sync::Arc<super::watch::Watch>>,
}

/// Transaction logs kept for reuse (their buffers keep their capacity).
#[derive(Default)]
pub(crate) struct TxLogPool(Mutex<Vec<TxLog>>);

/// Logs kept at most.
const POOL: usize = 32;

impl TxLogPool {
    pub(crate) fn take(&self) -> TxLog {
        self.0.lock().pop().unwrap_or_default()
    }

    pub(crate) fn give(&self, log: TxLog) {
        let mut pool = self.0.lock();
        if pool.len() < POOL {
            pool.push(log);
        }
    }
}

/// Keys compared by a linear scan before [`TxLog::seen`] is used.
const LINEAR: usize = 16;

fn internal(what: &str) -> Error {
    Error::Command(CommandError::err(format!("internal: transaction: {what}")))
}

impl TxLog {
    /// Empties it for the next transaction.
    pub(crate) fn clear(&mut self) {
        self.frames.clear();
        self.effects = 0;
        self.key_bytes.clear();
        self.key_ends.clear();
        if let Some(seen) = &mut self.seen {
            seen.clear();
        }
        self.undo.clear();
        self.arena.clear();
        self.watch.clear();
        self.flushed.clear();
        self.whole.clear();
    }

    fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.key_ends[i - 1] };
        &self.key_bytes[start..self.key_ends[i]]
    }

    /// The number of `key` in the changed keys, if it was changed.
    fn find(&self, key: &[u8]) -> Option<usize> {
        if self.key_ends.len() <= LINEAR {
            return (0..self.key_ends.len()).find(|&i| self.key(i) == key);
        }
        if !self.seen.as_ref().is_some_and(|s| s.contains(key)) {
            return None;
        }
        (0..self.key_ends.len()).rev().find(|&i| self.key(i) == key)
    }

    /// The number of `key` among the changed keys, registering it.
    fn number(&mut self, key: &[u8]) -> usize {
        if let Some(i) = self.find(key) {
            return i;
        }
        self.key_bytes.extend_from_slice(key);
        self.key_ends.push(self.key_bytes.len());
        self.whole.push(false);
        if self.key_ends.len() > LINEAR {
            let mut seen = self.seen.take().unwrap_or_default();
            if seen.is_empty() {
                for i in 0..self.key_ends.len() - 1 {
                    seen.insert(self.key(i).to_vec());
                }
            }
            seen.insert(key.to_vec());
            self.seen = Some(seen);
        }
        self.key_ends.len() - 1
    }

    /// Saves what `key` holds in `shard` unless its whole state from
    /// before the transaction is kept already; returns its number.
    fn save(&mut self, shard: &Shard, key: &[u8]) -> Result<usize, Error> {
        let i = self.number(key);
        if self.whole[i] {
            return Ok(i);
        }
        let ttl = shard.ttl_of(key);
        let before = match shard.hash_ref(key) {
            None => Before::Missing,
            Some(HashRef::Compact(buf)) => {
                let start = self.arena.len();
                self.arena.extend_from_slice(buf);
                Before::Compact {
                    start,
                    end: self.arena.len(),
                    ttl,
                }
            }
            Some(h) => Before::Owned(clone_hash(h)?, ttl),
        };
        self.whole[i] = true;
        self.undo.push(Undo::Key { key: i, before });
        Ok(i)
    }

    /// Before an effect changes `fields` of `key`: keeps just those fields
    /// when the hash is a dict the effect cannot empty, else the key's
    /// whole state ([`TxLog::save`]). Returns the key's number.
    fn save_fields<'f>(
        &mut self,
        shard: &Shard,
        key: &[u8],
        fields: impl ExactSizeIterator<Item = &'f [u8]>,
    ) -> Result<usize, Error> {
        if self.find(key).is_some_and(|i| self.whole[i]) {
            return self.save(shard, key);
        }
        let h = match shard.hash_ref(key) {
            Some(h @ HashRef::Dict(..)) if fields.len() < h.len() => h,
            _ => return self.save(shard, key),
        };
        let fields: Vec<FieldBefore> = fields
            .map(|f| {
                let was = h.get(f).map(|v| {
                    let ttl = match h.field_ttl(f) {
                        crate::hash::FieldTtl::At(t) => t,
                        _ => 0,
                    };
                    (v.to_bytes(), ttl)
                });
                (f.to_vec(), was)
            })
            .collect();
        let i = self.number(key);
        self.undo.push(Undo::Fields { key: i, fields });
        Ok(i)
    }

    /// Before a change to `key` that is not logged: keeps its state.
    pub(crate) fn keep(&mut self, shard: &Shard, key: &[u8]) -> Result<(), Error> {
        self.save(shard, key).map(drop)
    }

    /// Appends `e`'s record to the transaction's.
    fn record(&mut self, e: &Effect<'_>) -> Result<(), Error> {
        let n = record::encode(e, &mut self.scratch).map_err(|m| {
            Error::Command(CommandError::err(format!(
                "transaction too large for one log record: {m}"
            )))
        })?;
        if self.frames.len() + n > record::MAX_PAYLOAD {
            return Err(Error::Command(CommandError::err(
                "transaction too large for one log record",
            )));
        }
        self.frames.extend_from_slice(&self.scratch[..n]);
        self.effects += 1;
        Ok(())
    }

    /// Before a single-key effect (or a DEL whose keys are all in `shard`)
    /// is applied to `shard`: keeps its keys' state and its record.
    pub(crate) fn before_in_shard(&mut self, shard: &Shard, e: &Effect<'_>) -> Result<(), Error> {
        self.record(e)?;
        let fields = match e {
            Effect::HSet { key, pairs } | Effect::HSetEx { key, pairs, .. } => {
                Some(self.save_fields(shard, key, pairs.iter().map(|(f, _)| *f)))
            }
            Effect::HDel { key, fields }
            | Effect::HPExpireAt { key, fields, .. }
            | Effect::HPersist { key, fields } => {
                Some(self.save_fields(shard, key, fields.iter().copied()))
            }
            _ => None,
        };
        if let Some(i) = fields {
            self.watch.push((i?, false));
            return Ok(());
        }
        let del = matches!(e, Effect::Del { .. });
        let mut saved = Ok(());
        e.for_each_key(&mut |k| {
            if saved.is_ok() {
                saved = self.save(shard, k).map(|i| self.watch.push((i, del)));
            }
        });
        saved
    }

    /// Before an effect on keys locked in `g` is applied (FLUSHDB: see
    /// [`TxLog::flush`]).
    pub(crate) fn before_locked(
        &mut self,
        g: &mut MultiGuard<'_>,
        e: &Effect<'_>,
    ) -> Result<(), Error> {
        self.record(e)?;
        let del = matches!(e, Effect::Del { .. });
        // COPY changes its destination only (and only it is signalled).
        let changed = match e {
            Effect::Copy { dst, .. } => vec![*dst],
            _ => e.keys(),
        };
        for k in changed {
            let shard = g
                .try_shard(k)
                .ok_or_else(|| internal("a key outside the locked shards"))?;
            let i = self.save(shard, k)?;
            self.watch.push((i, del));
        }
        Ok(())
    }

    /// FLUSHDB inside a transaction holding every shard: logged with the
    /// rest, watchers of existing keys marked, every shard replaced by an
    /// empty one and the old ones kept until the commit (or put back).
    pub(crate) fn flush(&mut self, ks: &Keyspace, g: &mut MultiGuard<'_>) -> Result<(), Error> {
        if !g.holds_all() {
            return Err(internal("FLUSHDB without every shard locked"));
        }
        self.record(&Effect::FlushDb)?;
        let existing = ks
            .watches
            .existing(&mut |k| g.try_shard(k).is_some_and(|s| s.hash_ref(k).is_some()));
        self.flushed.extend(existing);
        let old = (0..super::SHARDS)
            .map(|i| {
                let s = g.shard_at(i);
                let fresh = s.emptied();
                std::mem::replace(s, fresh)
            })
            .collect();
        self.undo.push(Undo::Flush(old));
        Ok(())
    }

    /// Logs the transaction's effects as one record (the effect's own when
    /// there is one, else an [`Effect::Batch`]) and marks the watchers of
    /// the keys it changed; on failure puts everything back first. Returns
    /// the ticket to wait for durability with, once the locks are released.
    pub(crate) fn commit(
        &mut self,
        ks: &Keyspace,
        g: &mut MultiGuard<'_>,
    ) -> Result<Option<u64>, Error> {
        if self.effects == 0 {
            // Only unlogged changes (which stay, as outside transactions).
            self.clear();
            return Ok(None);
        }
        let logged = if self.effects == 1 {
            ks.append_frame(&self.frames)
        } else {
            record::batch_frame(&self.frames, &mut self.scratch)
                .map_err(|m| {
                    Error::Command(CommandError::err(format!(
                        "transaction too large for one log record: {m}"
                    )))
                })
                .and_then(|()| ks.append_frame(&self.scratch))
        };
        let ticket = match logged {
            Ok(t) => t,
            Err(e) => {
                self.rollback(g);
                return Err(e);
            }
        };
        ks.watches
            .touch_changed(self.watch.iter().map(|&(i, del)| (self.key(i), del)));
        super::watch::mark_deleted(&self.flushed);
        // Shards FLUSHDB emptied go to a running snapshot (or are dropped).
        let old: Vec<Option<Shard>> = std::mem::take(&mut self.undo)
            .into_iter()
            .filter_map(|u| match u {
                Undo::Flush(shards) => Some(shards),
                Undo::Key { .. } | Undo::Fields { .. } => None,
            })
            .flatten()
            .map(retire)
            .collect();
        drop(old);
        self.clear();
        Ok(ticket)
    }

    /// Puts every changed key (and shard) back as it was before the
    /// transaction, newest change first.
    pub(crate) fn rollback(&mut self, g: &mut MultiGuard<'_>) {
        let undo = std::mem::take(&mut self.undo);
        for u in undo.into_iter().rev() {
            match u {
                Undo::Flush(old) => {
                    for (i, s) in old.into_iter().enumerate() {
                        *g.shard_at(i) = s;
                    }
                }
                Undo::Fields { key, fields } => {
                    let k = self.key(key);
                    let Some(shard) = g.try_shard(k) else {
                        continue;
                    };
                    // A dict stays a dict; the first value of a field named
                    // twice is the one put back (the list runs backwards).
                    let mut h = shard.edit(k, super::no_opts());
                    for (f, was) in fields.iter().rev() {
                        match was {
                            None => {
                                h.remove(f);
                            }
                            Some((v, ttl)) => {
                                let _ = h.set_with(f, v, false);
                                h.set_field_ttl(f, *ttl);
                            }
                        }
                    }
                    let _ = h.finish();
                }
                Undo::Key { key, before } => {
                    let k = self.key(key);
                    let Some(shard) = g.try_shard(k) else {
                        continue;
                    };
                    // Putting back what was there cannot fail for size.
                    let _ = match before {
                        Before::Missing => Ok(shard.delete(k)),
                        Before::Compact { start, end, ttl } => {
                            shard.put_compact(k, &self.arena[start..end], ttl)
                        }
                        Before::Owned(h, ttl) => shard.put(k, h, ttl),
                    };
                }
            }
        }
        self.clear();
    }
}

/// The shard of `key` among those `g` holds.
pub(crate) fn locked_shard<'g>(
    g: &'g mut MultiGuard<'_>,
    key: &[u8],
) -> Result<&'g mut Shard, Error> {
    let i = shard_index(key);
    g.try_shard_at(i).ok_or_else(|| {
        Error::Command(CommandError::err(format!(
            "internal: key '{}' is not locked by this transaction",
            String::from_utf8_lossy(key)
        )))
    })
}

/// A transaction in progress: the shards it holds and its [`TxLog`].
/// Commands run on it through a transaction's
/// [`Ctx`](crate::command::Ctx); dropped without [`Locked::commit`], it
/// puts everything back (so a panic inside a transaction applies nothing).
pub(crate) struct Locked<'k> {
    pub(crate) guard: std::cell::RefCell<MultiGuard<'k>>,
    pub(crate) log: std::cell::RefCell<TxLog>,
    /// A pipeline's shards, not a transaction: each effect goes to the
    /// journal as a single call's would (nothing to undo), and the highest
    /// ticket is kept for one sync after the locks are released.
    pub(crate) pipeline: Option<std::cell::Cell<Option<u64>>>,
    /// A transaction's time, read once for all its commands (a pipeline's
    /// commands each read their own).
    pub(crate) now: Option<std::cell::Cell<Option<i64>>>,
}

impl<'k> Locked<'k> {
    /// A transaction over the shards `guard` holds, keeping its effects in
    /// `log` (emptied first).
    pub(crate) fn new(guard: MultiGuard<'k>, mut log: TxLog) -> Self {
        log.clear();
        Locked {
            guard: std::cell::RefCell::new(guard),
            log: std::cell::RefCell::new(log),
            pipeline: None,
            now: Some(std::cell::Cell::new(None)),
        }
    }

    /// A pipeline segment over the shards `guard` holds.
    pub(crate) fn for_pipeline(guard: MultiGuard<'k>) -> Self {
        Locked {
            guard: std::cell::RefCell::new(guard),
            log: std::cell::RefCell::new(TxLog::default()),
            pipeline: Some(std::cell::Cell::new(None)),
            now: None,
        }
    }

    /// The highest log ticket a pipeline segment's commands got.
    pub(crate) fn pipeline_ticket(&self) -> Option<u64> {
        self.pipeline.as_ref().and_then(std::cell::Cell::get)
    }

    /// Logs what the transaction did as one record ([`TxLog::commit`]).
    pub(crate) fn commit(&self, ks: &Keyspace) -> Result<Option<u64>, Error> {
        self.log
            .borrow_mut()
            .commit(ks, &mut self.guard.borrow_mut())
    }

    /// Puts back everything the transaction changed.
    pub(crate) fn rollback(&self) {
        self.log.borrow_mut().rollback(&mut self.guard.borrow_mut());
    }

    /// Releases the locks and returns the log's buffers for reuse.
    pub(crate) fn finish(self) -> TxLog {
        self.rollback();
        std::mem::take(&mut *self.log.borrow_mut())
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // Nothing to do after a commit or `finish` (the log is empty).
        if let (Ok(mut log), Ok(mut g)) = (self.log.try_borrow_mut(), self.guard.try_borrow_mut()) {
            if !log.undo.is_empty() || log.effects > 0 {
                log.rollback(&mut g);
            }
        }
    }
}
