//! Key-level and server commands: DEL UNLINK EXISTS TYPE RENAME RENAMENX COPY
//! EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL EXPIRETIME PEXPIRETIME PERSIST
//! KEYS SCAN DBSIZE FLUSHDB OBJECT ENCODING MEMORY USAGE PING ECHO.

use super::hash::numeric_u64;
use super::{eq_ic, glob, Command, Ctx, Reply, ScanOptions};
use crate::error::{CommandError, Error};
use crate::keyspace::{Effect, SHARDS};
use crate::numeric;

/// NX / XX / GT / LT of the EXPIRE family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireCond {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

/// Which TTL view a TTL-family command reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TtlKind {
    /// TTL: remaining seconds, rounded to nearest.
    Seconds,
    /// PTTL: remaining milliseconds.
    Millis,
    /// EXPIRETIME: absolute Unix seconds.
    AbsSeconds,
    /// PEXPIRETIME: absolute Unix milliseconds.
    AbsMillis,
}

pub(super) fn parse<'a>(
    name: &str,
    argv: &[&'a [u8]],
) -> Option<Result<Command<'a>, CommandError>> {
    let key = argv.get(1).copied().unwrap_or_default();
    Some(Ok(match name {
        "del" | "unlink" => Command::Del {
            keys: argv[1..].to_vec(),
        },
        "exists" => Command::Exists {
            keys: argv[1..].to_vec(),
        },
        "type" => Command::Type { key },
        "rename" | "renamenx" => Command::Rename {
            key,
            new_key: argv[2],
            nx: name == "renamenx",
        },
        "copy" => return Some(parse_copy(argv)),
        "expire" | "pexpire" | "expireat" | "pexpireat" => return Some(parse_expire(name, argv)),
        "ttl" => Command::Ttl {
            key,
            kind: TtlKind::Seconds,
        },
        "pttl" => Command::Ttl {
            key,
            kind: TtlKind::Millis,
        },
        "expiretime" => Command::Ttl {
            key,
            kind: TtlKind::AbsSeconds,
        },
        "pexpiretime" => Command::Ttl {
            key,
            kind: TtlKind::AbsMillis,
        },
        "persist" => Command::Persist { key },
        "keys" => Command::Keys { pattern: key },
        "scan" => return Some(parse_scan(argv)),
        "dbsize" => Command::DbSize,
        "select" => Command::Select { index: key },
        "swapdb" => Command::SwapDb {
            a: argv[1],
            b: argv[2],
        },
        "reset" => Command::Reset,
        "flushdb" | "flushall" => {
            if argv.len() > 2
                || (argv.len() == 2 && !eq_ic(argv[1], "sync") && !eq_ic(argv[1], "async"))
            {
                return Some(Err(CommandError::syntax()));
            }
            Command::FlushDb
        }
        "ping" => {
            if argv.len() > 2 {
                return Some(Err(CommandError::wrong_arity("ping")));
            }
            Command::Ping {
                message: argv.get(1).copied(),
            }
        }
        "echo" => Command::Echo { message: key },
        _ => return None,
    }))
}

/// Which member of the EXPIRE family: its name, its unit and its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpireKind {
    name: &'static str,
    seconds: bool,
    relative: bool,
}

impl ExpireKind {
    /// The absolute expiry in Unix ms for `when` given at `now`, or Redis's
    /// "invalid expire time" error on overflow.
    pub(crate) fn resolve(self, when: i64, now: i64) -> Result<i64, CommandError> {
        let mut when = when;
        if self.seconds {
            when = when
                .checked_mul(1000)
                .ok_or_else(|| CommandError::invalid_expire(self.name))?;
        }
        let base = if self.relative { now } else { 0 };
        if when > i64::MAX - base {
            return Err(CommandError::invalid_expire(self.name));
        }
        Ok(when + base)
    }

    pub(crate) fn of(name: &str) -> ExpireKind {
        match name {
            "expire" => ExpireKind {
                name: "expire",
                seconds: true,
                relative: true,
            },
            "pexpire" => ExpireKind {
                name: "pexpire",
                seconds: false,
                relative: true,
            },
            "expireat" => ExpireKind {
                name: "expireat",
                seconds: true,
                relative: false,
            },
            _ => ExpireKind {
                name: "pexpireat",
                seconds: false,
                relative: false,
            },
        }
    }
}

