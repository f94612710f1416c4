//! Hash values and their two encodings.
//!
//! - [`compact`]: one contiguous buffer of field/value elements (OBJECT
//!   ENCODING `listpack`), for small hashes.
//! - [`dict::Dict`]: the dict encoding (OBJECT ENCODING `hashtable`),
//!   a [`table::ArenaTable`] (a seeded open-addressing table over packed
//!   arena pages with incremental rehashing) whose hex values are packed.
//! - [`shape`]: compact hashes that share their field list.
//!
//! A hash converts from compact to dict when it passes
//! `hash_max_listpack_entries` fields or a field or value longer than
//! `hash_max_listpack_value` bytes is written, and never back at run time.
//! [`HashRef`] is the read view every command uses, whichever the encoding.
//!
//! - [`compact_ex`]: the compact buffer with field TTLs (OBJECT ENCODING
//!   `listpackex`), field/value/TTL triples, which a compact hash switches
//!   to on its first field-TTL command.
//! - [`FieldTtls`]: the field TTLs of a dict, kept beside it (a dict without
//!   field TTLs carries nothing extra).
//!
//! A [`HashRef`] is made for a point in time and hides fields expired at it;
//! an [`OwnedHash`] is a hash held outside the keyspace (RENAME, COPY,
//! loading), and [`MAX_TTL`] the largest field expiry.

pub(crate) mod compact;
pub(crate) mod compact_ex;
pub(crate) mod dict;
pub(crate) mod shape;
pub(crate) mod table;

use std::collections::{BTreeSet, HashMap};

use compact::{Elem, Probe};
use dict::Dict;

/// A hash owned outside a shard, in one of its encodings: moved between
/// keys by RENAME, built by COPY, loaded from a snapshot or an RDB file.
pub(crate) enum OwnedHash {
    Compact(Vec<u8>),
    /// Field/value/TTL triples.
    CompactEx(Vec<u8>),
    /// A dict and its field TTLs, if any.
    Dict(Box<Dict>, Option<Box<FieldTtls>>),
}

/// A time at which nothing has expired: views made with it show every
/// field (replay, snapshots, RENAME/COPY work on the raw contents).
pub(crate) const NEVER: i64 = i64::MIN;

/// Largest field expiry (Unix ms) Redis accepts: 2^48 - 1.
pub(crate) const MAX_TTL: i64 = (1 << 48) - 1;

/// Whether a field with TTL element `ttl` (0 = none) is expired at `now`
/// (Redis: `expire < now`).
#[inline]
pub(crate) fn is_expired(ttl: i64, now: i64) -> bool {
    ttl != compact_ex::NO_TTL && ttl < now
}

/// The field TTLs of a dict-encoded hash (only dicts that have any carry
/// one): field -> absolute expiry (Unix ms), and the same ordered by time
/// so the earliest expiry and the expired fields are found without a scan.
#[derive(Debug, Default, Clone)]
pub(crate) struct FieldTtls {
    by_field: HashMap<Box<[u8]>, i64>,
    by_time: BTreeSet<(i64, Box<[u8]>)>,
}

impl FieldTtls {
    /// The TTL of `field`, if it has one.
    pub(crate) fn get(&self, field: &[u8]) -> Option<i64> {
        self.by_field.get(field).copied()
    }

    /// Sets the TTL of `field` to `at` (a positive Unix ms time).
    pub(crate) fn set(&mut self, field: &[u8], at: i64) {
        if let Some(old) = self.by_field.insert(field.into(), at) {
            self.by_time.remove(&(old, Box::from(field)));
        }
        self.by_time.insert((at, field.into()));
    }

    /// Removes the TTL of `field`; true when it had one.
    pub(crate) fn remove(&mut self, field: &[u8]) -> bool {
        match self.by_field.remove(field) {
            Some(old) => {
                self.by_time.remove(&(old, Box::from(field)));
                true
            }
            None => false,
        }
    }

    /// The earliest expiry.
    pub(crate) fn min(&self) -> Option<i64> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Whether no field has a TTL.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_field.is_empty()
    }

    /// Up to `limit` fields expired at `now`, earliest first.
    pub(crate) fn expired(&self, now: i64, limit: usize) -> Vec<Vec<u8>> {
        self.by_time
            .iter()
            .take_while(|(t, _)| *t < now)
            .take(limit)
            .map(|(_, f)| f.to_vec())
            .collect()
    }

    /// Every (field, expiry), in expiry order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], i64)> + '_ {
        self.by_time.iter().map(|(t, f)| (&**f, *t))
    }

    /// Bytes held (an estimate: two copies of each name plus map and tree
    /// overhead).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.by_field
            .keys()
            .map(|f| 2 * f.len() + 80)
            .sum::<usize>()
    }
}

