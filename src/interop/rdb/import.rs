//! Reading a Redis RDB file into hashkv ([`Db::import_rdb`]): versions 1
//! to 12, every hash layout Redis wrote (zipmap 9, ziplist 13, listpack
//! 16, dict 4, and the field-TTL types 22 to 25 of 7.4+), strings in any
//! of their forms (integers, LZF), key expiry in seconds or milliseconds.
//! Other types are skipped by their grammar and counted (or refused with
//! [`RdbImportOptions::strict`]); so are AUX, module and function records.
//!
//! Damage is found before anything changes. A file whose CRC-64 trailer
//! matches (version 5 and later, non-zero) is verified in one fast pass
//! and then read once, checked as it is applied: it is what its writer
//! wrote, and a refusal behind a valid checksum (a writer's bug, or with
//! `strict` a key of another type) stops the import at its offset and puts
//! back every key it stored (the ones it replaced included), so a refused
//! file leaves the database as it was. Any other file (no checksum, a zero one, a
//! mismatch) is first read whole without changing the database: the magic
//! and version, every record and every hash (packed layouts element by
//! element, duplicate fields and keys) and the trailer; only a file that
//! passes is applied. No allocation is sized by a length the file declares
//! before that length is checked against the bytes the file has left.
//!
//! Each hash is built in the encoding that fits it under the database's
//! [`Options`](crate::Options) (as Redis 7.0 chooses encodings when it
//! loads: a listpack or ziplist is converted only for its entry count) and
//! replaces whatever the key held. Keys whose expiry has passed and fields
//! whose TTL has passed are dropped and counted. The hashes go straight
//! into the keyspace, each logged as one record of its whole state (for
//! readers and subscribers); a database on a directory then takes a
//! snapshot, and the import returns only once that snapshot is durable.

use std::collections::{BTreeMap, HashMap};
use std::io::{Seek, SeekFrom};
use std::path::Path;

use super::blobs::{self, BlobError, Decoder, Elem};
use super::input::{Bad, Input};
use super::skip;
use super::{crc64, OP_AUX, OP_EOF, OP_EXPIRETIME_MS, OP_RESIZEDB, OP_SELECTDB};
use crate::db::Db;
use crate::error::{CommandError, Error, Result};
use crate::hash::table::hash_name;
use crate::hash::OwnedHash;
use crate::keyspace::Shard;
use crate::options::Options;
use crate::snapshot::format::hash_from_pairs;

/// Newest RDB version read (Redis 7.4 to 8.4 write 12).
const MAX_VERSION: u32 = 12;

const OP_SLOT_INFO: u8 = 0xF4;
const OP_FUNCTION2: u8 = 0xF5;
const OP_FUNCTION_PRE_GA: u8 = 0xF6;
const OP_MODULE_AUX: u8 = 0xF7;
const OP_IDLE: u8 = 0xF8;
const OP_FREQ: u8 = 0xF9;
const OP_EXPIRETIME: u8 = 0xFD;

/// What [`Db::import_rdb_with`] reads from a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RdbImportOptions {
    /// The Redis database (`SELECT` number) to import; keys of the others
    /// are skipped and counted. Default 0.
    pub db: u64,
    /// Refuse a file holding keys of other types (strings, lists, sets,
    /// sorted sets, streams, modules) instead of skipping them.
    pub strict: bool,
}

/// What an RDB import read and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RdbImport {
    /// The file's RDB version.
    pub version: u32,
    /// Hashes imported.
    pub keys: u64,
    /// Fields imported.
    pub fields: u64,
    /// Imported keys that replaced a key the database held.
    pub replaced: u64,
    /// Keys dropped because their expiry had passed.
    pub expired_keys: u64,
    /// Fields dropped because their TTL had passed (a hash left with none
    /// counts as an expired key).
    pub expired_fields: u64,
    /// Empty hashes skipped (as Redis skips them).
    pub empty_keys: u64,
    /// Hashes of other databases skipped.
    pub other_db_keys: u64,
    /// Keys of other types skipped in the database imported, by type name
    /// (`string`, `list`, ...).
    pub skipped: BTreeMap<&'static str, u64>,
    /// Keys of the other databases skipped, hashes included, by database
    /// and type name.
    pub other_dbs: BTreeMap<(u64, &'static str), u64>,
    /// Anything odd that did not stop the import (bytes after the trailer,
    /// a checksum written as zero).
    pub warnings: Vec<String>,
}

