//! Shapes: one copy of a field-name list shared by the compact hashes that
//! have exactly those fields in that order (profiles, sessions, carts).
//!
//! A shaped hash is stored as a shape id and its value elements only
//! (`[id: u16 LE][value, value, ...]`, each element encoded as in
//! [`super::compact`]); its fields are the shape's, in the shape's order,
//! so HGETALL, HKEYS and HSCAN see exactly what the plain layout shows.
//! A shape is an internal layout of the compact encoding (`OBJECT
//! ENCODING` says `listpack`), used only for hashes without field TTLs.
//!
//! [`Shapes`] is one shard's table of shapes: reference-counted, found by
//! a hash of their field elements. A field list becomes a shape when a
//! second key of the shard stores it (a small table of fingerprints
//! remembers the first key), so hashes whose field lists are their own (an
//! object store's buckets of ids, one hash rewritten over and over) never
//! pay for a shape. Only lists of at most [`MAX_FIELDS`] fields and
//! [`MAX_FIELD_BYTES`] encoded bytes are shared. A shape whose last hash
//! left stays indexed until [`IDLE_MAX`] such shapes pile up (a hash that
//! goes back and forth between two lists does not make and free a shape
//! at every write), then they are freed together.
//!
//! Writes that add or remove one field of a shaped hash take the shape a
//! remembered move of the same kind led to ([`Shapes::after_removal`],
//! [`Shapes::after_addition`]) and edit only the values; without one they
//! edit the values and a copy of the field list apart (the keyspace's
//! edit), and storing them looks the new list up where it is
//! ([`Shapes::intern_fields_of`], which remembers the move), never
//! building the hash's pair buffer unless it stays plain. Other
//! writes open a shaped hash as its plain pair buffer, and storing a pair
//! buffer finds its shape again ([`Shapes::intern`], which keeps the old
//! shape without a lookup when the fields did not change).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::compact::{decode_at, size_at, DecodeError, Elem, Layout, Probe};
use super::table::hash_name;

/// Most fields a shared list has.
pub(crate) const MAX_FIELDS: usize = 64;
/// Most encoded bytes a shared list's fields take.
pub(crate) const MAX_FIELD_BYTES: usize = 2048;
/// Most shapes a shard holds (ids are 16 bits).
const MAX_SHAPES: usize = u16::MAX as usize;
/// Fingerprints remembered of lists seen once.
const SEEN: usize = 256;
/// Shapes without a hash kept before they are freed.
pub(crate) const IDLE_MAX: usize = 32;
/// Remembered moves from one shape to another by one field.
const MOVES: usize = 64;

/// How a field list differs from the shape it was copied from: one field
/// added at the end, or the field at this byte offset removed (a shape's
/// fields take at most [`MAX_FIELD_BYTES`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Change {
    Added,
    Removed(u16),
}

/// One shared field list.
#[derive(Debug)]
pub(crate) struct Shape {
    /// The field elements back to back.
    fields: Box<[u8]>,
    /// How many.
    len: usize,
    /// Hashes using it.
    refs: u32,
    /// The fingerprint it is indexed under.
    fp: u64,
}

impl Shape {
    /// The field elements back to back.
    pub(crate) fn fields(&self) -> &[u8] {
        &self.fields
    }

    /// Number of fields.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes this shape holds (names, header, index slot).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.fields.len() + std::mem::size_of::<Option<Shape>>() + 16
    }

    /// The share of [`Shape::memory_bytes`] one of its hashes is charged
    /// (MEMORY USAGE).
    pub(crate) fn share(&self) -> usize {
        self.memory_bytes().div_ceil(self.refs.max(1) as usize)
    }
}

