//! [`Effect`]: what a write command did, in a form that replays exactly.
//!
//! Every write runs in three steps under its shard lock(s): work out the
//! effect from the current state (errors happen here, before anything is
//! logged), append the effect to the journal, then [`apply`] it. Replay on
//! open calls the same [`apply`], so the live path and recovery cannot
//! disagree. Effects never depend on the clock or on chance: relative TTLs
//! are already absolute, HINCRBYFLOAT's result is already formatted, an
//! expiry is a `Del`.

use serde::{Deserialize, Serialize};

use super::{Keyspace, MultiGuard, Shard, Sink};
use crate::error::{CommandError, Error};
use crate::hash::compact::Elem;
use crate::hash::dict::Dict;
use crate::hash::HashRef;
use crate::hash::OwnedHash;
use crate::options::Options;

/// One replayable change. Byte strings borrow from the command's arguments
/// when logging and from the log's bytes when replaying.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::BorrowDecode,
)]
pub(crate) enum Effect<'a> {
    /// Set fields (HSET, HMSET, HSETNX, HINCRBY, HINCRBYFLOAT results).
    HSet {
        #[serde(borrow)]
        key: &'a [u8],
        #[serde(borrow)]
        pairs: Vec<(&'a [u8], &'a [u8])>,
    },
    /// Delete fields; the key goes when its last field does.
    HDel {
        #[serde(borrow)]
        key: &'a [u8],
        #[serde(borrow)]
        fields: Vec<&'a [u8]>,
    },
    /// Delete keys (DEL, UNLINK, expirations, EXPIRE into the past).
    Del {
        #[serde(borrow)]
        keys: Vec<&'a [u8]>,
    },
    /// Set a key's absolute expiry (Unix ms).
    PExpireAt {
        #[serde(borrow)]
        key: &'a [u8],
        at_ms: i64,
    },
    /// Remove a key's expiry.
    Persist {
        #[serde(borrow)]
        key: &'a [u8],
    },
    /// Move a key (with its TTL) over whatever `to` held.
    Rename {
        #[serde(borrow)]
        from: &'a [u8],
        #[serde(borrow)]
        to: &'a [u8],
    },
    /// Copy a key (with its TTL) over whatever `dst` held.
    Copy {
        #[serde(borrow)]
        src: &'a [u8],
        #[serde(borrow)]
        dst: &'a [u8],
    },
    /// Remove every key.
    FlushDb,
    /// Set fields with a TTL action (HSETEX; HINCRBY and HINCRBYFLOAT on a
    /// hash with field TTLs): `ttl` is [`KEEP_TTL`] to keep each existing
    /// field's TTL, 0 to clear it (HSETEX without a time: as HSet, with
    /// HSETEX's up-front conversion), or an absolute Unix ms time given to
    /// every field.
    HSetEx {
        #[serde(borrow)]
        key: &'a [u8],
        #[serde(borrow)]
        pairs: Vec<(&'a [u8], &'a [u8])>,
        ttl: i64,
    },
    /// Set the absolute expiry (Unix ms) of existing fields (HEXPIRE
    /// family, HGETEX with a time).
    HPExpireAt {
        #[serde(borrow)]
        key: &'a [u8],
        at_ms: i64,
        #[serde(borrow)]
        fields: Vec<&'a [u8]>,
    },
    /// Remove the TTLs of fields (HPERSIST, HGETEX PERSIST).
    HPersist {
        #[serde(borrow)]
        key: &'a [u8],
        #[serde(borrow)]
        fields: Vec<&'a [u8]>,
    },
    /// A transaction's effects, applied in order, all or nothing (one log
    /// record, so a crash or salvage keeps or drops it whole).
    Batch {
        #[serde(borrow)]
        effects: Vec<Effect<'a>>,
    },
}

/// [`Effect::HSetEx`]'s `ttl` that keeps existing fields' TTLs.
pub(crate) const KEEP_TTL: i64 = -1;

impl Effect<'_> {
    /// The keys the effect touches (their shards are locked to apply it).
    pub(crate) fn keys(&self) -> Vec<&[u8]> {
        match self {
            Effect::HSet { key, .. }
            | Effect::HDel { key, .. }
            | Effect::PExpireAt { key, .. }
            | Effect::Persist { key }
            | Effect::HSetEx { key, .. }
            | Effect::HPExpireAt { key, .. }
            | Effect::HPersist { key, .. } => {
                vec![key]
            }
            Effect::Del { keys } => keys.clone(),
            Effect::Rename { from, to } => vec![from, to],
            Effect::Copy { src, dst } => vec![src, dst],
            Effect::FlushDb => vec![],
            Effect::Batch { effects } => effects.iter().flat_map(Effect::keys).collect(),
        }
    }

    /// Calls `f` with each key the effect touches (no allocation).
    pub(crate) fn for_each_key<'s>(&'s self, f: &mut impl FnMut(&'s [u8])) {
        match self {
            Effect::HSet { key, .. }
            | Effect::HDel { key, .. }
            | Effect::PExpireAt { key, .. }
            | Effect::Persist { key }
            | Effect::HSetEx { key, .. }
            | Effect::HPExpireAt { key, .. }
            | Effect::HPersist { key, .. } => f(key),
            Effect::Del { keys } => keys.iter().for_each(|k| f(k)),
            Effect::Rename { from, to } => {
                f(from);
                f(to);
            }
            Effect::Copy { src, dst } => {
                f(src);
                f(dst);
            }
            Effect::FlushDb => {}
            Effect::Batch { effects } => effects.iter().for_each(|e| e.for_each_key(f)),
        }
    }

    /// Whether applying the effect needs every shard (FLUSHDB, alone or in
    /// a batch).
    pub(crate) fn touches_all(&self) -> bool {
        match self {
            Effect::FlushDb => true,
            Effect::Batch { effects } => effects.iter().any(Effect::touches_all),
            _ => false,
        }
    }
}

