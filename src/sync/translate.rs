//! Turning hashkv's changes into Redis commands that can be applied twice.
//!
//! Sync delivers at least once: after a restart it sends again the changes
//! after the last position it saved, over a target that may already hold
//! some of them. So every change becomes commands whose outcome does not
//! depend on what the target held before them:
//!
//! - field writes, deletions and expiries are forwarded as they are (HSET,
//!   HDEL, DEL, PEXPIREAT, PERSIST, HPEXPIREAT, HPERSIST): each sets what
//!   it touches to a value the log fixed (times are absolute), so sending a
//!   run of them again over a state that already has them ends in the same
//!   state;
//! - a field write that keeps or sets field TTLs (HSETEX) becomes HSET and
//!   HPEXPIREAT of the TTLs the fields have after it, in one unit;
//! - RENAME and COPY read the source: sent again after the source changed,
//!   they would copy the wrong thing. They become the content their keys
//!   have right after the change (read from the reader, which applies the
//!   log in step with sync): the key replaced whole, or deleted;
//! - FLUSHDB becomes DEL of every key hashkv held just before it (the
//!   target may hold other data; sync never flushes it).
//!
//! A transaction is one unit: its parts, sent atomically where the target
//! allows it (see [`super::target`]).

use crate::command::glob;
use crate::db::Db;
use crate::follow::Visit;
use crate::keyspace::effect::KEEP_TTL;
use crate::keyspace::Effect;
use crate::options::Now;

/// One command's words.
pub(crate) type Words = Vec<Vec<u8>>;

/// Not a Redis command: "delete this key if it is a hash, refuse it if it
/// holds another type" (a small script on the target). What a replacement
/// starts with, so sync never deletes data of another type.
pub(crate) const GUARD: &[u8] = b"HASHKV-REPLACE";

/// Pairs per HSET (and fields per HPEXPIREAT).
const CHUNK: usize = 1000;

/// Commands the target applies together when it can.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Unit {
    /// The commands, in order.
    pub cmds: Vec<Words>,
    /// Whether they should be applied atomically (a transaction, a key
    /// replaced while the application runs).
    pub atomic: bool,
}

/// The key a command is about (every command sync sends has one).
pub(crate) fn key_of(w: &Words) -> &[u8] {
    w.get(1).map_or(&[][..], Vec::as_slice)
}

fn word(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn num(n: i64) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// A key's content: its fields, the fields' TTLs, its TTL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Content {
    pub pairs: Vec<(Vec<u8>, Vec<u8>)>,
    pub field_ttls: Vec<(Vec<u8>, i64)>,
    pub ttl: Option<i64>,
}

impl Content {
    /// The live fields of `h` (expired ones left out), with `ttl`.
    pub(crate) fn of(h: &crate::hash::HashRef<'_>, ttl: Option<i64>) -> Content {
        let t = h.now();
        let mut c = Content {
            ttl,
            ..Content::default()
        };
        h.for_each_with_ttl(|f, v, at| {
            if at != 0 && crate::hash::is_expired(at, t) {
                return;
            }
            let f = f.to_bytes();
            if at != 0 {
                c.field_ttls.push((f.clone(), at));
            }
            c.pairs.push((f, v.to_bytes()));
        });
        c
    }
}

/// `key`'s live content in `db` now, or `None` when it has none.
pub(crate) fn content(db: &Db, key: &[u8]) -> Option<Content> {
    let now = Now::lazy(&*db.options().clock);
    let mut c = db
        .keyspace()
        .read(key, &now, |h| h.map(|h| Content::of(&h, None)))?;
    if c.pairs.is_empty() {
        return None;
    }
    c.ttl = match db.execute(&[b"PEXPIRETIME".as_slice(), key]) {
        Ok(crate::Reply::Integer(at)) if at >= 0 => Some(at),
        _ => None,
    };
    Some(c)
}

