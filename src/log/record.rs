//! Log record framing.
//!
//! A segment file starts with the 8-byte header `HKVLOG` + format version as
//! two ASCII digits (`02`; `01` is still read), then holds frames back to
//! back:
//!
//! ```text
//! +----------------+----------------+----------------------------+
//! | len: u32 LE    | crc: u32 LE    | payload (len bytes)        |
//! +----------------+----------------+----------------------------+
//! crc = CRC-32 (IEEE, crc32fast) of the payload
//! payload of a record = [1][bincode 2 (standard config) of Effect]
//! payload of a mark   = [2][kind: u8][offset: u64 LE]   (len = 10)
//! ```
//!
//! A record is one effect: a multi-field or multi-key command replays all or
//! nothing because its record is either whole (length and CRC check out) or
//! not there.
//!
//! Marks (version 2) tell a torn tail from damage without guessing from
//! record sizes (see [`super::reader`]):
//! - a *sync mark* (kind 1) is appended after each completed fsync and says
//!   "every byte of this segment before `offset` was durable";
//! - a *seal* (kind 2) is the last frame of a segment the writer left for
//!   the next one; `offset` is its own position.

use crate::keyspace::Effect;

/// Segment header written now.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"HKVLOG02";
/// Segment header of format version 1 (no marks), still read.
pub(crate) const SEGMENT_MAGIC_V1: &[u8; 8] = b"HKVLOG01";
/// First payload byte of a mark.
pub(crate) const MARK_TAG: u8 = 2;
/// Payload length of a mark.
pub(crate) const MARK_PAYLOAD: usize = 10;
/// A mark's whole frame.
pub(crate) const MARK_FRAME: usize = FRAME_HEADER + MARK_PAYLOAD;
/// Mark kind: everything before `offset` was fsynced.
pub(crate) const MARK_SYNCED: u8 = 1;
/// Mark kind: the segment ends here (written before moving to the next).
pub(crate) const MARK_SEAL: u8 = 2;
/// Frame header: length and CRC.
pub(crate) const FRAME_HEADER: usize = 8;
/// Version byte at the start of every payload.
pub(crate) const PAYLOAD_VERSION: u8 = 1;
/// Largest payload accepted when reading (a bound against garbage lengths;
/// writes of bigger effects are refused with an error).
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_PAYLOAD>()
}

