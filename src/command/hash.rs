//! Hash commands: HSET HMSET HSETNX HGET HMGET HGETALL HKEYS HVALS HDEL
//! HEXISTS HLEN HSTRLEN HINCRBY HINCRBYFLOAT HRANDFIELD HSCAN.

use rand::seq::SliceRandom;
use rand::Rng;

use super::{eq_ic, glob, Command, Ctx, Reply, ScanOptions};
use crate::error::{CommandError, Error};
use crate::hash::compact::Elem;
use crate::hash::HashRef;
use crate::keyspace::Effect;
use crate::numeric::{self, longdouble::LongDouble};

pub(super) fn parse<'a>(
    name: &str,
    argv: &[&'a [u8]],
) -> Option<Result<Command<'a>, CommandError>> {
    let key = argv.get(1).copied().unwrap_or_default();
    Some(Ok(match name {
        "hset" | "hmset" => {
            if !argv.len().is_multiple_of(2) {
                return Some(Err(CommandError::wrong_arity(name)));
            }
            Command::HSet {
                key,
                pairs: argv[2..].chunks_exact(2).map(|c| (c[0], c[1])).collect(),
                ok_reply: name == "hmset",
            }
        }
        "hsetnx" => Command::HSetNx {
            key,
            field: argv[2],
            value: argv[3],
        },
        "hget" => Command::HGet {
            key,
            field: argv[2],
        },
        "hmget" => Command::HMGet {
            key,
            fields: argv[2..].to_vec(),
        },
        "hgetall" => Command::HGetAll {
            key,
            keys: true,
            values: true,
        },
        "hkeys" => Command::HGetAll {
            key,
            keys: true,
            values: false,
        },
        "hvals" => Command::HGetAll {
            key,
            keys: false,
            values: true,
        },
        "hdel" => Command::HDel {
            key,
            fields: argv[2..].to_vec(),
        },
        "hexists" => Command::HExists {
            key,
            field: argv[2],
        },
        "hlen" => Command::HLen { key },
        "hstrlen" => Command::HStrLen {
            key,
            field: argv[2],
        },
        "hincrby" => match numeric::parse_i64(argv[3]) {
            Some(delta) => Command::HIncrBy {
                key,
                field: argv[2],
                delta,
            },
            None => return Some(Err(CommandError::not_integer())),
        },
        "hincrbyfloat" => Command::HIncrByFloat {
            key,
            field: argv[2],
            delta: argv[3],
        },
        "hrandfield" => return Some(parse_hrandfield(argv)),
        "hscan" => match numeric::parse_cursor(argv[2]) {
            Some(cursor) => Command::HScan {
                key,
                cursor,
                options: argv[3..].to_vec(),
            },
            None => return Some(Err(CommandError::invalid_cursor())),
        },
        _ => return None,
    }))
}

