//! The compact encoding: a hash as one contiguous byte buffer of
//! `field, value, field, value, ...` elements in insertion order, the idea of
//! Redis's listpack made tighter.
//!
//! Each element is one of (first byte selects; multi-byte integers LE):
//!
//! | first byte           | element                         | size          |
//! |----------------------|---------------------------------|---------------|
//! | `0xxxxxxx`           | integer 0..=127                 | 1             |
//! | `10xxxxxx`           | string, length 0..=63           | 1 + len       |
//! | `110xxxxx` + 1 byte  | integer, 13-bit two's complement| 2             |
//! | `1110xxxx` + 1 byte  | string, length 64..=4095        | 2 + len       |
//! | `F0` + u32           | string, length >= 4096          | 5 + len       |
//! | `F1` / `F2` / `F3` / `F4` | integer in 16/24/32/64 bits | 3 / 4 / 5 / 9 |
//! | `F5` / `F6` + n (u8) | packed hex, lower / upper case  | 2 + n         |
//!
//! `F0`..`F4` are listpack's entry encodings (Redis's listpack.c; the listpack specification, github.com/antirez/listpack). What is left
//! out: the per-entry back-length (hashes only scan forward), the 6-byte
//! header (the owner knows the buffer length, and counting pairs is a scan
//! of at most `hash_max_listpack_entries` fields), and the `0xFF` terminator.
//! That saves 2 bytes per element plus 7 per hash.
//!
//! `F5`/`F6` are hashkv's own: a *value* that is a run of 2n hex digits
//! (n in 4..=255, so 8 to 510 digits), with letters all lower case (`F5`;
//! also a run of decimal digits that is not a canonical integer, such as
//! `0042`) or all upper case (`F6`), stored as n bytes, high nibble first.
//! Object hashes, SHA digests and UUIDs without dashes take half the room:
//! a 40-digit SHA-1 is 22 bytes instead of 41. It pays from 4 digits (4
//! bytes instead of 5); the threshold is 8 because under it the saving is
//! at most 2 bytes a value (often none after the 2-byte alignment of
//! table entries), while every read of such a value pays for printing it,
//! and short words that happen to be hex (`cafe`, `0042`) stay strings. Fields
//! are never packed (lookups compare encoded fields byte for byte), and
//! packing is optional ([`crate::Options::pack_hex`]), so a value may be
//! stored packed or as a string; both print the same bytes.
//!
//! Invariants of a buffer built here: an even number of elements, fields
//! unique, every field in its smallest encoding (never packed hex), and a
//! string element never holds a canonical integer (those are stored as
//! integers, so [`Elem::to_bytes`] round-trips exactly).
//!
//! This module owns the element encoding, decoding, lookups and edits;
//! packing hex values is `hex`'s, validating a buffer from outside
//! `check`'s.

mod check;
mod hex;

pub(crate) use check::validate;
pub(crate) use check::{check, check_elements, check_triples, Layout};
pub(crate) use hex::{hex_case, pack_hex, MAX_PACKED_HEX, MIN_PACKED_HEX};
use hex::{hex_to_vec, push_hex, unpack_hex};

use crate::numeric;

