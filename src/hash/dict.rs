//! [`Dict`]: the dict encoding (OBJECT ENCODING `hashtable`) as a hash
//! sees it: an [`ArenaTable`] from field to value whose entries carry a
//! kind (see `table`'s module doc) saying how the value is stored:
//!
//! | kind | value                                                      |
//! |------|------------------------------------------------------------|
//! | 0    | the bytes as they are                                      |
//! | 1    | packed hex, lower case (as the compact encoding's `F5`)    |
//! | 2    | packed hex, upper case (`F6`)                              |
//!
//! A value that is a run of 8 to 510 hex digits, letters all one case, is
//! stored packed when [`crate::Options::pack_hex`] is on (the default): a
//! 40-digit digest takes 20 bytes, and so does a zero-padded 40-digit
//! number. Values are returned as [`Elem`]s, which print the same bytes
//! whichever way they are stored.

use rand::Rng;

use super::compact::{hex_case, pack_hex, Elem, MAX_PACKED_HEX};
use super::table::{ArenaTable, Full};

const KIND_RAW: u8 = 0;
const KIND_HEX_LOWER: u8 = 1;
const KIND_HEX_UPPER: u8 = 2;

/// A dict-encoded hash's fields and values; see the module doc.
pub(crate) struct Dict(ArenaTable);

impl Default for Dict {
    fn default() -> Self {
        Dict::with_capacity(0)
    }
}

#[inline]
fn elem(payload: &[u8], kind: u8) -> Elem<'_> {
    match kind {
        KIND_HEX_LOWER => Elem::Hex(payload),
        KIND_HEX_UPPER => Elem::HexUpper(payload),
        _ => Elem::Str(payload),
    }
}

impl Dict {
    /// A dict sized for `n` fields without migrations.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Dict(ArenaTable::with_kinds(n))
    }

    /// Number of fields.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The value of `field`.
    #[inline]
    pub(crate) fn get(&self, field: &[u8]) -> Option<Elem<'_>> {
        self.0.get_kind(field).map(|(p, k)| elem(p, k))
    }

    /// Sets `field` to `value` (packed when `pack` and it is hex); true
    /// when the field is new.
    pub(crate) fn set(&mut self, field: &[u8], value: &[u8], pack: bool) -> Result<bool, Full> {
        if pack {
            if let Some(upper) = hex_case(value) {
                let mut packed = [0u8; MAX_PACKED_HEX / 2];
                let n = value.len() / 2;
                pack_hex(value, &mut packed[..n]);
                let kind = if upper {
                    KIND_HEX_UPPER
                } else {
                    KIND_HEX_LOWER
                };
                return self.0.set_kind(field, &[&packed[..n]], kind);
            }
        }
        self.0.set_kind(field, &[value], KIND_RAW)
    }

    /// Removes `field`; true when it was present.
    pub(crate) fn remove(&mut self, field: &[u8]) -> bool {
        self.0.remove(field)
    }

    /// Every (field, value), in table order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], Elem<'_>)> + '_ {
        self.0.iter_kind().map(|(f, p, k)| (f, elem(p, k)))
    }

    /// A uniformly random (field, value).
    pub(crate) fn random(&self, rng: &mut impl Rng) -> Option<(&[u8], Elem<'_>)> {
        self.0.random_kind(rng).map(|(f, p, k)| (f, elem(p, k)))
    }

    /// One HSCAN step (see [`ArenaTable::scan`]).
    pub(crate) fn scan<'a>(&'a self, cursor: u64, mut f: impl FnMut(&'a [u8], Elem<'a>)) -> u64 {
        self.0.scan_kind(cursor, |n, p, k| f(n, elem(p, k)))
    }

    /// Bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.0.memory_bytes()
    }

    /// Advances pending work (see [`ArenaTable::tidy`]).
    #[cfg(test)]
    pub(crate) fn tidy(&mut self, moves: usize) {
        self.0.tidy(moves);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_values_are_stored_packed_and_read_back() {
        let mut d = Dict::default();
        let sha = b"da39a3ee5e6b4b0d3255bfef95601890afd80709";
        assert_eq!(d.set(b"a", sha, true), Ok(true));
        assert_eq!(d.set(b"b", b"0000000000000042", true), Ok(true));
        assert_eq!(d.set(b"c", b"DEADBEEF", true), Ok(true));
        assert_eq!(d.set(b"d", b"plain", true), Ok(true));
        assert_eq!(d.set(b"e", sha, false), Ok(true));
        assert!(matches!(d.get(b"a"), Some(Elem::Hex(p)) if p.len() == 20));
        assert!(matches!(d.get(b"c"), Some(Elem::HexUpper(_))));
        assert_eq!(d.get(b"e"), Some(Elem::Str(sha)));
        for (f, v) in [
            (&b"a"[..], &sha[..]),
            (b"b", b"0000000000000042"),
            (b"c", b"DEADBEEF"),
            (b"d", b"plain"),
            (b"e", sha),
        ] {
            assert_eq!(d.get(f).unwrap().to_bytes(), v);
        }
        // The same size in another kind is rewritten, not overwritten.
        assert_eq!(d.set(b"d", b"0123456789", true), Ok(false));
        assert_eq!(d.set(b"d", b"abcde", true), Ok(false));
        assert_eq!(d.get(b"d"), Some(Elem::Str(b"abcde")));
        let mut all: Vec<(Vec<u8>, Vec<u8>)> =
            d.iter().map(|(f, v)| (f.to_vec(), v.to_bytes())).collect();
        all.sort();
        assert_eq!(all.len(), 5);
        assert_eq!(all[2], (b"c".to_vec(), b"DEADBEEF".to_vec()));
    }

    #[test]
    fn packed_entries_survive_growth_and_page_compaction() {
        let mut d = Dict::default();
        let v = |i: u32| format!("{i:040x}");
        for i in 0..20_000u32 {
            d.set(format!("f{i}").as_bytes(), v(i).as_bytes(), true)
                .unwrap();
        }
        // Remove most, so pages are compacted and entries move.
        for i in (0..20_000u32).filter(|i| i % 7 != 0) {
            assert!(d.remove(format!("f{i}").as_bytes()));
        }
        d.tidy(1 << 20);
        for i in (0..20_000u32).filter(|i| i % 7 == 0) {
            assert_eq!(
                d.get(format!("f{i}").as_bytes()).unwrap().to_bytes(),
                v(i).into_bytes()
            );
        }
        let mut cursor = 0;
        let mut seen = 0;
        loop {
            cursor = d.scan(cursor, |_, v| {
                assert_eq!(v.len(), 40);
                seen += 1;
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen, d.len());
    }
}
