//! Writing a Redis RDB file that Redis 7.0+ loads ([`Db::export_rdb`]):
//! magic `REDIS0010`, AUX fields, SELECTDB 0 and RESIZEDB, then per key its
//! EXPIRETIME_MS and the hash as a listpack (type 16) when it fits the
//! compact limits, else as a dict (type 4); EOF and the CRC-64 trailer.
//! Strings are written as Redis writes them: canonical integers fitting 32
//! bits in the integer forms, longer strings LZF-compressed when that pays
//! (unless [`RdbCompression::None`]).

use std::io::Write;
use std::path::Path;

use super::super::Transfer;
use super::{
    crc64, OP_AUX, OP_EOF, OP_EXPIRETIME_MS, OP_RESIZEDB, OP_SELECTDB, TYPE_HASH,
    TYPE_HASH_LISTPACK,
};
use crate::admin::io;
use crate::db::Db;
use crate::error::{CommandError, Error, Result};

/// The RDB version written: 10 loads in Redis 7.0 and later.
const VERSION: &[u8; 9] = b"REDIS0010";

/// Redis's compact limits for the hashes it loads as listpacks.
const LISTPACK_MAX_FIELDS: usize = 512;
const LISTPACK_MAX_VALUE: usize = 64;

/// A writer that keeps the CRC-64 of everything written through it.
struct Crc<'a> {
    out: &'a mut dyn Write,
    crc: u64,
}

impl Crc<'_> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc = crc64(self.crc, bytes);
        self.out.write_all(bytes)
    }
}

/// An RDB length (§2.4 of the RDB notes): 6-bit, 14-bit BE, 32-bit BE or
/// 64-bit BE.
fn len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// An RDB string as Redis's `rdbSaveRawString` writes it with
/// `rdbcompression yes`: a canonical integer that fits 32 bits in the
/// integer forms; else, past 20 bytes, LZF when that saves at least 4
/// bytes; else length and bytes.
fn string_compressed(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    thread_local! {
        /// The compressor's output and hash table, reused.
        static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u32>)> =
            const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    if compress && s.len() > 20 {
        let done = SCRATCH.with(|c| {
            let (z, table) = &mut *c.borrow_mut();
            if !lzf_compress_into(s, s.len() - 4, z, table) {
                return false;
            }
            out.push(0xC3);
            len(out, z.len() as u64);
            len(out, s.len() as u64);
            out.extend_from_slice(z);
            true
        });
        if done {
            return;
        }
    }
    string(out, s);
}

/// An RDB string: a canonical integer that fits 32 bits in Redis's integer
/// forms (as `rdbSaveRawString` writes it), else length and bytes.
fn string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11 {
        // `parse_i64` accepts exactly the canonical renderings (Redis's
        // `string2ll`), the ones Redis integer-encodes.
        if let Some(v) = crate::numeric::parse_i64(s) {
            if let Ok(v) = i8::try_from(v) {
                out.push(0xC0);
                out.push(v as u8);
                return;
            }
            if let Ok(v) = i16::try_from(v) {
                out.push(0xC1);
                out.extend_from_slice(&v.to_le_bytes());
                return;
            }
            if let Ok(v) = i32::try_from(v) {
                out.push(0xC2);
                out.extend_from_slice(&v.to_le_bytes());
                return;
            }
        }
    }
    len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// LZF, as Redis's `lzf_c.c` writes it: literal runs of up to 32 bytes
/// (control byte `len - 1`) and back-references of 3 to 264 bytes within
/// 8 KiB (control `(len - 2) << 5 | off >> 8`, an extra length byte when
/// `len - 2 >= 7`, then `off & 0xff`, where `off` is the distance - 1).
/// Returns `None` when the output would not be shorter than `max`.
#[cfg(test)]
pub(crate) fn lzf_compress(input: &[u8], max: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    lzf_compress_into(input, max, &mut out, &mut Vec::new()).then_some(out)
}

