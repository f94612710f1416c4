//! Field expiration commands: HEXPIRE HPEXPIRE HEXPIREAT HPEXPIREAT HTTL
//! HPTTL HEXPIRETIME HPEXPIRETIME HPERSIST HGETDEL HGETEX HSETEX.
//!
//! Parsing follows Redis's order of checks (Redis's t_hash.c and the HEXPIRE family's documentation). A
//! relative time can only be checked against the limit once the command's
//! clock is read, which Redis does where the time stands: so the commands
//! carry the rest of their parse result (`fields`, or HSETEX's `pairs`
//! after a relative time) as a `Result`, returned only after the time is
//! resolved.

use std::collections::{HashMap, HashSet};

use super::{eq_ic, Command, Ctx, Pairs, Reply};
use crate::error::{CommandError, Error};
use crate::hash::{FieldTtl, HashRef};
use crate::keyspace::effect::KEEP_TTL;
use crate::keyspace::Effect;
use crate::numeric;

/// Largest absolute field expiry Redis accepts: 2^46 - 1 ms (year 4199).
pub(crate) const FIELD_TTL_MAX: i64 = (1 << 46) - 1;

/// A time argument of a field-TTL command, already in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldTime {
    ms: i64,
    relative: bool,
    /// The command named in "invalid expire time in '...' command".
    command: &'static str,
}

impl FieldTime {
    /// Parses `word` (E_NOTINT, E_EXPNEG, E_EXPTIME as Redis checks them
    /// before knowing the time).
    fn parse(
        word: &[u8],
        seconds: bool,
        relative: bool,
        command: &'static str,
    ) -> Result<FieldTime, CommandError> {
        let v = numeric::parse_i64(word).ok_or_else(CommandError::not_integer)?;
        if v < 0 {
            return Err(CommandError::err("invalid expire time, must be >= 0"));
        }
        let ms = if seconds {
            if v > FIELD_TTL_MAX / 1000 {
                return Err(CommandError::invalid_expire(command));
            }
            v * 1000
        } else {
            v
        };
        if !relative && ms > FIELD_TTL_MAX {
            return Err(CommandError::invalid_expire(command));
        }
        Ok(FieldTime {
            ms,
            relative,
            command,
        })
    }

    /// The absolute expiry in Unix ms at `now`.
    fn resolve(self, now: i64) -> Result<i64, CommandError> {
        let base = if self.relative { now } else { 0 };
        if self.ms > FIELD_TTL_MAX - base {
            return Err(CommandError::invalid_expire(self.command));
        }
        Ok(self.ms + base)
    }
}

/// What HGETEX and HSETEX do to the TTLs of the fields they touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldTtlAction {
    /// No option: HGETEX leaves TTLs alone, HSETEX clears them.
    None,
    /// HGETEX PERSIST.
    Persist,
    /// HSETEX KEEPTTL.
    Keep,
    /// EX / PX / EXAT / PXAT.
    Set(FieldTime),
}

/// The condition of the HEXPIRE family (at most one of NX XX GT LT).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldCond(Option<u8>);

impl FieldCond {
    /// Whether a field whose TTL is `cur` (0 = none) may get `at`.
    fn allows(self, cur: i64, at: i64) -> bool {
        match self.0 {
            Some(b'n') => cur == 0,
            Some(b'x') => cur != 0,
            Some(b'g') => cur != 0 && at > cur,
            Some(b'l') => cur == 0 || at < cur,
            _ => true,
        }
    }
}

/// Which view an HTTL-family command reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldTtlKind {
    /// HTTL: remaining seconds, rounded up.
    Seconds,
    /// HPTTL: remaining milliseconds.
    Millis,
    /// HEXPIRETIME: absolute Unix seconds, rounded up.
    AbsSeconds,
    /// HPEXPIRETIME: absolute Unix milliseconds.
    AbsMillis,
}

