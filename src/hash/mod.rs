//! Hash values and their two encodings.
//!
//! - [`compact`]: one contiguous buffer of field/value elements (OBJECT
//!   ENCODING `listpack`), for small hashes.
//! - [`table::ArenaTable`]: the dict encoding (OBJECT ENCODING `hashtable`),
//!   a seeded open-addressing table over packed arena pages with incremental
//!   rehashing.
//!
//! A hash converts from compact to dict when it passes
//! `hash_max_listpack_entries` fields or a field or value longer than
//! `hash_max_listpack_value` bytes is written, and never back at run time.
//! [`HashRef`] is the read view every command uses, whichever the encoding.
//!
//! - [`compact_ex`]: the compact buffer with field TTLs (OBJECT ENCODING
//!   `listpackex`), field/value/TTL triples; being wired into the keyspace
//!   (docs/DESIGN-NOTES.md, "Field TTLs").

pub(crate) mod compact;
// The field-TTL layout (issue 8); wired into the keyspace by the field
// expiration commands, exercised by its own tests until then.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod compact_ex;
pub(crate) mod table;

use compact::{Elem, Probe};
use table::ArenaTable;

/// A read view of one hash.
#[derive(Clone, Copy)]
pub(crate) enum HashRef<'a> {
    /// Compact buffer (elements only).
    Compact(&'a [u8]),
    /// Dict encoding.
    Dict(&'a ArenaTable),
}

impl<'a> HashRef<'a> {
    /// Number of fields.
    pub(crate) fn len(&self) -> usize {
        match self {
            HashRef::Compact(b) => compact::len(b),
            HashRef::Dict(d) => d.len(),
        }
    }

    /// The value of `field`.
    #[inline]
    pub(crate) fn get(&self, field: &[u8]) -> Option<Elem<'a>> {
        match *self {
            HashRef::Compact(b) => compact::find(b, &Probe::new(field)).map(|f| f.value),
            HashRef::Dict(d) => d.get(field).map(Elem::Str),
        }
    }

    /// Calls `f` for each (field, value) in iteration order (insertion order
    /// for compact hashes, table order for dicts).
    pub(crate) fn for_each(&self, mut f: impl FnMut(Elem<'a>, Elem<'a>)) {
        match *self {
            HashRef::Compact(b) => compact::pairs(b).for_each(|(k, v)| f(k, v)),
            HashRef::Dict(d) => d.iter().for_each(|(k, v)| f(Elem::Str(k), Elem::Str(v))),
        }
    }

    /// All pairs, owned.
    pub(crate) fn to_pairs(self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::with_capacity(self.len());
        self.for_each(|k, v| out.push((k.to_bytes(), v.to_bytes())));
        out
    }

    /// OBJECT ENCODING name.
    pub(crate) fn encoding(&self) -> &'static str {
        match self {
            HashRef::Compact(_) => "listpack",
            HashRef::Dict(_) => "hashtable",
        }
    }
}

/// Builds a dict holding `pairs`.
pub(crate) fn dict_from_compact(buf: &[u8]) -> Result<ArenaTable, table::Full> {
    let n = compact::len(buf);
    let mut d = ArenaTable::with_capacity(n);
    let mut field = Vec::new();
    let mut value = Vec::new();
    for (k, v) in compact::pairs(buf) {
        field.clear();
        value.clear();
        k.push_to(&mut field);
        v.push_to(&mut value);
        d.set(&field, &value)?;
    }
    Ok(d)
}
