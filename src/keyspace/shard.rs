//! One shard of the keyspace ([`Shard`]): its tables (keys and their
//! payloads, dicts, shared field lists, key and field expiries, see the
//! module doc of [`super`]), reading a key's hash ([`Shard::lookup`],
//! [`Lookup`]), storing, taking and deleting whole hashes, key TTLs, and
//! the per-shard answers (memory usage, expired keys and fields) the
//! keyspace builds on. Editing a hash in place is `edit`'s; the locks
//! around shards are the keyspace's.

use std::collections::HashMap;
use std::sync::Arc;

use super::expiry::due_in;
use super::{
    Capture, ENC_MASK, FLAG_HFE, FLAG_TTL, TAG_COMPACT, TAG_COMPACT_EX, TAG_DICT, TAG_SHAPED,
};
use crate::error::CommandError;
use crate::hash::dict::Dict;
use crate::hash::shape::{self, Shapes};
use crate::hash::table::{hash_name, ArenaTable};
use crate::hash::{compact_ex, is_expired, FieldTtls, HashRef, OwnedHash, NEVER};
use crate::options::Now;

/// One shard of the keyspace.
#[derive(Default)]
pub(crate) struct Shard {
    pub(super) keys: ArenaTable,
    pub(super) dicts: Vec<Option<Dict>>,
    pub(super) free_dicts: Vec<u32>,
    pub(super) expires: ArenaTable,
    pub(super) sweep_cursor: u64,
    /// Field TTLs of the dicts that have any, by dict index.
    pub(super) dict_ttls: HashMap<u32, FieldTtls>,
    /// Key -> earliest field expiry, for hashes with field TTLs.
    pub(super) hfe: ArenaTable,
    pub(super) hfe_cursor: u64,
    /// The [`FLAG_SNAP`](super::FLAG_SNAP) value of a captured (or post-switch) key.
    pub(super) snap_bit: u8,
    /// The running snapshot, while this shard is not fully captured.
    pub(super) capture: Option<Arc<Capture>>,
    /// Field lists shared by this shard's compact hashes.
    pub(super) shapes: Shapes,
    /// Scratch for the values of a hash being stored with a shape.
    pub(super) values: Vec<u8>,
    /// Scratch for the field list of a shaped hash that gains or loses a
    /// field (lent to the edit, [`super::edit::Work::Split`]).
    pub(super) fields: Vec<u8>,
}

/// What a lookup found.
pub(crate) enum Lookup<'a> {
    Live(HashRef<'a>),
    Expired,
    Missing,
}

impl Shard {
    /// A shard with nothing in it that continues this one's snapshot state.
    pub(super) fn emptied(&self) -> Shard {
        let mut s = Shard {
            snap_bit: self.snap_bit,
            capture: self.capture.clone(),
            ..Shard::default()
        };
        s.shapes.set_enabled(self.shapes.enabled());
        s
    }

    pub(super) fn raw(&self, key: &[u8]) -> Option<(u8, &[u8])> {
        self.raw_hashed(key, hash_name(key))
    }

    #[inline]
    pub(super) fn raw_hashed(&self, key: &[u8], hash: u64) -> Option<(u8, &[u8])> {
        let p = self.keys.get_hashed(hash, key)?;
        let (&tag, data) = p.split_first()?;
        Some((tag, data))
    }

    pub(super) fn view<'a>(&'a self, tag: u8, data: &'a [u8], now: i64) -> Option<HashRef<'a>> {
        view_in(&self.dicts, &self.dict_ttls, &self.shapes, tag, data, now)
    }