/// A read view of one hash, as of a time: fields expired at that time are
/// invisible to [`HashRef::get`], [`HashRef::for_each`] and the rest, and
/// counted only by [`HashRef::len`] (as Redis's HLEN does).
#[derive(Clone, Copy)]
pub(crate) enum HashRef<'a> {
    /// Compact buffer (elements only).
    Compact(&'a [u8]),
    /// Compact hash sharing its field list: the shape and the values.
    Shaped(&'a shape::Shape, &'a [u8]),
    /// Compact buffer of field/value/TTL triples, and the view's time.
    CompactEx(&'a [u8], i64),
    /// Dict encoding, with its field TTLs (if any) and the view's time.
    Dict(&'a Dict, Option<&'a FieldTtls>, i64),
}

/// What a field lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldTtl {
    /// No such field (or expired at the view's time).
    Missing,
    /// The field has no TTL.
    Persistent,
    /// The field expires at this Unix ms time.
    At(i64),
}

impl<'a> HashRef<'a> {
    /// Number of fields, expired-but-unreclaimed included (HLEN).
    pub(crate) fn len(&self) -> usize {
        match self {
            HashRef::Compact(b) => compact::len(b),
            HashRef::Shaped(s, _) => s.len(),
            HashRef::CompactEx(b, _) => compact_ex::len(b),
            HashRef::Dict(d, ..) => d.len(),
        }
    }

    /// The same hash seen at `now`.
    pub(crate) fn at(self, now: i64) -> HashRef<'a> {
        match self {
            HashRef::CompactEx(b, _) => HashRef::CompactEx(b, now),
            HashRef::Dict(d, t, _) => HashRef::Dict(d, t, now),
            c => c,
        }
    }

    /// The same hash seen with nothing expired.
    pub(crate) fn raw(self) -> HashRef<'a> {
        self.at(NEVER)
    }

    /// The view's time (NEVER for a view that hides nothing).
    pub(crate) fn now(&self) -> i64 {
        match *self {
            HashRef::Compact(_) | HashRef::Shaped(..) => NEVER,
            HashRef::CompactEx(_, now) | HashRef::Dict(_, _, now) => now,
        }
    }

    /// Whether any field has a TTL.
    pub(crate) fn has_field_ttls(&self) -> bool {
        match *self {
            HashRef::Compact(_) | HashRef::Shaped(..) => false,
            HashRef::CompactEx(b, _) => compact_ex::min_ttl(b).is_some(),
            HashRef::Dict(_, t, _) => t.is_some_and(|t| !t.is_empty()),
        }
    }

    /// The earliest field expiry.
    pub(crate) fn min_field_ttl(&self) -> Option<i64> {
        match *self {
            HashRef::Compact(_) | HashRef::Shaped(..) => None,
            HashRef::CompactEx(b, _) => compact_ex::min_ttl(b),
            HashRef::Dict(_, t, _) => t.and_then(FieldTtls::min),
        }
    }

    /// The value of a live `field`.
    #[inline]
    pub(crate) fn get(&self, field: &[u8]) -> Option<Elem<'a>> {
        match *self {
            HashRef::Compact(b) => compact::find(b, &Probe::new(field)).map(|f| f.value),
            HashRef::Shaped(s, v) => shape::find(s, v, &Probe::new(field)).map(|f| f.value),
            HashRef::CompactEx(b, now) => compact_ex::find(b, &Probe::new(field))
                .filter(|f| !is_expired(f.ttl, now))
                .map(|f| f.value),
            HashRef::Dict(d, t, now) => {
                let v = d.get(field)?;
                if let Some(t) = t {
                    if t.get(field).is_some_and(|at| is_expired(at, now)) {
                        return None;
                    }
                }
                Some(v)
            }
        }
    }

    /// [`HashRef::get`] with `field` already encoded as `probe` (a batch
    /// reading one field of many hashes encodes it once).
    pub(crate) fn get_probed(&self, field: &[u8], probe: &Probe<'_>) -> Option<Elem<'a>> {
        match *self {
            HashRef::Compact(b) => compact::find(b, probe).map(|f| f.value),
            HashRef::Shaped(s, v) => shape::find(s, v, probe).map(|f| f.value),
            HashRef::CompactEx(b, now) => compact_ex::find(b, probe)
                .filter(|f| !is_expired(f.ttl, now))
                .map(|f| f.value),
            HashRef::Dict(..) => self.get(field),
        }
    }

    /// The TTL state of `field` at the view's time.
    pub(crate) fn field_ttl(&self, field: &[u8]) -> FieldTtl {
        let ttl = match *self {
            HashRef::Compact(b) => match compact::find(b, &Probe::new(field)) {
                Some(_) => compact_ex::NO_TTL,
                None => return FieldTtl::Missing,
            },
            HashRef::Shaped(s, v) => match shape::find(s, v, &Probe::new(field)) {
                Some(_) => compact_ex::NO_TTL,
                None => return FieldTtl::Missing,
            },
            HashRef::CompactEx(b, _) => match compact_ex::find(b, &Probe::new(field)) {
                Some(f) => f.ttl,
                None => return FieldTtl::Missing,
            },
            HashRef::Dict(d, t, _) => match d.get(field) {
                Some(_) => t.and_then(|t| t.get(field)).unwrap_or(compact_ex::NO_TTL),
                None => return FieldTtl::Missing,
            },
        };
        if is_expired(ttl, self.now()) {
            FieldTtl::Missing
        } else if ttl == compact_ex::NO_TTL {
            FieldTtl::Persistent
        } else {
            FieldTtl::At(ttl)
        }
    }

    /// Whether `field` exists but is expired at the view's time.
    pub(crate) fn is_field_expired(&self, field: &[u8]) -> bool {
        let now = self.now();
        now != NEVER && matches!(self.raw().field_ttl(field), FieldTtl::At(t) if is_expired(t, now))
    }

    /// Calls `f` for each live (field, value) in iteration order (insertion
    /// order for compact hashes, expiry then insertion order for compact
    /// hashes with TTLs, table order for dicts).
    pub(crate) fn for_each(&self, mut f: impl FnMut(Elem<'a>, Elem<'a>)) {
        match *self {
            HashRef::Compact(b) => compact::pairs(b).for_each(|(k, v)| f(k, v)),
            HashRef::Shaped(s, v) => shape::pairs(s, v).for_each(|(k, v)| f(k, v)),
            HashRef::CompactEx(b, now) => compact_ex::triples(b)
                .filter(|(_, _, t)| !is_expired(*t, now))
                .for_each(|(k, v, _)| f(k, v)),
            HashRef::Dict(d, None, _) => d.iter().for_each(|(k, v)| f(Elem::Str(k), v)),
            HashRef::Dict(d, Some(t), now) => d
                .iter()
                .filter(|(k, _)| !t.get(k).is_some_and(|at| is_expired(at, now)))
                .for_each(|(k, v)| f(Elem::Str(k), v)),
        }
    }

    /// Calls `f` for each (field, value, TTL element) including expired
    /// fields (0 = no TTL).
    pub(crate) fn for_each_with_ttl(&self, mut f: impl FnMut(Elem<'a>, Elem<'a>, i64)) {
        match *self {
            HashRef::Compact(b) => compact::pairs(b).for_each(|(k, v)| f(k, v, 0)),
            HashRef::Shaped(s, v) => shape::pairs(s, v).for_each(|(k, v)| f(k, v, 0)),
            HashRef::CompactEx(b, _) => compact_ex::triples(b).for_each(|(k, v, t)| f(k, v, t)),
            HashRef::Dict(d, t, _) => d.iter().for_each(|(k, v)| {
                let ttl = t.and_then(|t| t.get(k)).unwrap_or(0);
                f(Elem::Str(k), v, ttl)
            }),
        }
    }

    /// All live pairs, owned.
    pub(crate) fn to_pairs(self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::with_capacity(self.len());
        self.for_each(|k, v| out.push((k.to_bytes(), v.to_bytes())));
        out
    }

    /// The pair buffer of a compact hash without field TTLs: its own, or
    /// a shaped hash's joined into a new one. None for the other layouts.
    pub(crate) fn pair_buffer(&self) -> Option<std::borrow::Cow<'a, [u8]>> {
        match *self {
            HashRef::Compact(b) => Some(std::borrow::Cow::Borrowed(b)),
            HashRef::Shaped(s, v) => {
                let mut out = Vec::new();
                shape::join(s.fields(), v, &mut out);
                Some(std::borrow::Cow::Owned(out))
            }
            _ => None,
        }
    }

    /// OBJECT ENCODING name.
    pub(crate) fn encoding(&self) -> &'static str {
        match self {
            // A shape is a layout of the compact encoding, not an encoding.
            HashRef::Compact(_) | HashRef::Shaped(..) => "listpack",
            HashRef::CompactEx(..) => "listpackex",
            HashRef::Dict(..) => "hashtable",
        }
    }
}