fn fields_missing() -> CommandError {
    CommandError::err("Mandatory argument FIELDS is missing or not at the right position")
}

fn numfields_match() -> CommandError {
    CommandError::err("The `numfields` parameter must match the number of arguments")
}

/// `FIELDS numfields field...` starting at `argv[at]`; `bad_count` is the
/// command's error for a numfields that is not a positive integer.
fn fields_at<'a>(
    argv: &[&'a [u8]],
    at: usize,
    bad_count: fn() -> CommandError,
) -> Result<Vec<&'a [u8]>, CommandError> {
    if !argv.get(at).is_some_and(|w| eq_ic(w, "fields")) {
        return Err(fields_missing());
    }
    let n = argv
        .get(at + 1)
        .and_then(|w| numeric::parse_i64(w))
        .filter(|&n| n > 0)
        .ok_or_else(bad_count)?;
    let rest = &argv[(at + 2).min(argv.len())..];
    if rest.len() as u64 != n as u64 {
        return Err(numfields_match());
    }
    Ok(rest.to_vec())
}

fn numfields_gt0() -> CommandError {
    CommandError::err("Parameter `numFields` should be greater than 0")
}

fn numfields_pos() -> CommandError {
    CommandError::err("Number of fields must be a positive integer")
}

pub(super) fn parse<'a>(
    name: &str,
    argv: &[&'a [u8]],
) -> Option<Result<Command<'a>, CommandError>> {
    let key = argv.get(1).copied().unwrap_or_default();
    Some(match name {
        "hexpire" | "hpexpire" | "hexpireat" | "hpexpireat" => parse_hexpire(name, argv),
        "httl" | "hpttl" | "hexpiretime" | "hpexpiretime" => {
            let kind = match name {
                "httl" => FieldTtlKind::Seconds,
                "hpttl" => FieldTtlKind::Millis,
                "hexpiretime" => FieldTtlKind::AbsSeconds,
                _ => FieldTtlKind::AbsMillis,
            };
            fields_at(argv, 2, numfields_pos).map(|fields| Command::HTtl { key, kind, fields })
        }
        "hpersist" => {
            fields_at(argv, 2, numfields_pos).map(|fields| Command::HPersist { key, fields })
        }
        "hgetdel" => {
            fields_at(argv, 2, numfields_pos).map(|fields| Command::HGetDel { key, fields })
        }
        "hgetex" => parse_hgetex(argv),
        "hsetex" => parse_hsetex(argv),
        _ => return None,
    })
}

fn parse_hexpire<'a>(name: &str, argv: &[&'a [u8]]) -> Result<Command<'a>, CommandError> {
    let (seconds, relative, command) = match name {
        "hexpire" => (true, true, "hexpire"),
        "hpexpire" => (false, true, "hpexpire"),
        "hexpireat" => (true, false, "hexpireat"),
        _ => (false, false, "hpexpireat"),
    };
    let time = FieldTime::parse(argv[2], seconds, relative, command)?;
    let mut at = 3;
    let mut cond = FieldCond::default();
    for (word, c) in [("nx", b'n'), ("xx", b'x'), ("gt", b'g'), ("lt", b'l')] {
        if eq_ic(argv[3], word) {
            cond = FieldCond(Some(c));
            at = 4;
        }
    }
    Ok(Command::HExpire {
        key: argv[1],
        time,
        cond,
        fields: fields_at(argv, at, numfields_gt0),
    })
}

fn parse_hgetex<'a>(argv: &[&'a [u8]]) -> Result<Command<'a>, CommandError> {
    let word = argv[2];
    let (action, at) = if eq_ic(word, "persist") {
        (FieldTtlAction::Persist, 3)
    } else if let Some((seconds, relative)) = time_option(word) {
        let t = argv.get(3).ok_or_else(fields_missing)?;
        let time = FieldTime::parse(t, seconds, relative, "hgetex")?;
        (FieldTtlAction::Set(time), 4)
    } else {
        (FieldTtlAction::None, 2)
    };
    Ok(Command::HGetEx {
        key: argv[1],
        action,
        fields: fields_at(argv, at, numfields_pos),
    })
}