/// One decoded element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Elem<'a> {
    /// An integer element; its bytes are the canonical decimal text.
    Int(i64),
    /// A string element.
    Str(&'a [u8]),
    /// A packed run of hex digits, two a byte, high nibble first, letters
    /// in lower case (two variants rather than a flag keep `Elem` as small
    /// and aligned as a string's, which pair iteration copies a lot).
    Hex(&'a [u8]),
    /// [`Elem::Hex`] with upper case letters.
    HexUpper(&'a [u8]),
}

/// First byte of a packed hex value with lower case letters.
pub(crate) const HEX_LOWER: u8 = 0xF5;
/// First byte of a packed hex value with upper case letters.
pub(crate) const HEX_UPPER: u8 = 0xF6;

impl Elem<'_> {
    /// The element's bytes as a client sees them.
    pub(crate) fn to_bytes(self) -> Vec<u8> {
        match self {
            Elem::Int(v) => numeric::i64_bytes(v),
            Elem::Str(s) => s.to_vec(),
            Elem::Hex(s) => hex_to_vec(s, false),
            Elem::HexUpper(s) => hex_to_vec(s, true),
        }
    }

    /// Appends the client-visible bytes to `out`.
    pub(crate) fn push_to(self, out: &mut Vec<u8>) {
        match self {
            Elem::Int(v) => numeric::push_i64(out, v),
            Elem::Str(s) => out.extend_from_slice(s),
            Elem::Hex(s) => push_hex(out, s, false),
            Elem::HexUpper(s) => push_hex(out, s, true),
        }
    }

    /// Calls `f` with the client-visible bytes, without allocating for a
    /// string or packed hex.
    #[inline]
    pub(crate) fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Elem::Str(s) => f(s),
            Elem::Hex(s) | Elem::HexUpper(s) => {
                let upper = matches!(self, Elem::HexUpper(_));
                let mut buf = [0u8; 2 * 255];
                let n = (2 * s.len()).min(buf.len());
                unpack_hex(&s[..n / 2], upper, &mut buf[..n]);
                f(&buf[..n])
            }
            Elem::Int(v) => f(&numeric::i64_bytes(v)),
        }
    }

    /// Length of the client-visible bytes (HSTRLEN).
    pub(crate) fn len(self) -> usize {
        match self {
            Elem::Int(v) => numeric::i64_len(v),
            Elem::Str(s) => s.len(),
            Elem::Hex(s) | Elem::HexUpper(s) => 2 * s.len(),
        }
    }
}

/// Why a buffer is not a valid compact hash.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// An element's header or payload runs past the end of the buffer.
    #[error("element at byte {offset} runs past the end of the buffer")]
    Truncated {
        /// Offset of the element.
        offset: usize,
    },
    /// A first byte that selects no encoding (0xF5..=0xFF).
    #[error("unknown element encoding 0x{byte:02x} at byte {offset}")]
    BadEncoding {
        /// Offset of the element.
        offset: usize,
        /// The offending byte.
        byte: u8,
    },
    /// A field without its value.
    #[error("odd number of elements ({count})")]
    OddCount {
        /// Elements found.
        count: usize,
    },
    /// The same field name appears twice.
    #[error("duplicate field at byte {offset}")]
    DuplicateField {
        /// Offset of the second occurrence.
        offset: usize,
    },
    /// An element not in its canonical (smallest, integer-if-integer) form.
    #[error("non-canonical element at byte {offset}")]
    NonCanonical {
        /// Offset of the element.
        offset: usize,
    },
    /// A hash with no fields (hashkv never stores one).
    #[error("empty hash")]
    Empty,
    /// A buffer of field/value/TTL triples whose element count is not a
    /// multiple of 3.
    #[error("{count} elements do not make field/value/TTL triples")]
    NotTriples {
        /// Elements found.
        count: usize,
    },
    /// A TTL element that is not an integer in 0..=2^48-1.
    #[error("bad field TTL at byte {offset}")]
    BadTtl {
        /// Offset of the element.
        offset: usize,
    },
    /// Triples out of order (TTL'd fields first by ascending expiry, then
    /// the fields without one).
    #[error("field TTLs out of order at byte {offset}")]
    TtlOrder {
        /// Offset of the TTL element.
        offset: usize,
    },
}

impl DecodeError {
    /// The byte offset the error names, if it names one.
    pub(crate) fn offset(&self) -> Option<usize> {
        match *self {
            DecodeError::Truncated { offset }
            | DecodeError::BadEncoding { offset, .. }
            | DecodeError::DuplicateField { offset }
            | DecodeError::NonCanonical { offset }
            | DecodeError::BadTtl { offset }
            | DecodeError::TtlOrder { offset } => Some(offset),
            DecodeError::OddCount { .. } | DecodeError::NotTriples { .. } | DecodeError::Empty => {
                None
            }
        }
    }
}