/// Builds a dict holding `pairs`.
/// (`pack`: whether hex values are stored packed, [`crate::Options::pack_hex`]).
pub(crate) fn dict_from_compact(buf: &[u8], pack: bool) -> Result<Dict, table::Full> {
    let n = compact::len(buf);
    let mut d = Dict::with_capacity(n);
    let mut field = Vec::new();
    let mut value = Vec::new();
    for (k, v) in compact::pairs(buf) {
        field.clear();
        value.clear();
        k.push_to(&mut field);
        v.push_to(&mut value);
        d.set(&field, &value, pack)?;
    }
    Ok(d)
}

/// Builds a dict and its field TTLs from a buffer of triples.
pub(crate) fn dict_from_triples(buf: &[u8], pack: bool) -> Result<(Dict, FieldTtls), table::Full> {
    let n = compact_ex::len(buf);
    let mut d = Dict::with_capacity(n);
    let mut ttls = FieldTtls::default();
    let mut field = Vec::new();
    let mut value = Vec::new();
    for (k, v, t) in compact_ex::triples(buf) {
        field.clear();
        value.clear();
        k.push_to(&mut field);
        v.push_to(&mut value);
        d.set(&field, &value, pack)?;
        if t != compact_ex::NO_TTL {
            ttls.set(&field, t);
        }
    }
    Ok((d, ttls))
}
