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
/// Fewest hex digits packed (see the module doc for why).
pub(crate) const MIN_PACKED_HEX: usize = 8;
/// Most hex digits packed: 255 bytes.
pub(crate) const MAX_PACKED_HEX: usize = 510;

const LOWER_DIGITS: &[u8; 16] = b"0123456789abcdef";
const UPPER_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// The two digits of every byte, lower and upper case.
static DIGIT_PAIRS: [[[u8; 2]; 256]; 2] = {
    let mut t = [[[0u8; 2]; 256]; 2];
    let mut b = 0;
    while b < 256 {
        t[0][b] = [LOWER_DIGITS[b >> 4], LOWER_DIGITS[b & 15]];
        t[1][b] = [UPPER_DIGITS[b >> 4], UPPER_DIGITS[b & 15]];
        b += 1;
    }
    t
};

/// Writes the digits of packed bytes `s` over `out` (`2 * s.len()` bytes).
#[inline]
fn unpack_hex(s: &[u8], upper: bool, out: &mut [u8]) {
    let pairs = &DIGIT_PAIRS[usize::from(upper)];
    for (d, &b) in out.chunks_exact_mut(2).zip(s) {
        d.copy_from_slice(&pairs[usize::from(b)]);
    }
}

/// The hex digits of packed bytes `s`, out of line so that the common
/// string case of [`Elem::to_bytes`] stays small.
#[inline(never)]
fn hex_to_vec(s: &[u8], upper: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 * s.len());
    push_hex(&mut out, s, upper);
    out
}

/// Appends the hex digits of packed bytes `s`.
#[inline]
fn push_hex(out: &mut Vec<u8>, s: &[u8], upper: bool) {
    let start = out.len();
    out.resize(start + 2 * s.len(), 0);
    unpack_hex(s, upper, &mut out[start..]);
}

/// Each byte's nibble value if it is a hex digit, with a flag for a lower
/// (0x20) or upper (0x40) case letter; 0x80 for any other byte.
static NIBBLES: [u8; 256] = {
    let mut t = [0x80u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = (10 + i as u8) | 0x20;
        t[b'A' as usize + i] = (10 + i as u8) | 0x40;
        i += 1;
    }
    t
};

/// Whether `v` is stored packed: Some(upper case) for an even-length run
/// of [`MIN_PACKED_HEX`]..=[`MAX_PACKED_HEX`] hex digits whose letters are
/// all one case. (Canonical integers never get here: they are integers.)
#[inline]
pub(crate) fn hex_case(v: &[u8]) -> Option<bool> {
    if v.len() < MIN_PACKED_HEX || v.len() > MAX_PACKED_HEX || !v.len().is_multiple_of(2) {
        return None;
    }
    let flags = v.iter().fold(0u8, |acc, &b| acc | NIBBLES[usize::from(b)]);
    match flags & 0xE0 {
        0 | 0x20 => Some(false),
        0x40 => Some(true),
        // Another byte, or both cases.
        _ => None,
    }
}

/// Packs the hex digits `v` (checked by [`hex_case`]) into `out`, two a
/// byte, high nibble first (`out` is `v.len() / 2` bytes).
#[inline]
pub(crate) fn pack_hex(v: &[u8], out: &mut [u8]) {
    for (d, pair) in out.iter_mut().zip(v.chunks_exact(2)) {
        *d = (nibble(pair[0]) << 4) | nibble(pair[1]);
    }
}