/// [`lzf_compress`] into `out` with `table` as the hash table (both
/// reused across calls); false when the result would not be shorter than
/// `max`.
fn lzf_compress_into(input: &[u8], max: usize, out: &mut Vec<u8>, table: &mut Vec<u32>) -> bool {
    const MAX_OFF: usize = 1 << 13;
    const MAX_REF: usize = (1 << 8) + (1 << 3);
    const MAX_LIT: usize = 1 << 5;
    let n = input.len();
    if n >= u32::MAX as usize {
        return false; // positions are kept as u32
    }
    // A table about the input's size (at most 2^14 entries): filling one
    // of 2^14 for every short string was most of an export's time.
    let hlog = (usize::BITS - n.leading_zeros()).clamp(6, 14);
    out.clear();
    table.clear();
    table.resize(1 << hlog, u32::MAX);
    let hash = |p: usize| {
        let v = u32::from(input[p]) << 16 | u32::from(input[p + 1]) << 8 | u32::from(input[p + 2]);
        (v.wrapping_mul(2_654_435_761) >> (32 - hlog)) as usize
    };
    // Pending literal bytes not yet written (start index, count).
    let mut lit_start = 0usize;
    let mut ip = 0usize;
    let flush_literals = |out: &mut Vec<u8>, from: usize, to: usize| {
        for chunk in input[from..to].chunks(MAX_LIT) {
            out.push((chunk.len() - 1) as u8);
            out.extend_from_slice(chunk);
        }
    };
    while ip + 2 < n {
        let h = hash(ip);
        let r = table[h] as usize;
        table[h] = ip as u32;
        if r != u32::MAX as usize
            && r < ip
            && ip - r - 1 < MAX_OFF
            && input[r..r + 3] == input[ip..ip + 3]
        {
            let off = ip - r - 1;
            let max_len = (n - ip).min(MAX_REF);
            let mut len = 3;
            while len < max_len && input[r + len] == input[ip + len] {
                len += 1;
            }
            flush_literals(out, lit_start, ip);
            let l = len - 2;
            if l < 7 {
                out.push(((l as u8) << 5) | (off >> 8) as u8);
            } else {
                out.push((7 << 5) | (off >> 8) as u8);
                out.push((l - 7) as u8);
            }
            out.push(off as u8);
            ip += len;
            lit_start = ip;
        } else {
            ip += 1;
        }
        if out.len() >= max {
            return false;
        }
    }
    flush_literals(out, lit_start, n);
    out.len() < max
}

/// A listpack element: the compact encoding's element (the same bytes as
/// listpack's, smallest encoding, integers for canonical integers; see
/// `hash::compact`), then the backlen listpack adds.
fn listpack_entry(out: &mut Vec<u8>, s: &[u8]) {
    let start = out.len();
    crate::hash::compact::push_elem(out, s);
    backlen(out, out.len() - start);
}

/// The backlen of an entry of `l` bytes (§1.3), with Redis's widths.
fn backlen(out: &mut Vec<u8>, l: usize) {
    let l = l as u64;
    let width = match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    };
    // Most significant group first; every byte after the first has bit 7.
    for i in (0..width).rev() {
        let group = ((l >> (7 * i)) & 0x7F) as u8;
        out.push(if i == width - 1 { group } else { group | 0x80 });
    }
}

/// A listpack of `elements`.
#[cfg(test)]
fn listpack<'a>(elements: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut lp = Vec::new();
    listpack_into(&mut lp, elements);
    lp
}

/// A listpack of `elements` into `lp` (cleared first; reused across keys).
fn listpack_into<'a>(lp: &mut Vec<u8>, elements: impl Iterator<Item = &'a [u8]>) {
    lp.clear();
    lp.extend_from_slice(&[0u8; 6]);
    let mut count = 0usize;
    for e in elements {
        listpack_entry(lp, e);
        count += 1;
    }
    lp.push(0xFF);
    let total = lp.len() as u32;
    lp[0..4].copy_from_slice(&total.to_le_bytes());
    lp[4..6].copy_from_slice(&(count.min(65535) as u16).to_le_bytes());
}

/// Whether the compact hash `buf` is within Redis's listpack limits (at
/// most 512 fields, no element longer than 64 bytes).
fn fits_listpack(buf: &[u8]) -> bool {
    let mut n = 0;
    for (f, v) in crate::hash::compact::pairs(buf) {
        n += 1;
        if n > LISTPACK_MAX_FIELDS || f.len() > LISTPACK_MAX_VALUE || v.len() > LISTPACK_MAX_VALUE {
            return false;
        }
    }
    true
}