/// Parses the EXPIRE family: options first, then the time (as Redis does).
pub(crate) fn parse_expire<'a>(name: &str, argv: &[&'a [u8]]) -> Result<Command<'a>, CommandError> {
    let mut cond = ExpireCond::default();
    for opt in &argv[3..] {
        if eq_ic(opt, "nx") {
            cond.nx = true;
        } else if eq_ic(opt, "xx") {
            cond.xx = true;
        } else if eq_ic(opt, "gt") {
            cond.gt = true;
        } else if eq_ic(opt, "lt") {
            cond.lt = true;
        } else {
            let word: Vec<u8> = opt.iter().copied().take_while(|&c| c != 0).collect();
            return Err(CommandError::err(format!(
                "Unsupported option {}",
                String::from_utf8_lossy(&word)
            )));
        }
    }
    if cond.nx && (cond.xx || cond.gt || cond.lt) {
        return Err(CommandError::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if cond.gt && cond.lt {
        return Err(CommandError::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    let when = numeric::parse_i64(argv[2]).ok_or_else(CommandError::not_integer)?;
    Ok(Command::Expire {
        key: argv[1],
        when,
        kind: ExpireKind::of(name),
        cond,
    })
}

fn parse_copy<'a>(argv: &[&'a [u8]]) -> Result<Command<'a>, CommandError> {
    let mut replace = false;
    let mut j = 3;
    while j < argv.len() {
        if eq_ic(argv[j], "replace") {
            replace = true;
        } else if eq_ic(argv[j], "db") && j + 1 < argv.len() {
            let db = numeric::parse_i64(argv[j + 1]).ok_or_else(CommandError::not_integer)?;
            if i32::try_from(db).is_err() {
                return Err(CommandError::err(
                    "value is out of range, value must between -2147483648 and 2147483647",
                ));
            }
            // hashkv has one database, index 0.
            if db != 0 {
                return Err(CommandError::err("DB index is out of range"));
            }
            j += 1;
        } else {
            return Err(CommandError::syntax());
        }
        j += 1;
    }
    if argv[1] == argv[2] {
        return Err(CommandError::err(
            "source and destination objects are the same",
        ));
    }
    Ok(Command::Copy {
        src: argv[1],
        dst: argv[2],
        replace,
    })
}

fn parse_scan<'a>(argv: &[&'a [u8]]) -> Result<Command<'a>, CommandError> {
    let cursor = numeric::parse_cursor(argv[1]).ok_or_else(CommandError::invalid_cursor)?;
    let ScanOptions {
        count,
        pattern,
        type_hash,
        ..
    } = ScanOptions::parse(&argv[2..], false)?;
    Ok(Command::Scan {
        cursor,
        pattern,
        count,
        type_hash,
    })
}

pub(super) fn parse_memory_usage<'a>(argv: &[&'a [u8]]) -> Result<Command<'a>, CommandError> {
    let mut j = 3;
    while j < argv.len() {
        if eq_ic(argv[j], "samples") && j + 1 < argv.len() {
            let n = numeric::parse_i64(argv[j + 1]).ok_or_else(CommandError::not_integer)?;
            if n < 0 {
                return Err(CommandError::syntax());
            }
            j += 2;
        } else {
            return Err(CommandError::syntax());
        }
    }
    Ok(Command::MemoryUsage { key: argv[2] })
}

