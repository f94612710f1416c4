//! The snapshot file format: the layout below, its header ([`Header`]) and
//! writing it ([`SnapshotWriter`], [`encode_entry`]); reading it back is
//! `decode`'s ([`read`], [`read_presized`]).
//!
//! ```text
//! "HKVSNAP1"                                     magic + format version
//! [header_len u32][header_crc u32][header]       bincode 2 of `Header`
//! sections, each [type u8][len u32][crc u32][body]   crc = CRC-32 of body
//!   type 1 KEYS:     body = entries back to back
//!   type 3 KEYS_LZ4: body = [entries length u32][LZ4 block of the entries]
//!   type 4 SHAPES:   body = [count varint] then per shape
//!                    [field count varint][length varint][field elements]
//!                    (at most one, before END; version 2)
//!   type 2 END:      body = [keys u64][key sections u64][file crc u32]
//! ```
//!
//! An entry is one key:
//!
//! ```text
//! [encoding u8][flags u8: bit 0 = has TTL]
//! [key length varint][key][TTL: i64 LE, Unix ms, if flagged]
//! 1 compact:    [buffer length varint][the compact buffer, verbatim]
//! 2 dict:       [pair count varint] then [len varint][field][len varint][value]...
//! 3 compact_ex: [buffer length varint][the field/value/TTL triples, verbatim]
//! 4 dict_ex:    [count varint] then [len varint][field][len varint][value]
//!               [field TTL: i64 LE, 0 = none]...
//! 5 shaped:     [shape number varint][values length varint][value elements]
//!               (a compact hash whose fields are the SHAPES section's
//!               shape of that number, in order; version 2)
//! ```
//!
//! Varints are LEB128 (7 bits per byte, low first, at most 10 bytes). The
//! file checksum in END is the CRC-32 of the header CRC followed by every
//! KEYS, KEYS_LZ4 and SHAPES section's CRC (LE), in file order, so it covers every byte through the section CRCs
//! without a second pass over the data. Nothing may follow END.

mod decode;

use std::fs::File;
use std::io::Write;

use std::collections::HashMap;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::buf::Out;
use crate::hash::shape::Shape;
use crate::hash::HashRef;
use crate::options::Options;
pub(crate) use decode::{
    hash_from_pairs, map_file, read, read_file, read_file_presized, read_presized, Batch, Entry,
    EntryHash,
};

/// File magic: "HKVSNAP" + format version.
pub(crate) const MAGIC: &[u8; 8] = b"HKVSNAP1";
const SECTION_KEYS: u8 = 1;
const SECTION_END: u8 = 2;
const SECTION_KEYS_LZ4: u8 = 3;
const SECTION_SHAPES: u8 = 4;
/// LZ4 expands data at most about 255 times: a larger claimed length is
/// damage, refused before anything is allocated.
const LZ4_MAX_RATIO: usize = 255;
const SECTION_HEADER: usize = 9;
/// Sections are cut at about this size (a single bigger key makes a bigger
/// one).
pub(crate) const SECTION_TARGET: usize = 256 << 10;
/// Largest section body accepted when reading.
const MAX_SECTION: usize = u32::MAX as usize;
const ENC_COMPACT: u8 = 1;
const ENC_DICT: u8 = 2;
const ENC_COMPACT_EX: u8 = 3;
const ENC_DICT_EX: u8 = 4;
const ENC_SHAPED: u8 = 5;
/// The format version written: 2 added packed hex values, SHAPES and
/// shaped entries. Version 1 files (without them) still load.
const VERSION: u32 = 2;
const FLAG_TTL: u8 = 1;

/// What a snapshot says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Header {
    /// Format version of the entries (1 or 2).
    pub(crate) version: u32,
    /// When the snapshot's point in time was taken (Unix ms).
    pub(crate) created_ms: i64,
    /// The thresholds in force when it was written (loading chooses
    /// encodings under the current ones; these are for `info`).
    pub(crate) hash_max_listpack_entries: u64,
    /// See `hash_max_listpack_entries`.
    pub(crate) hash_max_listpack_value: u64,
    /// The first log segment written after the snapshot's point in time (0
    /// for a standalone snapshot file).
    pub(crate) next_segment: u64,
}