/// The listpack of the compact hash `buf` into `lp`: each element's bytes
/// as they are (packed hex as its string), then its backlen. Returns the
/// element count.
fn listpack_from_compact(lp: &mut Vec<u8>, buf: &[u8]) -> usize {
    lp.clear();
    lp.reserve(buf.len() + buf.len() / 4 + 7);
    lp.extend_from_slice(&[0u8; 6]);
    let mut count = 0usize;
    let mut pos = 0;
    while let Some(size) = crate::hash::compact::size_at(buf, pos) {
        let Some(elem) = buf.get(pos..pos + size) else {
            break;
        };
        use crate::hash::compact::{decode_at, HEX_LOWER, HEX_UPPER};
        match decode_at(buf, pos) {
            // Packed hex is hashkv's own: listpack gets the string.
            Some((e, _)) if matches!(elem[0], HEX_LOWER | HEX_UPPER) => {
                listpack_entry(lp, &e.to_bytes());
            }
            _ => {
                lp.extend_from_slice(elem);
                backlen(lp, size);
            }
        }
        count += 1;
        pos += size;
    }
    lp.push(0xFF);
    let total = lp.len() as u32;
    lp[0..4].copy_from_slice(&total.to_le_bytes());
    lp[4..6].copy_from_slice(&(count.min(65535) as u16).to_le_bytes());
    count
}

/// Whether an RDB export compresses strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RdbCompression {
    /// LZF for strings over 20 bytes when it saves space, as Redis does
    /// with `rdbcompression yes` (its default).
    #[default]
    Lzf,
    /// Every string as it is (Redis's `rdbcompression no`).
    None,
}

/// The RDB version an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RdbVersion {
    /// Version 10, loaded by Redis 7.0 and later; cannot hold field TTLs
    /// (an export with any is refused rather than drop them).
    #[default]
    V10,
    /// Version 12, loaded by Redis 7.4 and later: hashes with field TTLs
    /// as types 25 (listpack) and 24 (dict).
    V12,
}

/// How [`Db::export_rdb_to`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RdbExportOptions {
    /// LZF for long strings or not.
    pub compression: RdbCompression,
    /// The RDB version (and so the oldest Redis that loads the file).
    pub version: RdbVersion,
}

/// One shard's live keys, copied out under its read lock (so the lock is
/// held for a copy, not for the encoding and compression): key, field and
/// value bytes back to back.
#[derive(Default)]
struct ShardCopy {
    bytes: Vec<u8>,
    /// (end of field, end of value, TTL (0: none)) per field.
    spans: Vec<(usize, usize, i64)>,
    keys: Vec<KeyCopy>,
}

/// One key of a [`ShardCopy`].
struct KeyCopy {
    /// Its name: `bytes[name.0..name.1]`.
    name: (usize, usize),
    /// Its fields: `spans[fields.0..fields.1]`.
    fields: (usize, usize),
    /// The key's expiry (Unix ms).
    ttl: Option<i64>,
    /// Held as `listpackex`.
    listpackex: bool,
    /// A compact hash within Redis's listpack limits, copied as it is
    /// (`bytes[raw.0..raw.1]`; no spans): its elements are listpack
    /// entries already, short of their backlens.
    raw: Option<(usize, usize)>,
}

impl ShardCopy {
    fn name(&self, k: &KeyCopy) -> &[u8] {
        &self.bytes[k.name.0..k.name.1]
    }

    /// The key's (field, value, TTL) triples in the hash's order.
    fn pairs<'a>(&'a self, k: &KeyCopy) -> impl Iterator<Item = (&'a [u8], &'a [u8], i64)> + 'a {
        let spans = &self.spans[k.fields.0..k.fields.1];
        let mut start = k.name.1;
        spans.iter().map(move |&(fe, ve, t)| {
            let p = (&self.bytes[start..fe], &self.bytes[fe..ve], t);
            start = ve;
            p
        })
    }
}