/// EX PX EXAT PXAT: (in seconds, relative).
fn time_option(word: &[u8]) -> Option<(bool, bool)> {
    if eq_ic(word, "ex") {
        Some((true, true))
    } else if eq_ic(word, "px") {
        Some((false, true))
    } else if eq_ic(word, "exat") {
        Some((true, false))
    } else if eq_ic(word, "pxat") {
        Some((false, false))
    } else {
        None
    }
}

fn parse_hsetex<'a>(argv: &[&'a [u8]]) -> Result<Command<'a>, CommandError> {
    let mut cond: Option<bool> = None;
    let mut action = FieldTtlAction::None;
    match hsetex_options(argv, &mut cond, &mut action) {
        Ok(pairs) => Ok(Command::HSetEx {
            key: argv[1],
            only_new: cond,
            action,
            pairs: Ok(pairs),
        }),
        // Redis resolves a relative time where it stands, so a time that
        // turns out too far once the clock is read wins over the errors
        // found after it: those wait for the time (see `execute`).
        Err(e) if matches!(action, FieldTtlAction::Set(t) if t.relative) => Ok(Command::HSetEx {
            key: argv[1],
            only_new: cond,
            action,
            pairs: Err(e),
        }),
        Err(e) => Err(e),
    }
}

/// HSETEX's words from the third on, left to right: the options into
/// `cond` and `action`, then the pairs after `FIELDS numfields`.
fn hsetex_options<'a>(
    argv: &[&'a [u8]],
    cond: &mut Option<bool>,
    action: &mut FieldTtlAction,
) -> Result<Pairs<'a>, CommandError> {
    let one_expiry = || {
        CommandError::err("Only one of EX, PX, EXAT, PXAT or KEEPTTL arguments can be specified")
    };
    let mut i = 2;
    while i < argv.len() {
        let w = argv[i];
        if eq_ic(w, "fields") {
            if argv.len() - i - 1 < 3 {
                return Err(CommandError::wrong_arity("hsetex"));
            }
            let n = numeric::parse_i64(argv[i + 1])
                .filter(|n| (1..=i64::from(i32::MAX)).contains(n))
                .ok_or_else(|| CommandError::err("invalid number of fields"))?;
            let rest = &argv[i + 2..];
            if rest.len() as i64 != 2 * n {
                return Err(CommandError::wrong_arity("hsetex"));
            }
            return Ok(rest.chunks_exact(2).map(|c| (c[0], c[1])).collect());
        } else if let Some((seconds, relative)) = time_option(w) {
            if *action != FieldTtlAction::None {
                return Err(one_expiry());
            }
            let t = argv
                .get(i + 1)
                .ok_or_else(|| CommandError::err("missing expire time"))?;
            *action = FieldTtlAction::Set(FieldTime::parse(t, seconds, relative, "hsetex")?);
            i += 2;
        } else if eq_ic(w, "keepttl") {
            if *action != FieldTtlAction::None {
                return Err(one_expiry());
            }
            *action = FieldTtlAction::Keep;
            i += 1;
        } else if eq_ic(w, "fnx") || eq_ic(w, "fxx") {
            if cond.is_some() {
                return Err(CommandError::err(
                    "Only one of FXX or FNX arguments can be specified",
                ));
            }
            *cond = Some(eq_ic(w, "fnx"));
            i += 1;
        } else {
            return Err(CommandError::err(format!(
                "unknown argument: {}",
                String::from_utf8_lossy(w)
            )));
        }
    }
    Err(fields_missing())
}

