//! Reading a snapshot file back: the header and section checks, the
//! SHAPES section, every entry decoded and validated (an [`Entry`], its hash
//! borrowed from the file or rebuilt, [`EntryHash`]), whole files
//! ([`read`], [`read_file`]) or in presized batches handed to the loaders
//! ([`read_presized`]); any damage is a [`Bad`] with its offset. The
//! layout is in the module doc of [`super`].

use std::fs::File;
use std::path::Path;

use super::{
    bincode_config, Header, ENC_COMPACT, ENC_COMPACT_EX, ENC_DICT, ENC_DICT_EX, ENC_SHAPED,
    FLAG_TTL, LZ4_MAX_RATIO, MAGIC, MAX_SECTION, SECTION_END, SECTION_HEADER, SECTION_KEYS,
    SECTION_KEYS_LZ4, SECTION_SHAPES, VERSION,
};
use crate::error::Error;
use crate::hash::compact;
use crate::hash::dict::Dict;
use crate::hash::OwnedHash;
use crate::options::Options;

/// A problem in a snapshot file at a byte offset.
#[derive(Debug)]
pub(crate) struct Bad {
    pub(crate) offset: u64,
    pub(crate) reason: String,
}

fn bad(offset: usize, reason: impl Into<String>) -> Bad {
    Bad {
        offset: offset as u64,
        reason: reason.into(),
    }
}

/// A cursor over a byte slice whose reads report their absolute offset.
struct Cur<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the file.
    base: usize,
}

impl<'a> Cur<'a> {
    fn at(&self) -> usize {
        self.base + self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Bad> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                bad(
                    self.at(),
                    format!("{what} runs past the end of its section"),
                )
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8, Bad> {
        Ok(self.take(1, what)?[0])
    }

    fn varint(&mut self, what: &str) -> Result<u64, Bad> {
        let start = self.at();
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8(what)?;
            if i == 9 && b > 1 {
                break;
            }
            v |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad(start, format!("{what}: varint too long")))
    }

    /// A length that must fit in what is left of the section.
    fn len(&mut self, what: &str) -> Result<usize, Bad> {
        let at = self.at();
        let n = self.varint(what)?;
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(bad(
                at,
                format!("{what} of {n} bytes, but only {left} are left in the section"),
            ));
        }
        Ok(n as usize)
    }
}

/// One key read from a snapshot.
pub(crate) struct Entry<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) ttl: Option<i64>,
    pub(crate) hash: EntryHash<'a>,
}

/// An entry's hash: a compact buffer still in the file (copied once, into
/// the table) or a hash built while reading.
pub(crate) enum EntryHash<'a> {
    Compact(&'a [u8]),
    /// A compact hash with a shared field list: the shape's fields (checked,
    /// `len` of them) and the hash's values (checked).
    Shaped {
        fields: &'a [u8],
        len: usize,
        values: &'a [u8],
    },
    Owned(OwnedHash),
}

/// Whether a compact hash with `pairs` pairs whose longest element is
/// `longest` bytes fits the compact limits of `opts`.
fn fits(opts: &Options, pairs: usize, longest: usize) -> bool {
    pairs <= opts.hash_max_listpack_entries && longest <= opts.hash_max_listpack_value
}

/// Whether any field of `pairs` appears twice: pairwise for a few,
/// through a hash set for more.
fn has_duplicate(pairs: &[(&[u8], &[u8], i64)]) -> bool {
    if pairs.len() <= 16 {
        return (1..pairs.len()).any(|i| pairs[..i].iter().any(|p| p.0 == pairs[i].0));
    }
    let mut seen = std::collections::HashSet::with_capacity(pairs.len());
    pairs.iter().any(|p| !seen.insert(p.0))
}