/// One shard's shapes; see the module doc. Sharing is on by default.
#[derive(Debug)]
pub(crate) struct Shapes {
    list: Vec<Option<Shape>>,
    free: Vec<u16>,
    by_fp: HashMap<u64, u16, BuildHasherDefault<FpHasher>>,
    /// (fingerprint, key hash) of lists stored by one key so far, by the
    /// fingerprint's low bits.
    seen: Vec<(u64, u64)>,
    /// Shapes whose references dropped to 0 (some may be in use again).
    idle: Vec<u16>,
    /// Shapes with at least one reference.
    live: usize,
    /// Off: nothing is shared ([`crate::Options::shapes`]).
    enabled: bool,
    /// Scratch: the field elements of the list being interned.
    scratch: Vec<u8>,
    /// (change, from, to): the shape a hash of shape `from` went to by
    /// one field added or removed, by a hash of the two, so the next hash
    /// that changes shape the same way takes `to` without copying or
    /// comparing its fields, a fingerprint or an index lookup. Only shapes
    /// not freed are named (ids are reused once shapes are freed).
    moves: Vec<(u64, u16, u16)>,
}

impl Default for Shapes {
    fn default() -> Self {
        Shapes {
            list: Vec::new(),
            free: Vec::new(),
            by_fp: HashMap::default(),
            seen: Vec::new(),
            idle: Vec::new(),
            live: 0,
            enabled: true,
            scratch: Vec::new(),
            moves: Vec::new(),
        }
    }
}