pub(super) fn execute(cmd: Command<'_>, ctx: &Ctx<'_, '_>) -> Result<Reply, Error> {
    let now = &ctx.now;
    match cmd {
        Command::Del { keys } => {
            let (n, t) = ctx.locked(&keys, |g| {
                let mut existing: Vec<&[u8]> = Vec::new();
                for k in &keys {
                    let shard = g.shard(k);
                    ctx.expire_key(shard, k)?;
                    if shard.get(k, now).is_some() && !existing.contains(k) {
                        existing.push(k);
                    }
                }
                if existing.is_empty() {
                    return Ok((0, None));
                }
                let e = Effect::Del { keys: existing };
                ctx.commit_locked(g, &e)
            })?;
            ctx.sync(t)?;
            Ok(Reply::Integer(n))
        }
        Command::Exists { keys } => {
            let mut n = 0;
            for k in &keys {
                n += i64::from(ctx.read(k, |h| h.is_some())?);
            }
            Ok(Reply::Integer(n))
        }
        Command::Type { key } => Ok(Reply::Status(
            if ctx.read(key, |h| h.is_some())? {
                "hash"
            } else {
                "none"
            }
            .to_owned(),
        )),
        Command::Rename { key, new_key, nx } => {
            let (reply, t) = ctx.locked(&[key, new_key], |g| {
                ctx.expire_key(g.shard(key), key)?;
                ctx.expire_key(g.shard(new_key), new_key)?;
                if g.shard(key).get(key, now).is_none() {
                    return Err(CommandError::no_such_key().into());
                }
                if key == new_key {
                    return Ok((if nx { Reply::Integer(0) } else { Reply::ok() }, None));
                }
                if nx && g.shard(new_key).get(new_key, now).is_some() {
                    return Ok((Reply::Integer(0), None));
                }
                let e = Effect::Rename {
                    from: key,
                    to: new_key,
                };
                let (_, t) = ctx.commit_locked(g, &e)?;
                Ok((if nx { Reply::Integer(1) } else { Reply::ok() }, t))
            })?;
            ctx.sync(t)?;
            Ok(reply)
        }
        Command::Copy { src, dst, replace } => {
            let (n, t) = ctx.locked(&[src, dst], |g| {
                ctx.expire_key(g.shard(src), src)?;
                ctx.expire_key(g.shard(dst), dst)?;
                if g.shard(src).get(src, now).is_none() {
                    return Ok((0, None));
                }
                if g.shard(dst).get(dst, now).is_some() && !replace {
                    return Ok((0, None));
                }
                let e = Effect::Copy { src, dst };
                let (_, t) = ctx.commit_locked(g, &e)?;
                Ok((1, t))
            })?;
            ctx.sync(t)?;
            Ok(Reply::Integer(n))
        }
        Command::Expire {
            key,
            when,
            kind,
            cond,
        } => {
            let at_ms = kind.resolve(when, now.get())?;
            let (r, t) = ctx.write(key, |shard| {
                if shard.get(key, now).is_none() {
                    return Ok((0, None));
                }
                let cur = shard.ttl_of(key);
                let fail = (cond.nx && cur.is_some())
                    || (cond.xx && cur.is_none())
                    || (cond.gt && cur.is_none_or(|c| at_ms <= c))
                    || (cond.lt && cur.is_some_and(|c| at_ms >= c));
                if fail {
                    return Ok((0, None));
                }
                // A time not in the future deletes the key, and is logged as
                // the deletion.
                let e = if at_ms <= now.get() {
                    Effect::Del { keys: vec![key] }
                } else {
                    Effect::PExpireAt { key, at_ms }
                };
                let (_, t) = ctx.commit(shard, &e)?;
                Ok((1, t))
            })?;
            ctx.sync(t)?;
            Ok(Reply::Integer(r))
        }
        Command::Ttl { key, kind } => ctx.read_shard(key, |shard| {
            if shard.get(key, now).is_none() {
                return Reply::Integer(-2);
            }
            let Some(at) = shard.ttl_of(key) else {
                return Reply::Integer(-1);
            };
            let v = match kind {
                TtlKind::Seconds | TtlKind::Millis => (at - now.get()).max(0),
                TtlKind::AbsSeconds | TtlKind::AbsMillis => at.max(0),
            };
            Reply::Integer(match kind {
                TtlKind::Millis | TtlKind::AbsMillis => v,
                // v >= 0 here; Redis's build yields the unsigned quotient
                // when v + 500 passes i64::MAX (PEXPIREAT k i64::MAX).
                TtlKind::Seconds | TtlKind::AbsSeconds => ((v as u64 + 500) / 1000) as i64,
            })
        }),
        Command::Persist { key } => {
            let (r, t) = ctx.write(key, |shard| {
                if shard.get(key, now).is_none() || shard.ttl_of(key).is_none() {
                    return Ok((0, None));
                }
                let e = Effect::Persist { key };
                let (_, t) = ctx.commit(shard, &e)?;
                Ok((1, t))
            })?;
            ctx.sync(t)?;
            Ok(Reply::Integer(r))
        }
        Command::Keys { pattern } => {
            let all = pattern == b"*";
            let mut out = Vec::new();
            for i in 0..SHARDS {
                ctx.with_shard_at(i, |shard| {
                    for k in shard.key_names() {
                        if (all || glob::matches(pattern, k)) && shard.get(k, now).is_some() {
                            out.push(Reply::Bulk(k.to_vec()));
                        }
                    }
                })?;
            }
            Ok(Reply::Array(out))
        }
        Command::Scan {
            cursor,
            pattern,
            count,
            type_hash,
        } => scan(ctx, cursor, pattern, count, type_hash),
        Command::DbSize => Ok(Reply::Integer(ctx.len()? as i64)),
        Command::FlushDb => {
            let t = ctx.flush()?;
            ctx.sync(t)?;
            Ok(Reply::ok())
        }
        Command::ObjectEncoding { key } => ctx.read(key, |h| {
            h.map_or(Reply::Nil, |h| {
                Reply::Bulk(h.encoding().as_bytes().to_vec())
            })
        }),
        Command::MemoryUsage { key } => ctx.read_shard(key, |shard| {
            shard
                .memory_usage(key)
                .map_or(Reply::Nil, |n| Reply::Integer(n as i64))
        }),
        Command::Ping { message } => Ok(match message {
            None => Reply::Status("PONG".to_owned()),
            Some(m) => Reply::Bulk(m.to_vec()),
        }),
        Command::Echo { message } => Ok(Reply::Bulk(message.to_vec())),
        // One keyspace, as a Redis started with `--databases 1`: database 0
        // is the only index there is.
        Command::Select { index } => {
            let i = crate::numeric::parse_i64(index).ok_or_else(CommandError::not_integer)?;
            let i = i32::try_from(i).map_err(|_| {
                CommandError::err(format!(
                    "value is out of range, value must between {} and {}",
                    i32::MIN,
                    i32::MAX
                ))
            })?;
            if i != 0 {
                return Err(CommandError::err("DB index is out of range").into());
            }
            Ok(Reply::ok())
        }
        Command::SwapDb { a, b } => {
            let a = db_index(a).ok_or_else(|| CommandError::err("invalid first DB index"))?;
            let b = db_index(b).ok_or_else(|| CommandError::err("invalid second DB index"))?;
            if a != 0 || b != 0 {
                return Err(CommandError::err("DB index is out of range").into());
            }
            Ok(Reply::ok())
        }
        Command::Reset => Ok(Reply::Status("RESET".into())),
        _ => Err(CommandError::err("internal: not a key command").into()),
    }
}