impl Header {
    pub(crate) fn new(opts: &Options, next_segment: u64) -> Header {
        Header {
            version: VERSION,
            created_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            hash_max_listpack_entries: opts.hash_max_listpack_entries as u64,
            hash_max_listpack_value: opts.hash_max_listpack_value as u64,
            next_segment,
        }
    }
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<4096>()
}

fn push_varint(out: &mut impl Out, mut v: u64) {
    while v >= 0x80 {
        out.byte((v as u8) | 0x80);
        v >>= 7;
    }
    out.byte(v as u8);
}

/// Most bytes an entry adds to its key and compact buffer (or values):
/// encoding, flags, up to three varints, a TTL.
pub(crate) const MAX_ENTRY_OVERHEAD: usize = 2 + 10 + 8 + 10 + 10;

/// The shapes a snapshot's entries refer to, numbered as they are first
/// met, written once in its SHAPES section.
#[derive(Default)]
pub(crate) struct SnapShapes {
    /// Number by the address of a live shape's fields (confirmed by
    /// comparing them: a shape freed meanwhile may be replaced at the same
    /// address), then by content.
    by_addr: HashMap<usize, u32>,
    by_fields: HashMap<Box<[u8]>, u32>,
    list: Vec<(Box<[u8]>, usize)>,
}

impl SnapShapes {
    /// The number of `shape` in this snapshot.
    fn number(&mut self, shape: &Shape) -> u32 {
        let addr = shape.fields().as_ptr() as usize;
        if let Some(&n) = self.by_addr.get(&addr) {
            if *self.list[n as usize].0 == *shape.fields() {
                return n;
            }
        }
        let n = match self.by_fields.get(shape.fields()) {
            Some(&n) => n,
            None => {
                let n = self.list.len() as u32;
                self.list.push((shape.fields().into(), shape.len()));
                self.by_fields.insert(shape.fields().into(), n);
                n
            }
        };
        self.by_addr.insert(addr, n);
        n
    }

    /// The SHAPES section body; None when no entry used a shape.
    pub(crate) fn section_body(&self) -> Option<Vec<u8>> {
        if self.list.is_empty() {
            return None;
        }
        let mut body = Vec::new();
        push_varint(&mut body, self.list.len() as u64);
        for (fields, len) in &self.list {
            push_varint(&mut body, *len as u64);
            push_varint(&mut body, fields.len() as u64);
            body.extend_from_slice(fields);
        }
        Some(body)
    }
}

/// Appends the entry for `key` to `out`; a shaped hash refers to its shape
/// by its number in `shapes`.
pub(crate) fn encode_entry(
    out: &mut impl Out,
    key: &[u8],
    hash: HashRef<'_>,
    ttl: Option<i64>,
    shapes: &Mutex<SnapShapes>,
) {
    let enc = match hash {
        HashRef::Compact(_) => ENC_COMPACT,
        HashRef::Shaped(..) => ENC_SHAPED,
        HashRef::CompactEx(..) => ENC_COMPACT_EX,
        HashRef::Dict(_, None, _) => ENC_DICT,
        HashRef::Dict(_, Some(_), _) => ENC_DICT_EX,
    };
    out.byte(enc);
    out.byte(if ttl.is_some() { FLAG_TTL } else { 0 });
    push_varint(out, key.len() as u64);
    out.put(key);
    if let Some(at) = ttl {
        out.put(&at.to_le_bytes());
    }
    match hash {
        HashRef::Compact(buf) | HashRef::CompactEx(buf, _) => {
            push_varint(out, buf.len() as u64);
            out.put(buf);
        }
        HashRef::Shaped(shape, values) => {
            let n = shapes.lock().number(shape);
            push_varint(out, u64::from(n));
            push_varint(out, values.len() as u64);
            out.put(values);
        }
        HashRef::Dict(d, ttls, _) => {
            push_varint(out, d.len() as u64);
            for (f, v) in d.iter() {
                push_varint(out, f.len() as u64);
                out.put(f);
                push_varint(out, v.len() as u64);
                v.with_bytes(|v| out.put(v));
                if let Some(t) = ttls {
                    out.put(&t.get(f).unwrap_or(0).to_le_bytes());
                }
            }
        }
    }
}

/// Writes a snapshot file section by section.
pub(crate) struct SnapshotWriter {
    file: File,
    file_crc: crc32fast::Hasher,
    keys: u64,
    sections: u64,
    bytes: u64,
    /// Compress KEYS sections.
    compress: bool,
}