impl RdbImport {
    /// One line per fact worth telling a user, for the tool's summary.
    pub fn summary(&self) -> Vec<String> {
        let mut out = vec![format!(
            "imported {} hashes ({} fields) from RDB version {}{}",
            self.keys,
            self.fields,
            self.version,
            if self.replaced > 0 {
                format!("; {} replaced existing keys", self.replaced)
            } else {
                String::new()
            }
        )];
        for (name, n) in &self.skipped {
            out.push(format!(
                "skipped {n} {name} key(s): hashkv stores hashes only"
            ));
        }
        for ((db, name), n) in &self.other_dbs {
            out.push(format!(
                "skipped {n} {name} key(s) in database {db} (--db picks the database imported)"
            ));
        }
        if self.expired_keys > 0 {
            out.push(format!(
                "dropped {} key(s) already expired",
                self.expired_keys
            ));
        }
        if self.expired_fields > 0 {
            out.push(format!(
                "dropped {} field(s) already expired",
                self.expired_fields
            ));
        }
        if self.empty_keys > 0 {
            out.push(format!("skipped {} empty hash(es)", self.empty_keys));
        }
        out.extend(self.warnings.iter().map(|w| format!("warning: {w}")));
        out
    }
}

/// A key's hash as read: elements back to back, with each field's TTL.
#[derive(Default)]
struct Hash {
    key: Vec<u8>,
    bytes: Vec<u8>,
    /// (end of field, end of value, ttl) per field.
    fields: Vec<(usize, usize, i64)>,
    /// A field-TTL type (23/25/22/24): a compact result keeps the
    /// `listpackex` encoding even with no TTL left, as Redis loads it.
    ex: bool,
    /// A listpack (type 16) whose entries were canonical and its fields
    /// unique: already the compact hash, with its pair count and longest
    /// element (`bytes` and `fields` unused).
    compact: Option<(usize, usize)>,
    /// A ziplist or listpack (types 13, 16): Redis 7.0 loads it as it is
    /// unless it has too many entries, whatever the length of its elements
    /// (a zipmap or a dict is also converted for a long element).
    entries_only: bool,
}

impl Hash {
    fn clear(&mut self) {
        self.bytes.clear();
        self.fields.clear();
        self.ex = false;
        self.compact = None;
        self.entries_only = false;
    }

    fn push(&mut self, e: Elem<'_>) {
        match e {
            Elem::Str(s) => self.bytes.extend_from_slice(s),
            Elem::Int(i) => crate::numeric::push_i64(&mut self.bytes, i),
        }
    }

    /// Pairs of a packed blob (alternating field, value).
    fn pairs_of(&mut self, blob: &[u8], decode: Decoder) -> std::result::Result<(), BlobError> {
        let mut odd = false;
        let mut field_end = 0;
        decode(blob, &mut |e| {
            self.push(e);
            if odd {
                self.fields.push((field_end, self.bytes.len(), 0));
            } else {
                field_end = self.bytes.len();
            }
            odd = !odd;
            Ok(())
        })?;
        if odd {
            return Err((0, "odd number of elements: a field without a value".into()));
        }
        Ok(())
    }

