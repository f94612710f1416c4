//! The compact encoding of a hash with field TTLs (OBJECT ENCODING
//! `listpackex`): one buffer of `field, value, ttl` triples, each element
//! encoded as in [`super::compact`]. The TTL element is an integer: 0 for
//! none, else the field's absolute expiry in Unix ms (at most 2^48 - 1).
//!
//! Triples are kept in Redis's `listpackex` order, which is also the order
//! HGETALL, HSCAN and the rest return: fields with a TTL first, by
//! ascending expiry (a field given the same expiry as others goes before
//! them, as the transcripts of a real Redis show), then the fields without one in the order they arrived there. So
//! the earliest expiry is always the first triple, and an expiry sweep stops
//! at the first live one.
//!
//! How each write moves a triple (as Redis does):
//! - a new field is appended, without a TTL;
//! - a value written with the TTL kept (HINCRBY, HINCRBYFLOAT, HSETEX
//!   KEEPTTL) is replaced in place;
//! - a value written with the TTL cleared (HSET) is replaced in place when
//!   the field had no TTL, else its triple moves to the end;
//! - a TTL set moves the triple to its place in the order; a TTL removed
//!   (HPERSIST) moves it to the end.
//!
//! A buffer read from outside is checked by
//! [`super::compact::check_triples`] (elements, unique fields, TTL range and
//! order).

use super::compact::{decode_at, push_elem, push_int, size_at, Elem, Probe, ValueEnc};

/// The TTL element of a field without one.
pub(crate) const NO_TTL: i64 = 0;

/// Where a field's triple sits, and what it holds.
pub(crate) struct FoundEx<'a> {
    /// The value.
    pub(crate) value: Elem<'a>,
    /// The TTL (0 = none).
    pub(crate) ttl: i64,
    /// Start of the triple (its field element).
    pub(crate) start: usize,
    /// Start of the value element.
    pub(crate) value_start: usize,
    /// End of the value element (start of the TTL element).
    pub(crate) value_end: usize,
    /// End of the triple.
    pub(crate) end: usize,
}

/// The TTL element at `pos` and the position after it.
#[inline]
fn ttl_at(buf: &[u8], pos: usize) -> Option<(i64, usize)> {
    match decode_at(buf, pos)? {
        (Elem::Int(t), next) => Some((t, next)),
        (Elem::Str(_) | Elem::Hex(_) | Elem::HexUpper(_), _) => None,
    }
}

/// Iterator over `(field, value, ttl)` triples, in buffer order.
pub(crate) struct Triples<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Triples<'a> {
    type Item = (Elem<'a>, Elem<'a>, i64);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (f, p) = decode_at(self.buf, self.pos)?;
        let (v, p) = decode_at(self.buf, p)?;
        let (t, p) = ttl_at(self.buf, p)?;
        self.pos = p;
        Some((f, v, t))
    }
}

/// The triples of `buf` in order.
pub(crate) fn triples(buf: &[u8]) -> Triples<'_> {
    Triples { buf, pos: 0 }
}

/// Finds `field`, comparing encoded bytes as [`super::compact::find`] does.
pub(crate) fn find<'a>(buf: &'a [u8], field: &Probe<'_>) -> Option<FoundEx<'a>> {
    let mut pos = 0;
    while pos < buf.len() {
        let fsize = size_at(buf, pos)?;
        let vpos = pos + fsize;
        let vsize = size_at(buf, vpos)?;
        let tpos = vpos + vsize;
        let tsize = size_at(buf, tpos)?;
        if field.matches_at(buf, pos, fsize) {
            let (value, _) = decode_at(buf, vpos)?;
            let (ttl, end) = ttl_at(buf, tpos)?;
            return Some(FoundEx {
                value,
                ttl,
                start: pos,
                value_start: vpos,
                value_end: tpos,
                end,
            });
        }
        pos = tpos + tsize;
    }
    None
}

