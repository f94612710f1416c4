//! [`Pipeline`]: many commands in one call ([`Db::pipeline`]), each with
//! exactly the semantics and reply of the single call, executed so that
//! their memory accesses overlap and locks and log appends are shared.
//!
//! Not a transaction: other threads may run between its commands, and a
//! crash may keep a prefix of its writes. How a batch runs:
//!
//! - Commands are parsed, then cut into segments at commands over every
//!   key (KEYS, SCAN, DBSIZE, FLUSHDB), which run on their own, in order.
//! - A segment of plain reads (HGET, HMGET, HGETALL, HEXISTS, HLEN,
//!   HSTRLEN, EXISTS of one key) hashes every key first, read-locks each
//!   shard it touches once (in shard order), prefetches every key's table
//!   slot, then every entry, then answers each command: the cache misses of
//!   the whole batch overlap instead of following one another. A key that
//!   turns out expired, or a hash with field TTLs, is answered afterwards
//!   by the single call (which expires lazily).
//! - A segment of HSETs (and HMSETs) only runs as one batch: the shards
//!   of its keys write-locked once, its records (each the single call's)
//!   appended to the log in one write after room for all of them is
//!   reserved, then applied in order with their lookups prefetched; a
//!   failed append applies none of them. Then one wait for durability.
//! - Any other segment write-locks the shards of all its keys once (in
//!   shard order), prefetches the same way, and runs its commands in order
//!   on the locked shards, each logging its change before applying it as
//!   the single call does; the segment then waits once for durability (one
//!   group fsync under `FsyncPolicy::Always`), with the locks released.

use crate::command::read_reply;
use crate::command::{Command, Reply};
use crate::db::Db;
use crate::error::{CommandError, Error, Result};
use crate::hash::table::hash_name;
use crate::hash::HashRef;
use crate::keyspace::tx::Locked;
use crate::keyspace::{shard_of_hash, HSetItem, Lookup, Shard, SHARDS};
use crate::options::Now;
use crate::transaction;
use parking_lot::RwLockReadGuard;

/// Commands queued to run together; made by [`Db::pipeline`].
///
/// # Examples
/// ```
/// let db = hashkv::Db::in_memory(hashkv::Options::default());
/// let mut p = db.pipeline();
/// for i in 0..100 {
///     p.hset(format!("user:{i}"), &[("name", format!("n{i}"))]);
/// }
/// p.hget("user:7", "name").hincrby("user:7", "visits", 1).cmd(&["HLEN", "user:7"]);
/// let replies = p.run();
/// assert_eq!(replies.len(), 103);
/// assert_eq!(replies[100].as_ref().unwrap(), &hashkv::Reply::Bulk(b"n7".to_vec()));
/// assert_eq!(replies[102].as_ref().unwrap(), &hashkv::Reply::Integer(2));
/// ```
pub struct Pipeline<'a> {
    db: &'a Db,
    /// Every word of every command, back to back.
    bytes: Vec<u8>,
    /// End of each word in `bytes`.
    word_ends: Vec<usize>,
    /// End of each command in `word_ends`.
    cmd_ends: Vec<usize>,
    /// What each command is: a typed method's command is built from its
    /// words without parsing them again.
    kinds: Vec<Kind>,
}

/// A finished pipeline's buffers, emptied, kept for the thread's next
/// pipeline: queueing then allocates nothing once the buffers have grown to
/// the batches the thread uses (measured: growing them anew was a tenth of
/// a 64-HGET pipeline's instructions).
#[derive(Default)]
struct Buffers {
    bytes: Vec<u8>,
    word_ends: Vec<usize>,
    cmd_ends: Vec<usize>,
    kinds: Vec<Kind>,
}

/// Buffers larger than this are freed rather than kept.
const KEEP_BYTES: usize = 1 << 20;
const KEEP_WORDS: usize = 1 << 16;

thread_local! {
    static SPARE: std::cell::Cell<Option<Buffers>> = const { std::cell::Cell::new(None) };
}