/// A hash built from `(field, value, ttl)` triples (ttl 0: none; all 0
/// unless `with_ttls`) in the encoding that fits it under `opts`, whose
/// longest field or value is `longest` bytes: compact (with TTLs:
/// `listpackex`) or a dict. Fails on a duplicate field.
pub(crate) fn hash_from_pairs(
    pairs: &[(&[u8], &[u8], i64)],
    with_ttls: bool,
    longest: usize,
    opts: &Options,
) -> Result<OwnedHash, &'static str> {
    let n = pairs.len();
    let mut ttls = crate::hash::FieldTtls::default();
    for (f, _, t) in pairs {
        if *t != 0 {
            ttls.set(f, *t);
        }
    }
    if fits(opts, n, longest) {
        // At most 9 header bytes an element (a string's is at most 5).
        let size: usize = pairs.iter().map(|(f, v, _)| f.len() + v.len() + 10).sum();
        let mut buf = Vec::with_capacity(size);
        for (f, v, _) in pairs {
            compact::push_elem(&mut buf, f);
            compact::push_value(&mut buf, v, opts.pack_hex);
        }
        if has_duplicate(pairs) {
            return Err("duplicate field in a dict hash");
        }
        if with_ttls {
            let mut ex = crate::hash::compact_ex::from_pairs(&buf);
            for (f, t) in ttls.iter() {
                crate::hash::compact_ex::set_ttl(&mut ex, f, t);
            }
            Ok(OwnedHash::CompactEx(ex))
        } else {
            Ok(OwnedHash::Compact(buf))
        }
    } else {
        let mut d = Dict::with_capacity(n);
        for (f, v, _) in pairs {
            if !d
                .set(f, v, opts.pack_hex)
                .map_err(|_| "hash too large to load")?
            {
                return Err("duplicate field in a dict hash");
            }
        }
        // A dict keeps field TTLs only while it has some.
        let ttls = (with_ttls && !ttls.is_empty()).then(|| Box::new(ttls));
        Ok(OwnedHash::Dict(Box::new(d), ttls))
    }
}

/// A shape of the SHAPES section, checked.
#[derive(Clone, Copy)]
struct ReadShape<'a> {
    fields: &'a [u8],
    len: usize,
    /// The longest field name.
    longest: usize,
}

/// Reads and checks the SHAPES section body at file offset `base`.
fn read_shapes(body: &[u8], base: usize) -> Result<Vec<ReadShape<'_>>, Bad> {
    let mut c = Cur {
        buf: body,
        pos: 0,
        base,
    };
    let count_at = c.at();
    let n = c.varint("shape count")?;
    // Each shape takes at least three bytes.
    if n > (body.len() / 3) as u64 {
        return Err(bad(count_at, format!("impossible shape count {n}")));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = c.len("shape field count")?;
        let flen = c.len("shape length")?;
        let at = c.at();
        let fields = c.take(flen, "shape fields")?;
        let (got, longest) = compact::check_elements(fields, compact::Layout::Fields)
            .map_err(|e| bad(at + e.offset().unwrap_or(0), format!("shape: {e}")))?;
        if got != len {
            return Err(bad(at, format!("shape says {len} fields, holds {got}")));
        }
        out.push(ReadShape {
            fields,
            len,
            longest,
        });
    }
    if c.pos != body.len() {
        return Err(bad(c.at(), "bytes after the last shape"));
    }
    Ok(out)
}