fn parse_hrandfield<'a>(argv: &[&'a [u8]]) -> Result<Command<'a>, CommandError> {
    let key = argv[1];
    if argv.len() < 3 {
        return Ok(Command::HRandField {
            key,
            count: None,
            with_values: false,
        });
    }
    let count = numeric::parse_i64(argv[2]).ok_or_else(CommandError::not_integer)?;
    if count == i64::MIN {
        return Err(CommandError::err(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    if argv.len() > 4 || (argv.len() == 4 && !eq_ic(argv[3], "withvalues")) {
        return Err(CommandError::syntax());
    }
    let with_values = argv.len() == 4;
    if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(CommandError::out_of_range());
    }
    Ok(Command::HRandField {
        key,
        count: Some(count),
        with_values,
    })
}

fn bulk(e: Elem<'_>) -> Reply {
    Reply::Bulk(e.to_bytes())
}

pub(super) fn execute(cmd: Command<'_>, ctx: &Ctx<'_, '_>) -> Result<Reply, Error> {
    let now = &ctx.now;
    // Plain reads: one reply builder, shared with the pipeline's read path.
    match &cmd {
        Command::HGet { key, field }
        | Command::HExists { key, field }
        | Command::HStrLen { key, field } => {
            return ctx.read_fields(key, &[*field], |h| read_reply(&cmd, h));
        }
        Command::HMGet { key, fields } => {
            return ctx.read_fields(key, fields, |h| read_reply(&cmd, h));
        }
        Command::HGetAll { key, .. } | Command::HLen { key } => {
            return ctx.read(key, |h| read_reply(&cmd, h));
        }
        _ => {}
    }
    match cmd {
        Command::HSet {
            key,
            pairs,
            ok_reply,
        } => {
            let (created, t) = ctx.write(key, |shard| {
                let e = Effect::HSet { key, pairs };
                ctx.commit(shard, &e)
            })?;
            ctx.sync(t)?;
            Ok(if ok_reply {
                Reply::ok()
            } else {
                Reply::Integer(created)
            })
        }
        Command::HSetNx { key, field, value } => {
            let (set, t) = ctx.write(key, |shard| {
                ctx.expire_fields(shard, key, &[field])?;
                if shard.get(key, now).is_some_and(|h| h.get(field).is_some()) {
                    return Ok((0, None));
                }
                let e = Effect::HSet {
                    key,
                    pairs: vec![(field, value)],
                };
                let (_, t) = ctx.commit(shard, &e)?;
                Ok((1, t))
            })?;
            ctx.sync(t)?;
            Ok(Reply::Integer(set))
        }
        Command::HDel { key, fields } => {
            let (deleted, t) = ctx.write(key, |shard| {
                // Only log a deletion that removes something. Expired but
                // unreclaimed fields count, as in Redis.
                let Some(h) = shard.get(key, now).map(HashRef::raw) else {
                    return Ok((0, None));
                };
                if !fields.iter().any(|f| h.get(f).is_some()) {
                    return Ok((0, None));
                }
                let e = Effect::HDel { key, fields };
                ctx.commit(shard, &e)
            })?;
            ctx.sync(t)?;
            Ok(Reply::Integer(deleted))
        }
        Command::HIncrBy { key, field, delta } => {
            let (new, t) = ctx.write(key, |shard| {
                ctx.expire_fields(shard, key, &[field])?;
                let h = shard.get(key, now);
                let keep = h.is_some_and(|h| h.has_field_ttls());
                let old = match h.and_then(|h| h.get(field)) {
                    None => 0,
                    Some(Elem::Int(v)) => v,
                    Some(Elem::Str(s)) => numeric::parse_i64(s)
                        .ok_or_else(|| CommandError::err("hash value is not an integer"))?,
                    Some(e) => numeric::parse_i64(&e.to_bytes())
                        .ok_or_else(|| CommandError::err("hash value is not an integer"))?,
                };
                let new = old
                    .checked_add(delta)
                    .ok_or_else(|| CommandError::err("increment or decrement would overflow"))?;
                let text = numeric::i64_bytes(new);
                let e = set_keeping_ttl(key, field, &text, keep);
                let (_, t) = ctx.commit(shard, &e)?;
                Ok((new, t))
            })?;
            ctx.sync(t)?;
            Ok(Reply::Integer(new))
        }
        Command::HIncrByFloat { key, field, delta } => {
            let incr = LongDouble::parse(delta).ok_or_else(CommandError::not_float)?;
            if incr.is_nan_or_inf() {
                return Err(CommandError::err("value is NaN or Infinity").into());
            }
            let (text, t) = ctx.write(key, |shard| {
                ctx.expire_fields(shard, key, &[field])?;
                let h = shard.get(key, now);
                let keep = h.is_some_and(|h| h.has_field_ttls());
                let old = match h.and_then(|h| h.get(field)) {
                    None => LongDouble::from_i64(0),
                    Some(Elem::Int(v)) => LongDouble::from_i64(v),
                    Some(Elem::Str(s)) => LongDouble::parse(s)
                        .ok_or_else(|| CommandError::err("hash value is not a float"))?,
                    Some(e) => LongDouble::parse(&e.to_bytes())
                        .ok_or_else(|| CommandError::err("hash value is not a float"))?,
                };
                let sum = old
                    .checked_add(incr)
                    .ok_or_else(|| CommandError::err("increment would produce NaN or Infinity"))?;
                // The log gets the formatted result, not the increment.
                let text = sum.format();
                let e = set_keeping_ttl(key, field, &text, keep);
                let (_, t) = ctx.commit(shard, &e)?;
                Ok((text, t))
            })?;
            ctx.sync(t)?;
            Ok(Reply::Bulk(text))
        }
        Command::HRandField {
            key,
            count,
            with_values,
        } => {
            // Redis purges a hash's expired fields before picking.
            if ctx.read(key, |h| h.is_some_and(|h| h.min_field_ttl().is_some()))? {
                ctx.write(key, |shard| ctx.expire_all_fields(shard, key))?;
            }
            Ok(ctx.read(key, |h| hrandfield(h, count, with_values))??)
        }
        Command::HScan {
            key,
            cursor,
            options,
        } => Ok(ctx.read(key, |h| match h {
            None => Ok(Reply::Array(vec![
                Reply::Bulk(b"0".to_vec()),
                Reply::Array(vec![]),
            ])),
            Some(h) => hscan(h, cursor, &options),
        })??),
        _ => Err(CommandError::err("internal: not a hash command").into()),
    }
}

/// The reply of a plain read (HGET, HMGET, HGETALL/HKEYS/HVALS, HEXISTS,
/// HLEN, HSTRLEN, and EXISTS of one key) given the live hash at its key
/// (None: missing); `Nil` for any other command.
pub(crate) fn read_reply(cmd: &Command<'_>, h: Option<HashRef<'_>>) -> Reply {
    match cmd {
        Command::HGet { field, .. } => {
            Reply::bulk_opt(h.and_then(|h| h.get(field)).map(Elem::to_bytes))
        }
        Command::HMGet { fields, .. } => Reply::Array(
            fields
                .iter()
                .map(|f| h.and_then(|h| h.get(f)).map_or(Reply::Nil, bulk))
                .collect(),
        ),
        Command::HGetAll { keys, values, .. } => {
            let mut out = Vec::new();
            if let Some(h) = h {
                out.reserve(h.len() * (usize::from(*keys) + usize::from(*values)));
                h.for_each(|f, v| {
                    if *keys {
                        out.push(bulk(f));
                    }
                    if *values {
                        out.push(bulk(v));
                    }
                });
            }
            Reply::Array(out)
        }
        Command::HExists { field, .. } => {
            Reply::Integer(i64::from(h.and_then(|h| h.get(field)).is_some()))
        }
        Command::HLen { .. } => Reply::Integer(h.map_or(0, |h| h.len() as i64)),
        Command::HStrLen { field, .. } => {
            Reply::Integer(h.and_then(|h| h.get(field)).map_or(0, |v| v.len() as i64))
        }
        Command::Exists { .. } => Reply::Integer(i64::from(h.is_some())),
        _ => Reply::Nil,
    }
}

/// The effect of HINCRBY/HINCRBYFLOAT writing `value`: a plain HSET unless
/// the hash has field TTLs, whose existing TTL the field keeps.
fn set_keeping_ttl<'a>(key: &'a [u8], field: &'a [u8], value: &'a [u8], keep: bool) -> Effect<'a> {
    if keep {
        Effect::HSetEx {
            key,
            pairs: vec![(field, value)],
            ttl: crate::keyspace::effect::KEEP_TTL,
        }
    } else {
        Effect::HSet {
            key,
            pairs: vec![(field, value)],
        }
    }
}

