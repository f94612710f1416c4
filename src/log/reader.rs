//! Reads a segment and classifies what it finds: whole records, a torn tail
//! (the end of the log cut short by a crash), or damage (an error naming
//! the file and offset, unless salvaging).
//!
//! Zeros after the last record are the end of the log: the writer reserves
//! space ahead (see [`super::mapped`]) and a crash leaves it unused.
//!
//! The rule for a bad frame (format version 2), which does not depend on
//! record sizes: it is a torn tail only if nothing at or after it was ever
//! durable, that is, when
//! - no later segment holds data (the writer moves to the next segment only
//!   after fsyncing and sealing this one), and
//! - no sync mark anywhere in the segment says a byte past it was fsynced
//!   (marks are found by their fixed shape, also past the damage).
//!
//! Otherwise it is damage: refused in strict mode, skipped by salvage. A
//! power cut that leaves unsynced pages as zeros, in any order, is thus a
//! torn tail: cut at the first gap, everything fsynced kept. A segment that
//! a later one follows must end with its seal, so one cut short at a record
//! boundary is damage too. Segments of version 1 (no marks) keep the rule
//! they were written under: a bad frame is a torn tail when no whole record
//! starts in the [`TORN_WINDOW`] bytes after it.

use super::record::{
    self, FRAME_HEADER, MARK_FRAME, MARK_PAYLOAD, MARK_SEAL, MARK_SYNCED, MARK_TAG, MAX_PAYLOAD,
    SEGMENT_MAGIC, SEGMENT_MAGIC_V1,
};
use crate::keyspace::Effect;

/// What a scan of one segment found.
#[derive(Debug, Default)]
pub(crate) struct SegmentScan {
    /// End of the last whole frame (where appending may continue).
    pub(crate) valid_end: u64,
    /// Records replayed.
    pub(crate) records: u64,
    /// Bytes past `valid_end` that form a torn tail (0 if none).
    pub(crate) torn_bytes: u64,
    /// The segment is shorter than its header (a crash while creating it):
    /// it holds nothing and its header must be written again.
    pub(crate) torn_header: bool,
    /// Byte ranges skipped in salvage mode, with the reason.
    pub(crate) skipped: Vec<(u64, u64, String)>,
    /// The highest offset a sync mark says was durable.
    pub(crate) synced_through: u64,
    /// The format version in the segment's header.
    pub(crate) version: u8,
    /// The segment ends with a seal (the writer left it for the next).
    pub(crate) sealed: bool,
}

/// The longest run of unreadable bytes at the end of a version-1 segment
/// that is still taken for one torn record rather than corruption.
pub(crate) const TORN_WINDOW: usize = 1 << 20;