/// Decodes one entry at the cursor and builds its hash in the encoding that
/// fits it under `opts`; shaped entries refer to `shapes`.
fn entry<'a>(c: &mut Cur<'a>, opts: &Options, shapes: &[ReadShape<'a>]) -> Result<Entry<'a>, Bad> {
    let at = c.at();
    let enc = c.u8("entry encoding")?;
    let flags = c.u8("entry flags")?;
    if flags & !FLAG_TTL != 0 {
        return Err(bad(at + 1, format!("unknown entry flags {flags:#04x}")));
    }
    let klen = c.len("key length")?;
    let key = c.take(klen, "key")?;
    let ttl = if flags & FLAG_TTL != 0 {
        let b = c.take(8, "TTL")?;
        Some(i64::from_le_bytes(b.try_into().expect("8 bytes")))
    } else {
        None
    };
    let hash = match enc {
        ENC_COMPACT => {
            let n = c.len("compact hash length")?;
            let start = c.at();
            let buf = c.take(n, "compact hash")?;
            let (pairs, longest) = compact::check(buf).map_err(|e| {
                bad(
                    start + e.offset().unwrap_or(0),
                    format!(
                        "compact hash of key {:?}: {e}",
                        String::from_utf8_lossy(key)
                    ),
                )
            })?;
            if fits(opts, pairs, longest) {
                EntryHash::Compact(buf)
            } else {
                let d = crate::hash::dict_from_compact(buf, opts.pack_hex)
                    .map_err(|_| bad(start, "hash too large to load"))?;
                EntryHash::Owned(OwnedHash::Dict(Box::new(d), None))
            }
        }
        ENC_SHAPED => {
            let num_at = c.at();
            let num = c.varint("shape number")?;
            let shape = usize::try_from(num)
                .ok()
                .and_then(|i| shapes.get(i))
                .ok_or_else(|| bad(num_at, format!("no shape number {num}")))?;
            let n = c.len("values length")?;
            let start = c.at();
            let values = c.take(n, "values")?;
            let longest = crate::hash::shape::check_values(values, shape.len).map_err(|e| {
                bad(
                    start + e.offset().unwrap_or(0),
                    format!(
                        "values of key {:?} with {} fields: {e}",
                        String::from_utf8_lossy(key),
                        shape.len
                    ),
                )
            })?;
            if fits(opts, shape.len, longest.max(shape.longest)) {
                EntryHash::Shaped {
                    fields: shape.fields,
                    len: shape.len,
                    values,
                }
            } else {
                let mut pairs = Vec::with_capacity(shape.fields.len() + values.len());
                crate::hash::shape::join(shape.fields, values, &mut pairs);
                let d = crate::hash::dict_from_compact(&pairs, opts.pack_hex)
                    .map_err(|_| bad(start, "hash too large to load"))?;
                EntryHash::Owned(OwnedHash::Dict(Box::new(d), None))
            }
        }
        ENC_COMPACT_EX => {
            let n = c.len("compact hash length")?;
            let start = c.at();
            let buf = c.take(n, "compact hash")?;
            let (pairs, longest) = compact::check_triples(buf).map_err(|e| {
                bad(
                    start + e.offset().unwrap_or(0),
                    format!(
                        "compact hash with field TTLs of key {:?}: {e}",
                        String::from_utf8_lossy(key)
                    ),
                )
            })?;
            if pairs == 0 {
                return Err(bad(start, "empty hash"));
            }
            if fits(opts, pairs, longest) {
                EntryHash::Owned(OwnedHash::CompactEx(buf.to_vec()))
            } else {
                let (d, t) = crate::hash::dict_from_triples(buf, opts.pack_hex)
                    .map_err(|_| bad(start, "hash too large to load"))?;
                EntryHash::Owned(OwnedHash::Dict(Box::new(d), Some(Box::new(t))))
            }
        }
        ENC_DICT | ENC_DICT_EX => {
            let with_ttls = enc == ENC_DICT_EX;
            let count_at = c.at();
            let n = c.varint("pair count")?;
            // Each pair takes at least two bytes: bound the count before
            // allocating for it.
            if n == 0 || n > ((c.buf.len() - c.pos) / 2) as u64 {
                return Err(bad(count_at, format!("impossible pair count {n}")));
            }
            let n = n as usize;
            let mut pairs: Vec<(&[u8], &[u8], i64)> = Vec::with_capacity(n);
            let mut longest = 0;
            for _ in 0..n {
                let fl = c.len("field length")?;
                let f = c.take(fl, "field")?;
                let vl = c.len("value length")?;
                let v = c.take(vl, "value")?;
                let ttl = if with_ttls {
                    let at = c.at();
                    let b = c.take(8, "field TTL")?;
                    let t = i64::from_le_bytes(b.try_into().expect("8 bytes"));
                    if !(0..=crate::hash::MAX_TTL).contains(&t) {
                        return Err(bad(at, format!("impossible field TTL {t}")));
                    }
                    t
                } else {
                    0
                };
                longest = longest.max(fl).max(vl);
                pairs.push((f, v, ttl));
            }
            let h = hash_from_pairs(&pairs, with_ttls, longest, opts)
                .map_err(|what| bad(count_at, what))?;
            EntryHash::Owned(h)
        }
        other => return Err(bad(at, format!("unknown entry encoding {other}"))),
    };
    Ok(Entry { key, ttl, hash })
}

/// What a snapshot file holds, once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loaded {
    pub(crate) header: Header,
    pub(crate) keys: u64,
}