/// SCAN over all shards: the cursor's low bits name the shard, the rest is
/// that shard's table cursor.
/// A database index as Redis reads it (`getIntFromObject`: a canonical
/// integer that fits in an `int`).
fn db_index(w: &[u8]) -> Option<i32> {
    crate::numeric::parse_i64(w).and_then(|n| i32::try_from(n).ok())
}

fn scan(
    ctx: &Ctx<'_, '_>,
    cursor: u64,
    pattern: Option<&[u8]>,
    count: usize,
    type_hash: Option<bool>,
) -> Result<Reply, Error> {
    let shard_bits = SHARDS.trailing_zeros();
    let mut shard_idx = (cursor & (SHARDS as u64 - 1)) as usize;
    let mut table_cursor = cursor >> shard_bits;
    let mut found: Vec<Vec<u8>> = Vec::new();
    // As Redis, at most 10 x COUNT buckets with keys a call; but the
    // keyspace is 64 tables, not one: an empty shard costs nothing and an
    // empty bucket a sixteenth, so a small keyspace comes back whole.
    const EMPTY_PER_STEP: usize = 16;
    let mut budget = count.saturating_mul(10).saturating_mul(EMPTY_PER_STEP);
    loop {
        let before = found.len();
        let (next, empty_shard) = ctx.with_shard_at(shard_idx, |shard| {
            if shard.len() == 0 {
                return (0, true);
            }
            (
                shard.scan_keys(table_cursor, |k, _| found.push(k.to_vec())),
                false,
            )
        })?;
        table_cursor = next;
        if table_cursor == 0 {
            shard_idx += 1;
        }
        if !empty_shard {
            let cost = if found.len() > before {
                EMPTY_PER_STEP
            } else {
                1
            };
            budget = budget.saturating_sub(cost);
        }
        if shard_idx == SHARDS || budget == 0 || found.len() >= count {
            break;
        }
    }
    let next = if shard_idx == SHARDS {
        0
    } else {
        (table_cursor << shard_bits) | shard_idx as u64
    };
    let mut items = Vec::with_capacity(found.len());
    for k in found {
        if pattern.is_some_and(|p| !glob::matches(p, &k)) {
            continue;
        }
        // Keys found expired are deleted and left out of the page.
        let live = ctx.read(&k, |h| h.is_some())?;
        if !live || type_hash == Some(false) {
            continue;
        }
        items.push(Reply::Bulk(k));
    }
    Ok(Reply::Array(vec![
        Reply::Bulk(numeric_u64(next)),
        Reply::Array(items),
    ]))
}
