//! [`Ctx`]: what a command runs against, and the only way commands reach
//! the keyspace. Outside a transaction each access takes its shard's lock
//! and each change is logged before it is applied; inside one (EXEC, or a
//! closure transaction) the shards are already locked by the transaction,
//! accesses go straight to them, and changes are kept in its
//! [`TxLog`](crate::keyspace::TxLog) to be logged together at its commit.

use crate::error::{CommandError, Error};
use crate::hash::HashRef;
use crate::keyspace::tx::{locked_shard, Locked};
use crate::keyspace::{Effect, Keyspace, MultiGuard, Shard, Sink, SHARDS};
use crate::options::{Now, Options};

/// What a command runs against: the keyspace, the options, one time sample
/// and, inside a transaction, the transaction's locked shards.
pub(crate) struct Ctx<'a, 'k> {
    pub(crate) ks: &'k Keyspace,
    pub(crate) opts: &'a Options,
    /// One time sample per command, used for every TTL decision in it.
    pub(crate) now: Now<'a>,
    tx: Option<&'a Locked<'k>>,
}

fn not_all_locked() -> Error {
    Error::Command(CommandError::err(
        "internal: a command over every key ran without every shard locked",
    ))
}

impl<'a, 'k> Ctx<'a, 'k> {
    /// A command on its own.
    pub(crate) fn new(ks: &'k Keyspace, opts: &'a Options) -> Self {
        Ctx {
            ks,
            opts,
            now: Now::lazy(&*opts.clock),
            tx: None,
        }
    }

    /// A command inside the transaction `tx`.
    pub(crate) fn in_tx(ks: &'k Keyspace, opts: &'a Options, tx: &'a Locked<'k>) -> Self {
        let now = match &tx.now {
            Some(cell) => Now::shared(cell, &*opts.clock),
            None => Now::lazy(&*opts.clock),
        };
        Ctx {
            ks,
            opts,
            now,
            tx: Some(tx),
        }
    }

