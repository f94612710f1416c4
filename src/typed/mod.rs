//! The typed API: Rust values stored as hashes through serde
//! ([`Db::hset_struct`], [`Db::hget_struct`], and the same in a
//! [`Transaction`]), and iterators over keys and fields
//! ([`Db::iter_keys`], [`Db::iter_keys_matching`], [`Db::iter_fields`]).
//!
//! # How values map to fields
//!
//! A struct is one field per struct field (a map, one per entry), named as
//! serde names it (`#[serde(rename)]` applies). Each value is stored as the
//! text a Redis user would store, so the usual commands work on it:
//!
//! | Rust | stored as | read back from |
//! |---|---|---|
//! | `String`, `&str`, `char` | its UTF-8 bytes | valid UTF-8 |
//! | integers (`i8`..`i128`, `u8`..`u128`) | canonical decimal (`-42`): HINCRBY works on it | decimal text |
//! | `f32`, `f64` | the shortest text that parses back exactly (`0.1`, `1.0`, `1e300`): HINCRBYFLOAT works on it; `inf`, `-inf`, `NaN` for the rest (HINCRBYFLOAT refuses those) | any text Rust's `parse` takes (what HINCRBYFLOAT leaves, too: it computes in `long double` and prints 17 decimal places, as Redis does, so a value it rewrote may come back one bit off, and one below 0.1 with fewer digits) |
//! | `bool` | `1` or `0` | `1`, `0`, `true`, `false` |
//! | bytes (`serde_bytes`) | the bytes as they are | any bytes |
//! | unit enum variant | its name | its name |
//! | newtype struct | its inner value | |
//! | `Option::None` | the field is removed by `hset_struct` | a missing field |
//!
//! A nested struct, a sequence, a map, a tuple, a unit or an enum variant
//! with data as a field's value is an error naming the field: there is no
//! encoding of it as one hash field (store it under a key of its own, or
//! `#[serde(flatten)]` a struct's fields into the hash). Fields of the hash
//! that the value does not name are left alone by `hset_struct` and
//! ignored by `hget_struct` (unless the type has
//! `#[serde(deny_unknown_fields)]`).

mod de;
mod iter;
mod ser;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use iter::{FieldIter, KeyIter};

use crate::db::Db;
use crate::error::{Error, Result};
use crate::options::Now;
use crate::transaction::Transaction;

/// `value`'s fields, or the error naming `key` and the field at fault.
fn to_fields<T: Serialize + ?Sized>(key: &[u8], value: &T) -> Result<ser::Fields> {
    let mut fields = ser::Fields {
        bytes: Vec::with_capacity(256),
        spans: Vec::with_capacity(16),
    };
    value
        .serialize(ser::Top { out: &mut fields })
        .map_err(|e| Error::Mapping {
            key: String::from_utf8_lossy(key).into_owned(),
            field: e.field,
            value: None,
            reason: e.message,
        })?;
    Ok(fields)
}

/// A value read from `pairs`, or the error naming `key` (and the field and
/// value at fault).
fn from_pairs<'a, T: DeserializeOwned>(
    key: &[u8],
    pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<T> {
    T::deserialize(de::Top { pairs }).map_err(|e| {
        let (field, value) = e.field.map_or((None, None), |(f, v)| (Some(f), Some(v)));
        Error::Mapping {
            key: String::from_utf8_lossy(key).into_owned(),
            field,
            value,
            reason: e.message,
        }
    })
}

