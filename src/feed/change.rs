//! [`Change`]: one logged effect as the change feed hands it out, owned and
//! public, with the ways to show it (a redis-cli line, a JSON line) and to
//! filter it by key pattern.

use serde_json::{json, Value};

use super::LogPosition;
use crate::command::reply::push_repr;
use crate::interop::json::json_bytes;
use crate::keyspace::effect::{Effect, KEEP_TTL};

/// One change to the data, in log order, with where it ends in the log.
///
/// Each write command that changed something is one change (a command
/// that changed nothing is not logged and not fed); a transaction is one
/// [`ChangeKind::Transaction`] holding its parts. Changes are what the log
/// holds, so they replay exactly: relative times are already absolute
/// Unix-ms times and every expiration is a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Change {
    /// The log position just past this change: [`crate::Db::subscribe_from`]
    /// with it yields the changes after this one.
    pub position: LogPosition,
    /// What changed.
    pub kind: ChangeKind,
}

/// What a field write does to the TTLs of the fields it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldTtl {
    /// Existing fields lose their TTL (HSET, HMSET, HINCRBY on a hash
    /// without field TTLs ...).
    Clear,
    /// Existing fields keep their TTL (HSETEX KEEPTTL, HINCRBY on a hash
    /// with field TTLs).
    Keep,
    /// Every field set expires at this Unix time in ms (HSETEX with a time).
    At(i64),
}

/// The kinds of change, one per logged effect.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// Fields set (HSET, HMSET, HSETNX, HINCRBY and HINCRBYFLOAT as their
    /// resulting value, HSETEX); the key is created if missing.
    HSet {
        /// The key.
        key: Vec<u8>,
        /// Field/value pairs, in order.
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
        /// What happens to the TTLs of the fields set.
        field_ttl: FieldTtl,
    },
    /// Fields deleted (HDEL, HGETDEL, field expiry); the key goes with its
    /// last field.
    HDel {
        /// The key.
        key: Vec<u8>,
        /// The fields.
        fields: Vec<Vec<u8>>,
    },
    /// Keys deleted (DEL, UNLINK, key expiry, EXPIRE into the past).
    Del {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// A key's expiry set (the EXPIRE family), as an absolute time.
    Expire {
        /// The key.
        key: Vec<u8>,
        /// Unix time in ms.
        at_ms: i64,
    },
    /// A key's expiry removed (PERSIST).
    Persist {
        /// The key.
        key: Vec<u8>,
    },
    /// Fields' expiry set (the HEXPIRE family, HGETEX with a time).
    HExpire {
        /// The key.
        key: Vec<u8>,
        /// Unix time in ms.
        at_ms: i64,
        /// The fields.
        fields: Vec<Vec<u8>>,
    },
    /// Fields' expiry removed (HPERSIST, HGETEX PERSIST).
    HPersist {
        /// The key.
        key: Vec<u8>,
        /// The fields.
        fields: Vec<Vec<u8>>,
    },
    /// A key moved, with its TTL, over whatever `to` held (RENAME,
    /// RENAMENX).
    Rename {
        /// The old name.
        from: Vec<u8>,
        /// The new name.
        to: Vec<u8>,
    },
    /// A key copied, with its TTL, over whatever `dst` held (COPY).
    Copy {
        /// The source.
        src: Vec<u8>,
        /// The destination.
        dst: Vec<u8>,
    },
    /// Every key removed (FLUSHDB).
    FlushDb,
    /// A transaction (MULTI/EXEC or [`crate::Db::transaction`]): its parts,
    /// applied together.
    Transaction(Vec<ChangeKind>),
}

fn owned(b: &[u8]) -> Vec<u8> {
    b.to_vec()
}

fn owned_all(v: &[&[u8]]) -> Vec<Vec<u8>> {
    v.iter().map(|b| b.to_vec()).collect()
}

impl ChangeKind {
    /// The change an effect read from the log stands for.
    pub(crate) fn from_effect(e: &Effect<'_>) -> ChangeKind {
        let pairs = |p: &[(&[u8], &[u8])]| p.iter().map(|(f, v)| (owned(f), owned(v))).collect();
        match e {
            Effect::HSet { key, pairs: p } => ChangeKind::HSet {
                key: owned(key),
                pairs: pairs(p),
                field_ttl: FieldTtl::Clear,
            },
            Effect::HSetEx { key, pairs: p, ttl } => ChangeKind::HSet {
                key: owned(key),
                pairs: pairs(p),
                field_ttl: match *ttl {
                    0 => FieldTtl::Clear,
                    KEEP_TTL => FieldTtl::Keep,
                    at => FieldTtl::At(at),
                },
            },
            Effect::HDel { key, fields } => ChangeKind::HDel {
                key: owned(key),
                fields: owned_all(fields),
            },
            Effect::Del { keys } => ChangeKind::Del {
                keys: owned_all(keys),
            },
            Effect::PExpireAt { key, at_ms } => ChangeKind::Expire {
                key: owned(key),
                at_ms: *at_ms,
            },
            Effect::Persist { key } => ChangeKind::Persist { key: owned(key) },
            Effect::HPExpireAt { key, at_ms, fields } => ChangeKind::HExpire {
                key: owned(key),
                at_ms: *at_ms,
                fields: owned_all(fields),
            },
            Effect::HPersist { key, fields } => ChangeKind::HPersist {
                key: owned(key),
                fields: owned_all(fields),
            },
            Effect::Rename { from, to } => ChangeKind::Rename {
                from: owned(from),
                to: owned(to),
            },
            Effect::Copy { src, dst } => ChangeKind::Copy {
                src: owned(src),
                dst: owned(dst),
            },
            Effect::FlushDb => ChangeKind::FlushDb,
            Effect::Batch { effects } => {
                ChangeKind::Transaction(effects.iter().map(ChangeKind::from_effect).collect())
            }
        }
    }