/// Reads a snapshot file's bytes: checks magic, header, every section's CRC
/// and the file checksum, and calls `put` for each key (in file order) with
/// its hash already in the encoding that fits under `opts`. Any damage is
/// reported with its byte offset; `put` may have been called for other
/// keys before the damage was found. An error from `put` is reported at its
/// entry. Sections are decoded on several threads, so `put` is called
/// concurrently and in no particular order (each key is in one entry).
pub(crate) fn read(
    buf: &[u8],
    opts: &Options,
    put: impl Fn(Entry<'_>) -> Result<(), String> + Sync,
) -> Result<Loaded, Bad> {
    read_presized(buf, opts, |_| {}, one_by_one(put))
}

/// Entries decoded from a section, with their offsets, handed over
/// together (a loader can then lock each shard once per batch and
/// prefetch).
pub(crate) type Batch<'a> = Vec<(usize, Entry<'a>)>;

/// Entries per [`Batch`].
const BATCH: usize = 1024;

/// A batch loader made of a loader of single entries.
fn one_by_one(
    put: impl Fn(Entry<'_>) -> Result<(), String> + Sync,
) -> impl Fn(&mut Batch<'_>) -> Result<(), (usize, String)> + Sync {
    move |batch| {
        for (at, e) in batch.drain(..) {
            put(e).map_err(|r| (at, r))?;
        }
        Ok(())
    }
}

/// [`read`], telling `presize` how many keys the file holds (from its END
/// section, once the section walk checked out) before any is decoded, so
/// the tables can be sized once instead of growing.
pub(crate) fn read_presized(
    buf: &[u8],
    opts: &Options,
    presize: impl FnOnce(u64),
    put: impl Fn(&mut Batch<'_>) -> Result<(), (usize, String)> + Sync,
) -> Result<Loaded, Bad> {
    if buf.len() < MAGIC.len() + 8 {
        return Err(bad(0, "file shorter than a snapshot header"));
    }
    if &buf[..8] != MAGIC {
        return Err(bad(
            0,
            format!(
                "bad magic {:?} (expected {:?})",
                String::from_utf8_lossy(&buf[..8]),
                "HKVSNAP1"
            ),
        ));
    }
    let hlen = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes")) as usize;
    let hcrc = u32::from_le_bytes(buf[12..16].try_into().expect("4 bytes"));
    let hbody = buf
        .get(16..16 + hlen.min(4096))
        .filter(|_| hlen <= 4096)
        .ok_or_else(|| bad(8, format!("header length {hlen} is impossible")))?;
    // Header problems are reported at its frame (length and CRC at 8).
    if crc32fast::hash(hbody) != hcrc {
        return Err(bad(8, "header checksum mismatch"));
    }
    let (header, used): (Header, usize) =
        bincode::serde::decode_from_slice(hbody, bincode_config())
            .map_err(|e| bad(8, format!("undecodable header: {e}")))?;
    if used != hbody.len() {
        return Err(bad(8, "trailing bytes in the header"));
    }
    if !(1..=VERSION).contains(&header.version) {
        return Err(bad(
            16,
            format!(
                "snapshot version {}, this build reads versions 1 to {VERSION}",
                header.version
            ),
        ));
    }
    // Phase 1: walk the section headers (cheap) and check END against them.
    let mut file_crc = crc32fast::Hasher::new();
    file_crc.update(&hcrc.to_le_bytes());
    let mut pos = 16 + hlen;
    let mut sections: Vec<(usize, usize, u32)> = Vec::new();
    let mut shapes_at: Option<(usize, usize, u32)> = None;
    let walked = (|| loop {
        let head = buf
            .get(pos..pos + SECTION_HEADER)
            .ok_or_else(|| bad(pos, "file ends before its END section (truncated?)"))?;
        let kind = head[0];
        let len = u32::from_le_bytes(head[1..5].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[5..9].try_into().expect("4 bytes"));
        let start = pos + SECTION_HEADER;
        if len > MAX_SECTION || start + len > buf.len() {
            return Err(bad(
                pos,
                format!(
                    "section of {len} bytes runs past the end of the file ({} bytes; truncated?)",
                    buf.len()
                ),
            ));
        }
        match kind {
            SECTION_KEYS | SECTION_KEYS_LZ4 => {
                file_crc.update(&crc.to_le_bytes());
                sections.push((pos, len, crc));
            }
            SECTION_SHAPES if shapes_at.is_none() => {
                file_crc.update(&crc.to_le_bytes());
                shapes_at = Some((pos, len, crc));
            }
            SECTION_SHAPES => return Err(bad(pos, "a second SHAPES section")),
            SECTION_END => {
                let body = &buf[start..start + len];
                if len != 20 || crc32fast::hash(body) != crc {
                    return Err(bad(pos, "END section damaged"));
                }
                let want_keys = u64::from_le_bytes(body[0..8].try_into().expect("8"));
                let want_sections = u64::from_le_bytes(body[8..16].try_into().expect("8"));
                let want_crc = u32::from_le_bytes(body[16..20].try_into().expect("4"));
                if want_sections != sections.len() as u64 {
                    return Err(bad(
                        start,
                        format!(
                            "END counts {want_sections} key sections, the file has {}",
                            sections.len()
                        ),
                    ));
                }
                if file_crc.finalize() != want_crc {
                    return Err(bad(start + 16, "file checksum mismatch"));
                }
                let end = start + len;
                if end != buf.len() {
                    return Err(bad(end, "bytes after the END section"));
                }
                return Ok((want_keys, start));
            }
            other => return Err(bad(pos, format!("unknown section type {other}"))),
        }
        pos = start + len;
    })();
    let (want_keys, end_at) = match walked {
        Ok(v) => v,
        Err(b) => {
            // A damaged length sends the walk astray, so the problem it hits
            // may lie after the real damage: report the first section whose
            // checksum fails, if one does.
            for &(pos, len, crc) in &sections {
                let body = &buf[pos + SECTION_HEADER..pos + SECTION_HEADER + len];
                if crc32fast::hash(body) != crc {
                    return Err(bad(pos, "section checksum mismatch"));
                }
            }
            return Err(b);
        }
    };
    let shapes = match shapes_at {
        Some((pos, len, crc)) => {
            let start = pos + SECTION_HEADER;
            let body = &buf[start..start + len];
            if crc32fast::hash(body) != crc {
                return Err(bad(pos, "section checksum mismatch"));
            }
            read_shapes(body, start)?
        }
        None => Vec::new(),
    };
    presize(want_keys);
    // Phase 2: check and decode the sections, in parallel (they are
    // independent); the first damage by offset is the one reported.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(sections.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let keys = std::sync::atomic::AtomicU64::new(0);
    let first_bad: std::sync::Mutex<Option<Bad>> = std::sync::Mutex::new(None);
    let work = || loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(&(pos, len, crc)) = sections.get(i) else {
            return;
        };
        let start = pos + SECTION_HEADER;
        let body = &buf[start..start + len];
        let res = (|| {
            let actual = crc32fast::hash(body);
            if actual != crc {
                return Err(bad(
                    pos,
                    format!("section checksum mismatch (expected {crc:08x}, actual {actual:08x})"),
                ));
            }
            if buf[pos] == SECTION_KEYS {
                return entries(body, start, opts, &shapes, &put);
            }
            // KEYS_LZ4: damage inside the decompressed entries is reported
            // at the section, with the position in its entries.
            let raw = body
                .get(..4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                .filter(|&n| n > 0 && n <= len.saturating_mul(LZ4_MAX_RATIO))
                .ok_or_else(|| bad(start, "impossible length in a compressed section"))?;
            let mut plain = vec![0u8; raw];
            match lz4_flex::block::decompress_into(&body[4..], &mut plain) {
                Ok(n) if n == raw => {}
                _ => return Err(bad(start, "compressed section does not decompress")),
            }
            entries(&plain, 0, opts, &shapes, &put).map_err(|b| {
                bad(
                    pos,
                    format!(
                        "{} (byte {} of the compressed section's entries)",
                        b.reason, b.offset
                    ),
                )
            })
        })();
        match res {
            Ok(n) => {
                keys.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
            Err(b) => {
                let mut f = first_bad.lock().unwrap_or_else(|p| p.into_inner());
                if f.as_ref().is_none_or(|x| b.offset < x.offset) {
                    *f = Some(b);
                }
            }
        }
    };
    if threads <= 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(work);
            }
            work();
        });
    }
    if let Some(b) = first_bad.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(b);
    }
    let keys = keys.into_inner();
    if keys != want_keys {
        return Err(bad(
            end_at,
            format!("END counts {want_keys} keys, the file has {keys}"),
        ));
    }
    Ok(Loaded { header, keys })
}