/// Number of fields.
pub(crate) fn len(buf: &[u8]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while let Some(a) = size_at(buf, pos) {
        let Some(b) = size_at(buf, pos + a) else {
            break;
        };
        let Some(c) = size_at(buf, pos + a + b) else {
            break;
        };
        n += 1;
        pos += a + b + c;
    }
    n
}

/// The earliest field expiry, if any field has one (the first triple's).
pub(crate) fn min_ttl(buf: &[u8]) -> Option<i64> {
    triples(buf)
        .next()
        .map(|(_, _, t)| t)
        .filter(|&t| t != NO_TTL)
}

/// The triples of a pair buffer (`listpack` -> `listpackex`): same order,
/// no TTLs.
pub(crate) fn from_pairs(pairs: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pairs.len() + pairs.len() / 8 + 1);
    let mut pos = 0;
    while let Some(f) = size_at(pairs, pos) {
        let Some(v) = size_at(pairs, pos + f) else {
            break;
        };
        out.extend_from_slice(&pairs[pos..pos + f + v]);
        push_int(&mut out, NO_TTL);
        pos += f + v;
    }
    out
}

/// Encodes one triple whose value element is `value`.
fn triple(field: &[u8], value: &ValueEnc<'_>, ttl: i64) -> Vec<u8> {
    let mut t = Vec::with_capacity(field.len() + value.size + 14);
    push_elem(&mut t, field);
    value.push(&mut t);
    push_int(&mut t, ttl);
    t
}

/// Where a triple with `ttl` goes: before the first triple without a TTL
/// or with the same or a later expiry; the end for no TTL.
fn slot_for(buf: &[u8], ttl: i64) -> usize {
    if ttl == NO_TTL {
        return buf.len();
    }
    let mut pos = 0;
    while pos < buf.len() {
        let Some(((_, _, t), next)) = triple_at(buf, pos) else {
            return buf.len();
        };
        if t == NO_TTL || t >= ttl {
            return pos;
        }
        pos = next;
    }
    buf.len()
}

/// The triple at `pos` (field and value as raw element bytes) and the
/// position after it.
fn triple_at(buf: &[u8], pos: usize) -> Option<((usize, usize, i64), usize)> {
    let f = size_at(buf, pos)?;
    let v = size_at(buf, pos + f)?;
    let (t, end) = ttl_at(buf, pos + f + v)?;
    Some(((f, v, t), end))
}

/// Sets `field` to `value`: true when the field is new (appended, without
/// a TTL). An existing field keeps its TTL when `keep_ttl`, else loses it.
/// With `pack`, a hex value is stored packed.
pub(crate) fn set(
    buf: &mut Vec<u8>,
    field: &[u8],
    value: &[u8],
    keep_ttl: bool,
    pack: bool,
) -> bool {
    let enc = ValueEnc::new(value, pack);
    let Some(found) = find(buf, &Probe::new(field)) else {
        buf.extend_from_slice(&triple(field, &enc, NO_TTL));
        return true;
    };
    if keep_ttl || found.ttl == NO_TTL {
        enc.replace(buf, found.value_start, found.value_end);
    } else {
        buf.drain(found.start..found.end);
        buf.extend_from_slice(&triple(field, &enc, NO_TTL));
    }
    false
}

/// Sets the TTL of `field` (0 removes it), moving its triple to its place.
/// False when the field is missing.
pub(crate) fn set_ttl(buf: &mut Vec<u8>, field: &[u8], ttl: i64) -> bool {
    let Some(found) = find(buf, &Probe::new(field)) else {
        return false;
    };
    // The field and value elements move as they are.
    let mut t = buf[found.start..found.value_end].to_vec();
    push_int(&mut t, ttl);
    buf.drain(found.start..found.end);
    let at = slot_for(buf, ttl);
    buf.splice(at..at, t);
    true
}