impl Drop for Pipeline<'_> {
    fn drop(&mut self) {
        if self.bytes.capacity() > KEEP_BYTES || self.word_ends.capacity() > KEEP_WORDS {
            return;
        }
        let mut b = Buffers {
            bytes: std::mem::take(&mut self.bytes),
            word_ends: std::mem::take(&mut self.word_ends),
            cmd_ends: std::mem::take(&mut self.cmd_ends),
            kinds: std::mem::take(&mut self.kinds),
        };
        b.bytes.clear();
        b.word_ends.clear();
        b.cmd_ends.clear();
        b.kinds.clear();
        // During thread teardown the slot may be gone: then they are freed.
        let _ = SPARE.try_with(|s| s.set(Some(b)));
    }
}

/// How a queued command becomes a [`Command`].
#[derive(Clone, Copy)]
enum Kind {
    /// Parsed from its words (`cmd`, and typed calls whose arguments a
    /// single call would refuse, such as HDEL with no field).
    Words,
    HGet,
    HMGet,
    HGetAll,
    HSet,
    HIncrBy(i64),
    HDel,
    Exists,
    Del,
}

impl std::fmt::Debug for Pipeline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("commands", &self.cmd_ends.len())
            .finish()
    }
}

impl Db {
    /// An empty pipeline over this database.
    pub fn pipeline(&self) -> Pipeline<'_> {
        let b = SPARE
            .try_with(|s| s.take())
            .ok()
            .flatten()
            .unwrap_or_default();
        Pipeline {
            db: self,
            bytes: b.bytes,
            word_ends: b.word_ends,
            cmd_ends: b.cmd_ends,
            kinds: b.kinds,
        }
    }
}

impl<'a> Pipeline<'a> {
    fn word(&mut self, w: &[u8]) {
        self.bytes.extend_from_slice(w);
        self.word_ends.push(self.bytes.len());
    }

    fn end(&mut self) -> &mut Self {
        self.end_as(Kind::Words)
    }

    fn end_as(&mut self, kind: Kind) -> &mut Self {
        self.cmd_ends.push(self.word_ends.len());
        self.kinds.push(kind);
        self
    }

    /// `kind` if the command has at least `min` words (else it is parsed,
    /// to get the single call's arity error).
    fn typed(&mut self, kind: Kind, min: usize) -> &mut Self {
        let start = self.cmd_ends.last().copied().unwrap_or(0);
        if self.word_ends.len() - start >= min {
            self.end_as(kind)
        } else {
            self.end()
        }
    }

