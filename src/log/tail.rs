//! [`SegmentTail`]: reads a log segment that another process may still be
//! writing, frame by frame from where it stopped, with `pread` (never a
//! mapping: the writer may cut the file it closes).
//!
//! What the writer has copied into the segment becomes visible in pieces
//! and in order, so the first frame that is not whole (zeros, cut short,
//! a checksum that does not match yet) is where a reader stops: the rest
//! is "not written yet" and is read again next time. Only the proofs of
//! docs/FORMAT.md turn such a frame into damage: a sync mark in the
//! segment vouching for a byte past it ([`SegmentTail::vouched_past`]) or
//! a later segment holding data (the caller looks). Because the proof was
//! written after the frame was whole, a frame that is still bad when read
//! again after the proof was seen is damage, not a race with the writer.
//! A frame whose checksum matches but whose contents make no sense was
//! written whole, and is damage at once.
//!
//! Version-1 segments (no marks) are never written by a current writer: the
//! first visit checks one by the version-1 rule (`reader::scan`) and reads
//! it whole.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::reader::{self, classify, frame_at, sync_marks_at, Bad, Frame};
use super::record::{FRAME_HEADER, MARK_FRAME, MAX_PAYLOAD, SEGMENT_MAGIC, SEGMENT_MAGIC_V1};
use crate::keyspace::Effect;

/// Bytes read at a time while following (grown for a bigger frame, and
/// while a backlog keeps filling the buffer).
const FIRST_CHUNK: usize = 16 << 10;
/// The most a backlog grows a read to.
const MAX_CHUNK: usize = 4 << 20;

/// Why [`SegmentTail::advance`] stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The segment's seal was read: the log goes on in the next segment.
    Sealed,
    /// No whole frame at the current offset yet. `bad` says what is there
    /// when it is not just the end of the bytes written (zeros, or the end
    /// of the file): a frame cut short or failing its checksum.
    Pending { bad: Option<String> },
    /// The offset reached the `limit` given.
    Limit,
    /// `max_records` records were handed out.
    Budget,
}

/// A segment being followed: the file, and where the next frame starts.
pub(crate) struct SegmentTail {
    number: u64,
    path: PathBuf,
    file: File,
    offset: u64,
    /// 0 until the header has been read, then 1 or 2.
    version: u8,
    /// The highest offset a sync mark read so far vouches for.
    synced_through: u64,
    sealed: bool,
    /// A version-1 segment was read whole.
    v1_read: bool,
    buf: Vec<u8>,
    chunk: usize,
}

fn io_bad(offset: u64, what: &str, e: &std::io::Error) -> Bad {
    Bad {
        offset,
        reason: format!("{what}: {e}"),
    }
}

impl SegmentTail {
    /// Follows segment `number` (the file `path`, open for reading) from
    /// its start.
    pub(crate) fn new(number: u64, path: PathBuf, file: File) -> SegmentTail {
        SegmentTail {
            number,
            path,
            file,
            offset: 0,
            version: 0,
            synced_through: 0,
            sealed: false,
            v1_read: false,
            buf: Vec::new(),
            chunk: FIRST_CHUNK,
        }
    }

    /// A second reader of the same segment, standing where this one does
    /// (to look ahead without moving this one).
    pub(crate) fn try_clone(&self) -> std::io::Result<SegmentTail> {
        Ok(SegmentTail {
            number: self.number,
            path: self.path.clone(),
            file: self.file.try_clone()?,
            offset: self.offset,
            version: self.version,
            synced_through: self.synced_through,
            sealed: self.sealed,
            v1_read: self.v1_read,
            buf: Vec::new(),
            chunk: FIRST_CHUNK,
        })
    }

    /// The segment's number.
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// Reads on past the seal just read: no segment came after it (a
    /// switch failed after sealing), so the log goes on here.
    pub(crate) fn read_past_seal(&mut self) {
        self.sealed = false;
    }

    /// The segment's file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Where the next frame starts (the header's end before it was read).
    pub(crate) fn offset(&self) -> u64 {
        self.offset.max(SEGMENT_MAGIC.len() as u64)
    }

    /// The segment's format version (0 before its header was read).
    pub(crate) fn version(&self) -> u8 {
        self.version
    }