    /// The keys this change touches (none for FLUSHDB, which touches all).
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            ChangeKind::HSet { key, .. }
            | ChangeKind::HDel { key, .. }
            | ChangeKind::Expire { key, .. }
            | ChangeKind::Persist { key }
            | ChangeKind::HExpire { key, .. }
            | ChangeKind::HPersist { key, .. } => vec![key],
            ChangeKind::Del { keys } => keys.iter().map(Vec::as_slice).collect(),
            ChangeKind::Rename { from, to } => vec![from, to],
            ChangeKind::Copy { src, dst } => vec![src, dst],
            ChangeKind::FlushDb => Vec::new(),
            ChangeKind::Transaction(parts) => parts.iter().flat_map(ChangeKind::keys).collect(),
        }
    }

    /// The part of this change that concerns keys matching `pattern`
    /// (Redis's glob rules, as KEYS uses), or `None` when nothing does.
    /// DEL keeps only the matching keys; RENAME and COPY are kept whole
    /// when either name matches; FLUSHDB always concerns every key; a
    /// transaction keeps its matching parts.
    pub fn matching(&self, pattern: &[u8]) -> Option<ChangeKind> {
        let m = |k: &[u8]| crate::command::glob::matches(pattern, k);
        match self {
            ChangeKind::Del { keys } => {
                let keys: Vec<Vec<u8>> = keys.iter().filter(|k| m(k)).cloned().collect();
                (!keys.is_empty()).then_some(ChangeKind::Del { keys })
            }
            ChangeKind::Transaction(parts) => {
                let parts: Vec<ChangeKind> =
                    parts.iter().filter_map(|p| p.matching(pattern)).collect();
                (!parts.is_empty()).then_some(ChangeKind::Transaction(parts))
            }
            ChangeKind::FlushDb => Some(ChangeKind::FlushDb),
            other => other.keys().into_iter().any(m).then(|| other.clone()),
        }
    }

    /// The Redis commands that make this change, as words (a transaction
    /// gives MULTI, its parts, EXEC). Sending them to Redis applies the
    /// change; times are absolute, so they may be sent late.
    pub fn to_commands(&self) -> Vec<Vec<Vec<u8>>> {
        let w = |s: &str| s.as_bytes().to_vec();
        let fields_of = |cmd: &str, key: &[u8], pre: Vec<Vec<u8>>, fields: &[Vec<u8>]| {
            let mut v = vec![w(cmd), key.to_vec()];
            v.extend(pre);
            v.push(w("FIELDS"));
            v.push(fields.len().to_string().into_bytes());
            v.extend(fields.iter().cloned());
            v
        };
        match self {
            ChangeKind::HSet {
                key,
                pairs,
                field_ttl,
            } => {
                let flat = pairs.iter().flat_map(|(f, v)| [f.clone(), v.clone()]);
                let mut v = match field_ttl {
                    FieldTtl::Clear => vec![w("hset"), key.clone()],
                    FieldTtl::Keep => vec![w("hsetex"), key.clone(), w("KEEPTTL")],
                    FieldTtl::At(at) => vec![
                        w("hsetex"),
                        key.clone(),
                        w("PXAT"),
                        at.to_string().into_bytes(),
                    ],
                };
                if *field_ttl != FieldTtl::Clear {
                    v.push(w("FIELDS"));
                    v.push(pairs.len().to_string().into_bytes());
                }
                v.extend(flat);
                vec![v]
            }
            ChangeKind::HDel { key, fields } => {
                let mut v = vec![w("hdel"), key.clone()];
                v.extend(fields.iter().cloned());
                vec![v]
            }
            ChangeKind::Del { keys } => {
                let mut v = vec![w("del")];
                v.extend(keys.iter().cloned());
                vec![v]
            }
            ChangeKind::Expire { key, at_ms } => vec![vec![
                w("pexpireat"),
                key.clone(),
                at_ms.to_string().into_bytes(),
            ]],
            ChangeKind::Persist { key } => vec![vec![w("persist"), key.clone()]],
            ChangeKind::HExpire { key, at_ms, fields } => vec![fields_of(
                "hpexpireat",
                key,
                vec![at_ms.to_string().into_bytes()],
                fields,
            )],
            ChangeKind::HPersist { key, fields } => {
                vec![fields_of("hpersist", key, Vec::new(), fields)]
            }
            ChangeKind::Rename { from, to } => vec![vec![w("rename"), from.clone(), to.clone()]],
            ChangeKind::Copy { src, dst } => {
                vec![vec![w("copy"), src.clone(), dst.clone(), w("REPLACE")]]
            }
            ChangeKind::FlushDb => vec![vec![w("flushdb")]],
            ChangeKind::Transaction(parts) => {
                let mut v = vec![vec![w("multi")]];
                v.extend(parts.iter().flat_map(ChangeKind::to_commands));
                v.push(vec![w("exec")]);
                v
            }
        }
    }

    /// This change as JSON (what `hashkv watch --json` prints, without the
    /// position): `{"op": ..., "key": ...}`, byte strings as the JSON
    /// export writes them (a string, or `{"base64": ...}`).
    pub fn to_json(&self) -> Value {
        let b = |x: &[u8]| json_bytes(x);
        let list = |v: &[Vec<u8>]| Value::Array(v.iter().map(|x| json_bytes(x)).collect());
        match self {
            ChangeKind::HSet {
                key,
                pairs,
                field_ttl,
            } => {
                let ttl = match field_ttl {
                    FieldTtl::Clear => json!("clear"),
                    FieldTtl::Keep => json!("keep"),
                    FieldTtl::At(at) => json!({ "expire_at_ms": at }),
                };
                let pairs: Vec<Value> = pairs
                    .iter()
                    .map(|(f, v)| Value::Array(vec![b(f), b(v)]))
                    .collect();
                json!({"op": "hset", "key": b(key), "fields": pairs, "field_ttl": ttl})
            }
            ChangeKind::HDel { key, fields } => {
                json!({"op": "hdel", "key": b(key), "fields": list(fields)})
            }
            ChangeKind::Del { keys } => json!({"op": "del", "keys": list(keys)}),
            ChangeKind::Expire { key, at_ms } => {
                json!({"op": "expire", "key": b(key), "expire_at_ms": at_ms})
            }
            ChangeKind::Persist { key } => json!({"op": "persist", "key": b(key)}),
            ChangeKind::HExpire { key, at_ms, fields } => {
                json!({"op": "hexpire", "key": b(key), "expire_at_ms": at_ms, "fields": list(fields)})
            }
            ChangeKind::HPersist { key, fields } => {
                json!({"op": "hpersist", "key": b(key), "fields": list(fields)})
            }
            ChangeKind::Rename { from, to } => {
                json!({"op": "rename", "from": b(from), "to": b(to)})
            }
            ChangeKind::Copy { src, dst } => json!({"op": "copy", "src": b(src), "dst": b(dst)}),
            ChangeKind::FlushDb => json!({"op": "flushdb"}),
            ChangeKind::Transaction(parts) => json!({
                "op": "transaction",
                "parts": parts.iter().map(ChangeKind::to_json).collect::<Vec<_>>(),
            }),
        }
    }
}

