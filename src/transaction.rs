//! Closure transactions ([`Db::transaction`]): the keys are declared up
//! front and their shards locked for the whole closure; the closure's
//! commands run directly on the locked shards (so it reads its own writes,
//! and no other thread sees anything before the end), each change's old
//! state kept; on `Ok` every change is logged as one record (an
//! [`Effect::Batch`](crate::keyspace::Effect) when there is more than one),
//! on `Err`, on a failed command or on a panic the old states are put back
//! and nothing is logged. EXEC ([`crate::Session`]) runs its queue the same
//! way. The bookkeeping is [`TxLog`](crate::keyspace::TxLog)'s.

use crate::command::{convert, Command, Ctx, KeySet, Reply};
use crate::db::Db;
use crate::error::{CommandError, Error, Result};
use crate::keyspace::tx::Locked;
use crate::keyspace::{Keyspace, MultiGuard};

/// A transaction in progress: the typed commands of [`Db`] on the declared
/// keys, reading the transaction's own writes. Made by [`Db::transaction`].
pub struct Transaction<'t> {
    db: &'t Db,
    locked: Locked<'t>,
    /// The declared keys (a handful: looked up by a linear scan).
    declared: Vec<&'t [u8]>,
    /// The first command that failed: the transaction then applies nothing.
    failed: Option<String>,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("declared", &self.declared.len())
            .field("failed", &self.failed)
            .finish()
    }
}

impl Db {
    /// Runs `f` as one transaction over `keys`, which are locked for the
    /// whole call: no other thread reads or writes them meanwhile, and `f`
    /// reads its own writes. If `f` returns `Ok`, every change it made is
    /// applied at once and logged as one record (a crash keeps all or none
    /// of it); if `f` returns `Err`, a command inside it fails, or `f`
    /// panics, nothing is applied. Touching a key not in `keys` is an error
    /// that names it. Keys are locked in a fixed order, so transactions on
    /// overlapping keys cannot deadlock; `f` must not call this `Db` itself
    /// on the declared keys, or on other keys of the shards they lock (use
    /// the [`Transaction`]).
    ///
    /// # Errors
    /// What `f` returns, the first command error inside it, or the log's
    /// error when the transaction cannot be made durable.
    ///
    /// # Examples
    /// ```
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// db.hset("stock:42", &[("units", "3")])?;
    /// // Sell one unit only if one is left; no reader ever sees -1.
    /// let sold = db.transaction(&["stock:42", "sales"], |tx| {
    ///     let units: i64 = tx.hget("stock:42", "units")?
    ///         .map_or(0, |v| String::from_utf8_lossy(&v).parse().unwrap_or(0));
    ///     if units == 0 {
    ///         return Ok(false);
    ///     }
    ///     tx.hincrby("stock:42", "units", -1)?;
    ///     tx.hincrby("sales", "stock:42", 1)?;
    ///     Ok(true)
    /// })?;
    /// assert!(sold);
    /// assert_eq!(db.hget("sales", "stock:42")?.as_deref(), Some(&b"1"[..]));
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn transaction<K: AsRef<[u8]>, R>(
        &self,
        keys: &[K],
        f: impl FnOnce(&mut Transaction<'_>) -> Result<R>,
    ) -> Result<R> {
        let ks = self.keyspace();
        let mut declared: Vec<&[u8]> = keys.iter().map(AsRef::as_ref).collect();
        declared.sort_unstable();
        declared.dedup();
        let g = ks.lock_many(&declared);
        let mut tx = Transaction {
            db: self,
            locked: Locked::new(g, self.tx_logs().take()),
            declared,
            failed: None,
        };
        // A panic in `f` drops `tx`, which puts everything back.
        let outcome = f(&mut tx).and_then(|r| match tx.failed.take() {
            Some(e) => Err(Error::Command(CommandError::new(e))),
            None => Ok(r),
        });
        let committed = match outcome {
            Ok(r) => tx.locked.commit(ks).map(|t| (r, t)),
            Err(e) => Err(e),
        };
        self.tx_logs().give(tx.locked.finish());
        let (r, ticket) = committed?;
        ks.sync(ticket)?;
        Ok(r)
    }
}

/// Runs one command of a transaction on its locked shards.
pub(crate) fn run_in<'k>(db: &'k Db, locked: &Locked<'k>, cmd: Command<'_>) -> Result<Reply> {
    cmd.execute(&Ctx::in_tx(db.keyspace(), db.options(), locked))
}

