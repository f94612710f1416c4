//! The packed hash layouts Redis stores as one RDB string, read and
//! checked element by element: listpack (type 16, and the triples of types
//! 23 and 25), ziplist (type 13) and zipmap (type 9). Each decoder checks
//! every length against the blob before reading it and calls `f` with each
//! element in order; it never trusts a header count (Redis 7.0 does, and
//! crashes later on a wrong one). Integers are handed over as their
//! canonical decimal text, which is what a client reads back.

/// One element: bytes, or an integer entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Elem<'a> {
    Str(&'a [u8]),
    Int(i64),
}

/// A damaged blob: where in it (byte offset) and what was wrong.
pub(super) type BlobError = (usize, String);

/// A decoder: calls its callback with each element of a blob, returns the
/// element count.
pub(super) type Decoder =
    fn(&[u8], &mut dyn FnMut(Elem<'_>) -> Result<(), BlobError>) -> Result<usize, BlobError>;

fn short(at: usize, what: &str) -> BlobError {
    (at, format!("{what} runs past the end of the blob"))
}

fn take<'a>(b: &'a [u8], at: usize, n: usize, what: &str) -> Result<&'a [u8], BlobError> {
    at.checked_add(n)
        .and_then(|end| b.get(at..end))
        .ok_or_else(|| short(at, what))
}

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Sign-extends the low `bits` bits of `v`.
fn signed(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// `count` if the header's `declared` count (at byte `at`) agrees or is
/// 65535 ("unknown": too many to count in 16 bits).
fn header_count(declared: usize, count: usize, at: usize, kind: &str) -> Result<usize, BlobError> {
    if declared != 65535 && declared != count {
        return Err((
            at,
            format!("{kind} header counts {declared} elements, it has {count}"),
        ));
    }
    Ok(count)
}

/// The width Redis gives the backlen of an entry of `l` bytes.
fn backlen_width(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// Calls `f` with each element of the listpack `b`; returns the count.
/// Checks the total size, every entry and its backlen, the end byte, and
/// the header count (unless 65535, "unknown").
pub(super) fn listpack(
    b: &[u8],
    f: &mut dyn FnMut(Elem<'_>) -> Result<(), BlobError>,
) -> Result<usize, BlobError> {
    walk_listpack(b, &mut |e, _| f(e))
}

/// Appends the entries of the listpack `b` to `out` without their
/// backlens: the element encoding hashkv's compact hashes share, so for a
/// listpack written in canonical encodings (as Redis writes them) this is
/// the compact hash. Checks as [`listpack`] does; returns the count.
/// With `pack`, values (every second element) that are runs of hex digits
/// are packed as the compact encoding does ([`crate::Options::pack_hex`]).
pub(super) fn listpack_entries(
    b: &[u8],
    out: &mut Vec<u8>,
    pack: bool,
) -> Result<usize, BlobError> {
    let mut value = false;
    walk_listpack(b, &mut |e, raw| {
        match e {
            Elem::Str(s) if pack && value && crate::hash::compact::hex_case(s).is_some() => {
                crate::hash::compact::push_value(out, s, true);
            }
            _ => out.extend_from_slice(raw),
        }
        value = !value;
        Ok(())
    })
}

/// What [`walk_listpack`] calls with each element and its bytes.
type EntryFn<'f> = dyn FnMut(Elem<'_>, &[u8]) -> Result<(), BlobError> + 'f;

/// Walks the listpack `b`, calling `f` with each element and its encoded
/// bytes (header and payload, no backlen).
fn walk_listpack(b: &[u8], f: &mut EntryFn<'_>) -> Result<usize, BlobError> {
    if b.len() < 7 {
        return Err((0, format!("listpack of {} bytes (at least 7)", b.len())));
    }
    let total = le(&b[0..4]) as usize;
    if total != b.len() {
        return Err((
            0,
            format!("listpack header says {total} bytes, blob has {}", b.len()),
        ));
    }
    let declared = le(&b[4..6]) as usize;
    let end = b.len() - 1;
    if b[end] != 0xFF {
        return Err((end, "listpack does not end with 0xFF".into()));
    }
    let mut pos = 6;
    let mut count = 0;
    while pos < end {
        let c = b[pos];
        let (head, elem, body) = match c {
            0x00..=0x7F => (1, Some(Elem::Int(i64::from(c))), 0),
            0x80..=0xBF => (1, None, usize::from(c & 0x3F)),
            0xC0..=0xDF => {
                let v = (u64::from(c & 0x1F) << 8)
                    | u64::from(take(b, pos + 1, 1, "13-bit integer")?[0]);
                (2, Some(Elem::Int(signed(v, 13))), 0)
            }
            0xE0..=0xEF => {
                let l = (usize::from(c & 0x0F) << 8)
                    | usize::from(take(b, pos + 1, 1, "12-bit length")?[0]);
                (2, None, l)
            }
            0xF0 => (5, None, le(take(b, pos + 1, 4, "32-bit length")?) as usize),
            0xF1 => (
                3,
                Some(Elem::Int(signed(
                    le(take(b, pos + 1, 2, "16-bit integer")?),
                    16,
                ))),
                0,
            ),
            0xF2 => (
                4,
                Some(Elem::Int(signed(
                    le(take(b, pos + 1, 3, "24-bit integer")?),
                    24,
                ))),
                0,
            ),
            0xF3 => (
                5,
                Some(Elem::Int(signed(
                    le(take(b, pos + 1, 4, "32-bit integer")?),
                    32,
                ))),
                0,
            ),
            0xF4 => (
                9,
                Some(Elem::Int(le(take(b, pos + 1, 8, "64-bit integer")?) as i64)),
                0,
            ),
            _ => return Err((pos, format!("unknown listpack entry encoding {c:#04x}"))),
        };
        let size = head + body;
        let payload = take(b, pos + head, body, "listpack string")?;
        let width = backlen_width(size);
        let back = take(b, pos + size, width, "listpack backlen")?;
        // Most significant group first; only the first byte lacks bit 7.
        let mut v = 0usize;
        for (i, &x) in back.iter().enumerate() {
            if (x & 0x80 == 0) != (i == 0) {
                return Err((pos + size, "malformed listpack backlen".into()));
            }
            v = (v << 7) | usize::from(x & 0x7F);
        }
        if v != size {
            return Err((
                pos + size,
                format!("listpack backlen {v}, entry has {size} bytes"),
            ));
        }
        if pos + size + width > end {
            return Err(short(pos, "listpack entry"));
        }
        f(elem.unwrap_or(Elem::Str(payload)), &b[pos..pos + size])?;
        count += 1;
        pos += size + width;
    }
    header_count(declared, count, 4, "listpack")
}

/// Calls `f` with each element of the ziplist `b`; returns the count.
/// Checks the total size, the tail offset, every entry and its prevlen,
/// the end byte and the header count (unless 65535).
pub(super) fn ziplist(
    b: &[u8],
    f: &mut dyn FnMut(Elem<'_>) -> Result<(), BlobError>,
) -> Result<usize, BlobError> {
    if b.len() < 11 {
        return Err((0, format!("ziplist of {} bytes (at least 11)", b.len())));
    }
    let total = le(&b[0..4]) as usize;
    if total != b.len() {
        return Err((
            0,
            format!("ziplist header says {total} bytes, blob has {}", b.len()),
        ));
    }
    let tail = le(&b[4..8]) as usize;
    let declared = le(&b[8..10]) as usize;
    let end = b.len() - 1;
    if b[end] != 0xFF {
        return Err((end, "ziplist does not end with 0xFF".into()));
    }
    let mut pos = 10;
    let mut prev = 0usize;
    let mut last = 10;
    let mut count = 0;
    while pos < end {
        let (prevlen, p) = if b[pos] < 254 {
            (usize::from(b[pos]), 1)
        } else if b[pos] == 254 {
            (le(take(b, pos + 1, 4, "ziplist prevlen")?) as usize, 5)
        } else {
            return Err((pos, "ziplist entry starts with 0xFF before the end".into()));
        };
        if prevlen != prev {
            return Err((
                pos,
                format!("ziplist prevlen {prevlen}, previous entry has {prev} bytes"),
            ));
        }
        let e = pos + p;
        let c = *b.get(e).ok_or_else(|| short(e, "ziplist entry"))?;
        let (head, elem, body) = match c >> 6 {
            0 => (1, None, usize::from(c & 0x3F)),
            1 => (
                2,
                None,
                (usize::from(c & 0x3F) << 8) | usize::from(take(b, e + 1, 1, "14-bit length")?[0]),
            ),
            2 => {
                if c != 0x80 {
                    return Err((e, format!("unknown ziplist string encoding {c:#04x}")));
                }
                let l = take(b, e + 1, 4, "32-bit length")?;
                (
                    5,
                    None,
                    u32::from_be_bytes(l.try_into().expect("4 bytes")) as usize,
                )
            }
            _ => match c {
                0xC0 => (
                    3,
                    Some(Elem::Int(signed(le(take(b, e + 1, 2, "int16")?), 16))),
                    0,
                ),
                0xD0 => (
                    5,
                    Some(Elem::Int(signed(le(take(b, e + 1, 4, "int32")?), 32))),
                    0,
                ),
                0xE0 => (
                    9,
                    Some(Elem::Int(le(take(b, e + 1, 8, "int64")?) as i64)),
                    0,
                ),
                0xF0 => (
                    4,
                    Some(Elem::Int(signed(le(take(b, e + 1, 3, "int24")?), 24))),
                    0,
                ),
                0xFE => (
                    2,
                    Some(Elem::Int(i64::from(take(b, e + 1, 1, "int8")?[0] as i8))),
                    0,
                ),
                0xF1..=0xFD => (1, Some(Elem::Int(i64::from(c & 0x0F) - 1)), 0),
                _ => return Err((e, format!("unknown ziplist entry encoding {c:#04x}"))),
            },
        };
        let payload = take(b, e + head, body, "ziplist string")?;
        let size = p + head + body;
        if pos + size > end {
            return Err(short(pos, "ziplist entry"));
        }
        f(elem.unwrap_or(Elem::Str(payload)))?;
        count += 1;
        last = pos;
        prev = size;
        pos += size;
    }
    if count > 0 && tail != last {
        return Err((
            4,
            format!("ziplist tail offset {tail}, last entry at {last}"),
        ));
    }
    header_count(declared, count, 8, "ziplist")
}

/// Calls `f` with each key and value of the zipmap `b` (Redis 2.4 and
/// before); returns the element count.
pub(super) fn zipmap(
    b: &[u8],
    f: &mut dyn FnMut(Elem<'_>) -> Result<(), BlobError>,
) -> Result<usize, BlobError> {
    if b.len() < 2 {
        return Err((0, "zipmap shorter than 2 bytes".into()));
    }
    // A length: one byte below 254, else 254 and a u32 (LE, as written on
    // x86); 255 is the end marker.
    let length = |pos: usize| -> Result<Option<(usize, usize)>, BlobError> {
        match *b.get(pos).ok_or_else(|| short(pos, "zipmap length"))? {
            255 => Ok(None),
            254 => Ok(Some((
                le(take(b, pos + 1, 4, "zipmap length")?) as usize,
                5,
            ))),
            n => Ok(Some((usize::from(n), 1))),
        }
    };
    let mut pos = 1;
    let mut count = 0;
    while let Some((klen, kh)) = length(pos)? {
        let key = take(b, pos + kh, klen, "zipmap key")?;
        pos += kh + klen;
        let Some((vlen, vh)) = length(pos)? else {
            return Err((pos, "zipmap key without a value".into()));
        };
        let free = usize::from(
            *b.get(pos + vh)
                .ok_or_else(|| short(pos, "zipmap free count"))?,
        );
        let value = take(b, pos + vh + 1, vlen, "zipmap value")?;
        take(b, pos + vh + 1 + vlen, free, "zipmap free space")?;
        pos += vh + 1 + vlen + free;
        f(Elem::Str(key))?;
        f(Elem::Str(value))?;
        count += 2;
    }
    if pos != b.len() - 1 {
        return Err((
            pos,
            format!("{} bytes after the zipmap's end", b.len() - 1 - pos),
        ));
    }
    // Its first byte counts the pairs (254: too many to count), as Redis
    // checks it; an empty zipmap is refused too.
    let pairs = count / 2;
    if pairs == 0 {
        return Err((0, "empty zipmap".into()));
    }
    if b[0] != 254 && usize::from(b[0]) != pairs {
        return Err((
            0,
            format!("zipmap header counts {} pairs, it has {pairs}", b[0]),
        ));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(decode: Decoder, b: &[u8]) -> Result<Vec<Elem<'static>>, BlobError> {
        let mut out = Vec::new();
        decode(b, &mut |e| {
            out.push(match e {
                Elem::Str(s) => Elem::Str(Box::leak(s.to_vec().into_boxed_slice())),
                Elem::Int(i) => Elem::Int(i),
            });
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn the_spec_samples_decode() {
        // FORMATS.md §1.8 and §1.9 (bytes of the legacy sample files).
        let pairs = vec![
            Elem::Str(b"f1"),
            Elem::Str(b"v1"),
            Elem::Str(b"f2"),
            Elem::Str(b"v2"),
        ];
        let zl =
            b"\x1b\x00\x00\x00\x16\x00\x00\x00\x04\x00\x00\x02f1\x04\x02v1\x04\x02f2\x04\x02v2\xff";
        assert_eq!(all(ziplist, zl).unwrap(), pairs);
        let zm = b"\x02\x02f1\x02\x00v1\x02f2\x02\x00v2\xff";
        assert_eq!(all(zipmap, zm).unwrap(), pairs);
        // §2.12: `f1 v1 n -7` (13-bit integer `df f9`).
        let lp = b"\x15\x00\x00\x00\x04\x00\x82f1\x03\x82v1\x03\x81n\x02\xdf\xf9\x02\xff";
        assert_eq!(
            all(listpack, lp).unwrap(),
            vec![
                Elem::Str(b"f1"),
                Elem::Str(b"v1"),
                Elem::Str(b"n"),
                Elem::Int(-7)
            ]
        );
    }

    #[test]
    fn damage_is_found_with_its_offset() {
        let lp = b"\x15\x00\x00\x00\x04\x00\x82f1\x03\x82v1\x03\x81n\x02\xdf\xf9\x02\xff";
        for (i, byte) in [(0, 0x16), (4, 5), (9, 4), (20, 0), (14, 0xF5)] {
            let mut bad = lp.to_vec();
            bad[i] = byte;
            assert!(all(listpack, &bad).is_err(), "byte {i} set to {byte:#x}");
        }
        for cut in 0..lp.len() {
            assert!(all(listpack, &lp[..cut]).is_err());
        }
        let zl =
            b"\x1b\x00\x00\x00\x16\x00\x00\x00\x04\x00\x00\x02f1\x04\x02v1\x04\x02f2\x04\x02v2\xff";
        for (i, byte) in [(4, 0x10), (8, 3), (14, 5), (10, 1), (26, 0)] {
            let mut bad = zl.to_vec();
            bad[i] = byte;
            assert!(all(ziplist, &bad).is_err(), "byte {i} set to {byte:#x}");
        }
        let zm = b"\x02\x02f1\x02\x00v1\x02f2\x02\x00v2\xff";
        for cut in 0..zm.len() {
            assert!(all(zipmap, &zm[..cut]).is_err());
        }
        // The pair count in the first byte must be right (254: uncounted).
        for (count, ok) in [(0u8, false), (1, false), (2, true), (3, false), (254, true)] {
            let mut bad = zm.to_vec();
            bad[0] = count;
            assert_eq!(all(zipmap, &bad).is_ok(), ok, "count byte {count}");
        }
        assert!(all(zipmap, b"\x00\xff").is_err(), "an empty zipmap");
    }

    proptest::proptest! {
        /// Whatever bytes come in, the decoders return (no panic, no
        /// allocation from the blob's numbers).
        #[test]
        fn arbitrary_blobs_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = all(listpack, &b);
            let _ = all(ziplist, &b);
            let _ = all(zipmap, &b);
        }
    }
}