/// Decodes the element at `buf[pos..]`, returning it and the position after it.
/// `None` when the bytes are not a whole element.
#[inline]
pub(crate) fn decode_at(buf: &[u8], pos: usize) -> Option<(Elem<'_>, usize)> {
    let b = *buf.get(pos)?;
    if b & 0x80 == 0 {
        return Some((Elem::Int(i64::from(b)), pos + 1));
    }
    if b & 0xC0 == 0x80 {
        let len = usize::from(b & 0x3F);
        let s = buf.get(pos + 1..pos + 1 + len)?;
        return Some((Elem::Str(s), pos + 1 + len));
    }
    if b & 0xE0 == 0xC0 {
        let lo = *buf.get(pos + 1)?;
        let raw = (u16::from(b & 0x1F) << 8) | u16::from(lo);
        // Sign-extend 13 bits.
        let v = i64::from(((raw << 3) as i16) >> 3);
        return Some((Elem::Int(v), pos + 2));
    }
    if b & 0xF0 == 0xE0 {
        let lo = *buf.get(pos + 1)?;
        let len = (usize::from(b & 0x0F) << 8) | usize::from(lo);
        let s = buf.get(pos + 2..pos + 2 + len)?;
        return Some((Elem::Str(s), pos + 2 + len));
    }
    match b {
        0xF0 => {
            let l: [u8; 4] = buf.get(pos + 1..pos + 5)?.try_into().ok()?;
            let len = usize::try_from(u32::from_le_bytes(l)).ok()?;
            let end = pos.checked_add(5)?.checked_add(len)?;
            Some((Elem::Str(buf.get(pos + 5..end)?), end))
        }
        0xF1 => {
            let v: [u8; 2] = buf.get(pos + 1..pos + 3)?.try_into().ok()?;
            Some((Elem::Int(i64::from(i16::from_le_bytes(v))), pos + 3))
        }
        0xF2 => {
            let v = buf.get(pos + 1..pos + 4)?;
            let raw = i32::from_le_bytes([0, v[0], v[1], v[2]]) >> 8;
            Some((Elem::Int(i64::from(raw)), pos + 4))
        }
        0xF3 => {
            let v: [u8; 4] = buf.get(pos + 1..pos + 5)?.try_into().ok()?;
            Some((Elem::Int(i64::from(i32::from_le_bytes(v))), pos + 5))
        }
        0xF4 => {
            let v: [u8; 8] = buf.get(pos + 1..pos + 9)?.try_into().ok()?;
            Some((Elem::Int(i64::from_le_bytes(v)), pos + 9))
        }
        HEX_LOWER | HEX_UPPER => decode_hex(buf, pos),
        _ => None,
    }
}

/// [`decode_at`] for a packed hex element, out of line so the common
/// encodings keep the decoder small.
#[inline(never)]
fn decode_hex(buf: &[u8], pos: usize) -> Option<(Elem<'_>, usize)> {
    let n = usize::from(*buf.get(pos + 1)?);
    let s = buf.get(pos + 2..pos + 2 + n)?;
    Some((
        if buf[pos] == HEX_UPPER {
            Elem::HexUpper(s)
        } else {
            Elem::Hex(s)
        },
        pos + 2 + n,
    ))
}

/// Encoded size of an integer element.
pub(crate) fn int_size(v: i64) -> usize {
    match v {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8_388_608..=8_388_607 => 4,
        -2_147_483_648..=2_147_483_647 => 5,
        _ => 9,
    }
}

/// Encoded size of a string element of `len` bytes.
pub(crate) fn str_size(len: usize) -> usize {
    match len {
        0..=63 => 1 + len,
        64..=4095 => 2 + len,
        _ => 5 + len,
    }
}

/// Encoded size of `s` stored as an element.
pub(crate) fn elem_size(s: &[u8]) -> usize {
    match numeric::parse_i64(s) {
        Some(v) => int_size(v),
        None => str_size(s.len()),
    }
}