    /// Triples (field, value, absolute TTL in ms or 0) of a listpack.
    fn triples_of(&mut self, blob: &[u8]) -> std::result::Result<(), BlobError> {
        let mut k = 0;
        let mut ends = (0, 0);
        blobs::listpack(blob, &mut |e| {
            match k {
                0 => {
                    self.push(e);
                    ends.0 = self.bytes.len();
                }
                1 => {
                    self.push(e);
                    ends.1 = self.bytes.len();
                }
                _ => match e {
                    Elem::Int(t) if (0..=crate::hash::MAX_TTL).contains(&t) => {
                        self.fields.push((ends.0, ends.1, t));
                    }
                    _ => return Err((0, format!("field TTL {e:?} is not a time"))),
                },
            }
            k = (k + 1) % 3;
            Ok(())
        })?;
        if k != 0 {
            return Err((0, "element count is not a multiple of 3".into()));
        }
        Ok(())
    }
}

/// How one pass treats the records it reads.
struct Pass<'a> {
    /// Each key's hash and offset, for the duplicate check (in the pass
    /// that checks).
    seen: Option<HashMap<u64, u64>>,
    /// Where each hash goes (none in a pass that only checks).
    db: Option<&'a Db>,
    /// Every key stored so far, with what it replaced: a refusal later in
    /// the file puts them all back.
    undo: Undo,
}

/// Keys an import stored, each with the hash and TTL it replaced.
type Undo = Vec<(Vec<u8>, Option<(OwnedHash, Option<i64>)>)>;

struct Reader<'a> {
    path: &'a Path,
    input: Input,
    opts: &'a Options,
    import: &'a RdbImportOptions,
    now: i64,
    out: RdbImport,
    scratch: Vec<u8>,
    blob: Vec<u8>,
    hash: Hash,
}