/// Appends `word` as a redis-cli line shows it: bare when it is printable
/// and needs no quotes, else quoted with escapes (what `hashkv shell`
/// reads back).
fn push_word(out: &mut Vec<u8>, word: &[u8]) {
    let bare = !word.is_empty()
        && word
            .iter()
            .all(|&c| c.is_ascii_graphic() && !matches!(c, b'"' | b'\'' | b'\\'));
    if bare {
        out.extend_from_slice(word);
    } else {
        push_repr(out, word);
    }
}

impl Change {
    /// One line in redis-cli's words (what `hashkv watch` prints), e.g.
    /// `hset user:1 name Alice`; a transaction's commands are joined by
    /// ` ; ` (`multi ; hset a f 1 ; hset b f 2 ; exec`). Binary-safe:
    /// words that need it are quoted as redis-cli quotes them.
    pub fn to_cli_line(&self) -> String {
        let mut out = Vec::new();
        for (i, cmd) in self.kind.to_commands().iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b" ; ");
            }
            for (j, word) in cmd.iter().enumerate() {
                if j > 0 {
                    out.push(b' ');
                }
                push_word(&mut out, word);
            }
        }
        // ASCII by construction: everything else is escaped.
        String::from_utf8_lossy(&out).into_owned()
    }

    /// One JSON object (what `hashkv watch --json` prints per line): the
    /// kind's fields ([`ChangeKind::to_json`]) plus `"position"`.
    pub fn to_json(&self) -> Value {
        let mut v = self.kind.to_json();
        if let Value::Object(o) = &mut v {
            o.insert("position".into(), json!(self.position.to_string()));
        }
        v
    }
}