/// An integer element's bytes, in a fixed buffer with their length.
fn int_bytes(v: i64) -> ([u8; 9], usize) {
    let mut e = [0u8; 9];
    let n = match v {
        0..=127 => {
            e[0] = v as u8;
            1
        }
        -4096..=4095 => {
            let raw = (v as u16) & 0x1FFF;
            e[0] = 0xC0 | (raw >> 8) as u8;
            e[1] = raw as u8;
            2
        }
        -32768..=32767 => {
            e[0] = 0xF1;
            e[1..3].copy_from_slice(&(v as i16).to_le_bytes());
            3
        }
        -8_388_608..=8_388_607 => {
            e[0] = 0xF2;
            e[1..4].copy_from_slice(&(v as i32).to_le_bytes()[..3]);
            4
        }
        -2_147_483_648..=2_147_483_647 => {
            e[0] = 0xF3;
            e[1..5].copy_from_slice(&(v as i32).to_le_bytes());
            5
        }
        _ => {
            e[0] = 0xF4;
            e[1..9].copy_from_slice(&v.to_le_bytes());
            9
        }
    };
    (e, n)
}

/// The header of a string element of `len` bytes, in a fixed buffer with
/// its length.
fn str_header(len: usize) -> ([u8; 9], usize) {
    let mut h = [0u8; 9];
    let n = if len < 64 {
        h[0] = 0x80 | len as u8;
        1
    } else if len < 4096 {
        h[0] = 0xE0 | (len >> 8) as u8;
        h[1] = len as u8;
        2
    } else {
        h[0] = 0xF0;
        // Compact hashes are bounded far below 4 GiB by the conversion rules
        // (value length limit), so the length always fits.
        h[1..5].copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
        5
    };
    (h, n)
}

/// Appends an integer element.
pub(crate) fn push_int(out: &mut Vec<u8>, v: i64) {
    let (e, n) = int_bytes(v);
    out.extend_from_slice(&e[..n]);
}

/// Appends a string element holding exactly `s` (no integer detection).
fn push_str(out: &mut Vec<u8>, s: &[u8]) {
    let (h, n) = str_header(s.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(s);
}

/// Appends `s` as an element, as an integer when it is a canonical integer.
pub(crate) fn push_elem(out: &mut Vec<u8>, s: &[u8]) {
    match numeric::parse_i64(s) {
        Some(v) => push_int(out, v),
        None => push_str(out, s),
    }
}

/// A value's element: an integer, packed hex (when `pack` and
/// [`hex_case`] says so) or a string. Written without building it first.
pub(crate) struct ValueEnc<'a> {
    head: [u8; 9],
    head_len: u8,
    /// The string's bytes, or the hex digits to pack.
    body: &'a [u8],
    hex: bool,
    /// Encoded size.
    pub(crate) size: usize,
}

impl<'a> ValueEnc<'a> {
    #[inline]
    pub(crate) fn new(v: &'a [u8], pack: bool) -> Self {
        if let Some(n) = numeric::parse_i64(v) {
            let (head, len) = int_bytes(n);
            return ValueEnc {
                head,
                head_len: len as u8,
                body: &[],
                hex: false,
                size: len,
            };
        }
        if pack {
            if let Some(upper) = hex_case(v) {
                let mut head = [0u8; 9];
                head[0] = if upper { HEX_UPPER } else { HEX_LOWER };
                head[1] = (v.len() / 2) as u8;
                return ValueEnc {
                    head,
                    head_len: 2,
                    body: v,
                    hex: true,
                    size: 2 + v.len() / 2,
                };
            }
        }
        let (head, len) = str_header(v.len());
        ValueEnc {
            head,
            head_len: len as u8,
            body: v,
            hex: false,
            size: len + v.len(),
        }
    }

    /// Writes the element over `dst`, exactly [`ValueEnc::size`] bytes.
    #[inline]
    pub(crate) fn write(&self, dst: &mut [u8]) {
        let h = usize::from(self.head_len);
        dst[..h].copy_from_slice(&self.head[..h]);
        if self.hex {
            pack_hex(self.body, &mut dst[h..self.size]);
        } else {
            dst[h..self.size].copy_from_slice(self.body);
        }
    }

    /// Writes the element over `buf[start..end]` if it has exactly that
    /// size (the in-place update); false, and nothing written, otherwise.
    #[inline]
    pub(crate) fn overwrite(&self, buf: &mut [u8], start: usize, end: usize) -> bool {
        if self.size != end - start {
            return false;
        }
        self.write(&mut buf[start..end]);
        true
    }

