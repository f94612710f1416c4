//! Reads a segment and classifies what it finds: whole records, a torn tail
//! (the end of the last segment cut short or failing its CRC), or corruption
//! before the tail (an error naming the file and offset, unless salvaging).
//!
//! Zeros after the last record are the end of the log: the writer reserves
//! space ahead (see [`super::mapped`]) and a crash leaves it unused. A bad
//! record in the last segment is a torn tail when nothing valid follows it:
//! either its length reaches past the data, or (for a record torn inside
//! reserved zeros) no whole record starts in the at most [`TORN_WINDOW`]
//! bytes of data after it.

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

/// The longest run of unreadable bytes at the end of the last segment that
/// is still taken for one torn record rather than corruption.
pub(crate) const TORN_WINDOW: usize = 1 << 20;

/// One past the last non-zero byte of `buf` (0 if all zero).
fn data_end(buf: &[u8]) -> usize {
    const CHUNK: usize = 64;
    let mut end = buf.len();
    // Whole zero chunks first (vectorizes), then byte by byte.
    while end >= CHUNK && buf[end - CHUNK..end].iter().fold(0u8, |a, &b| a | b) == 0 {
        end -= CHUNK;
    }
    while end > 0 && buf[end - 1] == 0 {
        end -= 1;
    }
    end
}

/// The first offset in `from..to` where a whole, decodable record starts
/// that ends by `max_end`. Candidates are filtered on their payload version
/// byte before any CRC is computed, and `max_end` bounds the bytes checked
/// per candidate, so garbage cannot make the search slow.
fn next_record(buf: &[u8], from: usize, to: usize, max_end: usize) -> Option<usize> {
    let buf = &buf[..max_end.min(buf.len())];
    (from..to.min(buf.len())).find(|&at| {
        buf.get(at + FRAME_HEADER) == Some(&record::PAYLOAD_VERSION)
            && matches!(frame_at(buf, at), Ok(Some((_, p))) if record::decode(p).is_ok())
    })
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
    let tail_end = data_end(buf);
    while off < tail_end {
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
            // The bytes end inside this record, or its frame is wrong. The
            // last record written, torn by a crash, is such a frame that
            // either claims to reach past the data or sits in the short rest
            // of it, with no whole record after it.
            bad => {
                let reason = match bad {
                    Ok(_) => "record cut short".to_owned(),
                    Err(reason) => reason,
                };
                let len = buf
                    .get(off..off + 4)
                    .map_or(0, |h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize);
                let reaches_end = off + FRAME_HEADER + len >= tail_end;
                let at_end = last
                    && (reaches_end || tail_end - off <= TORN_WINDOW)
                    && next_record(buf, off + 1, off + 1 + TORN_WINDOW, off + 2 * TORN_WINDOW)
                        .is_none();
                (reason, at_end)
            }
        };
        let (reason, at_end) = problem;
        if last && at_end {
            let len = buf
                .get(off..off + 4)
                .map_or(0, |h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize);
            let extent = (off + FRAME_HEADER).saturating_add(len).min(buf.len());
            out.torn_bytes = (extent.max(tail_end) - off) as u64;
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
        let next = next_record(buf, off + 1, tail_end, buf.len()).unwrap_or(tail_end);
        out.skipped.push((start as u64, next as u64, reason));
        off = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(n: usize) -> (Vec<u8>, Vec<usize>) {
        let mut buf = SEGMENT_MAGIC.to_vec();
        let mut bounds = vec![buf.len()];
        let mut scratch = Vec::new();
        for i in 0..n {
            let key = format!("key:{i}");
            let e = Effect::HSet {
                key: key.as_bytes(),
                pairs: vec![(b"f", b"some value")],
            };
            let len = record::encode(&e, &mut scratch).unwrap();
            buf.extend_from_slice(&scratch[..len]);
            bounds.push(buf.len());
        }
        (buf, bounds)
    }

    fn count(buf: &[u8], last: bool) -> Result<SegmentScan, Bad> {
        scan(buf, last, false, |_| {})
    }

    #[test]
    fn reserved_zeros_after_the_records_are_a_clean_end() {
        let (mut buf, bounds) = segment(5);
        buf.resize(buf.len() + 100_000, 0);
        for last in [true, false] {
            let s = count(&buf, last).unwrap();
            assert_eq!((s.records, s.torn_bytes), (5, 0));
            assert_eq!(s.valid_end, *bounds.last().unwrap() as u64);
        }
    }

    #[test]
    fn a_record_torn_inside_reserved_zeros_is_a_torn_tail() {
        let (full, bounds) = segment(5);
        let (start, end) = (bounds[4], bounds[5]);
        // Every way a copy into zeroed space can stop short: a prefix, the
        // header missing, or the header alone.
        let variants: Vec<Vec<u8>> = vec![
            full[..start + 11].to_vec(),
            {
                let mut v = full.clone();
                v[start..start + 8].fill(0);
                v
            },
            full[..start + 8].to_vec(),
        ];
        for mut v in variants {
            v.resize(end + 4096, 0);
            let s = count(&v, true).unwrap();
            assert_eq!(s.records, 4);
            assert_eq!(s.valid_end, start as u64);
            assert!(s.torn_bytes > 0);
            // In an earlier segment the same bytes are corruption.
            assert_eq!(count(&v, false).unwrap_err().offset, start as u64);
        }
    }

    #[test]
    fn a_damaged_length_before_whole_records_is_corruption_not_a_tail() {
        let (mut buf, bounds) = segment(5);
        let at = bounds[2];
        buf[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let bad = count(&buf, true).unwrap_err();
        assert_eq!(bad.offset, at as u64);
        let s = scan(&buf, true, true, |_| {}).unwrap();
        assert_eq!(s.records, 4, "salvage skips exactly the damaged record");
    }
}