impl Db {
    /// Copies the live keys of shard `i` into `c`.
    fn copy_shard(&self, i: usize, c: &mut ShardCopy) {
        c.bytes.clear();
        c.spans.clear();
        c.keys.clear();
        let now = crate::options::Now::lazy(&*self.options().clock);
        let shard = self.keyspace().shard_at(i).read();
        shard.for_each_live(&now, |key, h, ttl| {
            let start = c.bytes.len();
            c.bytes.extend_from_slice(key);
            let name = (start, c.bytes.len());
            let first = c.spans.len();
            // A compact hash's pair buffer (a shaped one's joined), copied
            // as it is when it makes a listpack.
            match h {
                crate::hash::HashRef::Compact(buf) => c.bytes.extend_from_slice(buf),
                crate::hash::HashRef::Shaped(s, values) => {
                    crate::hash::shape::join(s.fields(), values, &mut c.bytes);
                }
                _ => {}
            }
            if c.bytes.len() > name.1 && fits_listpack(&c.bytes[name.1..]) {
                c.keys.push(KeyCopy {
                    name,
                    fields: (first, first),
                    ttl,
                    listpackex: false,
                    raw: Some((name.1, c.bytes.len())),
                });
                return;
            }
            c.bytes.truncate(name.1);
            let at = h.now();
            h.for_each_with_ttl(|f, v, t| {
                // Expired fields not yet removed are not exported.
                if t != 0 && t < at {
                    return;
                }
                f.push_to(&mut c.bytes);
                let fe = c.bytes.len();
                v.push_to(&mut c.bytes);
                c.spans.push((fe, c.bytes.len(), t));
            });
            if c.spans.len() == first {
                c.bytes.truncate(start);
                return;
            }
            c.keys.push(KeyCopy {
                name,
                fields: (first, c.spans.len()),
                ttl,
                listpackex: matches!(h, crate::hash::HashRef::CompactEx(..)),
                raw: None,
            });
        });
    }
}

/// One shard's encoded records, with its key and field counts.
type Encoded = (Vec<u8>, u64, u64);

/// The reused buffers of one encoding thread.
#[derive(Default)]
struct Encoder {
    c: ShardCopy,
    texts: Vec<u8>,
    ends: Vec<usize>,
    lp: Vec<u8>,
    buf: Vec<u8>,
}

