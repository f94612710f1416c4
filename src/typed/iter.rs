//! Iterators over keys ([`KeyIter`]) and over one hash's fields
//! ([`FieldIter`]). Each walks in batches as SCAN and HSCAN do, taking a
//! lock only while it fetches a batch, so writers are never held up for the
//! whole walk.
//!
//! The guarantee is SCAN's: a key (field) present from the start of the
//! walk to its end is returned; when nothing writes meanwhile each is
//! returned exactly once; one added or removed during the walk may or may
//! not be, and a table that grows or shrinks meanwhile may return one twice.
//! Expired keys and fields are never returned.

use std::collections::VecDeque;

use crate::command::{Command, Reply};
use crate::db::Db;

/// Keys (or fields) fetched per batch.
const BATCH: usize = 256;
const BATCH_TEXT: &[u8] = b"256";

/// The keys of a [`Db`], in batches; made by [`Db::iter_keys`] and
/// [`Db::iter_keys_matching`].
#[derive(Debug)]
pub struct KeyIter<'a> {
    db: &'a Db,
    pattern: Option<Vec<u8>>,
    cursor: u64,
    done: bool,
    batch: VecDeque<Vec<u8>>,
}

/// The (field, value) pairs of one hash, in batches; made by
/// [`Db::iter_fields`].
#[derive(Debug)]
pub struct FieldIter<'a> {
    db: &'a Db,
    key: Vec<u8>,
    cursor: u64,
    done: bool,
    batch: VecDeque<(Vec<u8>, Vec<u8>)>,
}

/// A SCAN-shaped reply: the next cursor and the items.
fn page(reply: Reply) -> Option<(u64, Vec<Reply>)> {
    let Reply::Array(mut parts) = reply else {
        return None;
    };
    let items = match parts.pop()? {
        Reply::Array(items) => items,
        _ => return None,
    };
    let cursor = std::str::from_utf8(parts.pop()?.as_bytes()?)
        .ok()?
        .parse()
        .ok()?;
    Some((cursor, items))
}

impl Iterator for KeyIter<'_> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(k) = self.batch.pop_front() {
                return Some(k);
            }
            if self.done {
                return None;
            }
            let cmd = Command::Scan {
                cursor: self.cursor,
                pattern: self.pattern.as_deref(),
                count: BATCH,
                type_hash: None,
            };
            // SCAN outside a transaction cannot fail; a reply of another
            // shape ends the walk rather than looping.
            let Some((cursor, items)) = self.db.run(cmd).ok().and_then(page) else {
                self.done = true;
                return None;
            };
            self.batch.extend(items.into_iter().filter_map(|r| match r {
                Reply::Bulk(k) => Some(k),
                _ => None,
            }));
            self.cursor = cursor;
            self.done = cursor == 0;
        }
    }
}

impl Iterator for FieldIter<'_> {
    type Item = (Vec<u8>, Vec<u8>);

    fn next(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        loop {
            if let Some(p) = self.batch.pop_front() {
                return Some(p);
            }
            if self.done {
                return None;
            }
            let cmd = Command::HScan {
                key: &self.key,
                cursor: self.cursor,
                options: vec![b"COUNT", BATCH_TEXT],
            };
            let Some((cursor, items)) = self.db.run(cmd).ok().and_then(page) else {
                self.done = true;
                return None;
            };
            let mut items = items.into_iter();
            while let (Some(Reply::Bulk(f)), Some(Reply::Bulk(v))) = (items.next(), items.next()) {
                self.batch.push_back((f, v));
            }
            self.cursor = cursor;
            self.done = cursor == 0;
        }
    }
}

impl Db {
    /// Every key, walked in batches (see the guarantee in [`KeyIter`]'s
    /// module: each key present throughout is returned; exactly once when
    /// nothing writes meanwhile). No lock is held between batches.
    ///
    /// # Examples
    /// ```
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// for i in 0..1000 {
    ///     db.hset(format!("user:{i}"), &[("n", "1")])?;
    /// }
    /// assert_eq!(db.iter_keys().count(), 1000);
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn iter_keys(&self) -> KeyIter<'_> {
        KeyIter {
            db: self,
            pattern: None,
            cursor: 0,
            done: false,
            batch: VecDeque::new(),
        }
    }

    /// The keys matching the glob-style `pattern` (as KEYS and SCAN MATCH
    /// take it: `*`, `?`, `[a-z]`, `\` escapes), walked as
    /// [`Db::iter_keys`] walks.
    ///
    /// # Examples
    /// ```
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// db.hset("user:1", &[("n", "1")])?;
    /// db.hset("order:1", &[("n", "1")])?;
    /// let users: Vec<Vec<u8>> = db.iter_keys_matching("user:*").collect();
    /// assert_eq!(users, vec![b"user:1".to_vec()]);
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn iter_keys_matching(&self, pattern: impl AsRef<[u8]>) -> KeyIter<'_> {
        KeyIter {
            pattern: Some(pattern.as_ref().to_vec()),
            ..self.iter_keys()
        }
    }

    /// The (field, value) pairs of the hash at `key`, walked in batches as
    /// HSCAN walks (a compact hash comes in one batch). Nothing for a
    /// missing key.
    ///
    /// # Examples
    /// ```
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// db.hset("h", &[("a", "1"), ("b", "2")])?;
    /// let mut pairs: Vec<_> = db.iter_fields("h").collect();
    /// pairs.sort();
    /// assert_eq!(pairs, vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())]);
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn iter_fields(&self, key: impl AsRef<[u8]>) -> FieldIter<'_> {
        FieldIter {
            db: self,
            key: key.as_ref().to_vec(),
            cursor: 0,
            done: false,
            batch: VecDeque::new(),
        }
    }
}