impl Db {
    /// Stores `value` (a struct, or a map) as the hash at `key`: one field
    /// per struct field, values as described in the [module
    /// docs](crate::typed); a field whose value is `None` is removed. The
    /// fields set and removed are one change (one log record). Fields of
    /// the hash that `value` does not name are left as they are.
    ///
    /// # Errors
    /// [`Error::Mapping`] naming the field when a value has no hash field
    /// encoding (nothing is written); a log error.
    ///
    /// # Examples
    /// ```
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct User { name: String, age: u32, admin: bool }
    ///
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// let alice = User { name: "Alice".into(), age: 25, admin: false };
    /// db.hset_struct("user:1", &alice)?;
    /// assert_eq!(db.hget("user:1", "age")?.as_deref(), Some(&b"25"[..]));
    /// db.hincrby("user:1", "age", 1)?;
    /// let back: User = db.hget_struct("user:1")?.unwrap();
    /// assert_eq!(back, User { age: 26, ..alice });
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn hset_struct<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
    ) -> Result<()> {
        let key = key.as_ref();
        let fields = to_fields(key, value)?;
        let sets: Vec<(&[u8], &[u8])> = fields.sets().collect();
        let removals: Vec<&[u8]> = fields.removals().collect();
        match (sets.is_empty(), removals.is_empty()) {
            (true, true) => Ok(()),
            (false, true) => self
                .run(crate::command::Command::HSet {
                    key,
                    pairs: sets,
                    ok_reply: false,
                })
                .map(drop),
            (true, false) => self.hdel(key, &removals).map(drop),
            (false, false) => self.transaction(&[key], |tx| {
                tx.hset(key, &sets)?;
                tx.hdel(key, &removals)?;
                Ok(())
            }),
        }
    }

    /// The hash at `key` read as a `T` (a struct, or a map): `None` when
    /// the key does not exist. Fields `T` does not name are ignored (unless
    /// it denies unknown fields); a missing field reads as `None` for an
    /// `Option` and is an error otherwise.
    ///
    /// # Errors
    /// [`Error::Mapping`] naming the key, and the field and its value when
    /// one does not parse as its type.
    pub fn hget_struct<T: DeserializeOwned>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>> {
        let key = key.as_ref();
        // The pairs copied into one buffer under the lock (the value is
        // built after it is released).
        let now = Now::lazy(&*self.options().clock);
        let flat = self.keyspace().read(key, &now, |h| {
            h.map(|h| {
                let mut bytes = Vec::with_capacity(256);
                let mut spans = Vec::with_capacity(h.len());
                h.for_each(|f, v| {
                    let start = bytes.len();
                    f.push_to(&mut bytes);
                    let mid = bytes.len();
                    v.push_to(&mut bytes);
                    spans.push((start, mid, bytes.len()));
                });
                (bytes, spans)
            })
        });
        let Some((bytes, spans)) = flat else {
            return Ok(None);
        };
        let pairs = spans.iter().map(|&(s, m, e)| (&bytes[s..m], &bytes[m..e]));
        from_pairs(key, pairs).map(Some)
    }
}

impl Transaction<'_> {
    /// [`Db::hset_struct`] inside the transaction.
    ///
    /// # Errors
    /// As [`Db::hset_struct`], or an error naming an undeclared key.
    pub fn hset_struct<T: Serialize + ?Sized>(
        &mut self,
        key: impl AsRef<[u8]>,
        value: &T,
    ) -> Result<()> {
        let key = key.as_ref();
        let fields = to_fields(key, value)?;
        let sets: Vec<(&[u8], &[u8])> = fields.sets().collect();
        let removals: Vec<&[u8]> = fields.removals().collect();
        if !sets.is_empty() {
            self.hset(key, &sets)?;
        }
        if !removals.is_empty() {
            self.hdel(key, &removals)?;
        }
        Ok(())
    }

    /// [`Db::hget_struct`] inside the transaction (reading its own writes).
    ///
    /// # Errors
    /// As [`Db::hget_struct`], or an error naming an undeclared key.
    pub fn hget_struct<T: DeserializeOwned>(&mut self, key: impl AsRef<[u8]>) -> Result<Option<T>> {
        let key = key.as_ref();
        let pairs = self.hgetall(key)?;
        if pairs.is_empty() {
            return Ok(None);
        }
        let pairs = pairs.iter().map(|(f, v)| (f.as_slice(), v.as_slice()));
        from_pairs(key, pairs).map(Some)
    }
}

#[cfg(test)]
mod tests;