    /// Queues any command, as its words.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> &mut Self {
        for w in argv {
            self.word(w.as_ref());
        }
        self.end()
    }

    /// Queues `HGET key field`.
    pub fn hget(&mut self, key: impl AsRef<[u8]>, field: impl AsRef<[u8]>) -> &mut Self {
        self.word(b"HGET");
        self.word(key.as_ref());
        self.word(field.as_ref());
        self.typed(Kind::HGet, 3)
    }

    /// Queues `HMGET key field [field ...]`.
    pub fn hmget<F: AsRef<[u8]>>(&mut self, key: impl AsRef<[u8]>, fields: &[F]) -> &mut Self {
        self.word(b"HMGET");
        self.word(key.as_ref());
        for f in fields {
            self.word(f.as_ref());
        }
        self.typed(Kind::HMGet, 3)
    }

    /// Queues `HGETALL key`.
    pub fn hgetall(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        self.word(b"HGETALL");
        self.word(key.as_ref());
        self.typed(Kind::HGetAll, 2)
    }

    /// Queues `HSET key field value [field value ...]`.
    pub fn hset<F: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        key: impl AsRef<[u8]>,
        pairs: &[(F, V)],
    ) -> &mut Self {
        self.word(b"HSET");
        self.word(key.as_ref());
        for (f, v) in pairs {
            self.word(f.as_ref());
            self.word(v.as_ref());
        }
        self.typed(Kind::HSet, 4)
    }

    /// Queues `HINCRBY key field delta`.
    pub fn hincrby(
        &mut self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        delta: i64,
    ) -> &mut Self {
        self.word(b"HINCRBY");
        self.word(key.as_ref());
        self.word(field.as_ref());
        let mut d = Vec::with_capacity(20);
        crate::numeric::push_i64(&mut d, delta);
        self.word(&d);
        self.typed(Kind::HIncrBy(delta), 4)
    }

    /// Queues `HDEL key field [field ...]`.
    pub fn hdel<F: AsRef<[u8]>>(&mut self, key: impl AsRef<[u8]>, fields: &[F]) -> &mut Self {
        self.word(b"HDEL");
        self.word(key.as_ref());
        for f in fields {
            self.word(f.as_ref());
        }
        self.typed(Kind::HDel, 3)
    }

    /// Queues `EXISTS key [key ...]`.
    pub fn exists<K: AsRef<[u8]>>(&mut self, keys: &[K]) -> &mut Self {
        self.word(b"EXISTS");
        for k in keys {
            self.word(k.as_ref());
        }
        self.typed(Kind::Exists, 2)
    }

    /// Queues `DEL key [key ...]`.
    pub fn del<K: AsRef<[u8]>>(&mut self, keys: &[K]) -> &mut Self {
        self.word(b"DEL");
        for k in keys {
            self.word(k.as_ref());
        }
        self.typed(Kind::Del, 2)
    }

    /// Commands queued so far.
    pub fn len(&self) -> usize {
        self.cmd_ends.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.cmd_ends.is_empty()
    }

    /// Runs the queued commands in order and returns each one's reply (or
    /// error) as the single call would.
    pub fn run(self) -> Vec<Result<Reply>> {
        let mut out = Collect(Vec::new());
        out.0.resize_with(self.cmd_ends.len(), || None);
        self.run_into(&mut out);
        out.0
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(internal("a command was not run"))))
            .collect()
    }

    /// Runs the queued commands in order as [`Pipeline::run`] does, and
    /// lends each reply to `f` with its command's index, in index order,
    /// instead of returning a vector of replies.
    ///
    /// The replies of HGET, HEXISTS, HLEN, HSTRLEN and EXISTS of one key
    /// answered by the batch read path are written into one reply buffer
    /// the pipeline reuses: a pipeline of such reads allocates nothing per
    /// command (only a few buffers per pipeline). Other replies are built
    /// as [`Pipeline::run`] builds them. A write's reply is lent once its
    /// segment is durable (or has failed to be).
    ///
    /// `f` may run while the pipeline holds shard locks (a read is lent
    /// from where its value is stored): it must not call this database (or
    /// a clone of it), or it may wait for itself.
    ///
    /// # Examples
    /// ```
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// db.hset("object:1", &[("addr", "9f86d081")])?;
    /// let mut p = db.pipeline();
    /// p.hget("object:1", "addr").hget("object:2", "addr").cmd(&["HLEN"]);
    /// let mut seen = Vec::new();
    /// p.run_with(|i, reply| match reply {
    ///     Ok(hashkv::Reply::Bulk(v)) => seen.push((i, String::from_utf8_lossy(v).into_owned())),
    ///     Ok(other) => seen.push((i, format!("{other:?}"))),
    ///     Err(e) => seen.push((i, e.to_string())),
    /// });
    /// assert_eq!(seen[0], (0, "9f86d081".to_owned()));
    /// assert_eq!(seen[1], (1, "Nil".to_owned()));
    /// assert!(seen[2].1.contains("wrong number of arguments"));
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn run_with<F>(self, f: F)
    where
        F: FnMut(usize, std::result::Result<&Reply, &Error>),
    {
        let mut out = Lend {
            f,
            next: 0,
            pending: std::collections::BTreeMap::new(),
            reply: Reply::Nil,
            // Most values fit; a longer one grows it once for the rest.
            buf: Vec::with_capacity(64),
        };
        let n = self.cmd_ends.len();
        self.run_into(&mut out);
        // Every command is answered; a gap would be a bug here, and is
        // reported rather than skipped.
        while out.next < n {
            let i = out.next;
            let r = out
                .pending
                .remove(&i)
                .unwrap_or_else(|| Err(internal("a command was not run")));
            out.answer(i, r);
        }
    }

    fn run_into<O: Answers>(self, out: &mut O) {
        let mut words: Vec<&[u8]> = Vec::with_capacity(self.word_ends.len());
        let mut start = 0;
        for &end in &self.word_ends {
            words.push(&self.bytes[start..end]);
            start = end;
        }
        let n = self.cmd_ends.len();
        let mut segment: Vec<(usize, Command<'_>)> = Vec::with_capacity(n);
        let mut start = 0;
        let read_only = self.db.is_read_only();
        for (i, (&end, &kind)) in self.cmd_ends.iter().zip(&self.kinds).enumerate() {
            let argv = &words[start..end];
            start = end;
            let cmd = if argv.is_empty() {
                Err(CommandError::err("empty command").into())
            } else {
                match build(kind, argv) {
                    Some(cmd) if read_only && cmd.is_write() => Err(Error::ReadOnly),
                    Some(cmd) => Ok(cmd),
                    None => Command::parse_for(argv, read_only),
                }
            };
            match cmd {
                Err(e) => out.answer(i, Err(e)),
                Ok(cmd) if cmd.touches_all() => {
                    run_segment(self.db, &mut segment, out);
                    out.answer(i, self.db.run(cmd));
                }
                Ok(cmd) => segment.push((i, cmd)),
            }
        }
        run_segment(self.db, &mut segment, out);
    }
}

