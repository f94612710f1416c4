//! The command layer: argument vectors in, [`Reply`] out. Every front end
//! (the typed [`crate::Db`] methods, the shell, tests, fuzzers) goes through
//! [`Command::parse`] and `Command::execute`, so each behaviour and each
//! Redis error string lives in one place.
//!
//! Order of checks follows Redis: arity first (from the table below), then
//! each command's own argument parsing, then the key lookup.

pub(crate) mod convert;
mod ctx;
mod field_ttl;
pub(crate) mod glob;
mod hash;
mod keys;
pub(crate) mod reply;

pub(crate) use ctx::Ctx;
pub(crate) use hash::read_reply;

use crate::error::CommandError;

pub use field_ttl::{FieldCond, FieldTime, FieldTtlAction, FieldTtlKind};
pub use keys::{ExpireCond, ExpireKind, TtlKind};
pub use reply::Reply;

/// Field/value pairs, borrowed from a command's words.
pub type Pairs<'a> = Vec<(&'a [u8], &'a [u8])>;

/// A parsed command, borrowing its arguments. Field names follow the Redis
/// documentation of each command's arguments.
#[allow(missing_docs)]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Command<'a> {
    /// HSET / HMSET (`ok_reply` for HMSET).
    HSet {
        key: &'a [u8],
        pairs: Vec<(&'a [u8], &'a [u8])>,
        ok_reply: bool,
    },
    /// HSETNX.
    HSetNx {
        key: &'a [u8],
        field: &'a [u8],
        value: &'a [u8],
    },
    /// HGET.
    HGet { key: &'a [u8], field: &'a [u8] },
    /// HMGET.
    HMGet {
        key: &'a [u8],
        fields: Vec<&'a [u8]>,
    },
    /// HGETALL / HKEYS / HVALS.
    HGetAll {
        key: &'a [u8],
        keys: bool,
        values: bool,
    },
    /// HDEL.
    HDel {
        key: &'a [u8],
        fields: Vec<&'a [u8]>,
    },
    /// HEXISTS.
    HExists { key: &'a [u8], field: &'a [u8] },
    /// HLEN.
    HLen { key: &'a [u8] },
    /// HSTRLEN.
    HStrLen { key: &'a [u8], field: &'a [u8] },
    /// HINCRBY.
    HIncrBy {
        key: &'a [u8],
        field: &'a [u8],
        delta: i64,
    },
    /// HINCRBYFLOAT (the increment as given; parsed at execution).
    HIncrByFloat {
        key: &'a [u8],
        field: &'a [u8],
        delta: &'a [u8],
    },
    /// HRANDFIELD.
    HRandField {
        key: &'a [u8],
        count: Option<i64>,
        with_values: bool,
    },
    /// HSCAN (options parsed after the key lookup, as Redis does).
    HScan {
        key: &'a [u8],
        cursor: u64,
        options: Vec<&'a [u8]>,
    },
    /// DEL / UNLINK.
    Del { keys: Vec<&'a [u8]> },
    /// EXISTS.
    Exists { keys: Vec<&'a [u8]> },
    /// TYPE.
    Type { key: &'a [u8] },
    /// RENAME / RENAMENX.
    Rename {
        key: &'a [u8],
        new_key: &'a [u8],
        nx: bool,
    },
    /// COPY.
    Copy {
        src: &'a [u8],
        dst: &'a [u8],
        replace: bool,
    },
    /// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT (`when` as given; resolved
    /// against the clock at execution).
    Expire {
        key: &'a [u8],
        when: i64,
        kind: keys::ExpireKind,
        cond: keys::ExpireCond,
    },
    /// TTL / PTTL / EXPIRETIME / PEXPIRETIME.
    Ttl { key: &'a [u8], kind: keys::TtlKind },
    /// PERSIST.
    Persist { key: &'a [u8] },
    /// KEYS.
    Keys { pattern: &'a [u8] },
    /// SCAN.
    Scan {
        cursor: u64,
        pattern: Option<&'a [u8]>,
        count: usize,
        type_hash: Option<bool>,
    },
    /// DBSIZE.
    DbSize,
    /// FLUSHDB / FLUSHALL (one keyspace: the same).
    FlushDb,
    /// SELECT (the index as given; only 0 exists).
    Select { index: &'a [u8] },
    /// SWAPDB (the indexes as given; only 0 exists).
    SwapDb { a: &'a [u8], b: &'a [u8] },
    /// RESET (outside a session: answers `RESET`).
    Reset,
    /// OBJECT ENCODING.
    ObjectEncoding { key: &'a [u8] },
    /// MEMORY USAGE.
    MemoryUsage { key: &'a [u8] },
    /// PING.
    Ping { message: Option<&'a [u8]> },
    /// ECHO.
    Echo { message: &'a [u8] },
    /// HEXPIRE / HPEXPIRE / HEXPIREAT / HPEXPIREAT. `fields` holds the
    /// result of parsing past the time, reported only once the time is
    /// known to be valid (Redis checks it first).
    HExpire {
        key: &'a [u8],
        time: FieldTime,
        cond: FieldCond,
        fields: Result<Vec<&'a [u8]>, CommandError>,
    },
    /// HTTL / HPTTL / HEXPIRETIME / HPEXPIRETIME.
    HTtl {
        key: &'a [u8],
        kind: FieldTtlKind,
        fields: Vec<&'a [u8]>,
    },
    /// HPERSIST.
    HPersist {
        key: &'a [u8],
        fields: Vec<&'a [u8]>,
    },
    /// HGETDEL.
    HGetDel {
        key: &'a [u8],
        fields: Vec<&'a [u8]>,
    },
    /// HGETEX (`fields` as in `HExpire`).
    HGetEx {
        key: &'a [u8],
        action: FieldTtlAction,
        fields: Result<Vec<&'a [u8]>, CommandError>,
    },
    /// HSETEX; `only_new` is Some(true) for FNX, Some(false) for FXX.
    /// `pairs` holds an error found after a relative time, reported only
    /// once the time is known to be valid (as in `HExpire`).
    HSetEx {
        key: &'a [u8],
        only_new: Option<bool>,
        action: FieldTtlAction,
        pairs: Result<Pairs<'a>, CommandError>,
    },
}

/// Arity as Redis's command table gives it: N > 0 exactly N words, N < 0 at
/// least -N words (the command name counts).
fn arity(name: &str) -> Option<i32> {
    Some(match name {
        "hset" | "hmset" => -4,
        "hsetnx" | "hincrby" | "hincrbyfloat" => 4,
        "hget" | "hexists" | "hstrlen" => 3,
        "hmget" | "hdel" | "hscan" => -3,
        "hgetall" | "hkeys" | "hvals" | "hlen" => 2,
        "hrandfield" => -2,
        "hexpire" | "hpexpire" | "hexpireat" | "hpexpireat" | "hsetex" => -6,
        "httl" | "hpttl" | "hexpiretime" | "hpexpiretime" | "hpersist" | "hgetdel" | "hgetex" => -5,
        "del" | "unlink" | "exists" => -2,
        "type" | "ttl" | "pttl" | "expiretime" | "pexpiretime" | "persist" | "keys" | "echo" => 2,
        "rename" | "renamenx" => 3,
        "copy" | "expire" | "pexpire" | "expireat" | "pexpireat" => -3,
        "scan" => -2,
        "dbsize" => 1,
        "flushdb" | "flushall" | "ping" => -1,
        "select" => 2,
        "swapdb" => 3,
        "reset" => 1,
        "object" | "memory" => -2,
        _ => return None,
    })
}

/// Whether Redis flags the command (by its lower-case name) as a write:
/// on a read-only handle it answers `READONLY` after the arity check and
/// before its own argument checks, as a Redis replica does.
pub(crate) fn is_write_name(name: &str) -> bool {
    matches!(
        name,
        "hset"
            | "hmset"
            | "hsetnx"
            | "hdel"
            | "hincrby"
            | "hincrbyfloat"
            | "del"
            | "unlink"
            | "rename"
            | "renamenx"
            | "copy"
            | "expire"
            | "pexpire"
            | "expireat"
            | "pexpireat"
            | "persist"
            | "flushdb"
            | "flushall"
            | "swapdb"
            | "hexpire"
            | "hpexpire"
            | "hexpireat"
            | "hpexpireat"
            | "hpersist"
            | "hgetdel"
            | "hgetex"
            | "hsetex"
    )
}

/// A command or subcommand name in lower case, kept on the stack: parsing
/// a command allocates nothing for its name. A name longer than any known
/// one, or not ASCII, becomes the empty name, which no table holds (errors
/// for unknown names quote the words themselves, not this).
#[derive(Clone, Copy)]
pub(crate) struct Name {
    bytes: [u8; Name::MAX],
    len: u8,
}

impl Name {
    /// Longer than every name hashkv knows.
    const MAX: usize = 24;

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

fn lower(name: &[u8]) -> Name {
    let mut n = Name {
        bytes: [0; Name::MAX],
        len: 0,
    };
    if name.len() <= Name::MAX && name.is_ascii() {
        n.bytes[..name.len()].copy_from_slice(name);
        n.bytes[..name.len()].make_ascii_lowercase();
        n.len = name.len() as u8;
    }
    n
}

/// Redis's text for an unknown command (argv[0] and the first arguments,
/// each cut so the whole list stays near 128 bytes, newlines blanked).
fn unknown_command(argv: &[&[u8]]) -> CommandError {
    let cstr = |b: &[u8]| -> Vec<u8> { b.iter().copied().take_while(|&c| c != 0).collect() };
    let mut name = cstr(argv[0]);
    name.truncate(128);
    let mut args: Vec<u8> = Vec::new();
    for a in &argv[1..] {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        let mut a = cstr(a);
        a.truncate(room);
        args.push(b'\'');
        args.extend_from_slice(&a);
        args.extend_from_slice(b"' ");
    }
    let mut text = b"ERR unknown command '".to_vec();
    text.extend_from_slice(&name);
    text.extend_from_slice(b"', with args beginning with: ");
    text.extend_from_slice(&args);
    // CommandError::new makes CR and LF spaces, as for every error.
    CommandError::new(String::from_utf8_lossy(&text).into_owned())
}

fn unknown_subcommand(container: &[u8], sub: &[u8]) -> CommandError {
    let mut sub: Vec<u8> = sub.iter().copied().take_while(|&c| c != 0).collect();
    sub.truncate(128);
    CommandError::err(format!(
        "unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(&sub),
        String::from_utf8_lossy(container).to_ascii_uppercase()
    ))
}

/// The keys a command reads or writes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KeySet<'a> {
    /// These keys (possibly none: PING, ECHO).
    Keys(Vec<&'a [u8]>),
    /// Every key (KEYS, SCAN, DBSIZE, FLUSHDB).
    All,
}

impl<'a> Command<'a> {
    /// Whether the command may change data (Redis's `write` flag): refused
    /// with [`crate::Error::ReadOnly`] on a read-only handle.
    pub fn is_write(&self) -> bool {
        use Command as C;
        match self {
            C::HSet { .. }
            | C::HSetNx { .. }
            | C::HDel { .. }
            | C::HIncrBy { .. }
            | C::HIncrByFloat { .. }
            | C::Del { .. }
            | C::Rename { .. }
            | C::Copy { .. }
            | C::Expire { .. }
            | C::Persist { .. }
            | C::FlushDb
            | C::SwapDb { .. }
            | C::HExpire { .. }
            | C::HPersist { .. }
            | C::HGetDel { .. }
            | C::HGetEx { .. }
            | C::HSetEx { .. } => true,
            C::HGet { .. }
            | C::HMGet { .. }
            | C::HGetAll { .. }
            | C::HExists { .. }
            | C::HLen { .. }
            | C::HStrLen { .. }
            | C::HRandField { .. }
            | C::HScan { .. }
            | C::Exists { .. }
            | C::Type { .. }
            | C::Ttl { .. }
            | C::Keys { .. }
            | C::Scan { .. }
            | C::DbSize
            | C::ObjectEncoding { .. }
            | C::MemoryUsage { .. }
            | C::Ping { .. }
            | C::Echo { .. }
            | C::Select { .. }
            | C::Reset
            | C::HTtl { .. } => false,
        }
    }

    /// Whether the command reads or writes every key (KEYS, SCAN, DBSIZE,
    /// FLUSHDB): [`Command::keys`] without building the list.
    pub(crate) fn touches_all(&self) -> bool {
        matches!(
            self,
            Command::Keys { .. } | Command::Scan { .. } | Command::DbSize | Command::FlushDb
        )
    }

    /// Calls `f` with each key the command names (none for KEYS, SCAN,
    /// DBSIZE, FLUSHDB: see [`Command::touches_all`]), without building a
    /// list.
    pub(crate) fn each_key(&self, mut f: impl FnMut(&'a [u8])) {
        use Command as C;
        match self {
            C::HSet { key, .. }
            | C::HSetNx { key, .. }
            | C::HGet { key, .. }
            | C::HMGet { key, .. }
            | C::HGetAll { key, .. }
            | C::HDel { key, .. }
            | C::HExists { key, .. }
            | C::HLen { key }
            | C::HStrLen { key, .. }
            | C::HIncrBy { key, .. }
            | C::HIncrByFloat { key, .. }
            | C::HRandField { key, .. }
            | C::HScan { key, .. }
            | C::Type { key }
            | C::Expire { key, .. }
            | C::Ttl { key, .. }
            | C::Persist { key }
            | C::ObjectEncoding { key }
            | C::MemoryUsage { key }
            | C::HExpire { key, .. }
            | C::HTtl { key, .. }
            | C::HPersist { key, .. }
            | C::HGetDel { key, .. }
            | C::HGetEx { key, .. }
            | C::HSetEx { key, .. } => f(key),
            C::Del { keys } | C::Exists { keys } => keys.iter().for_each(|k| f(k)),
            C::Rename { key, new_key, .. } => {
                f(key);
                f(new_key);
            }
            C::Copy { src, dst, .. } => {
                f(src);
                f(dst);
            }
            C::Ping { .. }
            | C::Echo { .. }
            | C::Select { .. }
            | C::SwapDb { .. }
            | C::Reset
            | C::Keys { .. }
            | C::Scan { .. }
            | C::DbSize
            | C::FlushDb => {}
        }
    }

    /// The keys the command touches, to lock or check them beforehand.
    pub(crate) fn keys(&self) -> KeySet<'a> {
        if self.touches_all() {
            return KeySet::All;
        }
        let mut keys = Vec::new();
        self.each_key(|k| keys.push(k));
        KeySet::Keys(keys)
    }
}

pub(crate) fn eq_ic(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// The options of SCAN and HSCAN, parsed left to right as Redis's
/// `scanGenericCommand` does.
pub(crate) struct ScanOptions<'a> {
    /// COUNT (default 10): a hint of how many elements to visit.
    pub(crate) count: usize,
    /// MATCH, with the pattern `*` dropped (it matches everything).
    pub(crate) pattern: Option<&'a [u8]>,
    /// SCAN's TYPE: Some(true) for `hash`, Some(false) for any other name
    /// (an unknown name matches nothing, as on Redis 7.0, which the
    /// differential test runs against; Redis 7.2+ answers the later
    /// "unknown type name" error, and the real server wins).
    pub(crate) type_hash: Option<bool>,
    /// HSCAN's NOVALUES.
    pub(crate) no_values: bool,
}

impl<'a> ScanOptions<'a> {
    /// Parses `words`; `hscan` selects which of TYPE / NOVALUES is allowed.
    pub(crate) fn parse(words: &[&'a [u8]], hscan: bool) -> Result<Self, CommandError> {
        let mut o = ScanOptions {
            count: 10,
            pattern: None,
            type_hash: None,
            no_values: false,
        };
        let mut i = 0;
        while i < words.len() {
            let rest = words.len() - i;
            let opt = words[i];
            if eq_ic(opt, "count") && rest >= 2 {
                let n = crate::numeric::parse_i64(words[i + 1])
                    .ok_or_else(CommandError::not_integer)?;
                if n < 1 {
                    return Err(CommandError::syntax());
                }
                o.count = usize::try_from(n).unwrap_or(usize::MAX);
                i += 2;
            } else if eq_ic(opt, "match") && rest >= 2 {
                o.pattern = if words[i + 1] == b"*" {
                    None
                } else {
                    Some(words[i + 1])
                };
                i += 2;
            } else if !hscan && eq_ic(opt, "type") && rest >= 2 {
                o.type_hash = Some(eq_ic(words[i + 1], "hash"));
                i += 2;
            } else if eq_ic(opt, "novalues") {
                if !hscan {
                    return Err(CommandError::err(
                        "NOVALUES option can only be used in HSCAN",
                    ));
                }
                o.no_values = true;
                i += 1;
            } else {
                return Err(CommandError::syntax());
            }
        }
        Ok(o)
    }
}

impl<'a> Command<'a> {
    /// Parses an argument vector (command name first).
    ///
    /// # Errors
    /// Redis's error for an unknown command, a wrong argument count or bad
    /// arguments that Redis rejects before looking at the key.
    pub fn parse(argv: &[&'a [u8]]) -> Result<Command<'a>, CommandError> {
        let name = Self::lookup(argv)?;
        match name.as_str() {
            "object" | "memory" => {
                if name == "object" {
                    Ok(Command::ObjectEncoding { key: argv[2] })
                } else {
                    keys::parse_memory_usage(argv)
                }
            }
            _ => hash::parse(&name, argv)
                .or_else(|| field_ttl::parse(&name, argv))
                .or_else(|| keys::parse(&name, argv))
                .unwrap_or_else(|| {
                    // Every name in the arity table is handled by one of the two.
                    Err(unknown_command(argv))
                }),
        }
    }

    /// [`Command::parse`] for a handle that may be read-only: Redis's order
    /// of checks on a replica, a known name and argument count first, then
    /// `READONLY` for a write, then the command's own arguments.
    ///
    /// # Errors
    /// As [`Command::parse`], or [`crate::Error::ReadOnly`].
    pub(crate) fn parse_for(
        argv: &[&'a [u8]],
        read_only: bool,
    ) -> Result<Command<'a>, crate::error::Error> {
        if read_only {
            let name = Self::lookup(argv)?;
            if is_write_name(&name) {
                return Err(crate::error::Error::ReadOnly);
            }
        }
        Ok(Self::parse(argv)?)
    }

    /// The checks Redis makes before running (or queueing, inside MULTI) a
    /// command: a known name, the table's argument count, a known
    /// subcommand with its own count. Returns the lower-case name.
    ///
    /// # Errors
    /// Redis's error for an unknown command or subcommand or a wrong
    /// argument count (inside MULTI these abort the transaction).
    pub(crate) fn lookup(argv: &[&[u8]]) -> Result<Name, CommandError> {
        let Some(first) = argv.first() else {
            return Err(CommandError::err("empty command"));
        };
        let name = lower(first);
        if matches!(
            name.as_str(),
            "multi" | "exec" | "discard" | "watch" | "unwatch"
        ) {
            return Err(CommandError::err(format!(
                "{} needs a session: Db::execute is stateless; use Db::session() (hashkv shell runs one)",
                name.to_ascii_uppercase()
            )));
        }
        let Some(ar) = arity(&name) else {
            return Err(unknown_command(argv));
        };
        let n = argv.len() as i64;
        let ar = i64::from(ar);
        if (ar > 0 && n != ar) || n < -ar {
            return Err(CommandError::wrong_arity(&name));
        }
        if name == "object" || name == "memory" {
            let sub = lower(argv[1]);
            let (fname, ar) = match (name.as_str(), sub.as_str()) {
                ("object", "encoding") => ("object|encoding", 3),
                ("memory", "usage") => ("memory|usage", -3),
                _ => return Err(unknown_subcommand(argv[0], argv[1])),
            };
            if (ar > 0 && n != ar) || n < -ar {
                return Err(CommandError::wrong_arity(fname));
            }
        }
        Ok(name)
    }

    /// Runs the command.
    pub(crate) fn execute(self, ctx: &Ctx<'_, '_>) -> Result<Reply, crate::error::Error> {
        if ctx.ks.is_read_only() && self.is_write() {
            return Err(crate::error::Error::ReadOnly);
        }
        match self {
            Command::Del { .. }
            | Command::Exists { .. }
            | Command::Type { .. }
            | Command::Rename { .. }
            | Command::Copy { .. }
            | Command::Expire { .. }
            | Command::Ttl { .. }
            | Command::Persist { .. }
            | Command::Keys { .. }
            | Command::Scan { .. }
            | Command::DbSize
            | Command::FlushDb
            | Command::ObjectEncoding { .. }
            | Command::MemoryUsage { .. }
            | Command::Ping { .. }
            | Command::Echo { .. }
            | Command::Select { .. }
            | Command::SwapDb { .. }
            | Command::Reset => keys::execute(self, ctx),
            Command::HExpire { .. }
            | Command::HTtl { .. }
            | Command::HPersist { .. }
            | Command::HGetDel { .. }
            | Command::HGetEx { .. }
            | Command::HSetEx { .. } => field_ttl::execute(self, ctx),
            _ => hash::execute(self, ctx),
        }
    }
}