/// HPEXPIREAT commands setting `ttls`, fields grouped by time.
fn field_ttl_cmds(key: &[u8], ttls: &[(Vec<u8>, i64)], out: &mut Vec<Words>) {
    let mut by_time: Vec<(i64, &[u8])> = ttls.iter().map(|(f, t)| (*t, f.as_slice())).collect();
    by_time.sort_unstable();
    for group in by_time.chunk_by(|a, b| a.0 == b.0) {
        for chunk in group.chunks(CHUNK) {
            let mut w = vec![word("HPEXPIREAT"), key.to_vec(), num(chunk[0].0)];
            w.push(word("FIELDS"));
            w.push(num(chunk.len() as i64));
            w.extend(chunk.iter().map(|(_, f)| f.to_vec()));
            out.push(w);
        }
    }
}

/// HSET commands of `pairs`, at most [`CHUNK`] pairs each.
fn hset_cmds(key: &[u8], pairs: &[(&[u8], &[u8])], out: &mut Vec<Words>) {
    for chunk in pairs.chunks(CHUNK) {
        let mut w = Vec::with_capacity(2 + 2 * chunk.len());
        w.push(word("HSET"));
        w.push(key.to_vec());
        for (f, v) in chunk {
            w.push(f.to_vec());
            w.push(v.to_vec());
        }
        out.push(w);
    }
}

/// The commands that make `key` hold `content` (or nothing) whatever it
/// held; `guard` first checks it is not a key of another type.
pub(crate) fn replace_cmds(
    key: &[u8],
    content: Option<&Content>,
    guard: bool,
    out: &mut Vec<Words>,
) {
    if guard {
        out.push(vec![GUARD.to_vec(), key.to_vec()]);
    } else if content.is_none() {
        out.push(vec![word("DEL"), key.to_vec()]);
    }
    let Some(c) = content else {
        return;
    };
    let pairs: Vec<(&[u8], &[u8])> = c
        .pairs
        .iter()
        .map(|(f, v)| (f.as_slice(), v.as_slice()))
        .collect();
    hset_cmds(key, &pairs, out);
    field_ttl_cmds(key, &c.field_ttls, out);
    if let Some(at) = c.ttl {
        out.push(vec![word("PEXPIREAT"), key.to_vec(), num(at)]);
    }
}

/// Appends `n` in decimal.
fn push_num(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends a RESP array header of `n` elements.
fn push_header(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    push_num(out, n);
    out.extend_from_slice(b"\r\n");
}

/// Appends one RESP bulk string.
fn push_bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'$');
    push_num(out, b.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// What [`copy_resp`] wrote for a key.
pub(crate) struct Copied {
    /// Fields written (0: the key had none live, nothing was written).
    pub fields: u64,
    /// Whether the key has field TTLs (left out unless `field_ttls`).
    pub had_field_ttls: bool,
}

/// A key's replacement written as RESP straight from the hash (a full copy
/// into a single server): no field is copied into a buffer of its own.
/// Field TTLs are written when `field_ttls`.
pub(crate) fn copy_resp(
    key: &[u8],
    h: &crate::hash::HashRef<'_>,
    ttl: Option<i64>,
    guard: bool,
    field_ttls: bool,
    out: &mut super::target::Packed,
) -> Copied {
    let t = h.now();
    let live = |at: i64| at == 0 || !crate::hash::is_expired(at, t);
    let (mut n, mut had) = (0usize, false);
    h.for_each_with_ttl(|_, _, at| {
        if live(at) {
            n += 1;
            had |= at != 0;
        }
    });
    if n == 0 {
        return Copied {
            fields: 0,
            had_field_ttls: false,
        };
    }
    let k = out.keys.len() as u32;
    out.keys.push(key.to_vec());
    if guard {
        crate::interop::resp_command(
            &mut out.buf,
            &[b"EVAL", super::target::GUARD_SCRIPT.as_bytes(), b"1", key],
        )
        .ok();
        out.count += 1;
        out.cmd_key.push(k);
    }
    let (mut left, mut in_chunk, mut chunk) = (n, 0usize, 0usize);
    let mut ttls: Vec<(Vec<u8>, i64)> = Vec::new();
    let (buf, count, cmd_key) = (&mut out.buf, &mut out.count, &mut out.cmd_key);
    h.for_each_with_ttl(|f, v, at| {
        if !live(at) {
            return;
        }
        if in_chunk == 0 {
            chunk = left.min(CHUNK);
            push_header(buf, 2 + 2 * chunk);
            push_bulk(buf, b"HSET");
            push_bulk(buf, key);
            *count += 1;
            cmd_key.push(k);
        }
        f.with_bytes(|b| push_bulk(buf, b));
        v.with_bytes(|b| push_bulk(buf, b));
        if at != 0 && field_ttls {
            ttls.push((f.to_bytes(), at));
        }
        left -= 1;
        in_chunk += 1;
        if in_chunk == chunk {
            in_chunk = 0;
        }
    });
    let mut rest = Vec::new();
    field_ttl_cmds(key, &ttls, &mut rest);
    if let Some(at) = ttl {
        rest.push(vec![word("PEXPIREAT"), key.to_vec(), num(at)]);
    }
    for w in &rest {
        push_header(&mut out.buf, w.len());
        for a in w {
            push_bulk(&mut out.buf, a);
        }
        out.count += 1;
        out.cmd_key.push(k);
    }
    Copied {
        fields: n as u64,
        had_field_ttls: had,
    }
}

/// Follows the reader record by record and turns each into [`Unit`]s.
pub(crate) struct Translator<'p> {
    pattern: Option<&'p [u8]>,
    /// Keys held just before a FLUSHDB in the record being applied.
    flushed: Vec<Vec<u8>>,
    /// Set when the reader loaded the directory again.
    pub reloaded: bool,
}