/// Decodes the entries of one section body (`base` = its file offset, for
/// errors) and hands each to `put`; returns how many there were.
fn entries<'a>(
    body: &'a [u8],
    base: usize,
    opts: &Options,
    shapes: &[ReadShape<'a>],
    put: &(impl Fn(&mut Batch<'_>) -> Result<(), (usize, String)> + Sync),
) -> Result<u64, Bad> {
    let mut c = Cur {
        buf: body,
        pos: 0,
        base,
    };
    let mut n = 0;
    let mut batch: Batch<'_> = Vec::with_capacity(BATCH.min(body.len() / 8 + 1));
    while c.pos < body.len() {
        let at = c.at();
        batch.push((at, entry(&mut c, opts, shapes)?));
        n += 1;
        if batch.len() == BATCH {
            put(&mut batch).map_err(|(at, reason)| bad(at, reason))?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        put(&mut batch).map_err(|(at, reason)| bad(at, reason))?;
    }
    Ok(n)
}

/// Maps an open snapshot file read-only (`None` when it is empty).
pub(crate) fn map_file(file: &File) -> std::io::Result<Option<memmap2::Mmap>> {
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: the file is a snapshot in a data directory or a file given
    // to `restore`; snapshots are never modified or shortened once renamed
    // into place (only removed, which leaves a mapping whole). The mapping
    // is read-only and every read of it is bounds-checked.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::MmapOptions::new().populate().map(file)? };
    Ok(Some(map))
}

/// Maps the snapshot at `path` read-only and [`read`]s it.
pub(crate) fn read_file(
    path: &Path,
    opts: &Options,
    put: impl Fn(Entry<'_>) -> Result<(), String> + Sync,
) -> Result<Loaded, Error> {
    read_file_presized(path, opts, |_| {}, one_by_one(put))
}

/// [`read_file`] with [`read_presized`]'s `presize` and batches.
pub(crate) fn read_file_presized(
    path: &Path,
    opts: &Options,
    presize: impl FnOnce(u64),
    put: impl Fn(&mut Batch<'_>) -> Result<(), (usize, String)> + Sync,
) -> Result<Loaded, Error> {
    let io = |op: &'static str, e: std::io::Error| Error::Io {
        op,
        path: path.display().to_string(),
        source: e,
    };
    let file = File::open(path).map_err(|e| io("opening snapshot", e))?;
    let map = map_file(&file).map_err(|e| io("mapping snapshot", e))?;
    read_presized(map.as_deref().unwrap_or(&[]), opts, presize, put).map_err(|b| Error::Corrupt {
        file: path.display().to_string(),
        offset: b.offset,
        reason: b.reason,
    })
}