/// Applies a single-key effect to the shard that holds its key. Returns the
/// count the command replies with (fields created, fields removed, keys
/// removed, 1/0 for TTL changes).
pub(crate) fn apply_in_shard(
    shard: &mut Shard,
    e: &Effect<'_>,
    opts: &Options,
) -> Result<i64, CommandError> {
    match e {
        Effect::HSet { key, pairs } => set_pairs(shard, key, pairs, 0, false, opts),
        Effect::HDel { key, fields } => {
            let mut h = shard.edit(key, opts);
            if !h.existed() {
                return Ok(0);
            }
            let mut deleted = 0;
            for f in fields {
                if h.remove(f) {
                    deleted += 1;
                    if h.is_empty() {
                        break;
                    }
                }
            }
            h.finish()?;
            Ok(deleted)
        }
        Effect::HSetEx { key, pairs, ttl } => set_pairs(shard, key, pairs, *ttl, true, opts),
        Effect::HPExpireAt { key, at_ms, fields } => {
            let mut h = shard.edit(key, opts);
            if !h.existed() {
                return Ok(0);
            }
            h.make_ex();
            let mut set = 0;
            for f in fields {
                set += i64::from(h.set_field_ttl(f, *at_ms));
            }
            h.finish()?;
            Ok(set)
        }
        Effect::HPersist { key, fields } => {
            let mut h = shard.edit(key, opts);
            if !h.existed() {
                return Ok(0);
            }
            let mut cleared = 0;
            for f in fields {
                if h.field_ttl(f).is_some_and(|t| t != 0) {
                    cleared += i64::from(h.set_field_ttl(f, 0));
                }
            }
            h.finish()?;
            Ok(cleared)
        }
        Effect::PExpireAt { key, at_ms } => Ok(i64::from(shard.set_ttl(key, Some(*at_ms))?)),
        Effect::Persist { key } => Ok(i64::from(shard.set_ttl(key, None)?)),
        Effect::Del { keys } => Ok(keys.iter().filter(|k| shard.delete(k)).count() as i64),
        Effect::Rename { .. } | Effect::Copy { .. } | Effect::FlushDb | Effect::Batch { .. } => {
            Err(CommandError::err(
                "internal: multi-key effect applied to one shard",
            ))
        }
    }
}

/// HSet (`ttl` 0: existing fields lose their TTL) and HSetEx (`ttl` 0 as
/// HSet, [`KEEP_TTL`], or an absolute time for every field): Redis's
/// pre-check conversion (`upfront`: HSETEX's, which also counts the pairs
/// given against the entries limit), then each pair in order. Returns the
/// fields created.
pub(super) fn set_pairs(
    shard: &mut Shard,
    key: &[u8],
    pairs: &[(&[u8], &[u8])],
    ttl: i64,
    upfront: bool,
    opts: &Options,
) -> Result<i64, CommandError> {
    if ttl == 0 && shard.overwrite_in_place(key, pairs, opts.hash_max_listpack_value, opts.pack_hex)
    {
        // Every field existed: nothing created.
        return Ok(0);
    }
    let mut h = shard.edit(key, opts);
    let max_len = pairs
        .iter()
        .map(|(f, v)| f.len().max(v.len()))
        .max()
        .unwrap_or(0);
    // Redis 7.0 (HSET, HMSET) converts up front only for a long argument,
    // and then by the real field count as the pairs go in, so repeated
    // fields never count twice; HSETEX (Redis 8) also converts up front
    // when the pairs given pass the entries limit.
    let given = if upfront { pairs.len() } else { 0 };
    h.precheck(given, max_len)?;
    if ttl > 0 {
        h.make_ex();
    }
    let mut created = 0;
    for (f, v) in pairs {
        created += i64::from(h.set_with(f, v, ttl != 0)?);
        if ttl > 0 {
            h.set_field_ttl(f, ttl);
        }
    }
    h.finish()?;
    Ok(created)
}