/// One record's units and where it ends.
#[derive(Debug, Clone)]
pub(crate) struct Translated {
    pub units: Vec<Unit>,
    pub end: crate::feed::LogPosition,
}

fn has_flush(e: &Effect<'_>) -> bool {
    match e {
        Effect::FlushDb => true,
        Effect::Batch { effects } => effects.iter().any(has_flush),
        _ => false,
    }
}

impl<'p> Translator<'p> {
    pub(crate) fn new(pattern: Option<&'p [u8]>) -> Self {
        Translator {
            pattern,
            flushed: Vec::new(),
            reloaded: false,
        }
    }

    fn wanted(&self, key: &[u8]) -> bool {
        self.pattern.is_none_or(|p| glob::matches(p, key))
    }

    /// Handles one visit of the reader's catch-up, pushing what a record
    /// becomes to `out`.
    pub(crate) fn visit(&mut self, v: Visit<'_, '_>, db: &Db, out: &mut Vec<Translated>) {
        match v {
            Visit::Before(e) => {
                if has_flush(e) {
                    self.flushed = all_keys(db, self.pattern);
                }
            }
            Visit::After(e, end) => {
                let mut cmds = Vec::new();
                let atomic = matches!(e, Effect::Batch { .. }) || needs_unit(e);
                self.effect(e, db, &mut cmds);
                self.flushed.clear();
                let units = if cmds.is_empty() {
                    Vec::new()
                } else {
                    vec![Unit { cmds, atomic }]
                };
                out.push(Translated { units, end });
            }
            Visit::Reloaded => self.reloaded = true,
        }
    }