impl Shapes {
    /// Turns sharing on or off for later stores.
    pub(crate) fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
    }

    /// Whether sharing is on.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The shape with `id`.
    #[inline]
    pub(crate) fn get(&self, id: u16) -> Option<&Shape> {
        self.list.get(usize::from(id))?.as_ref()
    }

    /// Number of shapes in use.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The shape for pair buffer `pairs`, if its field list is (or now
    /// becomes) shared, with its value elements appended to `values`;
    /// None (and `values` untouched) to store it plain. `old` is the shape
    /// the key's current payload holds: returned as it is when the fields
    /// are the same. A reference to any other shape returned is taken; the
    /// caller releases `old` once the new payload is written. `key` is
    /// the hash's key (a list is shared once two keys store it).
    pub(crate) fn intern(
        &mut self,
        pairs: &[u8],
        values: &mut Vec<u8>,
        old: Option<u16>,
        key: &[u8],
    ) -> Option<u16> {
        let id = if self.enabled {
            self.find_or_make(pairs, 2, old, key)
        } else {
            None
        };
        if let Some(id) = id {
            split_values(pairs, values);
            if old != Some(id) {
                self.retain(id);
            }
        }
        id
    }

    /// As [`Shapes::intern`] for a hash held as its field list `fields`
    /// (elements back to back) apart from its values: the shape to store
    /// it with, or None to store it plain (the caller joins fields and
    /// values). The same shape as [`Shapes::intern`] of the joined pair
    /// buffer, without building it.
    ///
    /// `moved` says which shape `fields` were copied from and how they
    /// differ from its fields, when that is one field: the shape found is
    /// remembered as where that move leads ([`Shapes::after_removal`],
    /// [`Shapes::after_addition`]).
    pub(crate) fn intern_fields_of(
        &mut self,
        fields: &[u8],
        old: Option<u16>,
        key: &[u8],
        moved: Option<(u16, Change)>,
    ) -> Option<u16> {
        if !self.enabled {
            return None;
        }
        let id = self.find_or_make(fields, 1, old, key);
        if let (Some(id), Some((from, change))) = (id, moved) {
            if let Some(tag) = self.move_tag(from, change, fields) {
                if self.moves.is_empty() {
                    self.moves = vec![(0, 0, 0); MOVES];
                }
                self.moves[move_slot(from, tag)] = (tag, from, id);
            }
        }
        if let Some(id) = id.filter(|&id| old != Some(id)) {
            self.retain(id);
        }
        id
    }

    /// The shape of the fields of shape `from` less the one at byte offset
    /// `at`, if a move remembered says which (no reference taken). Certain
    /// without comparing fields: a move names only shapes that are not
    /// freed ([`Shapes::free_idle`] forgets the moves naming those it
    /// frees), a shape's fields never change, and the move was recorded
    /// with the shape found for exactly that list.
    #[inline]
    pub(crate) fn after_removal(&self, from: u16, at: u16) -> Option<u16> {
        if !self.enabled {
            return None;
        }
        let tag = (u64::from(at) << 2) | 1;
        let &(t, f, to) = self.moves.get(move_slot(from, tag))?;
        let to = (t == tag && f == from).then_some(to)?;
        self.get(to)?;
        Some(to)
    }

    /// The shape of the fields of shape `from` followed by the field
    /// element `added`, if a move remembered says which (no reference
    /// taken). The move's shape has `from`'s fields then one more (see
    /// [`Shapes::after_removal`]); the tag is a hash of that one, so it is
    /// compared with `added`.
    #[inline]
    pub(crate) fn after_addition(&self, from: u16, added: &[u8]) -> Option<u16> {
        if !self.enabled || self.moves.is_empty() {
            return None;
        }
        let tag = (mix(0, added, 0, added.len()) << 2) | 2;
        let &(t, f, to) = self.moves.get(move_slot(from, tag))?;
        if t != tag || f != from {
            return None;
        }
        let at = self.get(from)?.fields().len();
        (self.get(to)?.fields().get(at..)? == added).then_some(to)
    }

    /// What identifies a move from shape `from` to field list `fields`
    /// (never 0): the offset of a removed field, or a hash of an added one.
    fn move_tag(&self, from: u16, change: Change, fields: &[u8]) -> Option<u64> {
        Some(match change {
            Change::Removed(at) => (u64::from(at) << 2) | 1,
            Change::Added => {
                let added = fields.get(self.get(from)?.fields().len()..)?;
                (mix(0, added, 0, added.len()) << 2) | 2
            }
        })
    }

    /// The shape whose fields are `fields` (`len` of them), made if there
    /// is none; its reference is taken. None when the shard has as many
    /// shapes as ids.
    pub(crate) fn intern_fields(&mut self, fields: &[u8], len: usize) -> Option<u16> {
        let fp = fingerprint(fields, 1)?;
        let id = match self.lookup(fp, fields) {
            Some(id) => id,
            None => self.make(fp, fields, len)?,
        };
        self.retain(id);
        Some(id)
    }

    fn lookup(&self, fp: u64, fields: &[u8]) -> Option<u16> {
        let &id = self.by_fp.get(&fp)?;
        (self.get(id)?.fields() == fields).then_some(id)
    }

    /// The field list of `list` (a pair buffer when `stride` is 2, field
    /// elements alone when 1): the old shape if they are its fields, the
    /// indexed shape, or a new one when a second key stores them.
    fn find_or_make(
        &mut self,
        list: &[u8],
        stride: usize,
        old: Option<u16>,
        key: &[u8],
    ) -> Option<u16> {
        // Fingerprint and compare the fields where they are; they are
        // copied only to make a shape.
        let fp = fingerprint(list, stride)?;
        let same = |s: &Shape| {
            s.fp == fp
                && if stride == 2 {
                    same_fields(list, s.fields())
                } else {
                    s.fields() == list
                }
        };
        if let Some(o) = old.filter(|&o| self.get(o).is_some_and(same)) {
            return Some(o);
        }
        if let Some(&id) = self.by_fp.get(&fp) {
            // Another list with this fingerprint stays plain.
            return self.get(id).is_some_and(same).then_some(id);
        }
        if self.seen.is_empty() {
            self.seen = vec![(0, 0); SEEN];
        }
        // The key's own hash, cheaply (it only tells keys apart here).
        let kh = mix(!fp, key, 0, key.len());
        let slot = &mut self.seen[fp as usize % SEEN];
        if slot.0 != fp || slot.1 == kh {
            *slot = (fp, kh);
            return None;
        }
        if stride == 1 {
            return self.make(fp, list, count(list));
        }
        let mut fields = std::mem::take(&mut self.scratch);
        let id = split_fields(list, &mut fields).and_then(|len| self.make(fp, &fields, len));
        self.scratch = fields;
        id
    }

    /// A new shape with no reference yet.
    fn make(&mut self, fp: u64, fields: &[u8], len: usize) -> Option<u16> {
        if self.by_fp.contains_key(&fp) {
            // Another list with this fingerprint: stays plain.
            return None;
        }
        let shape = Shape {
            fields: fields.into(),
            len,
            refs: 0,
            fp,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.list[usize::from(id)] = Some(shape);
                id
            }
            None if self.list.len() < MAX_SHAPES => {
                self.list.push(Some(shape));
                (self.list.len() - 1) as u16
            }
            None => return None,
        };
        self.by_fp.insert(fp, id);
        Some(id)
    }

    /// Takes one more reference to shape `id`.
    #[inline]
    pub(crate) fn retain(&mut self, id: u16) {
        if let Some(s) = self.list.get_mut(usize::from(id)).and_then(Option::as_mut) {
            s.refs += 1;
            if s.refs == 1 {
                self.live += 1;
            }
        }
    }

    /// Takes a reference to shape `id` when its fields are `fields`, and
    /// says whether it did: a snapshot's shaped hashes name the same list
    /// one after another, and comparing it with the last one's shape
    /// spares a fingerprint and a lookup per hash.
    pub(crate) fn retain_same(&mut self, id: u16, fields: &[u8]) -> bool {
        let same = self.get(id).is_some_and(|s| s.fields() == fields);
        if same {
            self.retain(id);
        }
        same
    }

    /// Drops one reference to shape `id`. A shape left without hashes
    /// waits among the idle ones; past [`IDLE_MAX`] of them, those still
    /// unused are freed.
    #[inline]
    pub(crate) fn release(&mut self, id: u16) {
        let Some(s) = self.list.get_mut(usize::from(id)).and_then(Option::as_mut) else {
            return;
        };
        if s.refs > 1 {
            s.refs -= 1;
        } else if s.refs == 1 {
            s.refs = 0;
            self.went_idle(id);
        }
    }

    /// Shape `id`, its last reference dropped, joins the idle ones.
    #[cold]
    fn went_idle(&mut self, id: u16) {
        self.live -= 1;
        self.idle.push(id);
        if self.idle.len() > IDLE_MAX {
            self.free_idle();
        }
    }

    /// Frees every shape without hashes, and forgets the moves that name
    /// one of them (its id may come back with other fields).
    pub(crate) fn free_idle(&mut self) {
        let mut freed = false;
        for id in std::mem::take(&mut self.idle) {
            let slot = &mut self.list[usize::from(id)];
            if let Some(s) = slot.as_ref().filter(|s| s.refs == 0) {
                self.by_fp.remove(&s.fp);
                *slot = None;
                self.free.push(id);
                freed = true;
            }
        }
        if freed {
            let list = &self.list;
            let gone = |id: u16| list.get(usize::from(id)).is_none_or(Option::is_none);
            for m in &mut self.moves {
                if m.0 != 0 && (gone(m.1) || gone(m.2)) {
                    *m = (0, 0, 0);
                }
            }
        }
    }
}