/// Where a pipeline's answers go: [`Pipeline::run`]'s vector or
/// [`Pipeline::run_with`]'s callback.
trait Answers {
    /// Command `i`'s final reply.
    fn answer(&mut self, i: usize, r: Result<Reply>);

    /// Command `i`'s reply, a plain read of the live hash `h` (or none).
    fn answer_read(&mut self, i: usize, cmd: &Command<'_>, h: Option<HashRef<'_>>) {
        self.answer(i, Ok(read_reply(cmd, h)));
    }
}

/// Every reply kept, for [`Pipeline::run`].
struct Collect(Vec<Option<Result<Reply>>>);

impl Answers for Collect {
    fn answer(&mut self, i: usize, r: Result<Reply>) {
        if let Some(slot) = self.0.get_mut(i) {
            *slot = Some(r);
        }
    }
}

/// Replies lent to a callback in index order, for [`Pipeline::run_with`]:
/// one answered ahead of its turn waits in `pending`.
struct Lend<F> {
    f: F,
    /// The index the callback gets next.
    next: usize,
    pending: std::collections::BTreeMap<usize, Result<Reply>>,
    /// The reply lent for reads, rebuilt in place.
    reply: Reply,
    /// A bulk reply's bytes, kept between replies.
    buf: Vec<u8>,
}

impl<F: FnMut(usize, std::result::Result<&Reply, &Error>)> Lend<F> {
    fn flush(&mut self) {
        while let Some(r) = self.pending.remove(&self.next) {
            (self.f)(self.next, r.as_ref());
            self.next += 1;
        }
    }
}

impl<F: FnMut(usize, std::result::Result<&Reply, &Error>)> Answers for Lend<F> {
    fn answer(&mut self, i: usize, r: Result<Reply>) {
        if i == self.next {
            (self.f)(i, r.as_ref());
            self.next += 1;
            self.flush();
        } else {
            self.pending.insert(i, r);
        }
    }

    fn answer_read(&mut self, i: usize, cmd: &Command<'_>, h: Option<HashRef<'_>>) {
        if i != self.next {
            self.pending.insert(i, Ok(read_reply(cmd, h)));
            return;
        }
        if let Reply::Bulk(v) = std::mem::replace(&mut self.reply, Reply::Nil) {
            self.buf = v;
        }
        self.reply = match cmd {
            Command::HGet { field, .. } => match h.and_then(|h| h.get(field)) {
                Some(e) => {
                    let mut v = std::mem::take(&mut self.buf);
                    v.clear();
                    e.push_to(&mut v);
                    Reply::Bulk(v)
                }
                None => Reply::Nil,
            },
            // Integers and arrays: as `run` builds them (an integer
            // allocates nothing).
            other => read_reply(other, h),
        };
        (self.f)(i, Ok(&self.reply));
        self.next += 1;
        self.flush();
    }
}