    /// The file's length now.
    pub(crate) fn file_len(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Reads up to `want` bytes at the offset into the buffer; returns how
    /// many were read (fewer only at the end of the file).
    fn fill(&mut self, want: usize) -> std::io::Result<usize> {
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        let mut got = 0;
        while got < want {
            match self
                .file
                .read_at(&mut self.buf[got..want], self.offset + got as u64)
            {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    /// Reads the header: `Ok(false)` when it is not there yet.
    fn header(&mut self) -> Result<bool, Bad> {
        let n = self
            .fill(SEGMENT_MAGIC.len())
            .map_err(|e| io_bad(0, "reading", &e))?;
        let h = &self.buf[..n];
        if h == SEGMENT_MAGIC {
            self.version = 2;
        } else if h == SEGMENT_MAGIC_V1 {
            self.version = 1;
        } else if h.iter().zip(SEGMENT_MAGIC).all(|(&a, &b)| a == b || a == 0) {
            // Short, or zeros where the header goes: being created.
            return Ok(false);
        } else {
            return Err(Bad {
                offset: 0,
                reason: format!(
                    "bad segment header {:?} (expected {:?})",
                    String::from_utf8_lossy(h),
                    String::from_utf8_lossy(SEGMENT_MAGIC)
                ),
            });
        }
        self.offset = SEGMENT_MAGIC.len() as u64;
        Ok(true)
    }

    /// Hands every whole record after the offset to `f` (the effect, its
    /// payload, and the offsets where its frame starts and ends), in
    /// order, until the seal, a frame that is not whole yet, `limit` or
    /// `max_records`. A frame that is written whole but bad is an error;
    /// the offset stays before it.
    pub(crate) fn advance(
        &mut self,
        limit: Option<u64>,
        max_records: u64,
        mut f: impl FnMut(Effect<'_>, &[u8], u64, u64),
    ) -> Result<Stop, Bad> {
        if self.sealed {
            return Ok(Stop::Sealed);
        }
        if self.version == 0 && !self.header()? {
            return Ok(Stop::Pending { bad: None });
        }
        if self.version == 1 {
            return self.advance_v1(f);
        }
        let mut records = 0u64;
        loop {
            if limit.is_some_and(|l| self.offset >= l) {
                return Ok(Stop::Limit);
            }
            let want = self.chunk;
            let n = self
                .fill(want)
                .map_err(|e| io_bad(self.offset, "reading", &e))?;
            let data = &self.buf[..n];
            let mut at = 0usize;
            let mut grow_to = 0usize;
            let mut stop = None;
            while at < n {
                let abs = self.offset + at as u64;
                if limit.is_some_and(|l| abs >= l) {
                    stop = Some(Stop::Limit);
                    break;
                }
                if records >= max_records {
                    stop = Some(Stop::Budget);
                    break;
                }
                match frame_at(data, at) {
                    Ok(Some((end, payload))) => match classify(payload, abs as usize) {
                        Ok(Frame::Record(e)) => {
                            f(e, payload, abs, self.offset + end as u64);
                            records += 1;
                            at = end;
                        }
                        Ok(Frame::Synced(x)) => {
                            self.synced_through = self.synced_through.max(x);
                            at = end;
                        }
                        Ok(Frame::Seal) => {
                            at = end;
                            self.sealed = true;
                            stop = Some(Stop::Sealed);
                            break;
                        }
                        Err(reason) => {
                            self.offset = abs;
                            return Err(Bad {
                                offset: abs,
                                reason: format!(
                                    "{reason}; its checksum matches, so it was written whole (not torn by a crash)"
                                ),
                            });
                        }
                    },
                    Ok(None) if n < want => {
                        // The file ends inside this frame.
                        stop = Some(Stop::Pending {
                            bad: (data[at..].iter().any(|&b| b != 0))
                                .then(|| "record cut short".to_owned()),
                        });
                        break;
                    }
                    Ok(None) => {
                        // The buffer ends inside this frame: read again
                        // from it, with room for the whole frame.
                        let len = data
                            .get(at..at + 4)
                            .map_or(0, |h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize);
                        grow_to = FRAME_HEADER + len;
                        break;
                    }
                    Err(reason) => {
                        let zeros = data.get(at..at + 4).is_some_and(|h| h == [0; 4]);
                        stop = Some(Stop::Pending {
                            bad: (!zeros).then_some(reason),
                        });
                        break;
                    }
                }
            }
            self.offset += at as u64;
            match stop {
                Some(s) => {
                    if matches!(s, Stop::Pending { .. }) {
                        self.chunk = FIRST_CHUNK;
                    }
                    return Ok(s);
                }
                None if n < want && at == n => {
                    self.chunk = FIRST_CHUNK;
                    return Ok(Stop::Pending { bad: None });
                }
                None => {}
            }
            if grow_to > 0 {
                // Bound what a length read from the file may make us
                // allocate by what the file holds.
                let len = self
                    .file_len()
                    .map_err(|e| io_bad(self.offset, "reading size of", &e))?;
                if grow_to > MAX_PAYLOAD + FRAME_HEADER || self.offset + grow_to as u64 > len {
                    return Ok(Stop::Pending {
                        bad: Some("record cut short".to_owned()),
                    });
                }
                self.chunk = self.chunk.max(grow_to);
            } else if at == n {
                // A backlog: read more at a time.
                self.chunk = (self.chunk * 2).min(MAX_CHUNK).max(self.chunk);
            }
        }
    }

    /// A version-1 segment, checked and read whole on the first visit
    /// (a current writer never appends to one).
    fn advance_v1(&mut self, mut f: impl FnMut(Effect<'_>, &[u8], u64, u64)) -> Result<Stop, Bad> {
        let header = SEGMENT_MAGIC_V1.len() as u64;
        if self.v1_read {
            return Ok(Stop::Pending { bad: None });
        }
        let len = self
            .file_len()
            .map_err(|e| io_bad(0, "reading size of", &e))?;
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        self.file
            .read_exact_at(&mut buf, 0)
            .map_err(|e| io_bad(0, "reading", &e))?;
        let scan = reader::scan(&buf, true, false, |_| {})?;
        let mut at = header as usize;
        while (at as u64) < scan.valid_end {
            let Ok(Some((end, payload))) = frame_at(&buf, at) else {
                break;
            };
            if let Ok(Frame::Record(e)) = classify(payload, at) {
                f(e, payload, at as u64, end as u64);
            }
            at = end;
        }
        self.offset = scan.valid_end.max(header);
        self.v1_read = true;
        Ok(Stop::Pending { bad: None })
    }

    /// What proves the frame at the offset was complete, if anything in
    /// this segment does: a sync mark (read so far, or anywhere after the
    /// offset) vouching for a byte past it. Reads the rest of the file.
    pub(crate) fn vouched_past(&self) -> std::io::Result<Option<String>> {
        let at = self.offset();
        if self.synced_through > at {
            return Ok(Some(format!(
                "a sync mark says the data up to byte {} was durable",
                self.synced_through
            )));
        }
        let len = self.file_len()?;
        const STEP: u64 = 4 << 20;
        // The frame's own bytes cannot vouch for it: a record whose value
        // holds a mark's shape, copied in part, would otherwise read as
        // damage. Marks are looked for past the extent its length word
        // declares (when that is possible; a damaged length word is still
        // found by the marks and the segments that follow).
        let mut word = [0u8; 4];
        let declared = match self.file.read_exact_at(&mut word, at) {
            Ok(()) => u64::from(u32::from_le_bytes(word)),
            Err(_) => 0,
        };
        let mut from = if (1..=MAX_PAYLOAD as u64).contains(&declared) {
            at + FRAME_HEADER as u64 + declared
        } else {
            at
        };
        let mut buf = Vec::new();
        while from < len {
            let to = (from + STEP + MARK_FRAME as u64).min(len);
            buf.resize((to - from) as usize, 0);
            self.file.read_exact_at(&mut buf, from)?;
            if reader::data_end(&buf) == 0 {
                from = to;
                continue;
            }
            if let Some((x, pos)) = sync_marks_at(&buf, from, 0, buf.len()) {
                if x > at {
                    return Ok(Some(format!(
                        "the sync mark at byte {} says the data up to byte {x} was durable",
                        from + pos as u64
                    )));
                }
            }
            from += STEP;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::{self, MARK_SEAL, MARK_SYNCED};
    use std::io::Write;

    fn frame(key: &str, value: &[u8]) -> Vec<u8> {
        let e = Effect::HSet {
            key: key.as_bytes(),
            pairs: vec![(b"f", value)],
        };
        let mut buf = Vec::new();
        let n = record::encode(&e, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    fn tail_of(path: &Path) -> SegmentTail {
        SegmentTail::new(1, path.to_path_buf(), File::open(path).unwrap())
    }

    fn keys(t: &mut SegmentTail) -> (Vec<String>, Stop) {
        let mut out = Vec::new();
        let stop = t
            .advance(None, u64::MAX, |e, _, _, _| {
                if let Effect::HSet { key, .. } = e {
                    out.push(String::from_utf8_lossy(key).into_owned());
                }
            })
            .unwrap();
        (out, stop)
    }

    /// A segment appended a byte at a time: every prefix hands out exactly
    /// the whole records in it, never an error, and the rest arrives later.
    #[test]
    fn every_prefix_of_a_growing_segment_gives_its_whole_records() {
        let mut bytes = SEGMENT_MAGIC.to_vec();
        let mut ends = Vec::new();
        for i in 0..6 {
            bytes.extend(frame(&format!("k{i}"), &vec![b'v'; i * 40]));
            ends.push(bytes.len());
            if i == 2 {
                let at = bytes.len() as u64;
                bytes.extend(record::mark(MARK_SYNCED, at));
            }
        }
        let at = bytes.len() as u64;
        bytes.extend(record::mark(MARK_SEAL, at));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log-000001.aof");
        let mut w = File::create(&path).unwrap();
        let mut t = tail_of(&path);
        let mut seen: Vec<String> = Vec::new();
        for (i, b) in bytes.iter().enumerate() {
            w.write_all(&[*b]).unwrap();
            let (got, stop) = keys(&mut t);
            seen.extend(got);
            let whole = ends.iter().filter(|&&e| e <= i + 1).count();
            assert_eq!(seen.len(), whole, "after {} bytes", i + 1);
            if i + 1 == bytes.len() {
                assert_eq!(stop, Stop::Sealed);
            } else {
                assert!(matches!(stop, Stop::Pending { .. }), "{stop:?}");
            }
        }
        assert_eq!(seen, ["k0", "k1", "k2", "k3", "k4", "k5"]);
    }

    /// Reserved zeros after the records are the end, and a record written
    /// into them later is read.
    #[test]
    fn zeros_are_the_end_until_a_record_lands_in_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log-000001.aof");
        let mut bytes = SEGMENT_MAGIC.to_vec();
        bytes.extend(frame("a", b"1"));
        let end = bytes.len();
        bytes.resize(end + 100_000, 0);
        std::fs::write(&path, &bytes).unwrap();
        let mut t = tail_of(&path);
        assert_eq!(
            keys(&mut t),
            (vec!["a".into()], Stop::Pending { bad: None })
        );
        assert_eq!(t.offset(), end as u64);
        let f = frame("b", b"2");
        bytes[end..end + f.len()].copy_from_slice(&f);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            keys(&mut t),
            (vec!["b".into()], Stop::Pending { bad: None })
        );
        assert!(t.vouched_past().unwrap().is_none());
    }

    /// A frame bigger than the read chunk is read whole.
    #[test]
    fn a_record_bigger_than_a_chunk_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log-000001.aof");
        let mut bytes = SEGMENT_MAGIC.to_vec();
        bytes.extend(frame("small", b"1"));
        bytes.extend(frame("big", &vec![b'x'; 3 * FIRST_CHUNK]));
        bytes.extend(frame("after", b"2"));
        std::fs::write(&path, &bytes).unwrap();
        let mut t = tail_of(&path);
        assert_eq!(keys(&mut t).0, ["small", "big", "after"]);
    }

    /// A bad frame with a sync mark after it: the mark proves it complete.
    #[test]
    fn a_sync_mark_past_a_bad_frame_vouches_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log-000001.aof");
        let mut bytes = SEGMENT_MAGIC.to_vec();
        bytes.extend(frame("a", b"1"));
        let bad_at = bytes.len();
        bytes.extend(frame("b", b"2"));
        bytes.extend(frame("c", b"3"));
        let at = bytes.len() as u64;
        bytes.extend(record::mark(MARK_SYNCED, at));
        bytes[bad_at + 10] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let mut t = tail_of(&path);
        let (got, stop) = keys(&mut t);
        assert_eq!(got, ["a"]);
        assert!(matches!(stop, Stop::Pending { bad: Some(_) }), "{stop:?}");
        assert_eq!(t.offset(), bad_at as u64);
        let proof = t.vouched_past().unwrap().expect("the mark vouches");
        assert!(proof.contains("sync mark"), "{proof}");
    }

    /// A frame with a good checksum that does not decode is damage at once.
    #[test]
    fn a_whole_frame_that_does_not_decode_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log-000001.aof");
        let mut bytes = SEGMENT_MAGIC.to_vec();
        bytes.extend(frame("a", b"1"));
        let at = bytes.len();
        let payload = [1u8, 0, 1, b'k', 0xfc, 0x00, 0x2d, 0x31, 0x01];
        bytes.extend((payload.len() as u32).to_le_bytes());
        bytes.extend(crc32fast::hash(&payload).to_le_bytes());
        bytes.extend(payload);
        std::fs::write(&path, &bytes).unwrap();
        let mut t = tail_of(&path);
        let err = t.advance(None, u64::MAX, |_, _, _, _| {}).unwrap_err();
        assert_eq!(err.offset, at as u64);
        assert!(err.reason.contains("written whole"), "{}", err.reason);
    }
}