/// The entry of [`Shapes::moves`] for a move from `from` tagged `tag`.
#[inline]
fn move_slot(from: u16, tag: u64) -> usize {
    ((tag ^ u64::from(from)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % MOVES
}

/// A [`std::hash::Hasher`] for keys that are fingerprints already.
#[derive(Default)]
pub(crate) struct FpHasher(u64);

impl std::hash::Hasher for FpHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The per-process seed of fingerprints, so lists chosen to collide in
/// the index cannot be computed ahead.
fn seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| hash_name(b"hashkv shape fingerprint"))
}

/// The `n` (at most 8) bytes of `buf` at `pos` as a little-endian word,
/// zero above: one load when 8 bytes are there (the rest masked off).
#[inline]
fn word_at(buf: &[u8], pos: usize, n: usize) -> u64 {
    match buf.get(pos..pos + 8) {
        Some(w) => {
            let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            if n == 8 {
                w
            } else {
                w & ((1u64 << (8 * n)) - 1)
            }
        }
        None => buf[pos..pos + n]
            .iter()
            .rev()
            .fold(0u64, |x, &b| (x << 8) | u64::from(b)),
    }
}

/// Mixes the element of `size` bytes at `buf[pos..]` into `h`, 8 bytes at
/// a time (the last word also carries how many bytes it has).
#[inline]
fn mix(mut h: u64, buf: &[u8], pos: usize, size: usize) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut i = 0;
    while i + 8 < size {
        h = (h ^ word_at(buf, pos + i, 8))
            .wrapping_mul(K)
            .rotate_left(29);
        i += 8;
    }
    let rest = size - i;
    (h ^ word_at(buf, pos + i, rest) ^ ((rest as u64) << 59))
        .wrapping_mul(K)
        .rotate_left(29)
}