/// Encodes the framed record for `e`. Fails only for an effect larger than
/// [`MAX_PAYLOAD`].
///
/// `buf` is scratch space reused across calls: the frame is written at its
/// start and its length returned; bytes past that are left as they are (so
/// a warm buffer is not cleared or zeroed per record).
pub(crate) fn encode(e: &Effect<'_>, buf: &mut Vec<u8>) -> Result<usize, String> {
    const SPARE: usize = 256;
    const BODY: usize = FRAME_HEADER + 1;
    if buf.len() < BODY + SPARE {
        buf.resize(BODY + SPARE, 0);
    }
    buf[FRAME_HEADER] = PAYLOAD_VERSION;
    // A slice is bincode's fastest writer; an effect too big for the room
    // there is encoded again through the growing writer.
    let len = match bincode::encode_into_slice(e, &mut buf[BODY..], config()) {
        Ok(n) => BODY + n,
        Err(_) => {
            buf.truncate(BODY);
            bincode::encode_into_std_write(e, buf, config())
                .map_err(|err| format!("cannot encode log record: {err}"))?;
            buf.len()
        }
    };
    let payload_len = len - FRAME_HEADER;
    if payload_len > MAX_PAYLOAD {
        return Err(format!(
            "log record of {payload_len} bytes exceeds the {MAX_PAYLOAD}-byte limit"
        ));
    }
    let crc = crc32fast::hash(&buf[FRAME_HEADER..len]);
    buf[0..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(len)
}

/// Appends bincode's standard varint of `v` (the integer encoding every
/// length in a record uses).
fn push_varint(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=250 => out.push(v as u8),
        251..=0xFFFF => {
            out.push(251);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x1_0000..=0xFFFF_FFFF => {
            out.push(252);
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        _ => {
            out.push(253);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn push_bytes(out: &mut Vec<u8>, b: &[u8]) {
    push_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends to `out` the framed record of `Effect::HSet { key, pairs }`,
/// byte for byte what [`encode`] writes for it, without building the
/// effect (a batch of HSETs encodes its records with no allocation per
/// command). On error (a record past [`MAX_PAYLOAD`]) `out` is as it was.
pub(crate) fn push_hset(
    out: &mut Vec<u8>,
    key: &[u8],
    pairs: &[(&[u8], &[u8])],
) -> Result<(), String> {
    let start = out.len();
    out.resize(start + FRAME_HEADER, 0);
    out.push(PAYLOAD_VERSION);
    push_hset_body(out, key, pairs);
    let payload_len = out.len() - start - FRAME_HEADER;
    if payload_len > MAX_PAYLOAD {
        out.truncate(start);
        return Err(format!(
            "log record of {payload_len} bytes exceeds the {MAX_PAYLOAD}-byte limit"
        ));
    }
    let crc = crc32fast::hash(&out[start + FRAME_HEADER..]);
    out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Appends to `out` the bincode of `Effect::HSet { key, pairs }` alone (no
/// frame header, no version byte): one effect's body inside an
/// `Effect::Batch` record ([`batch_frame_at`]).
pub(crate) fn push_hset_body(out: &mut Vec<u8>, key: &[u8], pairs: &[(&[u8], &[u8])]) {
    /// `Effect::HSet`'s variant index.
    const HSET_VARIANT: u8 = 0;
    out.push(HSET_VARIANT);
    push_bytes(out, key);
    push_varint(out, pairs.len() as u64);
    for (f, v) in pairs {
        push_bytes(out, f);
        push_bytes(out, v);
    }
}

/// Room [`batch_frame_at`] needs before the first effect body: the frame
/// header, the version byte, the variant and the longest count varint.
pub(crate) const BATCH_HEAD_ROOM: usize = FRAME_HEADER + 2 + 9;

/// Frames one `Effect::Batch` record of the `count` effect bodies that
/// `buf` holds from [`BATCH_HEAD_ROOM`] on (written there by
/// [`push_hset_body`] or taken from [`encode`]'s records past their
/// version byte), writing its header into the room before them. Returns
/// where the frame starts in `buf` (it ends at `buf`'s end): the record is
/// byte for byte what [`encode`] writes for the batch.
pub(crate) fn batch_frame_at(buf: &mut [u8], count: u64) -> Result<usize, String> {
    /// `Effect::Batch`'s variant index.
    const BATCH_VARIANT: u8 = 11;
    let mut varint = Vec::with_capacity(9);
    push_varint(&mut varint, count);
    let start = BATCH_HEAD_ROOM - varint.len() - 2 - FRAME_HEADER;
    let payload_len = buf.len() - start - FRAME_HEADER;
    if payload_len > MAX_PAYLOAD {
        return Err(format!(
            "log record of {payload_len} bytes exceeds the {MAX_PAYLOAD}-byte limit"
        ));
    }
    let body = start + FRAME_HEADER;
    buf[body] = PAYLOAD_VERSION;
    buf[body + 1] = BATCH_VARIANT;
    buf[body + 2..BATCH_HEAD_ROOM].copy_from_slice(&varint);
    let crc = crc32fast::hash(&buf[body..]);
    buf[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(start)
}

/// The frames of `frames` (whole frames back to back, as a batch of
/// records is appended): each one's start and end in `frames`.
pub(crate) fn frame_spans(frames: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let h = frames.get(at..at + 4)?;
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let end = at + FRAME_HEADER + len;
        if end > frames.len() {
            return None;
        }
        let span = (at, end);
        at = end;
        Some(span)
    })
}

/// The frame of a mark of `kind` for `offset`.
pub(crate) fn mark(kind: u8, offset: u64) -> [u8; MARK_FRAME] {
    let mut f = [0u8; MARK_FRAME];
    f[0..4].copy_from_slice(&(MARK_PAYLOAD as u32).to_le_bytes());
    f[8] = MARK_TAG;
    f[9] = kind;
    f[10..18].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32fast::hash(&f[FRAME_HEADER..]);
    f[4..8].copy_from_slice(&crc.to_le_bytes());
    f
}

/// The mark in a payload whose CRC checked out: `(kind, offset)`, or `None`
/// if the payload is not a mark.
pub(crate) fn as_mark(payload: &[u8]) -> Option<(u8, u64)> {
    if payload.len() != MARK_PAYLOAD || payload[0] != MARK_TAG {
        return None;
    }
    let offset = u64::from_le_bytes(payload[2..10].try_into().ok()?);
    Some((payload[1], offset))
}

/// Decodes `body` with an allocation limit proportional to its length: a
/// count read from the bytes (pairs, keys, a batch's effects) can claim at
/// most 64 bytes of
/// memory per byte present, so a crafted record cannot make replay
/// allocate more than a small multiple of its own size.
fn decode_bounded(body: &[u8]) -> Result<(Effect<'_>, usize), bincode::error::DecodeError> {
    // An effect takes at most 64 bytes in memory and at least 1 encoded.
    const _: () = assert!(std::mem::size_of::<Effect<'static>>() <= 64);
    let need = body.len().saturating_mul(64);
    macro_rules! within {
        ($($shift:literal)*) => {$(
            if need <= 1usize << $shift {
                return bincode::borrow_decode_from_slice::<Effect<'_>, _>(
                    body,
                    bincode::config::standard().with_limit::<{ 1usize << $shift }>(),
                );
            }
        )*};
    }
    within!(12 14 16 18 20 22 24 26 28 30 32 34 36);
    bincode::borrow_decode_from_slice::<Effect<'_>, _>(body, config())
}

/// Frames one record holding `Effect::Batch` of the effects whose records
/// are `frames` (records as [`encode`] writes them, back to back), without
/// decoding them: the batch's bincode is the variant index, the count and
/// the effects' own bincode one after another. Writes the frame into `out`
/// (cleared first).
pub(crate) fn batch_frame(frames: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    /// `Effect::Batch`'s variant index.
    const BATCH_VARIANT: u8 = 11;
    // Each record's payload after its version byte, in order.
    let bodies = || {
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= frames.len() {
                return None;
            }
            let len = frames
                .get(at..at + 4)
                .map(|h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize);
            let body = len.and_then(|len| {
                let payload = frames.get(at + FRAME_HEADER..at + FRAME_HEADER + len)?;
                at += FRAME_HEADER + len;
                payload.get(1..)
            });
            if body.is_none() {
                at = frames.len();
            }
            Some(body.ok_or("short frame"))
        })
    };
    let mut count = 0u64;
    for b in bodies() {
        b?;
        count += 1;
    }
    out.clear();
    out.resize(FRAME_HEADER, 0);
    out.push(PAYLOAD_VERSION);
    out.push(BATCH_VARIANT);
    let mut varint = [0u8; 9];
    let n = bincode::encode_into_slice(count, &mut varint, config()).map_err(|e| e.to_string())?;
    out.extend_from_slice(&varint[..n]);
    for b in bodies() {
        out.extend_from_slice(b?);
    }
    let payload_len = out.len() - FRAME_HEADER;
    if payload_len > MAX_PAYLOAD {
        return Err(format!(
            "log record of {payload_len} bytes exceeds the {MAX_PAYLOAD}-byte limit"
        ));
    }
    let crc = crc32fast::hash(&out[FRAME_HEADER..]);
    out[0..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Decodes a payload whose CRC already checked out.
pub(crate) fn decode(payload: &[u8]) -> Result<Effect<'_>, String> {
    let Some((&version, body)) = payload.split_first() else {
        return Err("empty payload".into());
    };
    if version != PAYLOAD_VERSION {
        return Err(format!(
            "payload version {version}, this build reads version {PAYLOAD_VERSION}"
        ));
    }
    let (e, used) = decode_bounded(body).map_err(|err| format!("undecodable payload: {err}"))?;
    if used != body.len() {
        return Err(format!(
            "{} trailing bytes after the effect",
            body.len() - used
        ));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_crc() {
        let e = Effect::HSet {
            key: b"k",
            pairs: vec![(b"f", b"v"), (b"", b"\x00\xff")],
        };
        let mut buf = Vec::new();
        let n = encode(&e, &mut buf).unwrap();
        buf.truncate(n);
        let len = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
        assert_eq!(len, buf.len() - FRAME_HEADER);
        let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(&buf[8..]));
        assert_eq!(decode(&buf[8..]).unwrap(), e);
        let mut bad = buf[8..].to_vec();
        bad[0] = 9;
        assert!(decode(&bad).unwrap_err().contains("version 9"));
    }

    #[test]
    fn marks_round_trip_and_are_not_records() {
        let m = mark(MARK_SYNCED, 12345);
        assert_eq!(m.len(), MARK_FRAME);
        let payload = &m[FRAME_HEADER..];
        assert_eq!(crc32fast::hash(payload).to_le_bytes(), m[4..8]);
        assert_eq!(as_mark(payload), Some((MARK_SYNCED, 12345)));
        assert!(decode(payload).is_err());
    }

    /// A batch framed from its effects' records is byte for byte the
    /// record of the batch encoded whole.
    #[test]
    fn a_batch_framed_from_records_equals_the_batch_encoded() {
        for n in [2usize, 3, 300] {
            let keys: Vec<String> = (0..n).map(|i| format!("key:{i}")).collect();
            let effects: Vec<Effect<'_>> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| match i % 3 {
                    0 => Effect::HSet {
                        key: k.as_bytes(),
                        pairs: vec![(b"f", b"v")],
                    },
                    1 => Effect::PExpireAt {
                        key: k.as_bytes(),
                        at_ms: 1_800_000_000_000,
                    },
                    _ => Effect::Del {
                        keys: vec![k.as_bytes()],
                    },
                })
                .collect();
            let mut frames = Vec::new();
            let mut scratch = Vec::new();
            for e in &effects {
                let len = encode(e, &mut scratch).unwrap();
                frames.extend_from_slice(&scratch[..len]);
            }
            let mut framed = Vec::new();
            batch_frame(&frames, &mut framed).unwrap();
            let whole = Effect::Batch { effects };
            let len = encode(&whole, &mut scratch).unwrap();
            assert_eq!(framed, scratch[..len], "{n} effects");
            assert_eq!(decode(&framed[FRAME_HEADER..]).unwrap(), whole);
        }
    }

    /// A batch record built from bodies in place is the batch encoded
    /// whole, for counts on both sides of a varint width.
    #[test]
    fn a_batch_framed_in_place_equals_the_batch_encoded() {
        for n in [1usize, 2, 250, 251, 300] {
            let keys: Vec<String> = (0..n).map(|i| format!("key:{i}")).collect();
            let mut buf = vec![0u8; BATCH_HEAD_ROOM];
            let mut effects = Vec::new();
            let mut scratch = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                if i % 7 == 3 {
                    let e = Effect::Del {
                        keys: vec![k.as_bytes()],
                    };
                    let len = encode(&e, &mut scratch).unwrap();
                    buf.extend_from_slice(&scratch[FRAME_HEADER + 1..len]);
                    effects.push(e);
                }
                let pairs: Vec<(&[u8], &[u8])> = vec![(b"f", k.as_bytes()), (b"g", b"12")];
                push_hset_body(&mut buf, k.as_bytes(), &pairs);
                effects.push(Effect::HSet {
                    key: k.as_bytes(),
                    pairs,
                });
            }
            let start = batch_frame_at(&mut buf, effects.len() as u64).unwrap();
            let whole = Effect::Batch { effects };
            let len = encode(&whole, &mut scratch).unwrap();
            assert_eq!(buf[start..], scratch[..len], "{n} effects");
            assert_eq!(decode(&buf[start + FRAME_HEADER..]).unwrap(), whole);
        }
    }

    /// The HSET record written without building the effect is the
    /// effect's record, for lengths on both sides of each varint width.
    #[test]
    fn push_hset_equals_the_effect_encoded() {
        let sizes = [0usize, 1, 250, 251, 252, 65_535, 65_536, 70_000];
        let mut scratch = Vec::new();
        for (i, &ks) in sizes.iter().enumerate() {
            let key = vec![b'k'; ks];
            let f = vec![b'f'; sizes[(i + 3) % sizes.len()]];
            let v = vec![7u8; sizes[(i + 5) % sizes.len()]];
            for n in [0usize, 1, 3, 251] {
                let pairs: Vec<(&[u8], &[u8])> = (0..n)
                    .map(|j| {
                        if j % 2 == 0 {
                            (&f[..], &v[..])
                        } else {
                            (&v[..], &b"x"[..])
                        }
                    })
                    .collect();
                let len = encode(
                    &Effect::HSet {
                        key: &key,
                        pairs: pairs.clone(),
                    },
                    &mut scratch,
                )
                .unwrap();
                let mut out = b"before".to_vec();
                push_hset(&mut out, &key, &pairs).unwrap();
                assert_eq!(&out[..6], b"before");
                assert_eq!(out[6..], scratch[..len], "key {ks}, {n} pairs");
                let spans: Vec<_> = frame_spans(&out[6..]).collect();
                assert_eq!(spans, [(0, len)]);
            }
        }
    }

    /// A record claiming 20 million pairs in a few bytes fails to decode
    /// without allocating for them (the limit is 32x its length).
    #[test]
    fn a_huge_count_in_a_small_record_is_refused_not_allocated() {
        let e = Effect::HSet {
            key: b"k",
            pairs: vec![(b"f", b"v")],
        };
        let mut body = bincode::encode_to_vec(&e, config()).unwrap();
        // variant 0, key len 1 + 'k', then the pair count (a varint).
        assert_eq!(body[3], 1);
        body.splice(3..4, [0xfc, 0x00, 0x2d, 0x31, 0x01]); // 20,000,000 as u32 varint
        let mut payload = vec![PAYLOAD_VERSION];
        payload.extend_from_slice(&body);
        let err = decode(&payload).unwrap_err();
        // Refused by the limit before allocating (a 1 GiB limit would have
        // allocated 640 MB and then failed on missing bytes instead).
        assert!(err.contains("LimitExceeded"), "{err}");
    }

    /// bincode's serde path and its derive give the same bytes, so the
    /// format is bincode's documented encoding whichever produced it.
    #[test]
    fn serde_and_derive_encodings_agree() {
        let effects = [
            Effect::HSet {
                key: b"k",
                pairs: vec![(b"f", b"v"), (b"", b"\x00\xff")],
            },
            Effect::PExpireAt {
                key: b"k",
                at_ms: -5,
            },
            Effect::Rename {
                from: b"a",
                to: b"b",
            },
            Effect::FlushDb,
        ];
        for e in effects {
            let a = bincode::serde::encode_to_vec(&e, config()).unwrap();
            let b = bincode::encode_to_vec(&e, config()).unwrap();
            assert_eq!(a, b, "{e:?}");
        }
    }
}