/// Starts a transaction on the shards `g` holds (EXEC).
pub(crate) fn begin<'k>(db: &Db, g: MultiGuard<'k>) -> Locked<'k> {
    Locked::new(g, db.tx_logs().take())
}

/// Ends a transaction begun with [`begin`]: logs it as one record (or, on
/// failure, puts everything back), releases the locks, and returns the
/// ticket to wait for.
pub(crate) fn end(db: &Db, ks: &Keyspace, locked: Locked<'_>) -> Result<Option<u64>> {
    let t = locked.commit(ks);
    db.tx_logs().give(locked.finish());
    t
}

impl Transaction<'_> {
    fn check(&self, key: &[u8]) -> Result<()> {
        if self.declared.contains(&key) {
            Ok(())
        } else {
            Err(Error::Command(CommandError::err(format!(
                "key '{}' was not declared for this transaction",
                String::from_utf8_lossy(key)
            ))))
        }
    }

    /// Records the first failure: a failed transaction applies nothing.
    fn track<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            if self.failed.is_none() {
                self.failed = Some(e.to_string());
            }
        }
        r
    }

    /// Runs `cmd` (on the declared `keys`) inside the transaction.
    fn run(&mut self, keys: &[&[u8]], cmd: Command<'_>) -> Result<Reply> {
        let r = keys
            .iter()
            .try_for_each(|k| self.check(k))
            .and_then(|()| run_in(self.db, &self.locked, cmd));
        self.track(r)
    }

    /// Any command on the declared keys (KEYS, SCAN, DBSIZE and FLUSHDB,
    /// which touch every key, are refused).
    ///
    /// # Errors
    /// Redis's error for the command, or an error naming an undeclared key.
    pub fn execute<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> Result<Reply> {
        let words: Vec<&[u8]> = argv.iter().map(AsRef::as_ref).collect();
        let cmd = match Command::parse_for(&words, self.db.is_read_only()) {
            Ok(cmd) => cmd,
            Err(e) => return self.track(Err(e)),
        };
        match cmd.keys() {
            KeySet::All => self.track(Err(Error::Command(CommandError::err(format!(
                "{} touches every key; it cannot run in a transaction over declared keys",
                String::from_utf8_lossy(words[0]).to_ascii_uppercase()
            ))))),
            KeySet::Keys(keys) => self.run(&keys, cmd),
        }
    }

    /// `HGET key field`.
    pub fn hget(
        &mut self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
    ) -> Result<Option<Vec<u8>>> {
        let (key, field) = (key.as_ref(), field.as_ref());
        convert::bulk(self.run(&[key], Command::HGet { key, field })?)
    }

    /// `HMGET key field [field ...]`.
    pub fn hmget<F: AsRef<[u8]>>(
        &mut self,
        key: impl AsRef<[u8]>,
        fields: &[F],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let key = key.as_ref();
        let fields = fields.iter().map(AsRef::as_ref).collect();
        convert::optional_bulks(self.run(&[key], Command::HMGet { key, fields })?)
    }

    /// `HGETALL key`, as (field, value) pairs.
    pub fn hgetall(&mut self, key: impl AsRef<[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let key = key.as_ref();
        let cmd = Command::HGetAll {
            key,
            keys: true,
            values: true,
        };
        convert::pairs(self.run(&[key], cmd)?)
    }

    /// `HSET key field value [field value ...]`: fields created.
    pub fn hset<F: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        key: impl AsRef<[u8]>,
        pairs: &[(F, V)],
    ) -> Result<i64> {
        let key = key.as_ref();
        let pairs = pairs
            .iter()
            .map(|(f, v)| (f.as_ref(), v.as_ref()))
            .collect();
        let cmd = Command::HSet {
            key,
            pairs,
            ok_reply: false,
        };
        convert::int(self.run(&[key], cmd)?)
    }

    /// `HSETNX key field value`.
    pub fn hsetnx(
        &mut self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<bool> {
        let (key, field, value) = (key.as_ref(), field.as_ref(), value.as_ref());
        let cmd = Command::HSetNx { key, field, value };
        Ok(convert::int(self.run(&[key], cmd)?)? == 1)
    }

    /// `HDEL key field [field ...]`: fields removed.
    pub fn hdel<F: AsRef<[u8]>>(&mut self, key: impl AsRef<[u8]>, fields: &[F]) -> Result<i64> {
        let key = key.as_ref();
        let fields = fields.iter().map(AsRef::as_ref).collect();
        convert::int(self.run(&[key], Command::HDel { key, fields })?)
    }

    /// `HINCRBY key field delta`: the new value.
    pub fn hincrby(
        &mut self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        delta: i64,
    ) -> Result<i64> {
        let (key, field) = (key.as_ref(), field.as_ref());
        convert::int(self.run(&[key], Command::HIncrBy { key, field, delta })?)
    }

    /// `HINCRBYFLOAT key field delta`: the stored text.
    pub fn hincrbyfloat(
        &mut self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        delta: impl AsRef<[u8]>,
    ) -> Result<Vec<u8>> {
        let (key, field, delta) = (key.as_ref(), field.as_ref(), delta.as_ref());
        let cmd = Command::HIncrByFloat { key, field, delta };
        Ok(convert::bulk(self.run(&[key], cmd)?)?.unwrap_or_default())
    }

    /// `HLEN key`.
    pub fn hlen(&mut self, key: impl AsRef<[u8]>) -> Result<i64> {
        let key = key.as_ref();
        convert::int(self.run(&[key], Command::HLen { key })?)
    }

    /// `HEXISTS key field`.
    pub fn hexists(&mut self, key: impl AsRef<[u8]>, field: impl AsRef<[u8]>) -> Result<bool> {
        let (key, field) = (key.as_ref(), field.as_ref());
        Ok(convert::int(self.run(&[key], Command::HExists { key, field })?)? == 1)
    }

    /// `DEL key [key ...]`: keys removed.
    pub fn del<K: AsRef<[u8]>>(&mut self, keys: &[K]) -> Result<i64> {
        let keys: Vec<&[u8]> = keys.iter().map(AsRef::as_ref).collect();
        let cmd = Command::Del { keys: keys.clone() };
        convert::int(self.run(&keys, cmd)?)
    }

    /// `EXISTS key [key ...]`.
    pub fn exists<K: AsRef<[u8]>>(&mut self, keys: &[K]) -> Result<i64> {
        let keys: Vec<&[u8]> = keys.iter().map(AsRef::as_ref).collect();
        let cmd = Command::Exists { keys: keys.clone() };
        convert::int(self.run(&keys, cmd)?)
    }

    /// `PEXPIRE key ms`: whether a TTL was set.
    pub fn pexpire(&mut self, key: impl AsRef<[u8]>, ms: i64) -> Result<bool> {
        let ms = ms.to_string();
        let r = self.execute(&[b"PEXPIRE".as_slice(), key.as_ref(), ms.as_bytes()])?;
        Ok(convert::int(r)? == 1)
    }

    /// `PTTL key`.
    pub fn pttl(&mut self, key: impl AsRef<[u8]>) -> Result<i64> {
        let key = key.as_ref();
        let kind = crate::command::TtlKind::Millis;
        convert::int(self.run(&[key], Command::Ttl { key, kind })?)
    }

    /// `PERSIST key`: whether a TTL was removed.
    pub fn persist(&mut self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        Ok(convert::int(self.run(&[key], Command::Persist { key })?)? == 1)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use crate::keyspace::{Effect, Journal, Keyspace};
    use crate::{Db, Error, Options, Reply};

    /// A journal that refuses every write while `fail` is set.
    #[derive(Default)]
    struct Refusing {
        fail: AtomicBool,
    }

    impl Refusing {
        fn check(&self) -> Result<u64, Error> {
            if self.fail.load(Ordering::SeqCst) {
                Err(Error::Io {
                    op: "appending to",
                    path: "test-log".into(),
                    source: std::io::Error::other("disk full"),
                })
            } else {
                Ok(0)
            }
        }
    }

    impl Journal for Refusing {
        fn append(&self, _e: &Effect<'_>) -> Result<u64, Error> {
            self.check()
        }
        fn append_frame(&self, _frame: &[u8]) -> Result<u64, Error> {
            self.check()
        }
        fn sync(&self, _ticket: u64) -> Result<(), Error> {
            Ok(())
        }
    }

    fn dump(db: &Db) -> Vec<String> {
        let Reply::Array(mut keys) = db.execute(&["KEYS", "*"]).unwrap() else {
            panic!("KEYS answers an array");
        };
        keys.sort_by_key(|k| format!("{k:?}"));
        keys.iter()
            .map(|k| {
                let k = k.as_bytes().unwrap();
                let mut pairs = db.hgetall(k).unwrap();
                pairs.sort();
                format!(
                    "{} {pairs:?} {:?} {:?}",
                    String::from_utf8_lossy(k),
                    db.object_encoding(k).unwrap(),
                    db.execute(&[b"PEXPIRETIME".as_slice(), k]).unwrap()
                )
            })
            .collect()
    }

    /// When the log refuses a transaction's record, everything it changed
    /// in memory is put back, FLUSHDB included, and the error returned.
    #[test]
    fn a_transaction_the_log_refuses_is_put_back() {
        let ks = Keyspace::default();
        let journal = Arc::new(Refusing::default());
        ks.set_journal(journal.clone());
        let db = Db::with_keyspace(ks, Options::default().hash_max_listpack_entries(4));
        db.hset("small", &[("a", "1"), ("b", "2")]).unwrap();
        db.hset(
            "big",
            &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")],
        )
        .unwrap();
        db.pexpire("small", 1_000_000).unwrap();
        db.execute(&["HPEXPIRE", "big", "1000000", "FIELDS", "1", "a"])
            .unwrap();
        let before = dump(&db);
        journal.fail.store(true, Ordering::SeqCst);

        let r = db.transaction(&["small", "big", "new"], |tx| {
            tx.hset("small", &[("c", "3"), ("d", "4"), ("e", "5")])?;
            tx.del(&["big"])?;
            tx.hset("new", &[("x", "y")])?;
            tx.persist("small")?;
            Ok(())
        });
        assert!(r.unwrap_err().to_string().contains("disk full"));
        assert_eq!(dump(&db), before);

        // Another session watches a key the failed FLUSHDB would have
        // deleted: nothing happened, so its EXEC goes through.
        let mut watcher = db.session();
        watcher.execute(&["WATCH", "small"]).unwrap();
        let mut s = db.session();
        s.execute(&["MULTI"]).unwrap();
        s.execute(&["HSET", "small", "z", "26"]).unwrap();
        s.execute(&["FLUSHDB"]).unwrap();
        s.execute(&["HSET", "small", "after", "flush"]).unwrap();
        s.execute(&["RENAME", "small", "moved"]).unwrap();
        let r = s.execute(&["EXEC"]);
        assert!(r.unwrap_err().to_string().contains("disk full"));
        assert_eq!(dump(&db), before);
        watcher.execute(&["MULTI"]).unwrap();
        watcher.execute(&["PING"]).unwrap();
        assert_eq!(
            watcher.execute(&["EXEC"]).unwrap(),
            Reply::Array(vec![Reply::Status("PONG".into())]),
            "a FLUSHDB that was not logged marked a watcher"
        );

        // Once the log takes writes again, the same EXEC applies.
        journal.fail.store(false, Ordering::SeqCst);
        s.execute(&["MULTI"]).unwrap();
        s.execute(&["FLUSHDB"]).unwrap();
        s.execute(&["HSET", "small", "after", "flush"]).unwrap();
        assert_eq!(
            s.execute(&["EXEC"]).unwrap(),
            Reply::Array(vec![Reply::ok(), Reply::Integer(1)])
        );
        assert_eq!(db.dbsize().unwrap(), 1);
    }
}