impl Reader<'_> {
    /// Reads the whole file, handing each hash of the chosen db to `pass`.
    fn run(&mut self, pass: &mut Pass<'_>, progress: &mut dyn FnMut(u64, u64)) -> Result<()> {
        self.pass(pass, progress)
            .map_err(|Bad(at, what)| Error::Io {
                op: "importing RDB file",
                path: self.path.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("offset {at}: {what}"),
                ),
            })
    }

    fn pass(
        &mut self,
        pass: &mut Pass<'_>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> std::result::Result<(), Bad> {
        let magic: [u8; 9] = self.input.array("RDB header")?;
        if magic.starts_with(b"VALKEY") {
            return Err(Bad(
                0,
                "a Valkey RDB file (VALKEY magic): only Redis RDB files are read".into(),
            ));
        }
        if &magic[..5] != b"REDIS" || !magic[5..].iter().all(u8::is_ascii_digit) {
            return Err(Bad(
                0,
                "not an RDB file: it does not start with REDIS and 4 digits".into(),
            ));
        }
        let version: u32 = std::str::from_utf8(&magic[5..])
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if !(1..=MAX_VERSION).contains(&version) {
            return Err(Bad(
                5,
                format!("RDB version {version}: this hashkv reads versions 1 to {MAX_VERSION}"),
            ));
        }
        self.out.version = version;
        let mut db = 0u64;
        let mut expire_at: Option<i64> = None;
        let mut last_progress = 0;
        loop {
            if self.input.offset - last_progress >= 1 << 20 {
                last_progress = self.input.offset;
                progress(self.input.offset, self.input.size);
            }
            let at = self.input.offset;
            let op = self.input.byte("record type")?;
            match op {
                OP_EOF => break,
                OP_SELECTDB => {
                    db = self.input.len("SELECTDB number")?;
                    continue;
                }
                OP_RESIZEDB => {
                    let keys = self.input.len("RESIZEDB size")?;
                    self.input.len("RESIZEDB expires size")?;
                    // A sizing hint, trusted only as far as the file's size
                    // allows (with a margin: memory stays of the order of
                    // the file's size).
                    let keys = keys.min(self.input.size / 16).min(1 << 26);
                    if db == self.import.db {
                        if let Some(seen) = &mut pass.seen {
                            seen.reserve(keys as usize);
                        }
                        if let Some(target) = pass.db {
                            // Empty shards' tables sized at once: no
                            // migrations while the keys arrive.
                            target.keyspace().reserve_keys(keys);
                        }
                    }
                    continue;
                }
                OP_AUX => {
                    self.input.skip_string(&mut self.scratch, "AUX name")?;
                    self.input.skip_string(&mut self.scratch, "AUX value")?;
                    continue;
                }
                OP_MODULE_AUX => {
                    self.input.len("module id")?;
                    skip::skip_module_data(&mut self.input, &mut self.scratch, true)?;
                    continue;
                }
                OP_FUNCTION2 => {
                    self.input
                        .skip_string(&mut self.scratch, "function library")?;
                    continue;
                }
                OP_FUNCTION_PRE_GA => {
                    // Redis 7.0 RC1/RC2's library: name, engine, an
                    // optional description, the code (Redis 7.0 loads it).
                    for what in ["function name", "function engine"] {
                        self.input.skip_string(&mut self.scratch, what)?;
                    }
                    if self.input.len("function description flag")? != 0 {
                        self.input
                            .skip_string(&mut self.scratch, "function description")?;
                    }
                    self.input
                        .skip_string(&mut self.scratch, "function library")?;
                    continue;
                }
                OP_SLOT_INFO => {
                    for what in ["slot", "slot size", "slot expires size"] {
                        self.input.len(what)?;
                    }
                    continue;
                }
                OP_IDLE => {
                    self.input.len("IDLE time")?;
                    continue;
                }
                OP_FREQ => {
                    self.input.byte("FREQ counter")?;
                    continue;
                }
                OP_EXPIRETIME => {
                    let s = i32::from_le_bytes(self.input.array("EXPIRETIME")?);
                    expire_at = Some(i64::from(s) * 1000);
                    continue;
                }
                OP_EXPIRETIME_MS => {
                    expire_at = Some(i64::from_le_bytes(self.input.array("EXPIRETIME_MS")?));
                    continue;
                }
                _ => {}
            }
            // A key record: type, key, value.
            let ttl = expire_at.take();
            let key_at = self.input.offset;
            self.hash.key.clear();
            let mut key = std::mem::take(&mut self.hash.key);
            self.input.string_into(&mut key, "key")?;
            self.hash.key = key;
            if !self.read_hash(op, at)? {
                // Another type, skipped by its grammar.
                let name = skip::type_name(op).unwrap_or("unknown");
                if self.import.strict {
                    return Err(Bad(
                        at,
                        format!(
                            "key '{}' in database {db} is a {name} (type {op}), and --strict refuses other types than hashes",
                            String::from_utf8_lossy(&self.hash.key)
                        ),
                    ));
                }
                if db == self.import.db {
                    *self.out.skipped.entry(name).or_default() += 1;
                } else {
                    *self.out.other_dbs.entry((db, name)).or_default() += 1;
                }
                continue;
            }
            if db != self.import.db {
                self.out.other_db_keys += 1;
                *self.out.other_dbs.entry((db, "hash")).or_default() += 1;
                continue;
            }
            self.finish_hash(pass, ttl, key_at)?;
        }
        progress(self.input.offset, self.input.size);
        self.trailer(version)
    }

    /// After EOF: the CRC-64 (version 5 and later), then nothing.
    fn trailer(&mut self, version: u32) -> std::result::Result<(), Bad> {
        if version >= 5 {
            let computed = self.input.crc;
            let at = self.input.offset;
            let stored = u64::from_le_bytes(self.input.array("CRC-64 trailer")?);
            match computed {
                Some(c) if stored != 0 && c != stored => {
                    return Err(Bad(
                        at,
                        format!("checksum mismatch: the file says {stored:#018x}, its bytes give {c:#018x}"),
                    ));
                }
                Some(_) if stored == 0 => self.out.warnings.push(
                    "the file was saved without a checksum (rdbchecksum no): not checked".into(),
                ),
                _ => {}
            }
        }
        if self.input.left() > 0 {
            self.out.warnings.push(format!(
                "{} bytes after the end of the RDB data were ignored",
                self.input.left()
            ));
        }
        Ok(())
    }

    /// Reads the value of a record of type `t` into `self.hash`; false
    /// (the value skipped) when it is not a hash.
    fn read_hash(&mut self, t: u8, at: u64) -> std::result::Result<bool, Bad> {
        self.hash.clear();
        let blob_at = self.input.offset;
        let blob_err = |(off, what): BlobError, kind: &str| {
            Bad(blob_at, format!("{kind} (byte {off} of the blob): {what}"))
        };
        match t {
            4 | 24 | 22 => {
                let with_min = t == 24;
                let min = if with_min {
                    i64::from_le_bytes(self.input.array("minimum field expiry")?)
                } else {
                    0
                };
                let n = self.input.len("field count")?;
                // Each field takes at least two bytes (three with a TTL).
                if n > self.input.left() / 2 {
                    return Err(Bad(
                        blob_at,
                        format!(
                            "{n} fields cannot fit in the {} bytes left",
                            self.input.left()
                        ),
                    ));
                }
                self.hash.ex = t != 4;
                for _ in 0..n {
                    let ttl = if t == 4 {
                        0
                    } else {
                        let k = self.input.len("field TTL")?;
                        let abs = match (t, k) {
                            (_, 0) => 0,
                            (24, k) => min.saturating_add(k as i64).saturating_sub(1),
                            (_, k) => k as i64,
                        };
                        if !(0..=crate::hash::MAX_TTL).contains(&abs) {
                            return Err(Bad(
                                self.input.offset,
                                format!("field TTL {abs} out of range"),
                            ));
                        }
                        abs
                    };
                    self.input.string_into(&mut self.scratch, "field")?;
                    self.hash.bytes.extend_from_slice(&self.scratch);
                    let fe = self.hash.bytes.len();
                    self.input.string_into(&mut self.scratch, "value")?;
                    self.hash.bytes.extend_from_slice(&self.scratch);
                    self.hash.fields.push((fe, self.hash.bytes.len(), ttl));
                }
            }
            16 | 13 | 9 => {
                self.hash.entries_only = t != 9;
                let mut blob = std::mem::take(&mut self.blob);
                self.input.string_into(&mut blob, "packed hash")?;
                if t == 16 {
                    // Redis's listpacks are canonical: their entries are
                    // the compact hash as they stand (checked), else they
                    // are decoded and encoded again below.
                    let direct =
                        blobs::listpack_entries(&blob, &mut self.hash.bytes, self.opts.pack_hex)
                            .ok()
                            .filter(|n| n % 2 == 0)
                            .and_then(|_| crate::hash::compact::check(&self.hash.bytes).ok());
                    if let Some(shape) = direct.filter(|&(pairs, _)| pairs > 0) {
                        self.hash.compact = Some(shape);
                        self.blob = blob;
                        return Ok(true);
                    }
                    self.hash.bytes.clear();
                }
                let (decode, kind): (Decoder, &str) = match t {
                    16 => (blobs::listpack, "listpack"),
                    13 => (blobs::ziplist, "ziplist"),
                    _ => (blobs::zipmap, "zipmap"),
                };
                let r = self.hash.pairs_of(&blob, decode);
                self.blob = blob;
                r.map_err(|e| blob_err(e, kind))?;
            }
            25 | 23 => {
                if t == 25 {
                    self.input.array::<8>("minimum field expiry")?;
                }
                let mut blob = std::mem::take(&mut self.blob);
                self.input.string_into(&mut blob, "packed hash")?;
                self.hash.ex = true;
                let r = self.hash.triples_of(&blob);
                self.blob = blob;
                r.map_err(|e| blob_err(e, "listpack with field TTLs"))?;
            }
            _ => {
                skip::skip_value(&mut self.input, &mut self.scratch, t, at)?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Drops what has expired and hands the hash to the pass.
    fn finish_hash(
        &mut self,
        pass: &mut Pass<'_>,
        ttl: Option<i64>,
        key_at: u64,
    ) -> std::result::Result<(), Bad> {
        if self.hash.compact.is_some() {
            return self.finish_compact(pass, ttl, key_at);
        }
        self.note_key(pass, key_at)?;
        let h = &self.hash;
        let mut pairs: Vec<(&[u8], &[u8], i64)> = Vec::with_capacity(h.fields.len());
        let mut start = 0;
        let mut longest = 0;
        let mut expired = 0;
        for &(fe, ve, t) in &h.fields {
            let (f, v) = (&h.bytes[start..fe], &h.bytes[fe..ve]);
            start = ve;
            if t != 0 && t < self.now {
                expired += 1;
                continue;
            }
            longest = longest.max(f.len()).max(v.len());
            pairs.push((f, v, t));
        }
        let key_name = || String::from_utf8_lossy(&h.key).into_owned();
        if h.fields.is_empty() {
            self.out.empty_keys += 1;
            return Ok(());
        }
        self.out.expired_fields += expired;
        if pairs.is_empty() || ttl.is_some_and(|at| at < self.now) {
            self.out.expired_keys += 1;
            return Ok(());
        }
        let longest = if h.entries_only { 0 } else { longest };
        let hash = hash_from_pairs(&pairs, h.ex, longest, self.opts)
            .map_err(|what| Bad(key_at, format!("key '{}': {what}", key_name())))?;
        self.out.keys += 1;
        self.out.fields += pairs.len() as u64;
        if let Some(db) = pass.db {
            let replaced = store(db, &mut pass.undo, &h.key, key_at, |shard| {
                shard.put(&h.key, hash, ttl)
            })?;
            self.out.replaced += u64::from(replaced);
        }
        Ok(())
    }

    /// [`Reader::finish_hash`] for a listpack taken as it stands.
    fn finish_compact(
        &mut self,
        pass: &mut Pass<'_>,
        ttl: Option<i64>,
        key_at: u64,
    ) -> std::result::Result<(), Bad> {
        let Some((pairs, _longest)) = self.hash.compact else {
            return Ok(());
        };
        self.note_key(pass, key_at)?;
        if ttl.is_some_and(|at| at < self.now) {
            self.out.expired_keys += 1;
            return Ok(());
        }
        self.out.keys += 1;
        self.out.fields += pairs as u64;
        let Some(db) = pass.db else {
            return Ok(());
        };
        let h = &self.hash;
        // A listpack stays one unless it has too many entries (Redis 7.0).
        let fits = pairs <= self.opts.hash_max_listpack_entries;
        let replaced = store(db, &mut pass.undo, &h.key, key_at, |shard| {
            if fits {
                shard.put_compact(&h.key, &h.bytes, ttl)
            } else {
                let d = crate::hash::dict_from_compact(&h.bytes, self.opts.pack_hex)
                    .map_err(|_| CommandError::too_large())?;
                shard.put(&h.key, OwnedHash::Dict(Box::new(d), None), ttl)
            }
        })?;
        self.out.replaced += u64::from(replaced);
        Ok(())
    }

    /// The duplicate-key check of a pass that checks: equal key hashes
    /// are compared by re-reading the earlier key from the file.
    fn note_key(&mut self, pass: &mut Pass<'_>, key_at: u64) -> std::result::Result<(), Bad> {
        let Some(seen) = &mut pass.seen else {
            return Ok(());
        };
        let key = &self.hash.key;
        let hk = hash_name(key);
        if let Some(&prev) = seen.get(&hk) {
            if read_key_at(self.path, prev).as_deref() == Some(key.as_slice()) {
                return Err(Bad(
                    key_at,
                    format!(
                        "duplicate key '{}' (first at offset {prev})",
                        String::from_utf8_lossy(key)
                    ),
                ));
            }
        } else {
            seen.insert(hk, key_at);
        }
        Ok(())
    }
}

/// Whether the file is an RDB of version 5 or later whose last 8 bytes
/// are a non-zero CRC-64 of everything before them (one fast pass).
fn crc_matches(path: &Path) -> Result<bool> {
    let mut input = Input::open(path)?;
    if input.size < 9 + 1 + 8 {
        return Ok(false);
    }
    let Ok(magic) = input.array::<9>("RDB header") else {
        return Ok(false);
    };
    let version: u32 = std::str::from_utf8(&magic[5..])
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if &magic[..5] != b"REDIS" || !(5..=MAX_VERSION).contains(&version) {
        return Ok(false);
    }
    let mut crc = crc64(0, &magic);
    let body = input.size - 8 - 9;
    let mut left = body;
    let mut chunk = Vec::new();
    while left > 0 {
        let step = left.min(1 << 20);
        if input.read_into(step, &mut chunk, "file").is_err() {
            return Ok(false);
        }
        crc = crc64(crc, &chunk);
        left -= step;
    }
    let Ok(stored) = input.array::<8>("CRC-64 trailer") else {
        return Ok(false);
    };
    let stored = u64::from_le_bytes(stored);
    Ok(stored != 0 && stored == crc)
}

/// Puts one imported hash into `db` with `put`, replacing the key (whose
/// watchers are marked); true when it replaced a key.
fn store(
    db: &Db,
    undo: &mut Undo,
    key: &[u8],
    key_at: u64,
    put: impl FnOnce(&mut Shard) -> std::result::Result<bool, CommandError>,
) -> std::result::Result<bool, Bad> {
    let ks = db.keyspace();
    ks.watches.touch_changed(std::iter::once((key, false)));
    let mut shard = ks.shard(key).write();
    let why = |e: String| {
        Bad(
            key_at,
            format!("key '{}': {e}", String::from_utf8_lossy(key)),
        )
    };
    // What the key held is kept until the import is done.
    let old = shard.take(key);
    if let Err(e) = put(&mut shard) {
        if let Some((h, ttl)) = old {
            let _ = shard.put(key, h, ttl);
        }
        return Err(why(e.to_string()));
    }
    let replaced = old.is_some();
    undo.push((key.to_vec(), old));
    // Logged as the key's whole state, so readers and subscribers see it
    // (one record per key; the snapshot at the end makes the log short
    // again).
    ks.log_key_state(&shard, key, replaced)
        .map_err(|e| why(e.to_string()))?;
    Ok(replaced)
}

/// Puts back every key an import stored (newest first), each change
/// logged, so a refused file leaves the database as it was.
fn roll_back(db: &Db, undo: Undo) -> Result<()> {
    let ks = db.keyspace();
    for (key, old) in undo.into_iter().rev() {
        let mut shard = ks.shard(&key).write();
        shard.delete(&key);
        match old {
            Some((h, ttl)) => {
                shard
                    .put(&key, h, ttl)
                    .map_err(|e| Error::Command(CommandError::err(e.message())))?;
                ks.log_key_state(&shard, &key, true)?;
            }
            None => {
                ks.log(&crate::keyspace::Effect::Del { keys: vec![&key] })?;
            }
        }
    }
    Ok(())
}

/// The key string at `offset` of the file (for the duplicate check).
fn read_key_at(path: &Path, offset: u64) -> Option<Vec<u8>> {
    let mut input = Input::open(path).ok()?;
    input.r.seek(SeekFrom::Start(offset)).ok()?;
    input.offset = offset;
    let mut key = Vec::new();
    input.string_into(&mut key, "key").ok()?;
    Some(key)
}

impl Db {
    /// Imports the hashes of a Redis RDB file (database 0; other types
    /// skipped and counted). See [`Db::import_rdb_with`].
    ///
    /// # Examples
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let file = dir.path().join("dump.rdb");
    /// let source = hashkv::Db::in_memory(hashkv::Options::default());
    /// source.hset("user:1", &[("name", "Alice"), ("age", "25")])?;
    /// source.export_rdb(&file)?;
    ///
    /// // Into a directory: the import ends with a snapshot of it.
    /// let db = hashkv::Db::open(dir.path().join("db"))?;
    /// let t = db.import_rdb(&file)?;
    /// assert_eq!((t.keys, t.fields), (1, 2));
    /// assert_eq!(db.hget("user:1", "age")?.as_deref(), Some(&b"25"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Db::import_rdb_with`].
    pub fn import_rdb(&self, path: impl AsRef<Path>) -> Result<RdbImport> {
        self.import_rdb_with(path, &RdbImportOptions::default(), &mut |_, _| {})
    }

    /// Imports the hashes of the Redis RDB file at `path` (versions 1 to
    /// 12), each replacing what its key held, then (for a database on a
    /// directory) takes a snapshot that makes them durable. The file is
    /// checked before anything changes: its CRC-64 when it has one, else a
    /// whole pass over it (see the module docs). `progress(bytes, total)`
    /// reports each pass's position in the file.
    ///
    /// # Examples
    /// ```no_run
    /// let db = hashkv::Db::open("data")?;
    /// let t = db.import_rdb("/var/lib/redis/dump.rdb")?;
    /// for line in t.summary() {
    ///     println!("{line}");
    /// }
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`] naming the byte offset of the damage and what was
    /// expected there, for an unreadable, damaged, unsupported or (with
    /// `strict`) mixed-type file: nothing is imported then (behind a
    /// matching checksum, the hashes stored before the refusal are put
    /// back and the error counts them). Or a failed snapshot.
    pub fn import_rdb_with(
        &self,
        path: impl AsRef<Path>,
        opts: &RdbImportOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<RdbImport> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let path = path.as_ref();
        let db_opts = self.options().clone();
        let now = db_opts.clock.now_ms();
        let reader = |crc: bool| -> Result<Reader<'_>> {
            let mut input = Input::open(path)?;
            input.crc = crc.then_some(0);
            Ok(Reader {
                path,
                input,
                opts: &db_opts,
                import: opts,
                now,
                out: RdbImport::default(),
                scratch: Vec::new(),
                blob: Vec::new(),
                hash: Hash::default(),
            })
        };
        // A file whose CRC-64 trailer matches is what its writer wrote:
        // it is read once, checked as it is applied. Any other (no
        // checksum, a zero one, a mismatch, bytes after it) is first read
        // whole without applying anything, to find and name the damage.
        let verified = crc_matches(path)?;
        let mut warnings = Vec::new();
        if !verified {
            let mut check = reader(true)?;
            check.run(
                &mut Pass {
                    seen: Some(HashMap::new()),
                    db: None,
                    undo: Vec::new(),
                },
                progress,
            )?;
            warnings = std::mem::take(&mut check.out.warnings);
        }
        let hold = self.hold_auto_snapshots();
        let mut apply = reader(false)?;
        let mut pass = Pass {
            seen: verified.then(HashMap::new),
            db: Some(self),
            undo: Vec::new(),
        };
        let applied = apply.run(&mut pass, progress);
        drop(hold);
        if let Err(e) = applied {
            // Refused after some keys went in (a record refused further
            // on behind a matching checksum, a resource limit): they are
            // put back, so a refused file leaves the database as it was.
            let stored = pass.undo.len();
            roll_back(self, std::mem::take(&mut pass.undo))?;
            return Err(match e {
                Error::Io { op, path, source } if stored > 0 => Error::Io {
                    op,
                    path,
                    source: std::io::Error::new(
                        source.kind(),
                        format!(
                            "{source} (nothing was imported: the {stored} hash(es) stored before this point were put back)"
                        ),
                    ),
                },
                e => e,
            });
        }
        drop(pass);
        let mut out = apply.out;
        out.warnings = warnings;
        if self.path().is_some() && out.keys > 0 {
            self.snapshot()?;
        }
        Ok(out)
    }
}
