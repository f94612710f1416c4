//! Closure transactions ([`Db::transaction`]): the keys are declared up
//! front and their shards locked for the whole closure; the closure works
//! on a private copy of those keys (so it reads its own writes and nothing
//! it does is visible before the end); on `Ok` every change is logged as one
//! [`Effect::Batch`] record and applied under the same locks, on `Err`, on
//! a failed command or on a panic nothing is applied.
//!
//! The copy is a small in-memory keyspace holding clones of the declared
//! keys (with their key and field TTLs); its journal collects the effects
//! the closure's commands produce, exactly as the live path would log them.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::command::{Command, KeySet, Reply};
use crate::db::Db;
use crate::error::{CommandError, Error, Result};
use crate::hash::HashRef;
use crate::keyspace::effect::clone_hash;
use crate::keyspace::{Effect, Journal, Keyspace, MultiGuard};
use crate::log::record;
use crate::options::{Now, Options};

/// Collects the encoded effects of a transaction's commands.
#[derive(Default)]
pub(crate) struct StageLog {
    frames: Mutex<Vec<u8>>,
    /// Encoding space, kept across records and transactions.
    scratch: Mutex<Vec<u8>>,
    /// The keys the staged effects change, back to back, with their ends.
    touched: Mutex<(Vec<u8>, Vec<usize>)>,
}

impl StageLog {
    fn clear(&self) {
        self.frames.lock().clear();
        let mut t = self.touched.lock();
        t.0.clear();
        t.1.clear();
    }
}

impl Journal for StageLog {
    fn append(&self, e: &Effect<'_>) -> Result<u64, Error> {
        let mut scratch = self.scratch.lock();
        let n = record::encode(e, &mut scratch).map_err(|m| {
            Error::Command(CommandError::err(format!(
                "transaction too large for one log record: {m}"
            )))
        })?;
        self.frames.lock().extend_from_slice(&scratch[..n]);
        let mut t = self.touched.lock();
        let (bytes, ends) = &mut *t;
        for k in e.keys() {
            let seen = ends.iter().enumerate().any(|(i, &end)| {
                let start = if i == 0 { 0 } else { ends[i - 1] };
                &bytes[start..end] == k
            });
            if !seen {
                bytes.extend_from_slice(k);
                ends.push(bytes.len());
            }
        }
        Ok(0)
    }
    fn append_frame(&self, frame: &[u8]) -> Result<u64, Error> {
        // Stages only see their own commands' effects.
        Err(internal(&format!(
            "a framed record of {} bytes sent to a stage",
            frame.len()
        )))
    }
    fn sync(&self, _ticket: u64) -> Result<(), Error> {
        Ok(())
    }
}

/// The effects in `frames` (records written by [`StageLog`]), in order.
fn decode_frames(frames: &[u8]) -> Result<Vec<Effect<'_>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < frames.len() {
        let len = u32::from_le_bytes(
            frames[at..at + 4]
                .try_into()
                .map_err(|_| internal("short frame"))?,
        ) as usize;
        let payload = frames
            .get(at + record::FRAME_HEADER..at + record::FRAME_HEADER + len)
            .ok_or_else(|| internal("short frame"))?;
        out.push(record::decode(payload).map_err(|e| internal(&e))?);
        at += record::FRAME_HEADER + len;
    }
    Ok(out)
}

fn internal(what: &str) -> Error {
    Error::Command(CommandError::err(format!("internal: transaction: {what}")))
}

/// A transaction in progress: the typed commands of [`Db`] on the declared
/// keys, reading the transaction's own writes. Made by [`Db::transaction`].
pub struct Transaction<'t> {
    stage: Stage,
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
    /// on the declared keys (use the [`Transaction`]).
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
        let mut g = ks.lock_many(&declared);
        let staged = stage(self, &mut g, declared.iter().copied())?;
        let mut tx = Transaction {
            stage: staged,
            declared,
            failed: None,
        };
        let outcome = f(&mut tx).and_then(|r| match tx.failed.take() {
            Some(e) => Err(Error::Command(CommandError::new(e))),
            None => Ok(r),
        });
        let committed = outcome.and_then(|r| Ok((r, commit_copy(ks, &mut g, &tx.stage)?)));
        drop(g);
        let Transaction {
            stage: staged,
            declared,
            ..
        } = tx;
        self.stages().recycle(staged, declared.iter().copied());
        let (r, ticket) = committed?;
        ks.sync(ticket)?;
        Ok(r)
    }
}

/// A private keyspace a transaction's commands run on, with the journal
/// that collects their effects.
pub(crate) struct Stage {
    pub(crate) db: Db,
    pub(crate) log: Arc<StageLog>,
}

/// Stages kept for reuse (creating one costs more than a small
/// transaction).
#[derive(Default)]
pub(crate) struct StagePool(Mutex<Vec<Stage>>);

/// Stages kept at most.
const POOL: usize = 32;