/// Deep copy of a hash for COPY.
pub(crate) fn clone_hash(h: HashRef<'_>) -> Result<OwnedHash, CommandError> {
    Ok(match h {
        HashRef::Compact(_) | HashRef::Shaped(..) => {
            OwnedHash::Compact(h.pair_buffer().unwrap_or_default().into_owned())
        }
        HashRef::CompactEx(b, _) => OwnedHash::CompactEx(b.to_vec()),
        HashRef::Dict(d, ttls, _) => {
            let mut t = Dict::with_capacity(d.len());
            for (f, v) in d.iter() {
                // Packed again exactly where the original is.
                t.set(
                    f,
                    &v.to_bytes(),
                    matches!(v, Elem::Hex(_) | Elem::HexUpper(_)),
                )
                .map_err(|_| CommandError::too_large())?;
            }
            OwnedHash::Dict(Box::new(t), ttls.map(|t| Box::new(t.clone())))
        }
    })
}

/// Applies any effect with the shards of its keys locked in `g`.
pub(crate) fn apply_locked(
    g: &mut MultiGuard<'_>,
    e: &Effect<'_>,
    opts: &Options,
) -> Result<i64, CommandError> {
    match e {
        Effect::Del { keys } => {
            let mut n = 0;
            for k in keys {
                n += i64::from(g.shard(k).delete(k));
            }
            Ok(n)
        }
        Effect::Rename { from, to } => {
            let Some((hash, ttl)) = g.shard(from).take(from) else {
                return Ok(0);
            };
            g.shard(to).put(to, hash, ttl)?;
            Ok(1)
        }
        Effect::Copy { src, dst } => {
            let s = g.shard(src);
            let Some(h) = s.hash_ref(src) else {
                return Ok(0);
            };
            let copy = clone_hash(h)?;
            let ttl = s.ttl_of(src);
            g.shard(dst).put(dst, copy, ttl)?;
            Ok(1)
        }
        Effect::FlushDb if g.holds_all() => {
            g.clear_all();
            Ok(1)
        }
        Effect::FlushDb => Err(CommandError::err(
            "internal: FLUSHDB is applied by the keyspace",
        )),
        Effect::Batch { effects } => {
            for e in effects {
                apply_locked(g, e, opts)?;
            }
            Ok(effects.len() as i64)
        }
        single => {
            let key = single.keys()[0];
            apply_in_shard(g.shard(key), single, opts)
        }
    }
}

impl Keyspace {
    /// The write path of a single-key command: logs `e`, then applies it to
    /// the shard holding its key (locked by the caller). Returns the applied
    /// count and the ticket to pass to [`Keyspace::sync`] once unlocked.
    pub(crate) fn commit(
        &self,
        sink: Sink<'_>,
        shard: &mut Shard,
        e: &Effect<'_>,
        opts: &Options,
    ) -> Result<(i64, Option<u64>), Error> {
        let t = self.log_in(sink, shard, e)?;
        Ok((apply_in_shard(shard, e, opts)?, t))
    }

    /// [`Keyspace::commit`] for effects on several keys, with their shards
    /// locked in `g`.
    pub(crate) fn commit_locked(
        &self,
        sink: Sink<'_>,
        g: &mut MultiGuard<'_>,
        e: &Effect<'_>,
        opts: &Options,
    ) -> Result<(i64, Option<u64>), Error> {
        let t = match sink {
            Sink::Journal => self.log(e)?,
            Sink::Tx(tx) => {
                tx.borrow_mut().before_locked(g, e)?;
                None
            }
        };
        Ok((apply_locked(g, e, opts)?, t))
    }

    /// Applies `e`, read from the log a follower follows, and marks the
    /// sessions watching its keys, as a Redis replica does for the writes
    /// its master sends.
    pub(crate) fn apply_followed(&self, e: &Effect<'_>, opts: &Options) {
        if e.touches_all() {
            // FLUSHDB marks the watchers of keys that exist: look under
            // every shard's lock, then empty them under the same locks.
            let mut g = self.lock_all();
            self.watches
                .touch_existing(&mut |k| g.shard(k).hash_ref(k).is_some());
            self.watches.touch(e);
            let _ = apply_locked(&mut g, e, opts);
            return;
        }
        self.watches.touch(e);
        // Errors are the ones the live command met after logging (a hash
        // outgrowing its limits); the writer met them the same way.
        let _ = self.apply(e, opts);
    }

    /// Applies `e` taking the locks it needs (replay, and commands that do
    /// not hold locks yet).
    pub(crate) fn apply(&self, e: &Effect<'_>, opts: &Options) -> Result<i64, CommandError> {
        match e {
            Effect::FlushDb => {
                self.clear();
                return Ok(1);
            }
            // One key: lock its shard directly (the common case in replay).
            Effect::HSet { key, .. }
            | Effect::HDel { key, .. }
            | Effect::PExpireAt { key, .. }
            | Effect::Persist { key }
            | Effect::HSetEx { key, .. }
            | Effect::HPExpireAt { key, .. }
            | Effect::HPersist { key, .. } => {
                return apply_in_shard(&mut self.shard(key).write(), e, opts);
            }
            _ => {}
        }
        let mut g = if e.touches_all() {
            self.lock_all()
        } else {
            self.lock_many(&e.keys())
        };
        apply_locked(&mut g, e, opts)
    }
}