    /// Appends the element.
    #[inline]
    pub(crate) fn push(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.size, 0);
        self.write(&mut out[start..]);
    }

    /// Writes the element in place of `buf[start..end]`, moving what
    /// follows when the sizes differ.
    pub(crate) fn replace(&self, buf: &mut Vec<u8>, start: usize, end: usize) {
        let old = end - start;
        if self.size > old {
            buf.splice(end..end, std::iter::repeat_n(0, self.size - old));
        } else if self.size < old {
            buf.drain(start + self.size..end);
        }
        self.write(&mut buf[start..start + self.size]);
    }
}

/// Appends `v` as a value element (packed hex when `pack` allows it).
pub(crate) fn push_value(out: &mut Vec<u8>, v: &[u8], pack: bool) {
    ValueEnc::new(v, pack).push(out);
}

/// A field name prepared for comparison against elements: its encoding as
/// an element. Encodings are canonical (module doc), so a field matches an
/// element exactly when their encoded bytes are equal: the scan compares
/// sizes and bytes and never decodes a field.
#[derive(Clone, Copy)]
pub(crate) struct Probe<'a> {
    /// The header (string) or the whole element (integer).
    head: [u8; 9],
    head_len: u8,
    /// The string's bytes after the header (empty for an integer).
    body: &'a [u8],
    /// Encoded size: `head_len + body.len()`.
    size: usize,
    /// The first (up to 8) encoded bytes as a little-endian word (zero
    /// above), and the mask that keeps that many bytes of a word read from
    /// a buffer: most elements are rejected by one comparison, and an
    /// encoding of at most 8 bytes is matched by it.
    word: u64,
    mask: u64,
}

impl<'a> Probe<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        let ((head, n), body): (_, &[u8]) = match numeric::parse_i64(bytes) {
            Some(v) => (int_bytes(v), &[]),
            None => (str_header(bytes.len()), bytes),
        };
        let size = n + body.len();
        // The first (up to) 8 encoded bytes.
        let k = size.min(8);
        let mut w = [0u8; 8];
        w[..n.min(8)].copy_from_slice(&head[..n.min(8)]);
        if k > n {
            w[n..k].copy_from_slice(&body[..k - n]);
        }
        let word = u64::from_le_bytes(w);
        let mask = if k == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * k)) - 1
        };
        Probe {
            head,
            head_len: n as u8,
            body,
            size,
            word,
            mask,
        }
    }

    /// Whether the element of `size` bytes at `buf[pos..]` is this field:
    /// sizes, then one word of up to 8 bytes, then the rest.
    #[inline]
    pub(crate) fn matches_at(&self, buf: &[u8], pos: usize, size: usize) -> bool {
        if size != self.size {
            return false;
        }
        match buf.get(pos..pos + 8) {
            Some(w) => {
                u64::from_le_bytes(w.try_into().expect("8 bytes")) & self.mask == self.word
                    && (size <= 8 || self.matches(&buf[pos..pos + size]))
            }
            // An element of at most 8 bytes at the end of the buffer (the
            // last of a field list): the word that ends with it, shifted.
            None if size <= 8 && pos + size >= 8 && pos + size <= buf.len() => {
                let w = &buf[pos + size - 8..pos + size];
                u64::from_le_bytes(w.try_into().expect("8 bytes")) >> (8 * (8 - size)) == self.word
            }
            None => self.matches(&buf[pos..pos + size]),
        }
    }

    /// Whether the element `elem` (exactly one element's bytes) is this field.
    #[inline]
    fn matches(&self, elem: &[u8]) -> bool {
        let h = usize::from(self.head_len);
        elem.len() == self.size && elem[..h] == self.head[..h] && &elem[h..] == self.body
    }
}

