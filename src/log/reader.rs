//! Reads a segment and classifies what it finds: whole records, a torn tail
//! (the end of the last segment cut short or failing its CRC), or corruption
//! before the tail (an error naming the file and offset, unless salvaging).

use super::record::{self, FRAME_HEADER, MAX_PAYLOAD, SEGMENT_MAGIC};
use crate::keyspace::Effect;

/// What a scan of one segment found.
#[derive(Debug, Default)]
pub(crate) struct SegmentScan {
    /// End of the last whole record (where appending may continue).
    pub(crate) valid_end: u64,
    /// Records replayed.
    pub(crate) records: u64,
    /// Bytes past `valid_end` that form a torn tail (0 if none).
    pub(crate) torn_bytes: u64,
    /// Byte ranges skipped in salvage mode, with the reason.
    pub(crate) skipped: Vec<(u64, u64, String)>,
}

/// A problem at an offset.
#[derive(Debug)]
pub(crate) struct Bad {
    pub(crate) offset: u64,
    pub(crate) reason: String,
}

/// A frame at `off`: Ok(Some((payload range end, payload))) for a whole
/// record with a good CRC, Ok(None) when the bytes end first, Err when the
/// frame is there but wrong.
fn frame_at(buf: &[u8], off: usize) -> Result<Option<(usize, &[u8])>, String> {
    let Some(hdr) = buf.get(off..off + FRAME_HEADER) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
    let crc = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    // Bound the length before using it: it protects against garbage sizes.
    if len == 0 || len > MAX_PAYLOAD {
        return Err(format!("impossible record length {len}"));
    }
    let Some(payload) = buf.get(off + FRAME_HEADER..off + FRAME_HEADER + len) else {
        return Ok(None);
    };
    let actual = crc32fast::hash(payload);
    if actual != crc {
        return Err(format!(
            "checksum mismatch (expected {crc:08x}, actual {actual:08x})"
        ));
    }
    Ok(Some((off + FRAME_HEADER + len, payload)))
}

/// Scans `buf` (a whole segment), calling `apply` for each record.
/// `last` says whether this is the last segment (only its tail may be torn);
/// `salvage` skips bad regions instead of failing.
pub(crate) fn scan(
    buf: &[u8],
    last: bool,
    salvage: bool,
    mut apply: impl FnMut(Effect<'_>),
) -> Result<SegmentScan, Bad> {
    let mut out = SegmentScan::default();
    if buf.len() < SEGMENT_MAGIC.len() {
        if last && SEGMENT_MAGIC.starts_with(buf) {
            // Crash while creating the segment: an empty log.
            out.torn_bytes = buf.len() as u64;
            return Ok(out);
        }
        return Err(Bad {
            offset: 0,
            reason: "segment shorter than its header".into(),
        });
    }
    if &buf[..8] != SEGMENT_MAGIC {
        return Err(Bad {
            offset: 0,
            reason: format!(
                "bad segment header {:?} (expected {:?})",
                String::from_utf8_lossy(&buf[..8]),
                "HKVLOG01"
            ),
        });
    }
    let mut off = SEGMENT_MAGIC.len();
    out.valid_end = off as u64;
    while off < buf.len() {
        let problem = match frame_at(buf, off) {
            Ok(Some((end, payload))) => match record::decode(payload) {
                Ok(e) => {
                    apply(e);
                    out.records += 1;
                    off = end;
                    out.valid_end = off as u64;
                    continue;
                }
                Err(reason) => (reason, false),
            },
            // The bytes end inside this record.
            Ok(None) => ("record cut short".to_owned(), true),
            Err(reason) => {
                // A bad frame that reaches exactly to the end of the file is
                // the last record written, torn by a crash.
                let len = buf
                    .get(off..off + 4)
                    .map_or(0, |h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize);
                let at_end = off + FRAME_HEADER + len >= buf.len();
                (reason, at_end)
            }
        };
        let (reason, at_end) = problem;
        if last && at_end {
            out.torn_bytes = (buf.len() - off) as u64;
            return Ok(out);
        }
        if !salvage {
            return Err(Bad {
                offset: off as u64,
                reason,
            });
        }
        // Salvage: find the next offset where a whole, valid record starts.
        let start = off;
        let mut next = off + 1;
        while next < buf.len() {
            if let Ok(Some((_, p))) = frame_at(buf, next) {
                if record::decode(p).is_ok() {
                    break;
                }
            }
            next += 1;
        }
        out.skipped.push((start as u64, next as u64, reason));
        off = next;
    }
    Ok(out)
}