impl StagePool {
    /// Gives `stage` back, emptied of `keys` (every key the transaction
    /// could touch).
    pub(crate) fn recycle<'k>(&self, stage: Stage, keys: impl Iterator<Item = &'k [u8]>) {
        let ks = stage.db.keyspace();
        for k in keys {
            ks.shard(k).write().delete(k);
        }
        stage.log.clear();
        let mut pool = self.0.lock();
        if pool.len() < POOL {
            pool.push(stage);
        }
    }
}

/// A private copy of `keys` (locked in `g`) to run a transaction's
/// commands on: each key as it is now (an expired key is deleted first, as
/// any write would), with its key and field TTLs; the copy's journal
/// collects the effects.
pub(crate) fn stage<'k>(
    db: &Db,
    g: &mut MultiGuard<'_>,
    keys: impl Iterator<Item = &'k [u8]>,
) -> Result<Stage> {
    let (ks, opts) = (db.keyspace(), db.options());
    let stage = db.stages().0.lock().pop();
    let stage = match stage {
        Some(s) => s,
        None => {
            let stage_ks = Keyspace::default();
            let log = Arc::new(StageLog::default());
            stage_ks.set_journal(log.clone());
            let stage_opts = opts.clone().active_expiry(false).no_auto_snapshots();
            Stage {
                db: Db::with_keyspace(stage_ks, stage_opts),
                log,
            }
        }
    };
    let now = Now::lazy(&*opts.clock);
    let stage_ks = stage.db.keyspace();
    for k in keys {
        let shard = g.shard(k);
        ks.expire_locked(shard, k, &now)?;
        let ttl = shard.ttl_of(k);
        match shard.hash_ref(k) {
            // A compact hash is copied straight into the stage's table.
            Some(HashRef::Compact(buf)) => stage_ks.shard(k).write().put_compact(k, buf, ttl)?,
            Some(h) => {
                let copy = clone_hash(h)?;
                stage_ks.shard(k).write().put(k, copy, ttl)?;
            }
            None => {}
        }
    }
    Ok(stage)
}

/// A closure transaction's commit: logs what the stage's commands did as
/// one record (framed from the staged records, not encoded again), then
/// gives each changed key the state it has in the stage (which is what
/// applying that record gives). Returns the ticket to wait for.
fn commit_copy(ks: &Keyspace, g: &mut MultiGuard<'_>, stage: &Stage) -> Result<Option<u64>> {
    let frames = stage.log.frames.lock();
    if frames.is_empty() {
        return Ok(None);
    }
    let touched = stage.log.touched.lock();
    let (bytes, ends) = &*touched;
    let keys: Vec<&[u8]> = ends
        .iter()
        .enumerate()
        .map(|(i, &end)| &bytes[if i == 0 { 0 } else { ends[i - 1] }..end])
        .collect();
    let first_len = u32::from_le_bytes(
        frames[0..4]
            .try_into()
            .map_err(|_| internal("short frame"))?,
    ) as usize;
    let ticket = if record::FRAME_HEADER + first_len == frames.len() {
        // One effect: its record as it is.
        ks.log_frame(&frames, &keys)?
    } else {
        let mut scratch = stage.log.scratch.lock();
        record::batch_frame(&frames, &mut scratch).map_err(|m| {
            Error::Command(CommandError::err(format!(
                "transaction too large for one log record: {m}"
            )))
        })?;
        ks.log_frame(&scratch, &keys)?
    };
    let stage_ks = stage.db.keyspace();
    for k in keys {
        let staged = stage_ks.shard(k).read();
        let real = g.shard(k);
        let ttl = staged.ttl_of(k);
        match staged.hash_ref(k) {
            Some(HashRef::Compact(buf)) => real.put_compact(k, buf, ttl)?,
            Some(h) => real.put(k, clone_hash(h)?, ttl)?,
            None => {
                real.delete(k);
            }
        }
    }
    Ok(ticket)
}