    #[inline]
    fn sink(&self) -> Sink<'a> {
        match self.tx {
            Some(tx) if tx.pipeline.is_none() => Sink::Tx(&tx.log),
            _ => Sink::Journal,
        }
    }

    /// Inside the transaction `tx`: runs `f` on the shard of `key`, which
    /// the transaction holds, after deleting `key` if it has expired (the
    /// deletion kept with the transaction's other changes). A deletion that
    /// cannot be kept fails a write; a read goes on without it (the key
    /// stays, still invisible), as outside transactions.
    fn on_locked<R>(
        &self,
        tx: &Locked<'k>,
        key: &[u8],
        write: bool,
        f: impl FnOnce(&mut Shard) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut g = tx.guard.borrow_mut();
        let shard = locked_shard(&mut g, key)?;
        let expired = self.ks.expire_locked(self.sink(), shard, key, &self.now);
        if write {
            expired?;
        }
        f(shard)
    }

    /// Runs `f` on the live hash at `key` (None if missing or expired; an
    /// expired key is deleted).
    #[inline]
    pub(crate) fn read<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<HashRef<'_>>) -> R,
    ) -> Result<R, Error> {
        match self.tx {
            None => Ok(self.ks.read(key, &self.now, f)),
            Some(tx) => self.on_locked(tx, key, false, |shard| Ok(f(shard.get(key, &self.now)))),
        }
    }

    /// [`Ctx::read`] for commands that address `fields`: expired fields
    /// among them read as missing and are removed.
    #[inline]
    pub(crate) fn read_fields<R>(
        &self,
        key: &[u8],
        fields: &[&[u8]],
        f: impl FnOnce(Option<HashRef<'_>>) -> R,
    ) -> Result<R, Error> {
        match self.tx {
            None => Ok(self.ks.read_fields(key, fields, &self.now, f)),
            Some(tx) => self.on_locked(tx, key, false, |shard| {
                // Lazy field expiry; a removal that cannot be kept leaves
                // the fields (still invisible), as outside transactions.
                let _ = self.expire_fields(shard, key, fields);
                Ok(f(shard.get(key, &self.now)))
            }),
        }
    }

    /// Runs `f` on the shard of `key` (for commands that need more than
    /// the hash, such as its TTL); an expired `key` is deleted.
    pub(crate) fn read_shard<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(&Shard) -> R,
    ) -> Result<R, Error> {
        match self.tx {
            None => Ok(self.ks.read_shard(key, &self.now, f)),
            Some(tx) => self.on_locked(tx, key, false, |shard| Ok(f(shard))),
        }
    }

    /// Runs `f` on the shard of `key`, write-locked, after deleting `key`
    /// if it has expired. `f` changes it through [`Ctx::commit`].
    #[inline]
    pub(crate) fn write<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(&mut Shard) -> Result<R, Error>,
    ) -> Result<R, Error> {
        match self.tx {
            None => self.ks.write(key, &self.now, f),
            Some(tx) => self.on_locked(tx, key, true, f),
        }
    }

    /// Logs (or keeps, in a transaction) the single-key effect `e`, then
    /// applies it to `shard`. Returns the applied count and the ticket for
    /// [`Ctx::sync`].
    #[inline]
    pub(crate) fn commit(
        &self,
        shard: &mut Shard,
        e: &Effect<'_>,
    ) -> Result<(i64, Option<u64>), Error> {
        self.ks.commit(self.sink(), shard, e, self.opts)
    }

    /// Before a change to `key` that is not logged (a compact hash's
    /// layout switched, as Redis does without propagating it): inside a
    /// transaction, keeps the key's state so a rollback restores it.
    pub(crate) fn before_unlogged_change(&self, shard: &Shard, key: &[u8]) -> Result<(), Error> {
        if let Sink::Tx(log) = self.sink() {
            log.borrow_mut().keep(shard, key)?;
        }
        Ok(())
    }

    /// Lazy field expiry of `fields` of `key` in its locked `shard`.
    pub(crate) fn expire_fields(
        &self,
        shard: &mut Shard,
        key: &[u8],
        fields: &[&[u8]],
    ) -> Result<usize, Error> {
        self.ks
            .expire_fields_locked(self.sink(), shard, key, fields, &self.now)
    }

    /// Removes every expired field of `key` in its locked `shard`.
    pub(crate) fn expire_all_fields(&self, shard: &mut Shard, key: &[u8]) -> Result<usize, Error> {
        self.ks
            .expire_all_fields_locked(self.sink(), shard, key, &self.now)
    }

    /// Runs `f` with the shards of `keys` locked together.
    pub(crate) fn locked<R>(
        &self,
        keys: &[&[u8]],
        f: impl FnOnce(&mut MultiGuard<'k>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        match self.tx {
            None => f(&mut self.ks.lock_many(keys)),
            Some(tx) => {
                let mut g = tx.guard.borrow_mut();
                for k in keys {
                    locked_shard(&mut g, k)?;
                }
                f(&mut g)
            }
        }
    }

    /// Deletes `key` from its locked `shard` if it has expired.
    pub(crate) fn expire_key(&self, shard: &mut Shard, key: &[u8]) -> Result<bool, Error> {
        self.ks.expire_locked(self.sink(), shard, key, &self.now)
    }

    /// [`Ctx::commit`] for an effect on several keys locked in `g`.
    pub(crate) fn commit_locked(
        &self,
        g: &mut MultiGuard<'_>,
        e: &Effect<'_>,
    ) -> Result<(i64, Option<u64>), Error> {
        self.ks.commit_locked(self.sink(), g, e, self.opts)
    }

    /// Waits for the durability of a change (call after the locks are
    /// released; a transaction's changes have no ticket of their own).
    #[inline]
    pub(crate) fn sync(&self, ticket: Option<u64>) -> Result<(), Error> {
        match self.tx.and_then(|tx| tx.pipeline.as_ref()) {
            // A pipeline waits once, for its highest ticket, unlocked.
            Some(max) => {
                if ticket > max.get() {
                    max.set(ticket);
                }
                Ok(())
            }
            None => self.ks.sync(ticket),
        }
    }

    /// Runs `f` on shard `i` (read-locked outside a transaction).
    pub(crate) fn with_shard_at<R>(
        &self,
        i: usize,
        f: impl FnOnce(&Shard) -> R,
    ) -> Result<R, Error> {
        match self.tx {
            None => Ok(f(&self.ks.shard_at(i).read())),
            Some(tx) => {
                let mut g = tx.guard.borrow_mut();
                let shard = g.try_shard_at(i).ok_or_else(not_all_locked)?;
                Ok(f(shard))
            }
        }
    }

    /// Keys in every shard (DBSIZE).
    pub(crate) fn len(&self) -> Result<usize, Error> {
        (0..SHARDS).map(|i| self.with_shard_at(i, Shard::len)).sum()
    }

    /// FLUSHDB.
    pub(crate) fn flush(&self) -> Result<Option<u64>, Error> {
        match self.tx {
            None => self.ks.flush(),
            Some(tx) => {
                let mut g = tx.guard.borrow_mut();
                tx.log.borrow_mut().flush(self.ks, &mut g)?;
                Ok(None)
            }
        }
    }
}
