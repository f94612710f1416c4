//! Batch writes: [`WriteBatch`], HSETs queued to run as one batch with
//! [`Db::write_batch`]: their records appended to the log in one write,
//! one wait for durability (see the keyspace's `batch` module for how).

use super::Db;
use crate::error::{CommandError, Error, Result};
use crate::keyspace::HSetItem;
use crate::options::Now;

/// HSETs to run together with [`Db::write_batch`]. Reusable: the batch
/// keeps its buffers when [cleared](WriteBatch::clear).
///
/// Not a transaction: another thread may run between its commands (never
/// inside one), and each command is logged as the single call logs it, so
/// a crash before the batch is acknowledged may keep a prefix of it. Once
/// [`Db::write_batch`] returns `Ok`, all of it is as durable as the fsync
/// policy makes a single call.
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir()?;
/// let db = hashkv::Db::open(dir.path())?;
/// let mut batch = hashkv::WriteBatch::new();
/// for i in 0..64 {
///     batch.hset(format!("user:{i}"), &[("name", format!("n{i}")), ("visits", "0".into())]);
/// }
/// assert_eq!(db.write_batch(&batch)?, 128);
/// assert_eq!(db.hget("user:7", "name")?, Some(b"n7".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default, Clone)]
pub struct WriteBatch {
    /// Every key, field and value, back to back.
    bytes: Vec<u8>,
    /// End of each word in `bytes`.
    ends: Vec<usize>,
    /// Per command: its first word (the key) and its number of pairs.
    cmds: Vec<(usize, usize)>,
}

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("commands", &self.cmds.len())
            .finish()
    }
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    fn word(&mut self, w: &[u8]) {
        self.bytes.extend_from_slice(w);
        self.ends.push(self.bytes.len());
    }

    /// Queues `HSET key field value [field value ...]`. A command with no
    /// pairs fails alone when the batch runs, as HSET without them does.
    pub fn hset<K, F, V>(&mut self, key: K, pairs: &[(F, V)]) -> &mut Self
    where
        K: AsRef<[u8]>,
        F: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let first = self.ends.len();
        self.word(key.as_ref());
        for (f, v) in pairs {
            self.word(f.as_ref());
            self.word(v.as_ref());
        }
        self.cmds.push((first, pairs.len()));
        self
    }

    /// Commands queued.
    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.cmds.clear();
    }

    fn word_at(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

impl Db {
    /// Runs the HSETs of `batch` in order, as one batch: each key's shard
    /// locked once, every record appended to the log in one write (each
    /// still its own checksummed record, as the single calls write them),
    /// one wait for durability. Returns how many fields were new in all.
    ///
    /// # Errors
    /// When the records cannot be logged (a full disk, a failed log):
    /// that error, and nothing of the batch is applied. When they were
    /// logged but could not be made durable: that error (the writes are
    /// applied). [`Error::ReadOnly`] on a read-only handle. A command that
    /// fails alone (no pairs; a hash outgrowing hashkv's limits) does not
    /// stop the others: the first such error is returned after the batch
    /// ran; [`Db::write_batch_with`] reports each command's outcome.
    ///
    /// # Examples
    /// ```
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// let mut batch = hashkv::WriteBatch::new();
    /// batch.hset("a", &[("f", "1")]).hset("b", &[("f", "2"), ("g", "3")]);
    /// assert_eq!(db.write_batch(&batch)?, 3);
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn write_batch(&self, batch: &WriteBatch) -> Result<i64> {
        let mut created = 0;
        let mut first: Option<Error> = None;
        self.write_batch_with(batch, |_, r| match r {
            Ok(n) => created += n,
            Err(e) => {
                first.get_or_insert(e);
            }
        })?;
        first.map_or(Ok(created), Err)
    }

    /// [`Db::write_batch`], telling `done` each command's index in the
    /// batch and its outcome (how many fields were new, or its own error),
    /// once the batch is durable.
    ///
    /// # Errors
    /// As [`Db::write_batch`] for the batch as a whole; then `done` is not
    /// called.
    ///
    /// # Examples
    /// ```
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// let mut batch = hashkv::WriteBatch::new();
    /// batch.hset("a", &[("f", "1")]).hset("a", &[("f", "2"), ("g", "3")]);
    /// let mut counts = Vec::new();
    /// db.write_batch_with(&batch, |i, r| counts.push((i, r.unwrap())))?;
    /// assert_eq!(counts, [(0, 1), (1, 1)]);
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn write_batch_with(
        &self,
        batch: &WriteBatch,
        mut done: impl FnMut(usize, Result<i64>),
    ) -> Result<()> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let mut pairs: Vec<(&[u8], &[u8])> =
            Vec::with_capacity((batch.ends.len() - batch.cmds.len()) / 2);
        for &(first, n) in &batch.cmds {
            pairs.extend((0..n).map(|j| {
                (
                    batch.word_at(first + 1 + 2 * j),
                    batch.word_at(first + 2 + 2 * j),
                )
            }));
        }
        // Commands without pairs are answered alone, as HSET's arity check
        // answers them, and are not part of the batch.
        let mut items = Vec::with_capacity(batch.cmds.len());
        let mut index = Vec::with_capacity(batch.cmds.len());
        let mut at = 0;
        for (i, &(first, n)) in batch.cmds.iter().enumerate() {
            if n > 0 {
                index.push(i);
                items.push(HSetItem {
                    key: batch.word_at(first),
                    pairs: &pairs[at..at + n],
                });
                at += n;
            }
        }
        let now = Now::lazy(&*self.options().clock);
        let mut outcome: Vec<Option<Result<i64>>> = Vec::new();
        outcome.resize_with(batch.cmds.len(), || None);
        let ks = self.keyspace();
        let ticket = ks.hset_batch(&items, &now, self.options(), |j, r| {
            outcome[index[j]] = Some(r.map_err(Error::Command));
        })?;
        ks.sync(ticket)?;
        for (i, r) in outcome.into_iter().enumerate() {
            done(
                i,
                r.unwrap_or_else(|| Err(CommandError::wrong_arity("hset").into())),
            );
        }
        Ok(())
    }
}