/// The fingerprint of the field list of `buf`, whose every `stride`-th
/// element from the first is a field (2: a pair buffer, 1: a shape's
/// fields); None when the list is empty or too long to share.
#[inline]
fn fingerprint(buf: &[u8], stride: usize) -> Option<u64> {
    let mut h = seed();
    let (mut pos, mut n, mut bytes) = (0, 0, 0);
    while let Some(f) = quick_size(buf, pos) {
        n += 1;
        bytes += f;
        if n > MAX_FIELDS || bytes > MAX_FIELD_BYTES {
            return None;
        }
        h = mix(h, buf, pos, f);
        pos += f;
        if stride == 2 {
            pos += quick_size(buf, pos)?;
        }
    }
    (n > 0).then_some(h ^ (h >> 31))
}

/// [`size_at`] with the two commonest encodings (small integer, string
/// under 64 bytes) decoded inline.
#[inline(always)]
fn quick_size(buf: &[u8], pos: usize) -> Option<usize> {
    let b = *buf.get(pos)?;
    let size = match b {
        0..=0x7F => 1,
        0x80..=0xBF => 1 + usize::from(b & 0x3F),
        _ => return size_at(buf, pos),
    };
    (pos + size <= buf.len()).then_some(size)
}

/// Number of elements in `buf`.
fn count(buf: &[u8]) -> usize {
    let (mut pos, mut n) = (0, 0);
    while let Some(size) = quick_size(buf, pos) {
        pos += size;
        n += 1;
    }
    n
}

/// Whether the fields of pair buffer `pairs` are exactly `fields`.
#[inline]
fn same_fields(pairs: &[u8], fields: &[u8]) -> bool {
    let (mut pos, mut at) = (0, 0);
    while let Some(f) = size_at(pairs, pos) {
        match fields.get(at..at + f) {
            Some(mine) if mine == &pairs[pos..pos + f] => {}
            _ => return false,
        }
        at += f;
        pos += f;
        let Some(v) = size_at(pairs, pos) else {
            return false;
        };
        pos += v;
    }
    at == fields.len()
}

/// Appends the field elements of pair buffer `pairs` to `out` (cleared
/// first); their number, or None when the list is too long to share.
fn split_fields(pairs: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    out.clear();
    let mut pos = 0;
    let mut n = 0;
    while let Some(f) = size_at(pairs, pos) {
        let v = size_at(pairs, pos + f)?;
        n += 1;
        if n > MAX_FIELDS || out.len() + f > MAX_FIELD_BYTES {
            return None;
        }
        out.extend_from_slice(&pairs[pos..pos + f]);
        pos += f + v;
    }
    (n > 0).then_some(n)
}

/// Appends the value elements of pair buffer `pairs` to `out`.
fn split_values(pairs: &[u8], out: &mut Vec<u8>) {
    let mut pos = 0;
    while let Some(f) = size_at(pairs, pos) {
        let Some(v) = size_at(pairs, pos + f) else {
            return;
        };
        out.extend_from_slice(&pairs[pos + f..pos + f + v]);
        pos += f + v;
    }
}

/// Appends the pair buffer of a shaped hash (its shape's `fields` and
/// `values` interleaved) to `out`.
pub(crate) fn join(fields: &[u8], values: &[u8], out: &mut Vec<u8>) {
    out.reserve(fields.len() + values.len());
    let (f, v) = (fields, values);
    let (mut fp, mut vp) = (0, 0);
    while let (Some(fs), Some(vs)) = (size_at(f, fp), size_at(v, vp)) {
        out.extend_from_slice(&f[fp..fp + fs]);
        out.extend_from_slice(&v[vp..vp + vs]);
        fp += fs;
        vp += vs;
    }
}

