//! Log record framing.
//!
//! A segment file starts with the 8-byte header `HKVLOG` + format version as
//! two ASCII digits (`01`), then holds records back to back:
//!
//! ```text
//! +----------------+----------------+----------------------------+
//! | len: u32 LE    | crc: u32 LE    | payload (len bytes)        |
//! +----------------+----------------+----------------------------+
//! payload = [payload version: u8 = 1][bincode 2 (standard config) of Effect]
//! crc = CRC-32 (IEEE, crc32fast) of the payload
//! ```
//!
//! A record is one effect: a multi-field or multi-key command replays all or
//! nothing because its record is either whole (length and CRC check out) or
//! not there.

use crate::keyspace::Effect;

/// Segment header.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"HKVLOG01";
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
    let (e, used) = bincode::borrow_decode_from_slice::<Effect<'_>, _>(body, config())
        .map_err(|err| format!("undecodable payload: {err}"))?;
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
