//! Validation of compact buffers read from outside (snapshots, RDB files,
//! the fuzzers): [`validate`] and [`check`] for field/value pairs,
//! [`check_triples`] for the field-TTL variant (`compact_ex`) and
//! [`check_elements`] for a shape's fields or a shaped hash's values. Each
//! proves every invariant of the module doc of [`super`] (canonical
//! elements, unique fields, TTL range and order) in one linear pass.

use super::{decode_at, int_size, str_size, DecodeError, Elem, MIN_PACKED_HEX};
use crate::numeric;

/// Checks that `buf` is a valid compact hash (all invariants in the module
/// doc) and returns its pair count. Used for anything read from outside.
pub(crate) fn validate(buf: &[u8]) -> Result<usize, DecodeError> {
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
                Elem::Int(t) if (0..=crate::hash::MAX_TTL).contains(&t) => t,
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