impl SnapshotWriter {
    /// Starts the file with its magic and header.
    pub(crate) fn new(
        file: File,
        header: &Header,
        compress: bool,
    ) -> std::io::Result<SnapshotWriter> {
        let body = bincode::serde::encode_to_vec(header, bincode_config())
            .map_err(std::io::Error::other)?;
        let crc = crc32fast::hash(&body);
        let mut w = SnapshotWriter {
            file,
            file_crc: crc32fast::Hasher::new(),
            keys: 0,
            sections: 0,
            bytes: 0,
            compress,
        };
        w.file_crc.update(&crc.to_le_bytes());
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&(body.len() as u32).to_le_bytes());
        head.extend_from_slice(&crc.to_le_bytes());
        head.extend_from_slice(&body);
        w.write(&head)?;
        Ok(w)
    }

    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.file.write_all(b)?;
        self.bytes += b.len() as u64;
        Ok(())
    }

    fn section(&mut self, kind: u8, body: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(body.len())
            .map_err(|_| std::io::Error::other("snapshot section over 4 GiB"))?;
        let crc = crc32fast::hash(body);
        self.file_crc.update(&crc.to_le_bytes());
        let mut head = [0u8; SECTION_HEADER];
        head[0] = kind;
        head[1..5].copy_from_slice(&len.to_le_bytes());
        head[5..9].copy_from_slice(&crc.to_le_bytes());
        self.write(&head)?;
        self.write(body)
    }

    /// Whether KEYS sections are to be compressed.
    pub(crate) fn compresses(&self) -> bool {
        self.compress
    }

    /// Writes `entries` as one section: the KEYS_LZ4 body `packed` (from
    /// [`compress_section`], made before taking whatever lock guards this
    /// writer) when given, else a plain KEYS section.
    pub(crate) fn keys_prepared(
        &mut self,
        entries: &[u8],
        keys: u64,
        packed: Option<&[u8]>,
    ) -> std::io::Result<()> {
        if keys == 0 {
            return Ok(());
        }
        match packed {
            Some(body) => self.section(SECTION_KEYS_LZ4, body)?,
            None => self.section(SECTION_KEYS, entries)?,
        }
        self.keys += keys;
        self.sections += 1;
        Ok(())
    }

    /// Writes the SHAPES section (before END).
    pub(crate) fn shapes(&mut self, body: &[u8]) -> std::io::Result<()> {
        self.section(SECTION_SHAPES, body)
    }

    /// Writes END, fsyncs, and returns (keys, file bytes, time in fsync).
    pub(crate) fn finish(mut self) -> std::io::Result<(u64, u64, std::time::Duration)> {
        let mut body = Vec::with_capacity(20);
        body.extend_from_slice(&self.keys.to_le_bytes());
        body.extend_from_slice(&self.sections.to_le_bytes());
        body.extend_from_slice(&self.file_crc.clone().finalize().to_le_bytes());
        self.section(SECTION_END, &body)?;
        let t = std::time::Instant::now();
        self.file.sync_all()?;
        Ok((self.keys, self.bytes, t.elapsed()))
    }
}

/// The KEYS_LZ4 body for `entries` ([entries length u32][LZ4 block]), or
/// None when LZ4 would save less than an eighth (or the section is over
/// 4 GiB, which the writer then refuses).
pub(crate) fn compress_section(entries: &[u8]) -> Option<Vec<u8>> {
    let raw_len = u32::try_from(entries.len()).ok()?;
    // Incompressible data (random ids, hex, hashes) would cost a whole LZ4
    // pass per section for nothing: a 64 KiB sample decides first.
    if entries.len() > 4 * SAMPLE && !saves_an_eighth(&entries[..SAMPLE]) {
        return None;
    }
    let mut out = vec![0u8; 4 + lz4_flex::block::get_maximum_output_size(entries.len())];
    out[..4].copy_from_slice(&raw_len.to_le_bytes());
    let n = lz4_flex::block::compress_into(entries, &mut out[4..]).ok()?;
    out.truncate(4 + n);
    (out.len() < entries.len() - entries.len() / 8).then_some(out)
}

/// Bytes of a section that [`compress_section`] tries first.
const SAMPLE: usize = 64 << 10;

/// Whether LZ4 saves at least an eighth of `sample`.
fn saves_an_eighth(sample: &[u8]) -> bool {
    let packed = lz4_flex::block::compress(sample);
    packed.len() < sample.len() - sample.len() / 8
}
