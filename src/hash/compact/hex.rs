//! Packed hex values of the compact encoding (its `F5`/`F6` elements, see
//! [`super`]): which values are packed ([`hex_case`]), packing the digits
//! two a byte ([`pack_hex`]) and printing them back.

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
pub(super) fn unpack_hex(s: &[u8], upper: bool, out: &mut [u8]) {
    let pairs = &DIGIT_PAIRS[usize::from(upper)];
    for (d, &b) in out.chunks_exact_mut(2).zip(s) {
        d.copy_from_slice(&pairs[usize::from(b)]);
    }
}

/// The hex digits of packed bytes `s`, out of line so that the common
/// string case of [`Elem::to_bytes`](super::Elem::to_bytes) stays small.
#[inline(never)]
pub(super) fn hex_to_vec(s: &[u8], upper: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 * s.len());
    push_hex(&mut out, s, upper);
    out
}

/// Appends the hex digits of packed bytes `s`.
#[inline]
pub(super) fn push_hex(out: &mut Vec<u8>, s: &[u8], upper: bool) {
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
