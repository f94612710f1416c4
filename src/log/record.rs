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

/// Appends the framed record for `e` to `out`. Fails only for an effect
/// larger than [`MAX_PAYLOAD`].
pub(crate) fn encode(e: &Effect<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER]);
    out.push(PAYLOAD_VERSION);
    if let Err(err) = bincode::serde::encode_into_std_write(e, out, config()) {
        out.truncate(start);
        return Err(format!("cannot encode log record: {err}"));
    }
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
    let (e, used) = bincode::serde::borrow_decode_from_slice::<Effect<'_>, _>(body, config())
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
        encode(&e, &mut buf).unwrap();
        let len = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
        assert_eq!(len, buf.len() - FRAME_HEADER);
        let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(&buf[8..]));
        assert_eq!(decode(&buf[8..]).unwrap(), e);
        let mut bad = buf[8..].to_vec();
        bad[0] = 9;
        assert!(decode(&bad).unwrap_err().contains("version 9"));
    }
}