/// Iterator over a shaped hash's (field, value) pairs.
pub(crate) struct Pairs<'a> {
    fields: &'a [u8],
    values: &'a [u8],
    fp: usize,
    vp: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (Elem<'a>, Elem<'a>);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (f, fp) = decode_at(self.fields, self.fp)?;
        let (v, vp) = decode_at(self.values, self.vp)?;
        self.fp = fp;
        self.vp = vp;
        Some((f, v))
    }
}

/// The pairs of a shaped hash, in the shape's order.
pub(crate) fn pairs<'a>(shape: &'a Shape, values: &'a [u8]) -> Pairs<'a> {
    Pairs {
        fields: shape.fields(),
        values,
        fp: 0,
        vp: 0,
    }
}

/// Where a field's value sits in a shaped hash's values.
pub(crate) struct Found<'a> {
    pub(crate) value: Elem<'a>,
    /// Start and end of the value element in the values.
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// Start and end of the field element in the fields.
    pub(crate) field_start: usize,
    pub(crate) field_end: usize,
}

/// Finds `field` among the shape's fields, then its value.
#[inline]
pub(crate) fn find<'a>(shape: &Shape, values: &'a [u8], field: &Probe<'_>) -> Option<Found<'a>> {
    find_in(shape.fields(), values, field)
}

/// Finds `field` among the field elements `f`, then its value among the
/// value elements `values` (a hash held as its two lists).
#[inline]
pub(crate) fn find_in<'a>(f: &[u8], values: &'a [u8], field: &Probe<'_>) -> Option<Found<'a>> {
    let mut pos = 0;
    let mut index = 0;
    let field_end = loop {
        let size = size_at(f, pos)?;
        if field.matches_at(f, pos, size) {
            break pos + size;
        }
        pos += size;
        index += 1;
    };
    let mut vp = 0;
    for _ in 0..index {
        vp += size_at(values, vp)?;
    }
    let (value, end) = decode_at(values, vp)?;
    Some(Found {
        value,
        start: vp,
        end,
        field_start: pos,
        field_end,
    })
}

/// Sets the existing `field` of a shaped hash to `value` in `values`, if
/// the new value encodes to the old one's size (as
/// [`super::compact::overwrite`]); false, and nothing written, otherwise.
pub(crate) fn overwrite(
    shape: &Shape,
    values: &mut [u8],
    field: &[u8],
    value: &[u8],
    pack: bool,
) -> bool {
    let Some(found) = find(shape, values, &Probe::new(field)) else {
        return false;
    };
    super::compact::ValueEnc::new(value, pack).overwrite(values, found.start, found.end)
}