#[inline]
fn nibble(d: u8) -> u8 {
    NIBBLES[usize::from(d)] & 15
}

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
pub enum DecodeError {
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
    pub fn offset(&self) -> Option<usize> {
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

/// Checks that `buf` is a valid compact hash (all invariants in the module
/// doc) and returns its pair count. Used for anything read from outside.
pub fn validate(buf: &[u8]) -> Result<usize, DecodeError> {
    check(buf).map(|(pairs, _)| pairs)
}

/// [`validate`], also returning the longest element as a client sees it
/// (which decides whether the hash fits the compact limits). Linear: fields
/// are checked for duplicates through a small hash table kept per thread,
/// so loading a snapshot can afford it for every hash.
pub(crate) fn check(buf: &[u8]) -> Result<(usize, usize), DecodeError> {
    /// Field spans, and the duplicate check's table of span indexes.
    type Scratch = (Vec<(u32, u32)>, Vec<u32>);
    thread_local! {
        static SCRATCH: std::cell::RefCell<Scratch> =
            const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    SCRATCH.with(|s| {
        let (fields, table) = &mut *s.borrow_mut();
        check_with(buf, Layout::Pairs, fields, table)
    })
}

/// What the elements of a buffer are.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// field, value, field, value...
    Pairs,
    /// field, value, TTL...
    Triples,
    /// Fields only (a shape's list).
    Fields,
    /// Values only (a shaped hash's).
    Values,
}

#[derive(PartialEq, Eq)]
enum Role {
    Field,
    Value,
    Ttl,
}

impl Layout {
    fn stride(self) -> usize {
        match self {
            Layout::Pairs => 2,
            Layout::Triples => 3,
            Layout::Fields | Layout::Values => 1,
        }
    }

    #[inline]
    fn role(self, count: usize) -> Role {
        match (self, count % self.stride()) {
            (Layout::Values, _) => Role::Value,
            (Layout::Fields, _) | (_, 0) => Role::Field,
            (_, 1) => Role::Value,
            _ => Role::Ttl,
        }
    }
}

/// [`check`] for a buffer of fields only or values only (a shape's and a
/// shaped hash's): returns the element count and the longest element.
pub(crate) fn check_elements(buf: &[u8], layout: Layout) -> Result<(usize, usize), DecodeError> {
    let mut fields = Vec::new();
    let mut table = Vec::new();
    check_with(buf, layout, &mut fields, &mut table)
}

/// [`check`] for a buffer of field/value/TTL triples (the compact encoding
/// with field TTLs, `compact_ex`): also checks every TTL element and their
/// order. Returns the field count and the longest field or value.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn check_triples(buf: &[u8]) -> Result<(usize, usize), DecodeError> {
    let mut fields = Vec::new();
    let mut table = Vec::new();
    check_with(buf, Layout::Triples, &mut fields, &mut table)
}

fn check_with(
    buf: &[u8],
    layout: Layout,
    fields: &mut Vec<(u32, u32)>,
    table: &mut Vec<u32>,
) -> Result<(usize, usize), DecodeError> {
    if buf.len() >= u32::MAX as usize {
        return Err(DecodeError::Truncated { offset: 0 });
    }
    fields.clear();
    let mut pos = 0;
    let mut count = 0usize;
    let mut longest = 0usize;
    let mut last_ttl: Option<i64> = None;
    let stride = layout.stride();
    while pos < buf.len() {
        let role = layout.role(count);
        let (e, next) = decode_at(buf, pos).ok_or_else(|| match buf[pos] {
            b @ 0xF7..=0xFF => DecodeError::BadEncoding {
                offset: pos,
                byte: b,
            },
            _ => DecodeError::Truncated { offset: pos },
        })?;
        let canonical = match e {
            Elem::Int(v) => int_size(v) == next - pos,
            Elem::Str(s) => str_size(s.len()) == next - pos && numeric::parse_i64(s).is_none(),
            // Only values are packed, never a short run; upper case only
            // with a letter (digits alone are written lower case), and
            // never the digits of a canonical integer (an integer element).
            Elem::Hex(s) | Elem::HexUpper(s) => {
                let letter = s.iter().any(|&b| b >> 4 >= 10 || b & 15 >= 10);
                role == Role::Value
                    && 2 * s.len() >= MIN_PACKED_HEX
                    && match e {
                        Elem::HexUpper(_) => letter,
                        _ => letter || e.with_bytes(|d| numeric::parse_i64(d).is_none()),
                    }
            }
        };
        if !canonical {
            return Err(DecodeError::NonCanonical { offset: pos });
        }
        if role == Role::Ttl {
            // A TTL element: 0 (none) or an expiry, TTL'd fields first in
            // ascending order.
            let ttl = match e {
                Elem::Int(t) if (0..=super::MAX_TTL).contains(&t) => t,
                _ => return Err(DecodeError::BadTtl { offset: pos }),
            };
            let in_order = match last_ttl {
                None => true,
                Some(prev) => ttl == 0 || (prev != 0 && prev <= ttl),
            };
            if !in_order {
                return Err(DecodeError::TtlOrder { offset: pos });
            }
            last_ttl = Some(ttl);
            count += 1;
            pos = next;
            continue;
        }
        longest = match e {
            Elem::Str(s) => longest.max(s.len()),
            Elem::Hex(s) | Elem::HexUpper(s) => longest.max(2 * s.len()),
            // An integer prints in at most 20 bytes: once something is that
            // long, integers cannot change the answer (and counting their
            // digits was the costliest part of this loop).
            Elem::Int(_) if longest >= 20 => longest,
            Elem::Int(_) => longest.max(e.len()),
        };
        if role == Role::Field {
            fields.push((pos as u32, next as u32));
        }
        count += 1;
        pos = next;
    }
    if count == 0 {
        return Err(DecodeError::Empty);
    }
    if !count.is_multiple_of(stride) {
        return Err(if layout == Layout::Pairs {
            DecodeError::OddCount { count }
        } else {
            DecodeError::NotTriples { count }
        });
    }
    // Duplicates: canonical encodings make byte equality of the encoded
    // elements equal to equality of the fields.
    let field = |&(s, e): &(u32, u32)| &buf[s as usize..e as usize];
    let dup = if fields.len() <= 16 {
        (1..fields.len()).find(|&i| fields[..i].iter().any(|f| field(f) == field(&fields[i])))
    } else {
        let size = (fields.len() * 2).next_power_of_two();
        let mask = size - 1;
        table.clear();
        table.resize(size, 0);
        (0..fields.len()).find(|&i| {
            let f = field(&fields[i]);
            let mut slot = crate::hash::table::hash_name(f) as usize & mask;
            loop {
                match table[slot] {
                    0 => {
                        table[slot] = i as u32 + 1;
                        return false;
                    }
                    j if field(&fields[j as usize - 1]) == f => return true,
                    _ => slot = (slot + 1) & mask,
                }
            }
        })
    };
    if let Some(i) = dup {
        return Err(DecodeError::DuplicateField {
            offset: fields[i].0 as usize,
        });
    }
    Ok((count / stride, longest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        push_elem(&mut v, s);
        v
    }

    #[test]
    fn integer_encodings_at_every_boundary() {
        // Same first bytes as listpack (listpack.c's integer encodings), minus backlen.
        assert_eq!(enc(b"1"), [0x01]);
        assert_eq!(enc(b"127"), [0x7f]);
        assert_eq!(enc(b"128"), [0xc0, 0x80]);
        assert_eq!(enc(b"-1"), [0xdf, 0xff]);
        assert_eq!(enc(b"4095"), [0xcf, 0xff]);
        assert_eq!(enc(b"-4096"), [0xd0, 0x00]);
        assert_eq!(enc(b"4096"), [0xf1, 0x00, 0x10]);
        assert_eq!(enc(b"32767"), [0xf1, 0xff, 0x7f]);
        assert_eq!(enc(b"-32768"), [0xf1, 0x00, 0x80]);
        assert_eq!(enc(b"8388607"), [0xf2, 0xff, 0xff, 0x7f]);
        assert_eq!(enc(b"-8388608"), [0xf2, 0x00, 0x00, 0x80]);
        assert_eq!(enc(b"2147483647"), [0xf3, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(enc(b"9223372036854775807")[0], 0xf4);
        for v in [
            0i64,
            127,
            128,
            -1,
            4095,
            -4096,
            4096,
            -4097,
            32767,
            -32768,
            32768,
            -32769,
            8_388_607,
            -8_388_608,
            8_388_608,
            2_147_483_647,
            -2_147_483_648,
            2_147_483_648,
            i64::MAX,
            i64::MIN,
        ] {
            let e = enc(v.to_string().as_bytes());
            assert_eq!(e.len(), int_size(v));
            assert_eq!(decode_at(&e, 0), Some((Elem::Int(v), e.len())), "{v}");
        }
    }

    #[test]
    fn string_encodings_at_every_boundary() {
        for len in [0usize, 1, 63, 64, 4095, 4096, 70000] {
            let s = vec![b'x'; len];
            let e = enc(&s);
            assert_eq!(e.len(), str_size(len));
            assert_eq!(
                decode_at(&e, 0),
                Some((Elem::Str(&s[..]), e.len())),
                "{len}"
            );
        }
        // Non-canonical numbers stay strings.
        for s in ["007", "-0", "+1", " 1", "1.5", "9223372036854775808"] {
            assert_eq!(
                decode_at(&enc(s.as_bytes()), 0).unwrap().0,
                Elem::Str(s.as_bytes())
            );
        }
    }

    #[test]
    fn set_find_remove_keep_insertion_order() {
        let mut b = Vec::new();
        assert!(set(&mut b, b"name", b"Alice", true));
        assert!(set(&mut b, b"age", b"25", true));
        assert!(set(&mut b, b"1", b"one", true));
        assert!(!set(&mut b, b"name", b"Bob", true));
        assert_eq!(len(&b), 3);
        let got: Vec<(Vec<u8>, Vec<u8>)> = pairs(&b)
            .map(|(f, v)| (f.to_bytes(), v.to_bytes()))
            .collect();
        assert_eq!(
            got,
            vec![
                (b"name".to_vec(), b"Bob".to_vec()),
                (b"age".to_vec(), b"25".to_vec()),
                (b"1".to_vec(), b"one".to_vec())
            ]
        );
        assert!(
            find(&b, &Probe::new(b"01")).is_none(),
            "01 is not the integer 1"
        );
        assert_eq!(
            find(&b, &Probe::new(b"1")).unwrap().value,
            Elem::Str(b"one")
        );
        assert!(remove(&mut b, b"age"));
        assert!(!remove(&mut b, b"age"));
        assert_eq!(validate(&b), Ok(2));
    }

    #[test]
    fn validate_rejects_bad_buffers() {
        assert_eq!(validate(&[]), Err(DecodeError::Empty));
        assert_eq!(validate(&[0x01]), Err(DecodeError::OddCount { count: 1 }));
        assert_eq!(
            validate(&[0x85, b'a']),
            Err(DecodeError::Truncated { offset: 0 })
        );
        assert_eq!(
            validate(&[0xF7]),
            Err(DecodeError::BadEncoding {
                offset: 0,
                byte: 0xF7
            })
        );
        // 5 stored as a 16-bit integer: valid bytes, not canonical.
        assert_eq!(
            validate(&[0xF1, 5, 0, 1]),
            Err(DecodeError::NonCanonical { offset: 0 })
        );
        // "12" stored as a string.
        assert_eq!(
            validate(&[0x82, b'1', b'2', 1]),
            Err(DecodeError::NonCanonical { offset: 0 })
        );
        assert_eq!(
            validate(&[0x81, b'a', 1, 0x81, b'a', 2]),
            Err(DecodeError::DuplicateField { offset: 3 })
        );
    }

    #[test]
    fn hex_values_are_packed_from_eight_digits_and_print_back() {
        let value = |v: &[u8], pack: bool| {
            let mut b = Vec::new();
            push_elem(&mut b, b"f");
            push_value(&mut b, v, pack);
            b
        };
        let sha = b"da39a3ee5e6b4b0d3255bfef95601890afd80709";
        let b = value(sha, true);
        assert_eq!(b.len(), 2 + 2 + 20, "a 40-digit digest takes 22 bytes");
        assert_eq!(b[2], HEX_LOWER);
        assert_eq!(pairs(&b).next().unwrap().1.to_bytes(), sha);
        assert_eq!(check(&b), Ok((1, 40)));
        for (v, packed) in [
            (&b"DA39A3EE"[..], Some(HEX_UPPER)),
            (b"00000042", Some(HEX_LOWER)),
            (b"0000004", None),  // odd length
            (b"abcdef", None),   // under 8 digits
            (b"aBcDeF01", None), // mixed case
            (b"12345678", None), // a canonical integer
            (b"abcdefgh", None), // not hex
        ] {
            let b = value(v, true);
            assert_eq!(
                b.get(2).copied().filter(|&t| t >= HEX_LOWER),
                packed,
                "{v:?}"
            );
            assert_eq!(pairs(&b).next().unwrap().1.to_bytes(), v);
            assert_eq!(pairs(&b).next().unwrap().1.len(), v.len());
            assert!(check(&b).is_ok());
        }
        // Unpacked is valid too (packing is an option).
        assert_eq!(value(sha, false).len(), 2 + 41);
        assert_eq!(check(&value(sha, false)), Ok((1, 40)));
        let longest = vec![b'a'; MAX_PACKED_HEX];
        assert_eq!(value(&longest, true)[2], HEX_LOWER);
        assert_eq!(value(&[b'a'; MAX_PACKED_HEX + 2], true)[2], 0xE2);
    }

    #[test]
    fn packed_hex_is_checked() {
        // A packed field is refused: lookups compare fields byte for byte.
        let mut b = Vec::new();
        push_value(&mut b, b"deadbeef", true);
        push_elem(&mut b, b"v");
        assert_eq!(check(&b), Err(DecodeError::NonCanonical { offset: 0 }));
        // Too short a run, and upper case without a letter.
        assert_eq!(
            check(&[0x81, b'f', HEX_LOWER, 1, 0xab]),
            Err(DecodeError::NonCanonical { offset: 2 })
        );
        assert_eq!(
            check(&[0x81, b'f', HEX_UPPER, 4, 0x01, 0x23, 0x45, 0x67]),
            Err(DecodeError::NonCanonical { offset: 2 })
        );
        assert_eq!(
            check(&[0x81, b'f', HEX_LOWER, 5, 0x01]),
            Err(DecodeError::Truncated { offset: 2 })
        );
        // "36760076" is the integer 36760076 (a fuzzer found this one);
        // "00760076" is not an integer and stays packed.
        assert_eq!(
            check(&[0x81, b'f', HEX_LOWER, 4, 0x36, 0x76, 0x00, 0x76]),
            Err(DecodeError::NonCanonical { offset: 2 })
        );
        assert!(check(&[0x81, b'f', HEX_LOWER, 4, 0x00, 0x76, 0x00, 0x76]).is_ok());
    }

    #[test]
    fn set_and_overwrite_pack_values() {
        let mut b = Vec::new();
        assert!(set(&mut b, b"id", b"0123456789abcdef", true));
        assert_eq!(b.len(), 3 + 2 + 8);
        // Same packed size: in place.
        assert!(overwrite(&mut b, b"id", b"fedcba9876543210", true));
        assert_eq!(
            find(&b, &Probe::new(b"id")).unwrap().value.to_bytes(),
            b"fedcba9876543210"
        );
        // Unpacked would be bigger: not in place.
        assert!(!overwrite(&mut b, b"id", b"fedcba9876543210", false));
        assert!(!set(&mut b, b"id", b"plain text", true));
        assert_eq!(
            find(&b, &Probe::new(b"id")).unwrap().value,
            Elem::Str(b"plain text")
        );
        assert!(!set(&mut b, b"id", b"ABCDEF0123", true));
        assert_eq!(
            find(&b, &Probe::new(b"id")).unwrap().value.to_bytes(),
            b"ABCDEF0123"
        );
        assert_eq!(validate(&b), Ok(1));
    }

    #[test]
    fn duplicates_found_in_big_buffers_too() {
        // Past 16 fields the check goes through the hash table.
        for n in [2usize, 16, 17, 100, 600] {
            let mut buf = Vec::new();
            for i in 0..n {
                push_elem(&mut buf, format!("field-{i}").as_bytes());
                push_elem(&mut buf, &(i as u64).to_string().into_bytes());
            }
            assert_eq!(check(&buf), Ok((n, 6 + (n - 1).to_string().len())));
            for dup in [0, n / 2, n - 1] {
                let mut bad = buf.clone();
                let at = bad.len();
                push_elem(&mut bad, format!("field-{dup}").as_bytes());
                push_elem(&mut bad, b"v");
                assert_eq!(
                    validate(&bad),
                    Err(DecodeError::DuplicateField { offset: at }),
                    "{n} fields, duplicate of {dup}"
                );
            }
        }
    }
}