fn pair_replies(out: &mut Vec<Reply>, f: Elem<'_>, v: Elem<'_>, with_values: bool) {
    out.push(bulk(f));
    if with_values {
        out.push(bulk(v));
    }
}

/// Most memory a negative HRANDFIELD count's reply may take (its picks, an
/// estimate from the hash's average field and value). The reply is built
/// in memory, so the count (not the data) would otherwise decide its size;
/// Redis streams such a reply to the client a piece at a time.
const MAX_RANDOM_REPLY_BYTES: usize = 256 << 20;

/// What one reply element costs besides its bytes (the `Reply` and the
/// allocation holding the bytes).
const REPLY_OVERHEAD: usize = std::mem::size_of::<Reply>() + 16;

/// HRANDFIELD, following Redis's cases: with replacement for negative
/// counts, the whole hash when count >= size, otherwise distinct picks.
fn hrandfield(
    h: Option<HashRef<'_>>,
    count: Option<i64>,
    with_values: bool,
) -> Result<Reply, CommandError> {
    let mut rng = rand::thread_rng();
    let Some(count) = count else {
        return Ok(match h {
            None => Reply::Nil,
            Some(h) => random_pair(h, &mut rng).map_or(Reply::Nil, |(f, _)| Reply::Bulk(f)),
        });
    };
    let Some(h) = h else {
        return Ok(Reply::Array(vec![]));
    };
    if count == 0 {
        return Ok(Reply::Array(vec![]));
    }
    let size = h.len();
    let mut out = Vec::new();
    if count < 0 {
        let n = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
        let mut bytes = 0usize;
        h.for_each(|f, v| bytes += f.len() + if with_values { v.len() } else { 0 });
        let per_pick =
            bytes.div_ceil(size.max(1)) + REPLY_OVERHEAD * if with_values { 2 } else { 1 };
        let estimate = n.saturating_mul(per_pick);
        if estimate > MAX_RANDOM_REPLY_BYTES {
            return Err(CommandError::err(format!(
                "HRANDFIELD reply of {n} picks would take about {} MB; hashkv builds a reply in memory and allows {} MB",
                estimate >> 20,
                MAX_RANDOM_REPLY_BYTES >> 20
            )));
        }
        out.reserve_exact(n * if with_values { 2 } else { 1 });
        match h {
            HashRef::Compact(_) | HashRef::Shaped(..) | HashRef::CompactEx(..) => {
                let all = h.to_pairs();
                for _ in 0..n {
                    if let Some((f, v)) = all.choose(&mut rng) {
                        out.push(Reply::Bulk(f.clone()));
                        if with_values {
                            out.push(Reply::Bulk(v.clone()));
                        }
                    }
                }
            }
            HashRef::Dict(d, ..) => {
                for _ in 0..n {
                    if let Some((f, v)) = d.random(&mut rng) {
                        pair_replies(&mut out, Elem::Str(f), v, with_values);
                    }
                }
            }
        }
        return Ok(Reply::Array(out));
    }
    let count = count as usize;
    if count == 1 {
        if let Some((f, v)) = random_pair(h, &mut rng) {
            out.push(Reply::Bulk(f));
            if with_values {
                out.push(Reply::Bulk(v));
            }
        }
        return Ok(Reply::Array(out));
    }
    if count >= size {
        h.for_each(|f, v| pair_replies(&mut out, f, v, with_values));
        return Ok(Reply::Array(out));
    }
    match h {
        HashRef::Dict(d, ..) if count * 3 <= size => {
            // Few picks from a big table: random probes until enough distinct.
            let mut seen = std::collections::HashSet::with_capacity(count);
            while seen.len() < count {
                if let Some((f, v)) = d.random(&mut rng) {
                    if seen.insert(f) {
                        pair_replies(&mut out, Elem::Str(f), v, with_values);
                    }
                }
            }
        }
        _ => {
            let mut all = h.to_pairs();
            let (picked, _) = all.partial_shuffle(&mut rng, count);
            for (f, v) in picked.iter() {
                out.push(Reply::Bulk(f.clone()));
                if with_values {
                    out.push(Reply::Bulk(v.clone()));
                }
            }
        }
    }
    Ok(Reply::Array(out))
}