impl Db {
    /// Appends the records of shard `shard`'s keys to `out`; returns the
    /// keys and fields written.
    fn encode_shard(
        &self,
        shard: usize,
        z: bool,
        v12: bool,
        e: &mut Encoder,
        out: &mut Vec<u8>,
    ) -> Result<(u64, u64)> {
        let Encoder {
            c,
            texts,
            ends,
            lp,
            buf,
        } = e;
        let (mut items, mut fields) = (0u64, 0u64);
        self.copy_shard(shard, c);
        for k in &c.keys {
            let key = c.name(k);
            if let Some((s, e)) = k.raw {
                buf.clear();
                if let Some(at) = k.ttl {
                    buf.push(OP_EXPIRETIME_MS);
                    buf.extend_from_slice(&at.to_le_bytes());
                }
                buf.push(TYPE_HASH_LISTPACK);
                string_compressed(buf, key, z);
                let n = listpack_from_compact(lp, &c.bytes[s..e]);
                string_compressed(buf, lp, z);
                out.extend_from_slice(buf);
                items += 1;
                fields += n as u64 / 2;
                continue;
            }
            let has_ttls = c.pairs(k).any(|p| p.2 != 0);
            if has_ttls && !v12 {
                return Err(Error::Command(CommandError::err(format!(
                    "key '{}' has field TTLs, which RDB version 10 (Redis 7.0) cannot hold; \
                 export with RDB version 12 (Redis 7.4+), or as RESP or JSON lines",
                    String::from_utf8_lossy(key)
                ))));
            }
            buf.clear();
            if let Some(at) = k.ttl {
                buf.push(OP_EXPIRETIME_MS);
                buf.extend_from_slice(&at.to_le_bytes());
            }
            let n = k.fields.1 - k.fields.0;
            let compact = n <= LISTPACK_MAX_FIELDS
                && c.pairs(k).all(|(f, v, _)| {
                    f.len() <= LISTPACK_MAX_VALUE && v.len() <= LISTPACK_MAX_VALUE
                });
            // As Redis writes it: a `listpackex` hash is type 25 even with
            // no TTL left (its minimum then 0); a dict without TTLs type 4.
            let min = c
                .pairs(k)
                .map(|p| p.2)
                .filter(|&t| t != 0)
                .min()
                .or((v12 && compact && k.listpackex).then_some(0));
            match (compact, min) {
                (true, None) => {
                    buf.push(TYPE_HASH_LISTPACK);
                    string_compressed(buf, key, z);
                    listpack_into(lp, c.pairs(k).flat_map(|(f, v, _)| [f, v]));
                    string_compressed(buf, lp, z);
                }
                (true, Some(min)) => {
                    // Triples in listpackex order (TTL fields first, by
                    // expiry), which is the order the hash holds them in.
                    buf.push(TYPE_HASH_LISTPACK_EX);
                    string_compressed(buf, key, z);
                    buf.extend_from_slice(&min.to_le_bytes());
                    texts.clear();
                    ends.clear();
                    for (_, _, t) in c.pairs(k) {
                        crate::numeric::push_i64(texts, t);
                        ends.push(texts.len());
                    }
                    let ttl_texts = ends.iter().scan(0, |start, &end| {
                        let t = &texts[*start..end];
                        *start = end;
                        Some(t)
                    });
                    listpack_into(
                        lp,
                        c.pairs(k)
                            .zip(ttl_texts)
                            .flat_map(|((f, v, _), t)| [f, v, t]),
                    );
                    string_compressed(buf, lp, z);
                }
                (false, None) => {
                    buf.push(TYPE_HASH);
                    string_compressed(buf, key, z);
                    len(buf, n as u64);
                    for (f, v, _) in c.pairs(k) {
                        string_compressed(buf, f, z);
                        string_compressed(buf, v, z);
                    }
                }
                (false, Some(min)) => {
                    // Each TTL relative to the smallest, plus one (0: none).
                    buf.push(TYPE_HASH_METADATA);
                    string_compressed(buf, key, z);
                    buf.extend_from_slice(&min.to_le_bytes());
                    len(buf, n as u64);
                    for (f, v, t) in c.pairs(k) {
                        len(buf, if t == 0 { 0 } else { (t - min + 1) as u64 });
                        string_compressed(buf, f, z);
                        string_compressed(buf, v, z);
                    }
                }
            }
            out.extend_from_slice(buf);
            items += 1;
            fields += n as u64;
        }
        Ok((items, fields))
    }
}

/// Object types of hashes with field TTLs (RDB 12).
const TYPE_HASH_METADATA: u8 = 24;
const TYPE_HASH_LISTPACK_EX: u8 = 25;