    /// Writes the payload of compact hash `pairs` at `key` with tag flags
    /// `flag`: with a shape when its field list is shared, else as it is.
    /// `old` is the shape the key's current payload holds (kept if the
    /// fields are the same, else released).
    pub(super) fn store_pairs(
        &mut self,
        key: &[u8],
        pairs: &[u8],
        flag: u8,
        old: Option<u16>,
    ) -> Result<(), CommandError> {
        let mut values = std::mem::take(&mut self.values);
        values.clear();
        let id = self.shapes.intern(pairs, &mut values, old, key);
        let res = match id {
            Some(id) => self
                .keys
                .set_parts(key, &[&[TAG_SHAPED | flag], &id.to_le_bytes(), &values]),
            None => self.keys.set_parts(key, &[&[TAG_COMPACT | flag], pairs]),
        };
        self.values = values;
        // The payload written holds `id`'s reference, the one it replaced
        // held `old`'s; a failed write replaced nothing.
        if id != old {
            if let Some(d) = if res.is_ok() { old } else { id } {
                self.shapes.release(d);
            }
        }
        res.map(|_| ()).map_err(|_| CommandError::too_large())
    }

    /// As [`Shard::store_pairs`] for a compact hash held as its field
    /// elements `fields` and its value elements `values` apart: with the
    /// shape of that field list when it is shared (no pair buffer built),
    /// else joined and stored plain. `moved` says which shape the fields
    /// were copied from and how they differ from its fields, when they
    /// differ by one field.
    pub(super) fn store_split(
        &mut self,
        key: &[u8],
        fields: &[u8],
        values: &[u8],
        flag: u8,
        old: Option<u16>,
        moved: Option<(u16, shape::Change)>,
    ) -> Result<(), CommandError> {
        let id = self.shapes.intern_fields_of(fields, old, key, moved);
        let res = match id {
            Some(id) => self
                .keys
                .set_parts(key, &[&[TAG_SHAPED | flag], &id.to_le_bytes(), values]),
            None => {
                let mut pairs = std::mem::take(&mut self.values);
                pairs.clear();
                shape::join(fields, values, &mut pairs);
                let res = self.keys.set_parts(key, &[&[TAG_COMPACT | flag], &pairs]);
                self.values = pairs;
                res
            }
        };
        if id != old {
            if let Some(d) = if res.is_ok() { old } else { id } {
                self.shapes.release(d);
            }
        }
        res.map(|_| ()).map_err(|_| CommandError::too_large())
    }

    /// Stores a shaped hash read from a snapshot: `fields` (`len` of them,
    /// checked) are interned as they are, the values copied. `hint` is the
    /// shape of the last shaped hash stored this way in this shard (taken
    /// again without a lookup when its fields are the same), and is set to
    /// this one's.
    pub(crate) fn put_shaped(
        &mut self,
        key: &[u8],
        fields: &[u8],
        len: usize,
        values: &[u8],
        ttl: Option<i64>,
        hint: &mut Option<u16>,
    ) -> Result<bool, CommandError> {
        let id = if !self.shapes.enabled() {
            None
        } else if let Some(h) = hint.filter(|&h| self.shapes.retain_same(h, fields)) {
            Some(h)
        } else {
            let id = self.shapes.intern_fields(fields, len);
            *hint = id;
            id
        };
        let Some(id) = id else {
            let mut pairs = Vec::with_capacity(fields.len() + values.len());
            shape::join(fields, values, &mut pairs);
            return self.put_compact(key, &pairs, ttl);
        };
        self.put_payload(key, ttl, |shard, flag| {
            let r = shard
                .keys
                .set_parts(key, &[&[TAG_SHAPED | flag], &id.to_le_bytes(), values]);
            if r.is_err() {
                shard.shapes.release(id);
            }
            r.map(|_| ()).map_err(|_| CommandError::too_large())
        })
    }