/// Size of the element at `pos` (header and payload), if it fits in `buf`.
#[inline]
pub(crate) fn size_at(buf: &[u8], pos: usize) -> Option<usize> {
    let b = *buf.get(pos)?;
    let size = if b & 0x80 == 0 {
        1
    } else if b & 0xC0 == 0x80 {
        1 + usize::from(b & 0x3F)
    } else if b & 0xE0 == 0xC0 {
        2
    } else if b & 0xF0 == 0xE0 {
        2 + ((usize::from(b & 0x0F) << 8) | usize::from(*buf.get(pos + 1)?))
    } else {
        match b {
            0xF0 => {
                let l: [u8; 4] = buf.get(pos + 1..pos + 5)?.try_into().ok()?;
                5usize.checked_add(usize::try_from(u32::from_le_bytes(l)).ok()?)?
            }
            0xF1 => 3,
            0xF2 => 4,
            0xF3 => 5,
            0xF4 => 9,
            HEX_LOWER | HEX_UPPER => 2 + usize::from(*buf.get(pos + 1)?),
            _ => return None,
        }
    };
    (pos.checked_add(size)? <= buf.len()).then_some(size)
}

/// Iterator over `(field, value)` pairs of a compact buffer.
pub(crate) struct Pairs<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (Elem<'a>, Elem<'a>);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (f, p) = decode_at(self.buf, self.pos)?;
        let (v, p) = decode_at(self.buf, p)?;
        self.pos = p;
        Some((f, v))
    }
}

/// The pairs of `buf` in order.
pub(crate) fn pairs(buf: &[u8]) -> Pairs<'_> {
    Pairs { buf, pos: 0 }
}

/// Where a field sits in a buffer: its value and the byte ranges involved.
pub(crate) struct Found<'a> {
    pub(crate) value: Elem<'a>,
    /// Start of the field element.
    pub(crate) field_start: usize,
    /// Start of the value element.
    pub(crate) value_start: usize,
    /// End of the value element.
    pub(crate) end: usize,
}

/// Finds `field` by a forward scan comparing every other element's encoded
/// bytes with the probe's (sizes first, so most elements cost one header
/// decode and one comparison).
pub(crate) fn find<'a>(buf: &'a [u8], field: &Probe<'_>) -> Option<Found<'a>> {
    let mut pos = 0;
    while pos < buf.len() {
        let fsize = size_at(buf, pos)?;
        let vpos = pos + fsize;
        let vsize = size_at(buf, vpos)?;
        if field.matches_at(buf, pos, fsize) {
            let (value, end) = decode_at(buf, vpos)?;
            return Some(Found {
                value,
                field_start: pos,
                value_start: vpos,
                end,
            });
        }
        pos = vpos + vsize;
    }
    None
}

/// Number of pairs in `buf`.
pub(crate) fn len(buf: &[u8]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while let Some(f) = size_at(buf, pos) {
        let Some(v) = size_at(buf, pos + f) else {
            break;
        };
        n += 1;
        pos += f + v;
    }
    n
}

/// Sets `field` to `value` in `buf`. Returns true when the field is new
/// (appended at the end); an existing field keeps its position.
/// With `pack`, a hex value is stored packed ([`ValueEnc`]).
#[inline]
pub(crate) fn set(buf: &mut Vec<u8>, field: &[u8], value: &[u8], pack: bool) -> bool {
    let probe = Probe::new(field);
    let enc = ValueEnc::new(value, pack);
    if let Some(found) = find(buf, &probe) {
        enc.replace(buf, found.value_start, found.end);
        false
    } else {
        buf.reserve(elem_size(field) + enc.size);
        push_elem(buf, field);
        enc.push(buf);
        true
    }
}

/// Sets the existing `field` to `value` where it stands, if the new value
/// encodes to the size of the old one; false (and `buf` unchanged) if the
/// field is missing or the size differs. The hash keeps its size and field
/// count, so no limit can be crossed.
pub(crate) fn overwrite(buf: &mut [u8], field: &[u8], value: &[u8], pack: bool) -> bool {
    match find(buf, &Probe::new(field)) {
        Some(found) => ValueEnc::new(value, pack).overwrite(buf, found.value_start, found.end),
        None => false,
    }
}

/// Removes `field`; true when it was present.
#[inline]
pub(crate) fn remove(buf: &mut Vec<u8>, field: &[u8]) -> bool {
    match find(buf, &Probe::new(field)) {
        Some(found) => {
            let (s, e) = (found.field_start, found.end);
            buf.drain(s..e);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests;