fn random_pair(h: HashRef<'_>, rng: &mut impl Rng) -> Option<(Vec<u8>, Vec<u8>)> {
    match h {
        HashRef::Compact(b) => {
            let n = crate::hash::compact::len(b);
            if n == 0 {
                return None;
            }
            let k = rng.gen_range(0..n);
            crate::hash::compact::pairs(b)
                .nth(k)
                .map(|(f, v)| (f.to_bytes(), v.to_bytes()))
        }
        HashRef::Shaped(s, v) => {
            let n = s.len();
            if n == 0 {
                return None;
            }
            let k = rng.gen_range(0..n);
            crate::hash::shape::pairs(s, v)
                .nth(k)
                .map(|(f, v)| (f.to_bytes(), v.to_bytes()))
        }
        HashRef::CompactEx(b, _) => {
            let n = crate::hash::compact_ex::len(b);
            if n == 0 {
                return None;
            }
            let k = rng.gen_range(0..n);
            crate::hash::compact_ex::triples(b)
                .nth(k)
                .map(|(f, v, _)| (f.to_bytes(), v.to_bytes()))
        }
        HashRef::Dict(d, ..) => d.random(rng).map(|(f, v)| (f.to_vec(), v.to_bytes())),
    }
}

/// HSCAN after the key was found: options left to right, then one page.
fn hscan(h: HashRef<'_>, cursor: u64, options: &[&[u8]]) -> Result<Reply, CommandError> {
    let ScanOptions {
        count,
        pattern,
        no_values,
        ..
    } = ScanOptions::parse(options, true)?;
    let keep = |f: &[u8]| pattern.is_none_or(|p| glob::matches(p, f));
    let mut items = Vec::new();
    let next = match h {
        HashRef::Compact(_) | HashRef::Shaped(..) | HashRef::CompactEx(..) => {
            h.for_each(|f, v| {
                let fb = f.to_bytes();
                if keep(&fb) {
                    items.push(Reply::Bulk(fb));
                    if !no_values {
                        items.push(bulk(v));
                    }
                }
            });
            0
        }
        HashRef::Dict(d, ttls, now) => {
            let live = |f: &[u8]| {
                !ttls.is_some_and(|t| t.get(f).is_some_and(|at| crate::hash::is_expired(at, now)))
            };
            let mut cur = cursor;
            let mut visited = 0usize;
            let mut budget = count.saturating_mul(10);
            loop {
                cur = d.scan(cur, |f, v| {
                    visited += 1;
                    if keep(f) && live(f) {
                        items.push(Reply::Bulk(f.to_vec()));
                        if !no_values {
                            items.push(Reply::Bulk(v.to_bytes()));
                        }
                    }
                });
                budget = budget.saturating_sub(1);
                if cur == 0 || budget == 0 || visited >= count {
                    break;
                }
            }
            cur
        }
    };
    Ok(Reply::Array(vec![
        Reply::Bulk(numeric_u64(next)),
        Reply::Array(items),
    ]))
}

pub(super) fn numeric_u64(v: u64) -> Vec<u8> {
    v.to_string().into_bytes()
}