/// The command a typed method queued, built from its words (which have
/// the arity `Pipeline::typed` checked); `None` for words to parse.
fn build<'w>(kind: Kind, w: &[&'w [u8]]) -> Option<Command<'w>> {
    Some(match kind {
        Kind::Words => return None,
        Kind::HGet => Command::HGet {
            key: w[1],
            field: w[2],
        },
        Kind::HMGet => Command::HMGet {
            key: w[1],
            fields: w[2..].to_vec(),
        },
        Kind::HGetAll => Command::HGetAll {
            key: w[1],
            keys: true,
            values: true,
        },
        Kind::HSet => Command::HSet {
            key: w[1],
            pairs: w[2..].chunks_exact(2).map(|p| (p[0], p[1])).collect(),
            ok_reply: false,
        },
        Kind::HIncrBy(delta) => Command::HIncrBy {
            key: w[1],
            field: w[2],
            delta,
        },
        Kind::HDel => Command::HDel {
            key: w[1],
            fields: w[2..].to_vec(),
        },
        Kind::Exists => Command::Exists {
            keys: w[1..].to_vec(),
        },
        Kind::Del => Command::Del {
            keys: w[1..].to_vec(),
        },
    })
}

fn internal(what: &str) -> Error {
    Error::Command(CommandError::err(format!("internal: pipeline: {what}")))
}

/// The key of a command the read path answers, if it is one.
fn fast_read_key<'c>(cmd: &Command<'c>) -> Option<&'c [u8]> {
    match cmd {
        Command::HGet { key, .. }
        | Command::HMGet { key, .. }
        | Command::HGetAll { key, .. }
        | Command::HExists { key, .. }
        | Command::HLen { key }
        | Command::HStrLen { key, .. } => Some(key),
        Command::Exists { keys } if keys.len() == 1 => Some(keys[0]),
        _ => None,
    }
}