impl Db {
    /// Writes every live hash to the file `path` as a Redis RDB file
    /// (version 10, loaded by Redis 7.0 and later; LZF as Redis writes
    /// it), replacing the file only once it is complete and synced.
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// db.hset("user:1", &[("name", "Alice")])?;
    /// let file = dir.path().join("dump.rdb");
    /// let t = db.export_rdb(&file)?;
    /// assert_eq!(t.items, 1);
    /// // redis-server loads this file as its dump.rdb.
    /// assert!(std::fs::read(&file)?.starts_with(b"REDIS0010"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A hash with field TTLs (RDB version 10 cannot hold them: the export
    /// stops rather than drop them; [`Db::export_rdb_to`] with
    /// [`RdbVersion::V12`] writes them), or [`Error::Io`].
    pub fn export_rdb(&self, path: impl AsRef<Path>) -> Result<Transfer> {
        let path = path.as_ref();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".hashkv-tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let f = std::fs::File::create(&tmp).map_err(|e| io("creating RDB export", &tmp, e))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let t = match self.export_rdb_to(&mut w, &RdbExportOptions::default()) {
            Ok(t) => t,
            Err(e) => {
                drop(w);
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let f = w
            .into_inner()
            .map_err(|e| io("writing RDB export", &tmp, e.into_error()))?;
        f.sync_all()
            .map_err(|e| io("syncing RDB export", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("renaming RDB export", path, e))?;
        Ok(t)
    }

    /// Writes every live hash to `out` as a Redis RDB file: compact hashes
    /// as listpacks, the others as dicts, key TTLs as EXPIRETIME_MS; with
    /// [`RdbVersion::V12`], hashes with field TTLs as types 25 and 24.
    ///
    /// # Errors
    /// A hash with field TTLs under [`RdbVersion::V10`], or
    /// [`Error::Io`] when `out` fails.
    pub fn export_rdb_to(&self, out: &mut dyn Write, opts: &RdbExportOptions) -> Result<Transfer> {
        let z = opts.compression == RdbCompression::Lzf;
        let v12 = opts.version == RdbVersion::V12;
        let werr = |e: std::io::Error| io("writing RDB export", Path::new("<output>"), e);
        let mut w = Crc { out, crc: 0 };
        let mut buf = Vec::with_capacity(1 << 16);
        buf.extend_from_slice(if v12 { b"REDIS0012" } else { VERSION });
        for (k, v) in [
            (&b"redis-bits"[..], &b"64"[..]),
            (
                b"ctime",
                self.options()
                    .clock
                    .now_ms()
                    .div_euclid(1000)
                    .to_string()
                    .as_bytes(),
            ),
            (b"hashkv-ver", env!("CARGO_PKG_VERSION").as_bytes()),
        ] {
            buf.push(OP_AUX);
            string_compressed(&mut buf, k, z);
            string_compressed(&mut buf, v, z);
        }
        let keys = self.dbsize()?.max(0) as u64;
        let volatile = self.keyspace().volatile_keys();
        buf.push(OP_SELECTDB);
        len(&mut buf, 0);
        buf.push(OP_RESIZEDB);
        len(&mut buf, keys);
        len(&mut buf, volatile);
        w.put(&buf).map_err(werr)?;
        let mut t = Transfer::default();
        // Shards are copied and encoded on worker threads (LZF is most of
        // the work) and written here in shard order, through the CRC.
        let workers = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, 4);
        let shards = crate::keyspace::SHARDS;
        std::thread::scope(|s| -> Result<()> {
            let mut rxs = Vec::with_capacity(workers);
            for first in 0..workers {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Encoded>>(2);
                rxs.push(rx);
                s.spawn(move || {
                    let mut e = Encoder::default();
                    for shard in (first..shards).step_by(workers) {
                        let mut out = Vec::new();
                        let r = self
                            .encode_shard(shard, z, v12, &mut e, &mut out)
                            .map(|(items, fields)| (out, items, fields));
                        let failed = r.is_err();
                        // A closed channel: the writer stopped.
                        if tx.send(r).is_err() || failed {
                            return;
                        }
                    }
                });
            }
            for shard in 0..shards {
                let (bytes, items, fields) = rxs[shard % workers].recv().map_err(|_| {
                    Error::Command(CommandError::err("internal: an RDB export worker stopped"))
                })??;
                w.put(&bytes).map_err(werr)?;
                t.items += items;
                t.fields += fields;
            }
            Ok(())
        })?;
        w.put(&[OP_EOF]).map_err(werr)?;
        let crc = w.crc;
        w.out.write_all(&crc.to_le_bytes()).map_err(werr)?;
        w.out.flush().map_err(werr)?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interop::rdb::lzf_decompress;

    use proptest::prelude::Strategy as _;

    proptest::proptest! {
        /// A compact hash's elements with backlens added are the listpack
        /// of its decoded elements, byte for byte.
        #[test]
        fn listpack_from_compact_is_the_listpack_of_the_elements(
            elems in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<i64>().prop_map(|i| i.to_string().into_bytes()),
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
                    "([0-9a-f]{2}){0,40}".prop_map(String::into_bytes),
                    "([0-9A-F]{2}){3,40}".prop_map(String::into_bytes),
                ],
                0..40,
            )
        ) {
            // Every second element is a value, packed when it is hex.
            let mut buf = Vec::new();
            for (i, e) in elems.iter().enumerate() {
                if i % 2 == 1 {
                    crate::hash::compact::push_value(&mut buf, e, true);
                } else {
                    crate::hash::compact::push_elem(&mut buf, e);
                }
            }
            let mut lp = Vec::new();
            let n = listpack_from_compact(&mut lp, &buf);
            proptest::prop_assert_eq!(n, elems.len());
            proptest::prop_assert_eq!(lp, listpack(elems.iter().map(Vec::as_slice)));
        }

        /// Whatever LZF writes decompresses to the input; repetitive input
        /// gets smaller.
        #[test]
        fn lzf_round_trips(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            reps in 1usize..40,
        ) {
            let repeated: Vec<u8> = data.iter().copied().cycle().take(data.len() * reps).collect();
            for input in [&data, &repeated] {
                if let Some(z) = lzf_compress(input, input.len() + 64) {
                    let back = lzf_decompress(&z, input.len());
                    proptest::prop_assert_eq!(back.as_deref(), Some(&input[..]));
                }
            }
        }
    }