    /// Replaces `key` with the payload `write` stores (given the tag
    /// flags: TTL bit, capture bit), then its TTL; true when a key was
    /// replaced.
    pub(super) fn put_payload(
        &mut self,
        key: &[u8],
        ttl: Option<i64>,
        write: impl FnOnce(&mut Shard, u8) -> Result<(), CommandError>,
    ) -> Result<bool, CommandError> {
        let replaced = self.delete(key);
        let flag = if ttl.is_some() { FLAG_TTL } else { 0 } | self.snap_bit;
        write(self, flag)?;
        if let Some(at) = ttl {
            self.expires
                .set(key, &at.to_le_bytes())
                .map_err(|_| CommandError::too_large())?;
        }
        Ok(replaced)
    }

    /// The earliest field expiry of `key`, if its hash has field TTLs.
    pub(crate) fn min_field_ttl(&self, key: &[u8]) -> Option<i64> {
        let (tag, _) = self.raw(key)?;
        if tag & FLAG_HFE == 0 {
            return None;
        }
        let b: [u8; 8] = self.hfe.get(key)?.try_into().ok()?;
        Some(i64::from_le_bytes(b))
    }

    /// The key's absolute expiry in Unix ms, if it has one.
    pub(crate) fn ttl_of(&self, key: &[u8]) -> Option<i64> {
        let (tag, _) = self.raw(key)?;
        if tag & FLAG_TTL == 0 {
            return None;
        }
        self.expiry_hashed(key, hash_name(key))
    }

    /// The stored expiry of `key` (whose hash is `hash`), flag unchecked.
    pub(super) fn expiry_hashed(&self, key: &[u8], hash: u64) -> Option<i64> {
        let b: [u8; 8] = self.expires.get_hashed(hash, key)?.try_into().ok()?;
        Some(i64::from_le_bytes(b))
    }