/// Removes `field`; true when it was present.
pub(crate) fn remove(buf: &mut Vec<u8>, field: &[u8]) -> bool {
    match find(buf, &Probe::new(field)) {
        Some(found) => {
            buf.drain(found.start..found.end);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::compact::{self, check_triples, DecodeError};

    fn fields(buf: &[u8]) -> Vec<(String, i64)> {
        triples(buf)
            .map(|(f, _, t)| (String::from_utf8(f.to_bytes()).unwrap(), t))
            .collect()
    }

    fn build(items: &[(&str, &str)]) -> Vec<u8> {
        let mut pairs = Vec::new();
        for (f, v) in items {
            compact::push_elem(&mut pairs, f.as_bytes());
            compact::push_elem(&mut pairs, v.as_bytes());
        }
        from_pairs(&pairs)
    }

    #[test]
    fn from_pairs_keeps_order_without_ttls() {
        let b = build(&[("a", "1"), ("b", "two"), ("c", "3")]);
        assert_eq!(len(&b), 3);
        assert_eq!(
            fields(&b),
            [("a".into(), 0), ("b".into(), 0), ("c".into(), 0)]
        );
        assert_eq!(min_ttl(&b), None);
        assert_eq!(check_triples(&b), Ok((3, 3)));
    }

    #[test]
    fn ttls_keep_redis_order() {
        let mut b = build(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        assert!(set_ttl(&mut b, b"c", 5_000));
        assert!(set_ttl(&mut b, b"a", 9_000));
        assert!(set_ttl(&mut b, b"d", 5_000)); // ties go before
        assert_eq!(
            fields(&b),
            [
                ("d".into(), 5_000),
                ("c".into(), 5_000),
                ("a".into(), 9_000),
                ("b".into(), 0)
            ]
        );
        assert_eq!(min_ttl(&b), Some(5_000));
        assert_eq!(check_triples(&b).map(|(n, _)| n), Ok(4));
        // Persist moves to the end of the no-TTL part.
        assert!(set_ttl(&mut b, b"c", NO_TTL));
        assert_eq!(
            fields(&b)
                .iter()
                .map(|(f, _)| f.as_str())
                .collect::<Vec<_>>(),
            ["d", "a", "b", "c"]
        );
        assert!(!set_ttl(&mut b, b"zz", 1));
        assert_eq!(check_triples(&b).map(|(n, _)| n), Ok(4));
    }

    #[test]
    fn writes_keep_or_clear_the_ttl() {
        let mut b = build(&[("a", "1"), ("b", "2")]);
        set_ttl(&mut b, b"b", 7_000);
        // Kept (HINCRBY): value replaced in place, TTL stays.
        assert!(!set(&mut b, b"b", b"20", true, true));
        assert_eq!(fields(&b)[0], ("b".into(), 7_000));
        let f = find(&b, &Probe::new(b"b")).unwrap();
        assert_eq!(f.value, Elem::Int(20));
        // Cleared (HSET): the triple moves to the end without a TTL.
        assert!(!set(&mut b, b"b", b"x", false, true));
        assert_eq!(fields(&b), [("a".into(), 0), ("b".into(), 0)]);
        // A field without a TTL is updated where it is.
        assert!(!set(&mut b, b"a", b"long value", false, true));
        assert_eq!(fields(&b), [("a".into(), 0), ("b".into(), 0)]);
        // New fields are appended.
        assert!(set(&mut b, b"c", b"3", false, true));
        assert_eq!(len(&b), 3);
        assert!(remove(&mut b, b"a"));
        assert!(!remove(&mut b, b"a"));
        assert_eq!(fields(&b), [("b".into(), 0), ("c".into(), 0)]);
        assert_eq!(check_triples(&b).map(|(n, _)| n), Ok(2));
    }

    #[test]
    fn the_check_catches_bad_triples() {
        let mut b = build(&[("a", "1"), ("b", "2")]);
        set_ttl(&mut b, b"b", 100);
        // Not triples.
        assert_eq!(
            check_triples(&b[..b.len() - 1]).map(|(n, _)| n),
            Err(DecodeError::NotTriples { count: 5 })
        );
        // A TTL out of order: a TTL'd field after one without.
        let mut bad = build(&[("a", "1")]);
        bad.extend_from_slice(&triple(b"b", &ValueEnc::new(b"2", true), 100));
        assert!(matches!(
            check_triples(&bad),
            Err(DecodeError::TtlOrder { .. })
        ));
        // A TTL beyond 2^48 - 1, and one that is a string.
        let big = triple(b"a", &ValueEnc::new(b"1", true), crate::hash::MAX_TTL + 1);
        assert!(matches!(
            check_triples(&big),
            Err(DecodeError::BadTtl { .. })
        ));
        let mut s = Vec::new();
        compact::push_elem(&mut s, b"a");
        compact::push_elem(&mut s, b"1");
        compact::push_elem(&mut s, b"x");
        assert!(matches!(check_triples(&s), Err(DecodeError::BadTtl { .. })));
        // A duplicate field.
        let mut dup = triple(b"a", &ValueEnc::new(b"1", true), 0);
        dup.extend_from_slice(&triple(b"a", &ValueEnc::new(b"2", true), 0));
        assert!(matches!(
            check_triples(&dup),
            Err(DecodeError::DuplicateField { .. })
        ));
    }

    #[test]
    fn random_edits_agree_with_a_model() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        // Model: (field, value, ttl) in the order Redis keeps them.
        let mut model: Vec<(Vec<u8>, Vec<u8>, i64)> = Vec::new();
        let mut buf = Vec::new();
        let reorder = |m: &mut Vec<(Vec<u8>, Vec<u8>, i64)>, i: usize, ttl: i64| {
            let (f, v, _) = m.remove(i);
            let at = if ttl == 0 {
                m.len()
            } else {
                m.iter()
                    .position(|(_, _, t)| *t == 0 || *t >= ttl)
                    .unwrap_or(m.len())
            };
            m.insert(at, (f, v, ttl));
        };
        for step in 0..20_000 {
            let f = format!("f{}", rng.gen_range(0..12)).into_bytes();
            let v = match rng.gen_range(0..3) {
                0 => rng.gen_range(-5000i64..5000).to_string().into_bytes(),
                1 => b"text".to_vec(),
                _ => vec![b'z'; rng.gen_range(0..80)],
            };
            let pos = model.iter().position(|(mf, _, _)| *mf == f);
            match rng.gen_range(0..5) {
                0 | 1 => {
                    let keep = rng.gen_bool(0.3);
                    let new = set(&mut buf, &f, &v, keep, true);
                    assert_eq!(new, pos.is_none(), "step {step}");
                    match pos {
                        None => model.push((f, v, 0)),
                        Some(i) if keep || model[i].2 == 0 => model[i].1 = v,
                        Some(i) => {
                            model.remove(i);
                            model.push((f, v, 0));
                        }
                    }
                }
                2 | 3 => {
                    let ttl = if rng.gen_bool(0.2) {
                        0
                    } else {
                        rng.gen_range(1..20) * 1000
                    };
                    assert_eq!(set_ttl(&mut buf, &f, ttl), pos.is_some());
                    if let Some(i) = pos {
                        reorder(&mut model, i, ttl);
                    }
                }
                _ => {
                    assert_eq!(remove(&mut buf, &f), pos.is_some());
                    if let Some(i) = pos {
                        model.remove(i);
                    }
                }
            }
            let got: Vec<(Vec<u8>, Vec<u8>, i64)> = triples(&buf)
                .map(|(f, v, t)| (f.to_bytes(), v.to_bytes(), t))
                .collect();
            assert_eq!(got, model, "step {step}");
            if !model.is_empty() {
                assert_eq!(
                    check_triples(&buf).map(|(n, _)| n),
                    Ok(model.len()),
                    "step {step}"
                );
            }
        }
    }
}