/// Switches the compact hash at `key` to the layout with field TTLs (a
/// no-op for other encodings), as Redis does at the start of a field-TTL
/// write.
fn to_listpackex(
    ctx: &Ctx<'_, '_>,
    shard: &mut crate::keyspace::Shard,
    key: &[u8],
) -> Result<(), Error> {
    if shard
        .hash_ref(key)
        .is_some_and(|h| matches!(h, HashRef::Compact(_) | HashRef::Shaped(..)))
    {
        ctx.before_unlogged_change(shard, key)?;
        let mut e = shard.edit(key, ctx.opts);
        e.make_ex();
        e.finish()?;
    }
    Ok(())
}

/// Converts the hash at `key` to a dict before a write of `pairs` pairs
/// whose longest argument is `max_len` bytes (Redis's up-front
/// conversion; not logged, as Redis does not propagate it).
fn to_dict(
    ctx: &Ctx<'_, '_>,
    shard: &mut crate::keyspace::Shard,
    key: &[u8],
    pairs: usize,
    max_len: usize,
) -> Result<(), Error> {
    if shard
        .hash_ref(key)
        .is_some_and(|h| !matches!(h, HashRef::Dict(..)))
    {
        ctx.before_unlogged_change(shard, key)?;
        let mut e = shard.edit(key, ctx.opts);
        e.precheck(pairs, max_len)?;
        e.finish()?;
    }
    Ok(())
}

fn codes(v: Vec<i64>) -> Reply {
    Reply::Array(v.into_iter().map(Reply::Integer).collect())
}

/// The distinct fields of `fields`, in first-seen order (linear: a
/// command may list any number of fields).
fn distinct<'a>(fields: &[&'a [u8]]) -> Vec<&'a [u8]> {
    let mut seen = HashSet::with_capacity(fields.len());
    fields.iter().copied().filter(|f| seen.insert(*f)).collect()
}