/// One past the last non-zero byte of `buf` (0 if all zero).
pub(crate) fn data_end(buf: &[u8]) -> usize {
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

/// Whether a segment holds anything past its header (a record, a mark or
/// garbage): once it does, the writer had moved to it.
pub(crate) fn holds_data(buf: &[u8]) -> bool {
    data_end(buf) > SEGMENT_MAGIC.len()
}

/// The first offset in `from..to` where a whole frame starts (a decodable
/// record or a mark) that ends by `max_end`. Candidates are filtered on
/// their first payload byte before any CRC is computed.
fn next_frame(buf: &[u8], from: usize, to: usize, max_end: usize) -> Option<usize> {
    let buf = &buf[..max_end.min(buf.len())];
    (from..to.min(buf.len())).find(|&at| {
        matches!(
            buf.get(at + FRAME_HEADER),
            Some(&record::PAYLOAD_VERSION) | Some(&MARK_TAG)
        ) && matches!(frame_at(buf, at), Ok(Some((_, p)))
                if record::as_mark(p).is_some() || record::decode(p).is_ok())
    })
}

/// The highest offset a valid sync mark in `buf[from..to]` vouches for,
/// with the mark's position. Marks have a fixed shape, so this is one pass
/// of constant work per byte, whatever the records around them.
pub(crate) fn sync_marks_in(buf: &[u8], from: usize, to: usize) -> Option<(u64, usize)> {
    sync_marks_at(buf, 0, from, to)
}

/// [`sync_marks_in`] for `buf` holding the segment's bytes from offset
/// `base` on (positions returned are relative to `buf`).
pub(crate) fn sync_marks_at(buf: &[u8], base: u64, from: usize, to: usize) -> Option<(u64, usize)> {
    let to = to.min(buf.len());
    let mut best: Option<(u64, usize)> = None;
    let mut at = from;
    while at + MARK_FRAME <= to {
        if buf[at..at + 4] == (MARK_PAYLOAD as u32).to_le_bytes()
            && buf[at + FRAME_HEADER] == MARK_TAG
            && buf[at + FRAME_HEADER + 1] == MARK_SYNCED
        {
            if let Ok(Some((_, p))) = frame_at(buf, at) {
                if let Some((_, x)) = record::as_mark(p) {
                    if x <= base + at as u64 && best.is_none_or(|(b, _)| x > b) {
                        best = Some((x, at));
                    }
                }
            }
        }
        at += 1;
    }
    best
}

/// A problem at an offset.
#[derive(Debug)]
pub(crate) struct Bad {
    pub(crate) offset: u64,
    pub(crate) reason: String,
}

/// A frame at `off`: Ok(Some((payload range end, payload))) for a whole
/// frame with a good CRC, Ok(None) when the bytes end first, Err when the
/// frame is there but wrong.
pub(crate) fn frame_at(buf: &[u8], off: usize) -> Result<Option<(usize, &[u8])>, String> {
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

/// What one whole frame is.
pub(crate) enum Frame<'a> {
    Record(Effect<'a>),
    Synced(u64),
    Seal,
}

/// Classifies a frame whose CRC checked out at `off`.
pub(crate) fn classify(payload: &[u8], off: usize) -> Result<Frame<'_>, String> {
    match record::as_mark(payload) {
        Some((MARK_SYNCED, x)) if x <= off as u64 => Ok(Frame::Synced(x)),
        Some((MARK_SEAL, x)) if x == off as u64 => Ok(Frame::Seal),
        Some((kind, x)) => Err(format!("impossible mark (kind {kind}, offset {x})")),
        None => record::decode(payload).map(Frame::Record),
    }
}

/// Scans `buf` (a whole segment), calling `apply` for each record.
/// `tail_allowed` says whether this segment may end in a torn tail: no
/// later segment holds data. `salvage` skips damage instead of failing.
pub(crate) fn scan(
    buf: &[u8],
    tail_allowed: bool,
    salvage: bool,
    mut apply: impl FnMut(Effect<'_>),
) -> Result<SegmentScan, Bad> {
    let mut out = SegmentScan::default();
    let header_len = SEGMENT_MAGIC.len();
    if buf.len() < header_len || (tail_allowed && data_end(buf) == 0) {
        if tail_allowed {
            // A crash while creating the segment: it holds nothing.
            out.torn_header = true;
            out.torn_bytes = buf.len().min(header_len) as u64;
            out.valid_end = header_len as u64;
            out.version = 2;
            return Ok(out);
        }
        return Err(Bad {
            offset: 0,
            reason: format!(
                "segment of {} bytes, shorter than its header, though later segments hold data",
                buf.len()
            ),
        });
    }
    out.version = match &buf[..header_len] {
        h if h == SEGMENT_MAGIC => 2,
        h if h == SEGMENT_MAGIC_V1 => 1,
        h => {
            return Err(Bad {
                offset: 0,
                reason: format!(
                    "bad segment header {:?} (expected {:?})",
                    String::from_utf8_lossy(h),
                    String::from_utf8_lossy(SEGMENT_MAGIC)
                ),
            })
        }
    };
    let mut off = header_len;
    out.valid_end = off as u64;
    let mut sealed = false;
    let tail_end = data_end(buf);
    while off < tail_end {
        // A frame whose checksum matches but whose contents make no sense
        // was written whole: no tear produces it, so it is never a tail.
        let mut whole = false;
        let reason = match frame_at(buf, off) {
            Ok(Some((end, payload))) => match classify(payload, off) {
                Ok(frame) => {
                    sealed = false;
                    match frame {
                        Frame::Record(e) => {
                            apply(e);
                            out.records += 1;
                        }
                        Frame::Synced(x) => out.synced_through = out.synced_through.max(x),
                        Frame::Seal => sealed = true,
                    }
                    off = end;
                    out.valid_end = off as u64;
                    continue;
                }
                Err(reason) => {
                    whole = true;
                    reason
                }
            },
            Ok(None) => "record cut short".to_owned(),
            Err(reason) => reason,
        };
        let torn = tail_allowed
            && !whole
            && if out.version == 1 {
                v1_tail(buf, off, tail_end)
            } else {
                let later = sync_marks_in(buf, off, tail_end + MARK_FRAME).map_or(0, |(x, _)| x);
                off as u64 >= out.synced_through.max(later)
            };
        if torn {
            // The torn bytes: the data left, or as far as the bad frame's
            // length reaches into what follows (zeros included).
            let len = buf
                .get(off..off + 4)
                .map_or(0, |h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize);
            let extent = (off + FRAME_HEADER).saturating_add(len).min(buf.len());
            out.torn_bytes = (extent.max(tail_end) - off) as u64;
            return Ok(out);
        }
        let why = if whole {
            "; its checksum matches, so it was written whole (not torn by a crash)".to_owned()
        } else if !tail_allowed {
            "; later segments hold data, so this one was whole when the writer left it".to_owned()
        } else if out.version == 1 {
            String::new()
        } else {
            let (x, at) = sync_marks_in(buf, off, tail_end + MARK_FRAME)
                .filter(|&(x, _)| x > out.synced_through)
                .unwrap_or((out.synced_through, 0));
            if at > 0 {
                format!("; the sync mark at byte {at} says the data up to byte {x} was durable")
            } else {
                format!("; a sync mark says the data up to byte {x} was durable")
            }
        };
        if !salvage {
            return Err(Bad {
                offset: off as u64,
                reason: format!("{reason}{why}"),
            });
        }
        // Salvage: find the next offset where a whole, valid frame starts.
        let start = off;
        let next = next_frame(buf, off + 1, tail_end, buf.len()).unwrap_or(tail_end);
        out.skipped.push((start as u64, next as u64, reason));
        off = next;
        sealed = false;
    }
    out.sealed = sealed;
    if out.version >= 2 && !tail_allowed && !sealed {
        let reason = format!(
            "segment ends at byte {} without the seal the writer leaves before moving on: it was cut short",
            out.valid_end
        );
        if !salvage {
            return Err(Bad {
                offset: out.valid_end,
                reason,
            });
        }
        out.skipped.push((out.valid_end, out.valid_end, reason));
    }
    Ok(out)
}

/// The version-1 rule: a bad frame at `off` is a torn tail when its length
/// reaches past the data or it sits in the last [`TORN_WINDOW`] bytes, and
/// no whole record starts in the window after it.
fn v1_tail(buf: &[u8], off: usize, tail_end: usize) -> bool {
    let len = buf
        .get(off..off + 4)
        .map_or(0, |h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize);
    let reaches_end = off + FRAME_HEADER + len >= tail_end;
    (reaches_end || tail_end - off <= TORN_WINDOW)
        && next_frame(buf, off + 1, off + 1 + TORN_WINDOW, off + 2 * TORN_WINDOW).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(buf: &mut Vec<u8>, key: &str, value: &[u8]) {
        let mut scratch = Vec::new();
        let e = Effect::HSet {
            key: key.as_bytes(),
            pairs: vec![(b"f", value)],
        };
        let len = record::encode(&e, &mut scratch).unwrap();
        buf.extend_from_slice(&scratch[..len]);
    }

    fn segment_v(magic: &[u8; 8], n: usize) -> (Vec<u8>, Vec<usize>) {
        let mut buf = magic.to_vec();
        let mut bounds = vec![buf.len()];
        for i in 0..n {
            push(&mut buf, &format!("key:{i}"), b"some value");
            bounds.push(buf.len());
        }
        (buf, bounds)
    }

    fn segment(n: usize) -> (Vec<u8>, Vec<usize>) {
        segment_v(SEGMENT_MAGIC_V1, n)
    }

    fn count(buf: &[u8], last: bool) -> Result<SegmentScan, Bad> {
        scan(buf, last, false, |_| {})
    }

    fn sync_mark(buf: &mut Vec<u8>) {
        let at = buf.len() as u64;
        buf.extend_from_slice(&record::mark(MARK_SYNCED, at));
    }

    fn seal(buf: &mut Vec<u8>) {
        let at = buf.len() as u64;
        buf.extend_from_slice(&record::mark(MARK_SEAL, at));
    }

    #[test]
    fn reserved_zeros_after_the_records_are_a_clean_end() {
        for magic in [SEGMENT_MAGIC_V1, SEGMENT_MAGIC] {
            let (mut buf, bounds) = segment_v(magic, 5);
            let mut end = *bounds.last().unwrap();
            if magic == SEGMENT_MAGIC {
                seal(&mut buf);
                end = buf.len();
            }
            buf.resize(buf.len() + 100_000, 0);
            for last in [true, false] {
                let s = count(&buf, last).unwrap();
                assert_eq!((s.records, s.torn_bytes), (5, 0));
                assert_eq!(s.valid_end, end as u64);
            }
        }
    }

    #[test]
    fn a_record_torn_inside_reserved_zeros_is_a_torn_tail() {
        for magic in [SEGMENT_MAGIC_V1, SEGMENT_MAGIC] {
            let (full, bounds) = segment_v(magic, 5);
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
                // When a later segment holds data the same bytes are damage.
                assert_eq!(count(&v, false).unwrap_err().offset, start as u64);
            }
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

    /// Finding 4: damage just before a record of megabytes. The sync mark
    /// after the big record makes it damage whatever the sizes.
    #[test]
    fn damage_before_a_huge_record_is_damage_when_a_later_mark_vouches_for_it() {
        let mut buf = SEGMENT_MAGIC.to_vec();
        push(&mut buf, "a", b"1");
        let at = buf.len();
        push(&mut buf, "b", b"2");
        push(&mut buf, "big", &vec![b'x'; 2_600_000]);
        push(&mut buf, "c", b"3");
        sync_mark(&mut buf);
        buf[at] ^= 0x40;
        let bad = count(&buf, true).unwrap_err();
        assert_eq!(bad.offset, at as u64);
        assert!(bad.reason.contains("sync mark"), "{}", bad.reason);
        let s = scan(&buf, true, true, |_| {}).unwrap();
        assert_eq!(
            s.records, 3,
            "salvage keeps the big record and what follows"
        );
        assert_eq!(s.skipped.len(), 1);
    }

    /// Finding 10: a power cut leaves unsynced pages as zeros in any order.
    /// Past the last sync mark, the first gap is the end of the log.
    #[test]
    fn zero_gaps_after_the_last_sync_mark_are_a_torn_tail_even_in_salvage() {
        let mut buf = SEGMENT_MAGIC.to_vec();
        push(&mut buf, "a", b"1");
        sync_mark(&mut buf);
        let synced = buf.len();
        for i in 0..50 {
            push(&mut buf, &format!("k{i}"), &[b'v'; 100]);
        }
        let gap = synced + 700;
        // The gap starts inside a record; whole records follow it.
        buf[gap..gap + 300].fill(0);
        for salvage in [false, true] {
            let mut n = 0;
            let s = scan(&buf, true, salvage, |_| n += 1).unwrap();
            assert!(s.torn_bytes > 0);
            assert!(s.valid_end as usize <= gap);
            assert!(s.skipped.is_empty());
            assert_eq!(n, s.records);
        }
        // The same gap before a sync mark that covers it is damage.
        let mut marked = buf.clone();
        sync_mark(&mut marked);
        assert!(count(&marked, true).is_err());
    }

    #[test]
    fn a_segment_left_for_the_next_must_end_with_its_seal() {
        let (mut buf, bounds) = segment_v(SEGMENT_MAGIC, 5);
        // Cut at a record boundary: whole records, but no seal.
        let cut = buf[..bounds[3]].to_vec();
        let bad = count(&cut, false).unwrap_err();
        assert_eq!(bad.offset, bounds[3] as u64);
        assert!(bad.reason.contains("seal"), "{}", bad.reason);
        // As the last segment the same bytes are a log that simply ends.
        assert_eq!(count(&cut, true).unwrap().records, 3);
        seal(&mut buf);
        assert_eq!(count(&buf, false).unwrap().records, 5);
    }

    /// Finding 11: a record with a good checksum that does not decode (here
    /// a pair count of 20 million in a few bytes) is damage, never a tail.
    #[test]
    fn a_whole_frame_that_does_not_decode_is_damage_even_at_the_end() {
        let mut buf = SEGMENT_MAGIC.to_vec();
        push(&mut buf, "a", b"1");
        let at = buf.len();
        let payload = [1u8, 0, 1, b'k', 0xfc, 0x00, 0x2d, 0x31, 0x01];
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        buf.extend_from_slice(&payload);
        let bad = count(&buf, true).unwrap_err();
        assert_eq!(bad.offset, at as u64);
        assert!(bad.reason.contains("LimitExceeded"), "{}", bad.reason);
        assert!(bad.reason.contains("written whole"), "{}", bad.reason);
    }

    #[test]
    fn a_segment_shorter_than_its_header_is_a_torn_creation_only_at_the_end() {
        for n in 0..8 {
            let s = count(&SEGMENT_MAGIC[..n], true).unwrap();
            assert!(s.torn_header);
            assert_eq!(s.valid_end, 8);
            assert!(count(&SEGMENT_MAGIC[..n], false).is_err());
        }
        assert!(count(&[0u8; 4096], true).unwrap().torn_header);
    }
}