    fn effect(&self, e: &Effect<'_>, db: &Db, out: &mut Vec<Words>) {
        let key_cmd = |name: &str, key: &[u8], rest: &[&[u8]], out: &mut Vec<Words>| {
            let mut w = vec![word(name), key.to_vec()];
            w.extend(rest.iter().map(|b| b.to_vec()));
            out.push(w);
        };
        match e {
            Effect::HSet { key, pairs } => {
                if self.wanted(key) {
                    hset_cmds(key, pairs, out);
                }
            }
            Effect::HSetEx { key, pairs, ttl } => {
                if !self.wanted(key) {
                    return;
                }
                hset_cmds(key, pairs, out);
                let fields = pairs.iter().map(|(f, _)| f.to_vec());
                let ttls: Vec<(Vec<u8>, i64)> = match *ttl {
                    0 => Vec::new(),
                    KEEP_TTL => {
                        // The TTLs the fields kept: as they are now, right
                        // after the record (a later change is sent later).
                        let now_ttls = content(db, key).map(|c| c.field_ttls).unwrap_or_default();
                        let set: std::collections::HashSet<&[u8]> =
                            pairs.iter().map(|(f, _)| *f).collect();
                        now_ttls
                            .into_iter()
                            .filter(|(f, _)| set.contains(f.as_slice()))
                            .collect()
                    }
                    at => fields.map(|f| (f, at)).collect(),
                };
                field_ttl_cmds(key, &ttls, out);
            }
            Effect::HDel { key, fields } => {
                if self.wanted(key) {
                    for chunk in fields.chunks(CHUNK) {
                        key_cmd("HDEL", key, chunk, out);
                    }
                }
            }
            Effect::Del { keys } => {
                for k in keys.iter().filter(|k| self.wanted(k)) {
                    key_cmd("DEL", k, &[], out);
                }
            }
            Effect::PExpireAt { key, at_ms } => {
                if self.wanted(key) {
                    key_cmd("PEXPIREAT", key, &[&num(*at_ms)], out);
                }
            }
            Effect::Persist { key } => {
                if self.wanted(key) {
                    key_cmd("PERSIST", key, &[], out);
                }
            }
            Effect::HPExpireAt { key, at_ms, fields } => {
                if self.wanted(key) {
                    for chunk in fields.chunks(CHUNK) {
                        let (at, n) = (num(*at_ms), num(chunk.len() as i64));
                        let mut rest: Vec<&[u8]> = vec![&at, b"FIELDS", &n];
                        rest.extend(chunk.iter().copied());
                        key_cmd("HPEXPIREAT", key, &rest, out);
                    }
                }
            }
            Effect::HPersist { key, fields } => {
                if self.wanted(key) {
                    for chunk in fields.chunks(CHUNK) {
                        let n = num(chunk.len() as i64);
                        let mut rest: Vec<&[u8]> = vec![b"FIELDS", &n];
                        rest.extend(chunk.iter().copied());
                        key_cmd("HPERSIST", key, &rest, out);
                    }
                }
            }
            Effect::Rename { from, to } => {
                for k in [from, to] {
                    if self.wanted(k) {
                        replace_cmds(k, content(db, k).as_ref(), true, out);
                    }
                }
            }
            Effect::Copy { dst, .. } => {
                if self.wanted(dst) {
                    replace_cmds(dst, content(db, dst).as_ref(), true, out);
                }
            }
            Effect::FlushDb => {
                for k in &self.flushed {
                    key_cmd("DEL", k, &[], out);
                }
            }
            Effect::Batch { effects } => {
                // A FLUSHDB in a transaction also removes what its earlier
                // parts created.
                let mut seen: Vec<Vec<u8>> = Vec::new();
                for part in effects {
                    if matches!(part, Effect::FlushDb) {
                        for k in seen.drain(..) {
                            if self.wanted(&k) && !self.flushed.contains(&k) {
                                key_cmd("DEL", &k, &[], out);
                            }
                        }
                    } else {
                        part.for_each_key(&mut |k| seen.push(k.to_vec()));
                    }
                    self.effect(part, db, out);
                }
            }
        }
    }
}

/// Whether a record that is not a transaction still makes several
/// commands that belong together.
fn needs_unit(e: &Effect<'_>) -> bool {
    matches!(
        e,
        Effect::HSetEx { .. } | Effect::Rename { .. } | Effect::Copy { .. }
    )
}

/// Every key `db` holds (expired ones too: the target may still have
/// them), matching `pattern`.
pub(crate) fn all_keys(db: &Db, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..crate::keyspace::SHARDS {
        let shard = db.keyspace().shard_at(i).read();
        out.extend(
            shard
                .key_names()
                .filter(|k| pattern.is_none_or(|p| glob::matches(p, k)))
                .map(<[u8]>::to_vec),
        );
    }
    out
}