pub(super) fn execute(cmd: Command<'_>, ctx: &Ctx<'_, '_>) -> Result<Reply, Error> {
    let now = &ctx.now;
    match cmd {
        Command::HExpire {
            key,
            time,
            cond,
            fields,
        } => {
            let at = time.resolve(now.get())?;
            let fields = fields?;
            let (reply, t) = ctx.write(key, |shard| {
                if shard.get(key, now).is_none() {
                    return Ok((vec![-2; fields.len()], None));
                }
                // The first field-TTL command turns a compact hash into
                // `listpackex`, even one that changes nothing (not logged:
                // Redis does not propagate it either).
                to_listpackex(ctx, shard, key)?;
                let Some(h) = shard.get(key, now) else {
                    return Ok((vec![-2; fields.len()], None));
                };
                // Redis does not expire fields lazily here: a field past its
                // TTL but not yet removed still counts, with that TTL.
                let h = h.raw();
                let t_now = now.get();
                // State after this command's earlier fields (-1: gone).
                let mut seen: HashMap<&[u8], i64> = HashMap::new();
                let mut out = Vec::with_capacity(fields.len());
                let (mut set, mut gone): (Vec<&[u8]>, Vec<&[u8]>) = (Vec::new(), Vec::new());
                for &f in &fields {
                    let cur = match seen.get(f) {
                        Some(&c) => c,
                        None => match h.field_ttl(f) {
                            FieldTtl::Missing => -1,
                            FieldTtl::Persistent => 0,
                            FieldTtl::At(t) => t,
                        },
                    };
                    if cur < 0 {
                        out.push(-2);
                    } else if !cond.allows(cur, at) {
                        out.push(0);
                    } else if at <= t_now {
                        out.push(2);
                        gone.push(f);
                        seen.insert(f, -1);
                    } else {
                        out.push(1);
                        set.push(f);
                        seen.insert(f, at);
                    }
                }
                let mut ticket = None;
                if !gone.is_empty() {
                    let e = Effect::HDel {
                        key,
                        fields: distinct(&gone),
                    };
                    ticket = ctx.commit(shard, &e)?.1;
                }
                if !set.is_empty() {
                    let e = Effect::HPExpireAt {
                        key,
                        at_ms: at,
                        fields: set,
                    };
                    ticket = ctx.commit(shard, &e)?.1;
                }
                Ok((out, ticket))
            })?;
            ctx.sync(t)?;
            Ok(codes(reply))
        }
        Command::HTtl { key, kind, fields } => ctx.read(key, |h| {
            let Some(h) = h else {
                return codes(vec![-2; fields.len()]);
            };
            let t_now = now.get();
            let h = h.at(t_now);
            codes(
                fields
                    .iter()
                    .map(|f| match h.field_ttl(f) {
                        FieldTtl::Missing => -2,
                        FieldTtl::Persistent => -1,
                        // The listpack form already reports a field whose
                        // expiry is this very millisecond as gone.
                        FieldTtl::At(at) if at == t_now && matches!(h, HashRef::CompactEx(..)) => {
                            -2
                        }
                        FieldTtl::At(at) => match kind {
                            FieldTtlKind::Seconds => (at - t_now + 999) / 1000,
                            FieldTtlKind::Millis => at - t_now,
                            FieldTtlKind::AbsSeconds => (at + 999) / 1000,
                            FieldTtlKind::AbsMillis => at,
                        },
                    })
                    .collect(),
            )
        }),
        Command::HPersist { key, fields } => {
            let (reply, t) = ctx.write(key, |shard| {
                let Some(h) = shard.get(key, now) else {
                    return Ok((vec![-2; fields.len()], None));
                };
                let mut cleared: HashSet<&[u8]> = HashSet::new();
                let out: Vec<i64> = fields
                    .iter()
                    .map(|f| match h.field_ttl(f) {
                        FieldTtl::Missing => -2,
                        FieldTtl::At(_) if cleared.insert(*f) => 1,
                        _ => -1,
                    })
                    .collect();
                if cleared.is_empty() {
                    return Ok((out, None));
                }
                let e = Effect::HPersist { key, fields };
                let (_, t) = ctx.commit(shard, &e)?;
                Ok((out, t))
            })?;
            ctx.sync(t)?;
            Ok(codes(reply))
        }
        Command::HGetDel { key, fields } => {
            let (reply, t) = ctx.write(key, |shard| {
                ctx.expire_fields(shard, key, &fields)?;
                let Some(h) = shard.get(key, now) else {
                    return Ok((vec![Reply::Nil; fields.len()], None));
                };
                let mut taken: HashSet<&[u8]> = HashSet::new();
                let out: Vec<Reply> = fields
                    .iter()
                    .map(|f| match h.get(f) {
                        Some(v) if taken.insert(*f) => Reply::Bulk(v.to_bytes()),
                        _ => Reply::Nil,
                    })
                    .collect();
                if taken.is_empty() {
                    return Ok((out, None));
                }
                let e = Effect::HDel { key, fields };
                let (_, t) = ctx.commit(shard, &e)?;
                Ok((out, t))
            })?;
            ctx.sync(t)?;
            Ok(Reply::Array(reply))
        }
        Command::HGetEx {
            key,
            action,
            fields,
        } => {
            let at = match action {
                FieldTtlAction::Set(time) => Some(time.resolve(now.get())?),
                _ => None,
            };
            let fields = fields?;
            if action == FieldTtlAction::None {
                return ctx.read_fields(key, &fields, |h| {
                    Reply::Array(
                        fields
                            .iter()
                            .map(|f| {
                                h.and_then(|h| h.get(f))
                                    .map_or(Reply::Nil, |v| Reply::Bulk(v.to_bytes()))
                            })
                            .collect(),
                    )
                });
            }
            let (reply, t) = ctx.write(key, |shard| {
                ctx.expire_fields(shard, key, &fields)?;
                if shard.get(key, now).is_none() {
                    return Ok((vec![Reply::Nil; fields.len()], None));
                }
                // Every HGETEX option converts a listpack (PERSIST too).
                to_listpackex(ctx, shard, key)?;
                let Some(h) = shard.get(key, now) else {
                    return Ok((vec![Reply::Nil; fields.len()], None));
                };
                let mut present: Vec<&[u8]> = Vec::new();
                let mut with_ttl = false;
                // A time not in the future deletes each field after its
                // reply, so a repeated field reads as missing (Redis).
                let deletes = at.is_some_and(|at| at <= now.get());
                let out: Vec<Reply> = fields
                    .iter()
                    .map(|f| match h.get(f) {
                        Some(_) if deletes && present.contains(f) => Reply::Nil,
                        Some(v) => {
                            // Duplicates stay: each sets the TTL again,
                            // which moves the field, as in Redis.
                            present.push(f);
                            with_ttl |= matches!(h.field_ttl(f), FieldTtl::At(_));
                            Reply::Bulk(v.to_bytes())
                        }
                        None => Reply::Nil,
                    })
                    .collect();
                let effect = match at {
                    Some(_) if present.is_empty() => None,
                    Some(at) if at <= now.get() => Some(Effect::HDel {
                        key,
                        fields: distinct(&present),
                    }),
                    Some(at) => Some(Effect::HPExpireAt {
                        key,
                        at_ms: at,
                        fields: present,
                    }),
                    None if with_ttl => Some(Effect::HPersist { key, fields }),
                    None => None,
                };
                let Some(e) = effect else {
                    return Ok((out, None));
                };
                let (_, t) = ctx.commit(shard, &e)?;
                Ok((out, t))
            })?;
            ctx.sync(t)?;
            Ok(Reply::Array(reply))
        }
        Command::HSetEx {
            key,
            only_new,
            action,
            pairs,
        } => {
            let at = match action {
                FieldTtlAction::Set(time) => Some(time.resolve(now.get())?),
                _ => None,
            };
            let pairs = pairs?;
            let fields: Vec<&[u8]> = pairs.iter().map(|(f, _)| *f).collect();
            let (ok, t) = ctx.write(key, |shard| {
                ctx.expire_fields(shard, key, &fields)?;
                let h = shard.get(key, now);
                let pass = match only_new {
                    None => true,
                    Some(true) => h.is_none_or(|h| fields.iter().all(|f| h.get(f).is_none())),
                    Some(false) => h.is_some_and(|h| fields.iter().all(|f| h.get(f).is_some())),
                };
                if !pass {
                    return Ok((0, None));
                }
                let exists = h.is_some();
                if exists {
                    // Redis 8 converts up front, whatever the TTL option:
                    // more pairs given than the entries limit, or an
                    // argument past the value limit, make it a dict (also
                    // when the fields are then deleted at once).
                    let max_len = pairs
                        .iter()
                        .map(|(f, v)| f.len().max(v.len()))
                        .max()
                        .unwrap_or(0);
                    if pairs.len() > ctx.opts.hash_max_listpack_entries
                        || max_len > ctx.opts.hash_max_listpack_value
                    {
                        to_dict(ctx, shard, key, pairs.len(), max_len)?;
                    } else if at.is_some() {
                        to_listpackex(ctx, shard, key)?;
                    }
                }
                let e = match at {
                    // Written and expired at once: only the deletions remain.
                    Some(at) if at <= now.get() => {
                        if !exists {
                            return Ok((1, None));
                        }
                        Effect::HDel {
                            key,
                            fields: distinct(&fields),
                        }
                    }
                    Some(at) => Effect::HSetEx {
                        key,
                        pairs,
                        ttl: at,
                    },
                    None if action == FieldTtlAction::Keep => Effect::HSetEx {
                        key,
                        pairs,
                        ttl: KEEP_TTL,
                    },
                    None => Effect::HSetEx { key, pairs, ttl: 0 },
                };
                let (_, t) = ctx.commit(shard, &e)?;
                Ok((1, t))
            })?;
            ctx.sync(t)?;
            Ok(Reply::Integer(ok))
        }
        _ => Err(CommandError::err("internal: not a field-TTL command").into()),
    }
}