/// Logs what the copy's commands did as one record (a [`Effect::Batch`]
/// when there is more than one effect) and applies it under `g`. Returns
/// the ticket to wait for durability with, once the locks are released.
pub(crate) fn commit(
    ks: &Keyspace,
    g: &mut MultiGuard<'_>,
    log: &StageLog,
    opts: &Options,
) -> Result<Option<u64>> {
    let frames = log.frames.lock();
    let mut effects = decode_frames(&frames)?;
    if effects.iter().any(Effect::touches_all) {
        // FLUSHDB marks only watched keys that exist (before it runs).
        ks.watches
            .touch_existing(&mut |k| g.holds_all() && g.shard(k).hash_ref(k).is_some());
    }
    Ok(match effects.len() {
        0 => None,
        1 => {
            let e = effects.pop().ok_or_else(|| internal("no effect"))?;
            ks.commit_locked(g, &e, opts)?.1
        }
        _ => ks.commit_locked(g, &Effect::Batch { effects }, opts)?.1,
    })
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

    fn on<T>(&mut self, key: &[u8], f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        let r = self.check(key).and_then(|()| f(&self.stage.db));
        self.track(r)
    }

    /// Any command on the declared keys (KEYS, SCAN, DBSIZE and FLUSHDB,
    /// which touch every key, are refused).
    ///
    /// # Errors
    /// Redis's error for the command, or an error naming an undeclared key.
    pub fn execute<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> Result<Reply> {
        let words: Vec<&[u8]> = argv.iter().map(AsRef::as_ref).collect();
        let r = Command::parse(&words)
            .map_err(Error::from)
            .and_then(|cmd| match cmd.keys() {
                KeySet::All => Err(Error::Command(CommandError::err(format!(
                    "{} touches every key; it cannot run in a transaction over declared keys",
                    String::from_utf8_lossy(words[0]).to_ascii_uppercase()
                )))),
                KeySet::Keys(keys) => {
                    for k in keys {
                        self.check(k)?;
                    }
                    self.stage.db.execute(&words)
                }
            });
        self.track(r)
    }

    /// `HGET key field`.
    pub fn hget(
        &mut self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
    ) -> Result<Option<Vec<u8>>> {
        self.on(key.as_ref(), |db| db.hget(key.as_ref(), field))
    }

    /// `HMGET key field [field ...]`.
    pub fn hmget<F: AsRef<[u8]>>(
        &mut self,
        key: impl AsRef<[u8]>,
        fields: &[F],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        self.on(key.as_ref(), |db| db.hmget(key.as_ref(), fields))
    }

    /// `HGETALL key`.
    pub fn hgetall(&mut self, key: impl AsRef<[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.on(key.as_ref(), |db| db.hgetall(key.as_ref()))
    }

    /// `HSET key field value [field value ...]`: fields created.
    pub fn hset<F: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        key: impl AsRef<[u8]>,
        pairs: &[(F, V)],
    ) -> Result<i64> {
        self.on(key.as_ref(), |db| db.hset(key.as_ref(), pairs))
    }

    /// `HSETNX key field value`.
    pub fn hsetnx(
        &mut self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<bool> {
        self.on(key.as_ref(), |db| db.hsetnx(key.as_ref(), field, value))
    }

    /// `HDEL key field [field ...]`: fields removed.
    pub fn hdel<F: AsRef<[u8]>>(&mut self, key: impl AsRef<[u8]>, fields: &[F]) -> Result<i64> {
        self.on(key.as_ref(), |db| db.hdel(key.as_ref(), fields))
    }

    /// `HINCRBY key field delta`: the new value.
    pub fn hincrby(
        &mut self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        delta: i64,
    ) -> Result<i64> {
        self.on(key.as_ref(), |db| db.hincrby(key.as_ref(), field, delta))
    }

    /// `HINCRBYFLOAT key field delta`: the stored text.
    pub fn hincrbyfloat(
        &mut self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        delta: impl AsRef<[u8]>,
    ) -> Result<Vec<u8>> {
        self.on(key.as_ref(), |db| {
            db.hincrbyfloat(key.as_ref(), field, delta)
        })
    }

    /// `HLEN key`.
    pub fn hlen(&mut self, key: impl AsRef<[u8]>) -> Result<i64> {
        self.on(key.as_ref(), |db| db.hlen(key.as_ref()))
    }

    /// `HEXISTS key field`.
    pub fn hexists(&mut self, key: impl AsRef<[u8]>, field: impl AsRef<[u8]>) -> Result<bool> {
        self.on(key.as_ref(), |db| db.hexists(key.as_ref(), field))
    }

    /// `DEL key [key ...]`: keys removed.
    pub fn del<K: AsRef<[u8]>>(&mut self, keys: &[K]) -> Result<i64> {
        for k in keys {
            let r = self.check(k.as_ref());
            self.track(r)?;
        }
        let r = self.stage.db.del(keys);
        self.track(r)
    }

    /// `EXISTS key [key ...]`.
    pub fn exists<K: AsRef<[u8]>>(&mut self, keys: &[K]) -> Result<i64> {
        for k in keys {
            let r = self.check(k.as_ref());
            self.track(r)?;
        }
        let r = self.stage.db.exists(keys);
        self.track(r)
    }

    /// `PEXPIRE key ms`: whether a TTL was set.
    pub fn pexpire(&mut self, key: impl AsRef<[u8]>, ms: i64) -> Result<bool> {
        self.on(key.as_ref(), |db| db.pexpire(key.as_ref(), ms))
    }

    /// `PTTL key`.
    pub fn pttl(&mut self, key: impl AsRef<[u8]>) -> Result<i64> {
        self.on(key.as_ref(), |db| db.pttl(key.as_ref()))
    }

    /// `PERSIST key`: whether a TTL was removed.
    pub fn persist(&mut self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.on(key.as_ref(), |db| db.persist(key.as_ref()))
    }
}