/// Checks the value elements of a shaped hash read from outside: `len` of
/// them, each decoding and canonical. Returns the longest value as a
/// client sees it.
pub(crate) fn check_values(values: &[u8], len: usize) -> Result<usize, DecodeError> {
    let (n, longest) = super::compact::check_elements(values, Layout::Values)?;
    if n != len {
        return Err(DecodeError::OddCount { count: n });
    }
    Ok(longest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::compact::{check_elements, push_elem, push_value};

    fn check_fields(fields: &[u8]) -> Result<usize, DecodeError> {
        check_elements(fields, Layout::Fields).map(|(n, _)| n)
    }

    fn pairs_buf(items: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (f, v) in items {
            push_elem(&mut b, f.as_bytes());
            push_value(&mut b, v.as_bytes(), true);
        }
        b
    }

    #[test]
    fn a_list_is_shared_from_its_second_hash_and_freed_with_its_last() {
        let mut s = Shapes::default();
        let a = pairs_buf(&[("name", "Alice"), ("age", "25")]);
        let b = pairs_buf(&[("name", "Bob"), ("age", "31")]);
        let mut va = Vec::new();
        assert_eq!(s.intern(&a, &mut va, None, b"k1"), None, "first sighting");
        assert_eq!(
            s.intern(&b, &mut va, None, b"k1"),
            None,
            "the same key again"
        );
        assert!(va.is_empty());
        let id = s
            .intern(&b, &mut va, None, b"k2")
            .expect("a second key shares");
        let shape = s.get(id).unwrap();
        assert_eq!(shape.len(), 2);
        let mut back = Vec::new();
        join(shape.fields(), &va, &mut back);
        assert_eq!(back, b);
        let got: Vec<_> = pairs(shape, &va)
            .map(|(f, v)| (f.to_bytes(), v.to_bytes()))
            .collect();
        assert_eq!(
            got,
            [
                (b"name".to_vec(), b"Bob".to_vec()),
                (b"age".to_vec(), b"31".to_vec())
            ]
        );
        let found = find(shape, &va, &Probe::new(b"age")).unwrap();
        assert_eq!(found.value, Elem::Int(31));
        assert!(find(shape, &va, &Probe::new(b"nope")).is_none());
        // A third hash takes another reference; the same fields again keep
        // the shape without a new one.
        let mut vc = Vec::new();
        assert_eq!(s.intern(&a, &mut vc, None, b"k3"), Some(id));
        let mut vc2 = Vec::new();
        assert_eq!(s.intern(&a, &mut vc2, Some(id), b"k3"), Some(id));
        assert_eq!(s.get(id).unwrap().refs, 2);
        assert_eq!(s.len(), 1);
        // Other fields move the hash off the shape (the caller releases).
        let c = pairs_buf(&[("name", "Carol")]);
        let mut vd = Vec::new();
        assert_eq!(s.intern(&c, &mut vd, Some(id), b"k3"), None);
        s.release(id);
        assert_eq!(s.get(id).unwrap().refs, 1);
        s.release(id);
        // Unused, it waits among the idle shapes and is found again.
        assert_eq!(s.len(), 0);
        assert_eq!(s.intern(&a, &mut vd, None, b"k4"), Some(id));
        assert_eq!(s.len(), 1);
        s.release(id);
        s.free_idle();
        assert!(s.get(id).is_none());
        assert!(s.by_fp.is_empty());
    }

    #[test]
    fn a_field_list_apart_gets_the_shape_its_pair_buffer_would() {
        let mut s = Shapes::default();
        let a = pairs_buf(&[("name", "Alice"), ("age", "25")]);
        let ab = pairs_buf(&[("name", "Alice"), ("age", "25"), ("city", "Oslo")]);
        let mut v = Vec::new();
        assert_eq!(s.intern(&a, &mut v, None, b"k1"), None);
        let a_id = s.intern(&a, &mut v, None, b"k2").unwrap();
        let mut fields = Vec::new();
        split_fields(&ab, &mut fields).unwrap();
        let mut city = Vec::new();
        push_elem(&mut city, b"city");
        let mut town = Vec::new();
        push_elem(&mut town, b"town");
        let added = Some((a_id, Change::Added));
        // Seen once, then shared from the second key, as a pair buffer.
        assert_eq!(s.intern_fields_of(&fields, Some(a_id), b"k1", added), None);
        assert_eq!(s.after_addition(a_id, &city), None, "no move yet");
        let ab_id = s
            .intern_fields_of(&fields, Some(a_id), b"k2", added)
            .unwrap();
        assert_eq!(s.get(ab_id).unwrap().fields(), &fields[..]);
        // The move is remembered, for that field only.
        assert_eq!(s.after_addition(a_id, &city), Some(ab_id));
        assert_eq!(s.after_addition(a_id, &town), None);
        assert_eq!(s.after_addition(ab_id, &city), None);
        // The remembered move and the pair buffer agree.
        assert_eq!(
            s.intern_fields_of(&fields, Some(a_id), b"k3", added),
            Some(ab_id)
        );
        assert_eq!(s.intern(&ab, &mut v, None, b"k4"), Some(ab_id));
        assert_eq!(s.get(ab_id).unwrap().refs, 3);
        // Removing "age" from a: its own list, not a's or ab's shape; a
        // move to it once a second key makes it a shape.
        let mut name = Vec::new();
        push_elem(&mut name, b"name");
        let at = u16::try_from(name.len()).unwrap();
        let removed = Some((a_id, Change::Removed(at)));
        assert_eq!(s.intern_fields_of(&name, Some(a_id), b"k1", removed), None);
        assert_eq!(s.after_removal(a_id, at), None);
        let n_id = s
            .intern_fields_of(&name, Some(a_id), b"k2", removed)
            .unwrap();
        assert_eq!(s.get(n_id).unwrap().fields(), &name[..]);
        assert_eq!(s.after_removal(a_id, at), Some(n_id));
        assert_eq!(s.after_removal(a_id, 0), None);
        assert_eq!(s.after_removal(ab_id, at), None);
        // A move whose shape was freed, its id taken by another list, is
        // forgotten.
        for _ in 0..3 {
            s.release(ab_id);
        }
        s.free_idle();
        assert!(s.get(ab_id).is_none());
        assert_eq!(s.after_addition(a_id, &city), None);
        assert_eq!(s.after_removal(a_id, at), Some(n_id), "other moves stay");
        let other = pairs_buf(&[("x", "1"), ("y", "2"), ("z", "3")]);
        assert_eq!(s.intern(&other, &mut v, None, b"k1"), None);
        assert_eq!(s.intern(&other, &mut v, None, b"k2"), Some(ab_id));
        assert_eq!(s.after_addition(a_id, &city), None);
        let again = s
            .intern_fields_of(&fields, Some(a_id), b"k5", added)
            .unwrap();
        assert_ne!(again, ab_id);
        assert_eq!(s.get(again).unwrap().fields(), &fields[..]);
        assert_eq!(s.after_addition(a_id, &city), Some(again));
        // A move from a freed shape is forgotten too.
        s.release(n_id);
        s.release(a_id);
        s.free_idle();
        assert!(s.get(a_id).is_none());
        assert_eq!(s.after_removal(a_id, at), None);
        assert_eq!(s.after_addition(a_id, &city), None);
        // Sharing off: plain, and no move followed.
        s.set_enabled(false);
        assert_eq!(s.intern_fields_of(&fields, Some(again), b"k6", None), None);
        assert_eq!(s.after_addition(a_id, &city), None);
    }

    #[test]
    fn long_lists_and_a_disabled_table_stay_plain() {
        let mut s = Shapes::default();
        s.set_enabled(false);
        let a = pairs_buf(&[("name", "Alice")]);
        let mut v = Vec::new();
        assert_eq!(s.intern(&a, &mut v, None, b"k1"), None);
        assert_eq!(s.intern(&a, &mut v, None, b"k2"), None);
        s.set_enabled(true);
        let many: Vec<(String, String)> = (0..=MAX_FIELDS)
            .map(|i| (format!("f{i}"), i.to_string()))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(f, v)| (f.as_str(), v.as_str())).collect();
        let big = pairs_buf(&many);
        assert_eq!(s.intern(&big, &mut v, None, b"k1"), None);
        assert_eq!(s.intern(&big, &mut v, None, b"k2"), None);
        assert!(v.is_empty());
    }

    #[test]
    fn checks_refuse_bad_fields_and_value_counts() {
        let mut f = Vec::new();
        push_elem(&mut f, b"a");
        push_elem(&mut f, b"b");
        assert_eq!(check_fields(&f), Ok(2));
        push_elem(&mut f, b"a");
        assert!(matches!(
            check_fields(&f),
            Err(DecodeError::DuplicateField { .. })
        ));
        let mut v = Vec::new();
        push_value(&mut v, b"deadbeefdeadbeef", true);
        push_value(&mut v, b"1", true);
        assert_eq!(check_values(&v, 2), Ok(16));
        assert!(check_values(&v, 3).is_err());
        assert!(check_fields(&v).is_err(), "a packed field");
    }
}
