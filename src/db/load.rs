//! Bulk loading: [`Db::load`] (and [`Db::import`]'s HSETs) run HSETs in
//! batches of about [`LOAD_BATCH_FIELDS`] fields, each batch logged as one
//! record, its new keys stored as compact hashes built straight from their
//! pairs (see the keyspace's `load` module), with one wait for durability
//! at the end.

use super::Db;
use crate::error::{CommandError, Error, Result};
use crate::interop::Transfer;
use crate::keyspace::HSetItem;
use crate::options::Now;

/// Fields per load batch (one log record each): big enough that the
/// record's framing and the shard locks cost little per field, small
/// enough that the record stays in cache while it is copied.
pub(crate) const LOAD_BATCH_FIELDS: usize = 1_000;

/// Bytes of keys, fields and values past which a batch is run before it
/// reaches [`LOAD_BATCH_FIELDS`] (big values).
const LOAD_BATCH_BYTES: usize = 1 << 20;

/// Most keys a load's `size_hint` sizes the key tables for.
const RESERVE_MAX: usize = 1 << 26;

/// Errors kept in a [`Transfer`] (the count goes on).
const KEEP_ERRORS: usize = 100;

/// HSETs staged for one load batch: every key, field and value back to
/// back, with the end of each and each command's first word.
#[derive(Default)]
pub(crate) struct Staged {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    /// Per command: its first word (the key), its number of pairs and its
    /// number in the whole load (for error messages).
    cmds: Vec<(usize, usize, u64)>,
    pairs: usize,
}

impl Staged {
    fn word(&mut self, w: &[u8]) {
        self.bytes.extend_from_slice(w);
        self.ends.push(self.bytes.len());
    }

    fn word_at(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// Starts a command for `key`, its number `at` in the load; its pairs
    /// follow with [`Staged::pair`].
    pub(crate) fn key(&mut self, key: &[u8], at: u64) {
        let first = self.ends.len();
        self.word(key);
        self.cmds.push((first, 0, at));
    }

    /// Adds a pair to the last command.
    pub(crate) fn pair(&mut self, field: &[u8], value: &[u8]) {
        self.word(field);
        self.word(value);
        if let Some(c) = self.cmds.last_mut() {
            c.1 += 1;
        }
        self.pairs += 1;
    }

    /// Whether the batch is big enough to run.
    pub(crate) fn full(&self) -> bool {
        self.pairs >= LOAD_BATCH_FIELDS || self.bytes.len() >= LOAD_BATCH_BYTES
    }

    /// Whether nothing is staged.
    pub(crate) fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.cmds.clear();
        self.pairs = 0;
    }
}

impl Db {
    /// Loads hashes in bulk: for each `(key, pairs)` of `items`, in order,
    /// what `HSET key field value ...` does, run in batches of about 1,000
    /// fields. Each batch is logged as one record (read-only followers and
    /// replay apply it whole), keys new to the database are stored directly
    /// as compact hashes, and the whole load is made durable once at the
    /// end, whatever the fsync policy: when `load` returns `Ok`, every
    /// item is on disk. Automatic snapshots wait until it ends. Into an
    /// empty database, an iterator whose `size_hint` gives the number of
    /// items has the key tables sized for them first.
    ///
    /// Returns the keys (`items`) and fields given; an item HSET refuses
    /// alone (no pairs; a hash outgrowing hashkv's limits) is counted in
    /// `errors` (the first 100 messages kept) and the others still load.
    ///
    /// Not a transaction: a crash before `load` returns keeps a prefix of
    /// its batches, each whole.
    ///
    /// # Errors
    /// When a batch cannot be logged (a full disk, a failed log): that
    /// error, with everything before that batch applied and logged and
    /// nothing of it or after it (memory and log agree). When the load
    /// cannot be made durable at the end: that error. [`Error::ReadOnly`]
    /// on a read-only handle.
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let db = hashkv::Db::open(dir.path())?;
    /// let profiles = (0..10_000u32).map(|i| {
    ///     let key = format!("user:{i:012}");
    ///     (key, [("name", format!("n{i}")), ("visits", i.to_string())])
    /// });
    /// let t = db.load(profiles)?;
    /// assert_eq!((t.items, t.fields), (10_000, 20_000));
    /// drop(db);
    /// let db = hashkv::Db::open(dir.path())?;
    /// assert_eq!(db.hget("user:000000000042", "visits")?, Some(b"42".to_vec()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load<I, K, P, F, V>(&self, items: I) -> Result<Transfer>
    where
        I: IntoIterator<Item = (K, P)>,
        K: AsRef<[u8]>,
        P: IntoIterator<Item = (F, V)>,
        F: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let hold = self.hold_auto_snapshots();
        let mut t = Transfer::default();
        let mut staged = Staged::default();
        let items = items.into_iter();
        // Into an empty database, key tables sized for the keys announced
        // up front grow no more (a hint past `RESERVE_MAX` keys is taken
        // as that many: the tables grow on from there).
        let hint = items.size_hint().0.min(RESERVE_MAX);
        self.keyspace().reserve_keys(hint as u64);
        for (key, pairs) in items {
            t.items += 1;
            staged.key(key.as_ref(), t.items);
            for (f, v) in pairs {
                staged.pair(f.as_ref(), v.as_ref());
                t.fields += 1;
            }
            if staged.full() {
                self.load_staged(&mut staged, &mut t, "key")?;
            }
        }
        self.load_staged(&mut staged, &mut t, "key")?;
        drop(hold);
        self.sync()?;
        Ok(t)
    }

    /// Runs the HSETs of `staged` as one load batch and empties it (also
    /// when the batch could not be logged, and then none of it ran); errors
    /// of single commands go into `t` (named `what` and their number).
    pub(crate) fn load_staged(
        &self,
        staged: &mut Staged,
        t: &mut Transfer,
        what: &str,
    ) -> Result<()> {
        if staged.is_empty() {
            return Ok(());
        }
        let mut pairs: Vec<(&[u8], &[u8])> = Vec::with_capacity(staged.pairs);
        for &(first, n, _) in &staged.cmds {
            pairs.extend((0..n).map(|j| {
                (
                    staged.word_at(first + 1 + 2 * j),
                    staged.word_at(first + 2 + 2 * j),
                )
            }));
        }
        let mut items = Vec::with_capacity(staged.cmds.len());
        let mut index = Vec::with_capacity(staged.cmds.len());
        let mut at = 0;
        for (i, &(first, n, no)) in staged.cmds.iter().enumerate() {
            if n > 0 {
                index.push(i);
                items.push(HSetItem {
                    key: staged.word_at(first),
                    pairs: &pairs[at..at + n],
                });
                at += n;
            } else {
                note(
                    t,
                    what,
                    no,
                    staged.word_at(first),
                    &CommandError::wrong_arity("hset"),
                );
            }
        }
        let now = Now::lazy(&*self.options().clock);
        let logged = self
            .keyspace()
            .load_items(&items, &now, self.options(), |j, r| {
                if let Err(e) = r {
                    let (first, _, no) = staged.cmds[index[j]];
                    note(t, what, no, staged.word_at(first), &e);
                }
            });
        drop(items);
        drop(pairs);
        // Run or refused whole: never run again.
        staged.clear();
        logged.map(|_| ())
    }
}

/// Counts the error of command `no` (on `key`) in `t`.
fn note(t: &mut Transfer, what: &str, no: u64, key: &[u8], e: &CommandError) {
    if t.errors.len() < KEEP_ERRORS {
        t.errors.push(format!(
            "{what} {no} ({}): {e}",
            String::from_utf8_lossy(key)
        ));
    }
}