    #[test]
    fn lzf_compresses_repetition_and_checks_lengths() {
        let input = b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc".repeat(40);
        let z = lzf_compress(&input, input.len() - 4).unwrap();
        assert!(z.len() < input.len() / 10, "{} of {}", z.len(), input.len());
        assert_eq!(lzf_decompress(&z, input.len()).unwrap(), input);
        assert_eq!(lzf_decompress(&z, input.len() - 1), None);
        assert_eq!(lzf_decompress(&z, input.len() + 1), None);
        assert_eq!(lzf_decompress(&[0x20, 0x05], 10), None); // reference before the start
        assert_eq!(lzf_compress(b"incompressible!!", 12), None);
    }

    #[test]
    fn crc64_is_redis_jones() {
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn listpack_elements_use_redis_encodings() {
        // Byte sequences from Redis 7.0's own file (the RDB notes, §1.4).
        let enc = |s: &str| {
            let mut out = Vec::new();
            listpack_entry(&mut out, s.as_bytes());
            out
        };
        assert_eq!(enc("1"), [0x01, 0x01]);
        assert_eq!(enc("127"), [0x7f, 0x01]);
        assert_eq!(enc("128"), [0xc0, 0x80, 0x02]);
        assert_eq!(enc("-1"), [0xdf, 0xff, 0x02]);
        assert_eq!(enc("4095"), [0xcf, 0xff, 0x02]);
        assert_eq!(enc("-4096"), [0xd0, 0x00, 0x02]);
        assert_eq!(enc("32767"), [0xf1, 0xff, 0x7f, 0x03]);
        assert_eq!(enc("-32768"), [0xf1, 0x00, 0x80, 0x03]);
        assert_eq!(enc("8388607"), [0xf2, 0xff, 0xff, 0x7f, 0x04]);
        assert_eq!(enc("-8388608"), [0xf2, 0x00, 0x00, 0x80, 0x04]);
        assert_eq!(enc("2147483647"), [0xf3, 0xff, 0xff, 0xff, 0x7f, 0x05]);
        assert_eq!(enc("-5000"), [0xf1, 0x78, 0xec, 0x03]);
        assert_eq!(
            enc("12345678901"),
            [0xf4, 0x35, 0x1c, 0xdc, 0xdf, 0x02, 0, 0, 0, 0x09]
        );
        assert_eq!(enc("name"), [0x84, b'n', b'a', b'm', b'e', 0x05]);
        assert_eq!(enc("007"), [0x83, b'0', b'0', b'7', 0x04]);
        assert_eq!(enc(""), [0x80, 0x01]);
        let s64 = "x".repeat(64);
        let e = enc(&s64);
        assert_eq!(&e[..2], &[0xe0, 0x40]);
        assert_eq!(e.last(), Some(&0x42));
        // The backlen width quirk: 127 is one byte, 128 two.
        let mut b = Vec::new();
        backlen(&mut b, 128);
        assert_eq!(b, [0x01, 0x80]);
    }

    /// The smallest file Redis 7.0 accepts (the RDB notes, §2.12): its
    /// listpack written byte for byte.
    #[test]
    fn a_listpack_matches_redis_bytes() {
        let lp = listpack([&b"f1"[..], b"v1", b"n", b"-7"].into_iter());
        assert_eq!(
            lp,
            [
                0x15, 0, 0, 0, 0x04, 0, 0x82, b'f', b'1', 0x03, 0x82, b'v', b'1', 0x03, 0x81, b'n',
                0x02, 0xdf, 0xf9, 0x02, 0xff
            ]
        );
    }
}