    /// Looks `key` up as of `now`, without deleting anything.
    #[inline]
    pub(crate) fn lookup(&self, key: &[u8], now: &Now<'_>) -> Lookup<'_> {
        self.lookup_hashed(key, hash_name(key), now)
    }

    /// Prefetches the key table's home slot for a key hashed to `hash`.
    #[inline]
    pub(crate) fn prefetch_slot(&self, hash: u64) {
        self.keys.prefetch_slot(hash);
    }

    /// Prefetches the key's entry (its compact hash, for a small one).
    #[inline]
    pub(crate) fn prefetch_entry(&self, hash: u64) {
        self.keys.prefetch_entry(hash);
    }

    /// [`Shard::lookup`] with the key's [`hash_name`] already computed.
    #[inline]
    pub(crate) fn lookup_hashed(&self, key: &[u8], hash: u64, now: &Now<'_>) -> Lookup<'_> {
        let Some((tag, data)) = self.raw_hashed(key, hash) else {
            return Lookup::Missing;
        };
        if tag & FLAG_TTL != 0 {
            if let Some(at) = self.expiry_hashed(key, hash) {
                // A key is expired when now > expire time (Redis keyIsExpired).
                if now.get() > at {
                    return Lookup::Expired;
                }
            }
        }
        // Only hashes with field TTLs look at the clock for their fields.
        let t = if tag & FLAG_HFE != 0 {
            now.get()
        } else {
            NEVER
        };
        self.view(tag, data, t)
            .map_or(Lookup::Missing, Lookup::Live)
    }

    /// The hash at `key`, expired or not, every field shown (replay never
    /// looks at the clock).
    pub(crate) fn hash_ref(&self, key: &[u8]) -> Option<HashRef<'_>> {
        let (tag, data) = self.raw(key)?;
        self.view(tag, data, NEVER)
    }

    /// The live hash at `key`.
    pub(crate) fn get(&self, key: &[u8], now: &Now<'_>) -> Option<HashRef<'_>> {
        match self.lookup(key, now) {
            Lookup::Live(h) => Some(h),
            _ => None,
        }
    }

    /// Removes `key` with its hash and TTL; true when it existed. Unlike
    /// [`Shard::take`] it copies nothing out of the table.
    pub(crate) fn delete(&mut self, key: &[u8]) -> bool {
        self.preserve(key);
        let Some((tag, data)) = self.raw(key) else {
            return false;
        };
        if tag & ENC_MASK == TAG_DICT {
            if let Ok(id) = <[u8; 4]>::try_from(data).map(u32::from_le_bytes) {
                // Dropped after the table entry goes (the dict may be big).
                let d = self.dicts.get_mut(id as usize).and_then(Option::take);
                if d.is_some() {
                    self.free_dicts.push(id);
                }
                self.dict_ttls.remove(&id);
                self.keys.remove(key);
                drop(d);
            }
        } else {
            let shape = shape_of(tag, data);
            self.keys.remove(key);
            if let Some(id) = shape {
                self.shapes.release(id);
            }
        }
        if tag & FLAG_TTL != 0 {
            self.expires.remove(key);
        }
        if tag & FLAG_HFE != 0 {
            self.hfe.remove(key);
        }
        true
    }

    /// Removes `key` and returns its hash and TTL.
    pub(crate) fn take(&mut self, key: &[u8]) -> Option<(OwnedHash, Option<i64>)> {
        self.preserve(key);
        let (tag, data) = self.raw(key)?;
        let ttl = if tag & FLAG_TTL != 0 {
            self.ttl_of(key)
        } else {
            None
        };
        let shape = shape_of(tag, data);
        let hash = match tag & ENC_MASK {
            TAG_DICT => {
                let id = u32::from_le_bytes(data.try_into().ok()?);
                let d = self.dicts.get_mut(id as usize)?.take()?;
                self.free_dicts.push(id);
                let ttls = self.dict_ttls.remove(&id).map(Box::new);
                OwnedHash::Dict(Box::new(d), ttls)
            }
            TAG_COMPACT_EX => OwnedHash::CompactEx(data.to_vec()),
            TAG_SHAPED => {
                let h = self.view(tag, data, NEVER)?;
                OwnedHash::Compact(h.pair_buffer()?.into_owned())
            }
            _ => OwnedHash::Compact(data.to_vec()),
        };
        if let Some(id) = shape {
            self.shapes.release(id);
        }
        self.keys.remove(key);
        if ttl.is_some() {
            self.expires.remove(key);
        }
        if tag & FLAG_HFE != 0 {
            self.hfe.remove(key);
        }
        Some((hash, ttl))
    }

    /// Stores `hash` at `key` (replacing anything there) with `ttl`; true
    /// when it replaced a key.
    pub(crate) fn put(
        &mut self,
        key: &[u8],
        hash: OwnedHash,
        ttl: Option<i64>,
    ) -> Result<bool, CommandError> {
        match hash {
            OwnedHash::Compact(buf) => self.put_compact(key, &buf, ttl),
            other => self.put_hash(key, other, ttl),
        }
    }

    /// Stores the compact hash `buf` at `key` (copied straight into the
    /// table: snapshot loading copies from the mapped file once).
    pub(crate) fn put_compact(
        &mut self,
        key: &[u8],
        buf: &[u8],
        ttl: Option<i64>,
    ) -> Result<bool, CommandError> {
        self.put_payload(key, ttl, |shard, flag| {
            shard.store_pairs(key, buf, flag, None)
        })
    }

    pub(super) fn put_hash(
        &mut self,
        key: &[u8],
        hash: OwnedHash,
        ttl: Option<i64>,
    ) -> Result<bool, CommandError> {
        let replaced = self.delete(key);
        let flag = if ttl.is_some() { FLAG_TTL } else { 0 } | self.snap_bit;
        let min = match hash {
            OwnedHash::Compact(buf) => {
                self.store_pairs(key, &buf, flag, None)?;
                None
            }
            OwnedHash::CompactEx(buf) => {
                self.keys
                    .set_parts(key, &[&[TAG_COMPACT_EX | flag], &buf])
                    .map_err(|_| CommandError::too_large())?;
                compact_ex::min_ttl(&buf)
            }
            OwnedHash::Dict(d, ttls) => {
                let id = self.alloc_dict(*d);
                let ttls = ttls.filter(|t| !t.is_empty());
                let min = ttls.as_ref().and_then(|t| t.min());
                if let Some(t) = ttls {
                    self.dict_ttls.insert(id, *t);
                }
                self.keys
                    .set_parts(key, &[&[TAG_DICT | flag], &id.to_le_bytes()])
                    .map_err(|_| CommandError::too_large())?;
                min
            }
        };
        if let Some(at) = ttl {
            self.expires
                .set(key, &at.to_le_bytes())
                .map_err(|_| CommandError::too_large())?;
        }
        match min {
            Some(_) => {
                set_side(&mut self.keys, &mut self.hfe, FLAG_HFE, key, min).map(|_| replaced)
            }
            None => Ok(replaced),
        }
    }

    pub(super) fn alloc_dict(&mut self, d: Dict) -> u32 {
        if let Some(id) = self.free_dicts.pop() {
            self.dict_ttls.remove(&id);
            self.dicts[id as usize] = Some(d);
            id
        } else {
            self.dicts.push(Some(d));
            (self.dicts.len() - 1) as u32
        }
    }

    /// Sets or clears the TTL of an existing key; false if the key is missing.
    pub(crate) fn set_ttl(&mut self, key: &[u8], ttl: Option<i64>) -> Result<bool, CommandError> {
        self.preserve(key);
        set_side(&mut self.keys, &mut self.expires, FLAG_TTL, key, ttl)
    }

    /// Number of keys, expired-but-unreclaimed included (DBSIZE).
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Every key name (no expiry check).
    pub(crate) fn key_names(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.keys.iter().map(|(k, _)| k)
    }

    /// Calls `f` with every live key of the shard as of `now`, its hash
    /// and its expiry, in table order (no lookup per key).
    pub(crate) fn for_each_live(
        &self,
        now: &Now<'_>,
        mut f: impl FnMut(&[u8], HashRef<'_>, Option<i64>),
    ) {
        for (key, payload) in self.keys.iter() {
            let Some((&tag, data)) = payload.split_first() else {
                continue;
            };
            let ttl = if tag & FLAG_TTL != 0 {
                self.expiry_hashed(key, hash_name(key))
            } else {
                None
            };
            // A key is expired when now > its expiry (Redis keyIsExpired).
            if ttl.is_some_and(|at| now.get() > at) {
                continue;
            }
            let t = if tag & FLAG_HFE != 0 {
                now.get()
            } else {
                NEVER
            };
            if let Some(h) = self.view(tag, data, t) {
                f(key, h, ttl);
            }
        }
    }

    /// One SCAN step over this shard's keys.
    pub(crate) fn scan_keys<'a>(&'a self, cursor: u64, f: impl FnMut(&'a [u8], &'a [u8])) -> u64 {
        self.keys.scan(cursor, f)
    }

    /// Bytes held for `key`: its entry, its dict, its TTL entry.
    pub(crate) fn memory_usage(&self, key: &[u8]) -> Option<usize> {
        let (tag, data) = self.raw(key)?;
        let mut n = self.keys.entry_bytes(key.len(), data.len() + 1);
        match self.view(tag, data, NEVER) {
            Some(HashRef::Dict(d, t, _)) => {
                n += d.memory_bytes() + t.map_or(0, FieldTtls::memory_bytes);
            }
            // Its share of the field list it uses.
            Some(HashRef::Shaped(s, _)) => n += s.share(),
            _ => {}
        }
        if tag & FLAG_TTL != 0 {
            n += self.expires.entry_bytes(key.len(), 8);
        }
        if tag & FLAG_HFE != 0 {
            n += self.hfe.entry_bytes(key.len(), 8);
        }
        Some(n)
    }

    /// Finds expired keys while walking the TTL index from where the last
    /// sweep stopped, visiting at most `budget` keys.
    pub(crate) fn expired_keys(&mut self, now: i64, budget: usize) -> Vec<Vec<u8>> {
        due_in(&self.expires, &mut self.sweep_cursor, now, budget)
    }

    /// Number of keys with a TTL.
    pub(crate) fn volatile_len(&self) -> usize {
        self.expires.len()
    }

    /// Number of hashes with field TTLs.
    pub(crate) fn hfe_len(&self) -> usize {
        self.hfe.len()
    }

    /// Keys with fields expired at `now`, walking the field-expiry index
    /// from where the last sweep stopped and visiting at most `budget` keys.
    pub(crate) fn keys_with_expired_fields(&mut self, now: i64, budget: usize) -> Vec<Vec<u8>> {
        due_in(&self.hfe, &mut self.hfe_cursor, now, budget)
    }

    /// Up to `limit` fields of `key` expired at `now` (earliest first for
    /// hashes whose TTLs are kept in order).
    pub(crate) fn expired_fields(&self, key: &[u8], now: i64, limit: usize) -> Vec<Vec<u8>> {
        let Some((tag, data)) = self.raw(key) else {
            return Vec::new();
        };
        if tag & FLAG_HFE == 0 {
            return Vec::new();
        }
        match self.view(tag, data, NEVER) {
            Some(HashRef::CompactEx(b, _)) => compact_ex::triples(b)
                .take_while(|(_, _, t)| is_expired(*t, now))
                .take(limit)
                .map(|(f, _, _)| f.to_bytes())
                .collect(),
            Some(HashRef::Dict(_, Some(t), _)) => t.expired(now, limit),
            _ => Vec::new(),
        }
    }
}

/// The shape id of a key payload `[tag][data]`, if it has one.
#[inline]
pub(super) fn shape_of(tag: u8, data: &[u8]) -> Option<u16> {
    if tag & ENC_MASK != TAG_SHAPED {
        return None;
    }
    Some(u16::from_le_bytes(data.get(..2)?.try_into().ok()?))
}

/// The hash a key payload `[tag][data]` stands for, seen at `now`.
pub(super) fn view_in<'a>(
    dicts: &'a [Option<Dict>],
    dict_ttls: &'a HashMap<u32, FieldTtls>,
    shapes: &'a Shapes,
    tag: u8,
    data: &'a [u8],
    now: i64,
) -> Option<HashRef<'a>> {
    match tag & ENC_MASK {
        TAG_COMPACT => Some(HashRef::Compact(data)),
        TAG_SHAPED => {
            let id = shape_of(tag, data)?;
            Some(HashRef::Shaped(shapes.get(id)?, &data[2..]))
        }
        TAG_COMPACT_EX => Some(HashRef::CompactEx(data, now)),
        TAG_DICT => {
            let id = u32::from_le_bytes(data.try_into().ok()?);
            let d = dicts.get(id as usize)?.as_ref()?;
            let t = if tag & FLAG_HFE != 0 {
                dict_ttls.get(&id)
            } else {
                None
            };
            Some(HashRef::Dict(d, t, now))
        }
        _ => None,
    }
}

/// Sets (`Some`) or clears (`None`) the entry of `key` in a side table of
/// its shard (`expires`, `hfe`) together with its tag bit `flag`; false
/// when the key is missing.
pub(super) fn set_side(
    keys: &mut ArenaTable,
    side: &mut ArenaTable,
    flag: u8,
    key: &[u8],
    value: Option<i64>,
) -> Result<bool, CommandError> {
    let Some(p) = keys.get_mut(key) else {
        return Ok(false);
    };
    match value {
        Some(at) => {
            p[0] |= flag;
            side.set(key, &at.to_le_bytes())
                .map_err(|_| CommandError::too_large())?;
        }
        None => {
            p[0] &= !flag;
            side.remove(key);
        }
    }
    Ok(true)
}