fn run_segment<O: Answers>(db: &Db, segment: &mut Vec<(usize, Command<'_>)>, out: &mut O) {
    if segment.is_empty() {
        return;
    }
    if segment.iter().all(|(_, c)| fast_read_key(c).is_some()) {
        read_segment(db, segment, out);
    } else {
        write_segment(db, segment, out);
    }
}

/// Plain reads: every shard read-locked once, lookups prefetched in two
/// stages across the whole segment, then answered.
fn read_segment<O: Answers>(db: &Db, segment: &mut Vec<(usize, Command<'_>)>, out: &mut O) {
    const _: () = assert!(SHARDS <= 64, "the shard set is a u64 mask");
    let ks = db.keyspace();
    let now = Now::lazy(&*db.options().clock);
    let mut mask = 0u64;
    let hashed: Vec<(u64, usize)> = segment
        .iter()
        .map(|(_, c)| {
            let h = hash_name(fast_read_key(c).unwrap_or_default());
            let s = shard_of_hash(h);
            mask |= 1 << s;
            (h, s)
        })
        .collect();
    // Ascending shard order, as every multi-shard lock is taken.
    let mut guards: [Option<RwLockReadGuard<'_, Shard>>; SHARDS] = std::array::from_fn(|_| None);
    let mut m = mask;
    while m != 0 {
        let s = m.trailing_zeros() as usize;
        guards[s] = Some(ks.shard_at(s).read());
        m &= m - 1;
    }
    let shard = |s: usize| guards[s].as_deref();
    for &(h, s) in &hashed {
        if let Some(g) = shard(s) {
            g.prefetch_slot(h);
        }
    }
    for &(h, s) in &hashed {
        if let Some(g) = shard(s) {
            g.prefetch_entry(h);
        }
    }
    let mut later = Vec::new();
    for ((i, cmd), &(h, s)) in segment.drain(..).zip(&hashed) {
        let key = fast_read_key(&cmd).unwrap_or_default();
        let Some(g) = shard(s) else {
            later.push((i, cmd));
            continue;
        };
        match g.lookup_hashed(key, h, &now) {
            Lookup::Missing => out.answer_read(i, &cmd, None),
            Lookup::Live(hr) if !hr.has_field_ttls() => out.answer_read(i, &cmd, Some(hr)),
            // Expired key, or fields that may be: the single call expires
            // them lazily (it needs the write lock).
            _ => later.push((i, cmd)),
        }
    }
    drop(guards);
    for (i, cmd) in later {
        out.answer(i, db.run(cmd));
    }
}

/// Anything else: the shards of every key write-locked once, the
/// commands run in order on them, their records appended together.
fn write_segment<O: Answers>(db: &Db, segment: &mut Vec<(usize, Command<'_>)>, out: &mut O) {
    if segment
        .iter()
        .all(|(_, c)| matches!(c, Command::HSet { pairs, .. } if !pairs.is_empty()))
    {
        hset_segment(db, segment, out);
        return;
    }
    let ks = db.keyspace();
    let mut hashes: Vec<u64> = Vec::with_capacity(segment.len());
    let mut mask = 0u64;
    for (_, c) in segment.iter() {
        c.each_key(|k| {
            let h = hash_name(k);
            mask |= 1 << shard_of_hash(h);
            hashes.push(h);
        });
    }
    let mut g = ks.lock_mask(mask);
    for &h in &hashes {
        if let Some(s) = g.try_shard_at(shard_of_hash(h)) {
            s.prefetch_slot(h);
        }
    }
    for &h in &hashes {
        if let Some(s) = g.try_shard_at(shard_of_hash(h)) {
            s.prefetch_entry(h);
        }
    }
    let locked = Locked::for_pipeline(g);
    // Held until durability is known: a write answers only then.
    let mut done: Vec<(usize, Result<Reply>)> = Vec::with_capacity(segment.len());
    for (i, cmd) in segment.drain(..) {
        done.push((i, transaction::run_in(db, &locked, cmd)));
    }
    let ticket = locked.pipeline_ticket();
    drop(locked);
    if let Err(e) = ks.sync(ticket) {
        // As a single call, a write whose durability failed reports it.
        let text = e.to_string();
        for (_, r) in done.iter_mut() {
            if r.is_ok() {
                *r = Err(Error::Command(CommandError::err(format!(
                    "the pipeline's writes were logged but not made durable: {text}"
                ))));
            }
        }
    }
    for (i, r) in done {
        out.answer(i, r);
    }
}

/// A segment of HSETs only: one batch ([`Keyspace::hset_batch`]), its
/// records appended in one write, one wait for durability.
///
/// [`Keyspace::hset_batch`]: crate::keyspace::Keyspace::hset_batch
fn hset_segment<O: Answers>(db: &Db, segment: &mut Vec<(usize, Command<'_>)>, out: &mut O) {
    let items: Vec<HSetItem<'_>> = segment
        .iter()
        .map(|(_, c)| match c {
            Command::HSet { key, pairs, .. } => HSetItem { key, pairs },
            // The caller sends HSETs only.
            _ => HSetItem {
                key: b"",
                pairs: &[],
            },
        })
        .collect();
    let ks = db.keyspace();
    let now = Now::lazy(&*db.options().clock);
    // Held until durability is known: a write answers only then.
    let mut done: Vec<Option<Result<Reply>>> = Vec::with_capacity(segment.len());
    done.resize_with(segment.len(), || None);
    let ran = ks.hset_batch(&items, &now, db.options(), |j, r| {
        let ok = matches!(segment[j].1, Command::HSet { ok_reply: true, .. });
        done[j] = Some(
            r.map(|n| if ok { Reply::ok() } else { Reply::Integer(n) })
                .map_err(Error::Command),
        );
    });
    let res = ran.and_then(|ticket| ks.sync(ticket));
    if let Err(e) = res {
        // Not logged (nothing applied), or logged but not made durable:
        // every command of the segment reports it, as its single call would.
        let text = e.to_string();
        for r in done.iter_mut() {
            if !matches!(r, Some(Err(_))) {
                *r = Some(Err(Error::Command(CommandError::err(format!(
                    "the pipeline's writes could not be logged or made durable: {text}"
                )))));
            }
        }
    }
    for ((i, _), r) in segment.drain(..).zip(done) {
        out.answer(
            i,
            r.unwrap_or_else(|| Err(internal("a command was not run"))),
        );
    }
}
