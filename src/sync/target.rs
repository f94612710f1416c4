//! The Redis, Valkey or Redis Cluster that sync writes to, through the
//! redis-rs client: connecting, probing what the server has, sending units
//! of commands pipelined, and reading a server's errors back to the unit
//! (and so the key and the log position) they are about.
//!
//! A unit that must be atomic is sent as MULTI/EXEC on a single server. A
//! Redis Cluster client cannot hold MULTI across its routing, so in a
//! cluster such a unit whose keys share a slot runs as one EVAL of a small
//! script that applies its commands in order (as atomic as MULTI/EXEC); one
//! whose keys span slots is sent as its commands in order. The cluster
//! client follows MOVED and ASK redirections while the cluster reshards.

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot};
use redis::{Cmd, ConnectionLike, Value};

use super::translate::{key_of, Unit, Words, GUARD};

/// Deletes KEYS[1] if it is a hash; refuses any other type.
pub(crate) const GUARD_SCRIPT: &str = "local t = redis.call('TYPE', KEYS[1])['ok'] \
if t == 'hash' then redis.call('DEL', KEYS[1]) \
elseif t ~= 'none' then return redis.error_reply('WRONGTYPE the target holds ' .. t .. ' under this key, not a hash') end \
return 0";

/// Runs a unit's commands in order (ARGV: a count of words, the words, ...);
/// the guard pseudo-command as [`GUARD_SCRIPT`] does.
const UNIT_SCRIPT: &str = "local i = 1 \
while i <= #ARGV do \
  local n = tonumber(ARGV[i]) \
  local w = {} \
  for j = 1, n do w[j] = ARGV[i + j] end \
  if w[1] == 'HASHKV-REPLACE' then \
    local t = redis.call('TYPE', w[2])['ok'] \
    if t == 'hash' then redis.call('DEL', w[2]) \
    elseif t ~= 'none' then return redis.error_reply('WRONGTYPE the target holds ' .. t .. ' under this key, not a hash') end \
  else redis.call(unpack(w)) end \
  i = i + n + 1 \
end \
return 1";

/// How long connecting may take, and a reply.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Commands already written as RESP, for a full copy into a single
/// server: `count` commands, the `i`th about `keys[cmd_key[i]]`.
#[derive(Debug, Default)]
pub(crate) struct Packed {
    pub buf: Vec<u8>,
    pub count: usize,
    pub cmd_key: Vec<u32>,
    pub keys: Vec<Vec<u8>>,
}

/// Why sending failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Worth trying again after a pause (the connection, a server loading
    /// or busy, a cluster resharding or failing over).
    Retry(String),
    /// The server refused a command of unit `unit` for good.
    Refused {
        unit: usize,
        key: Vec<u8>,
        message: String,
    },
}

enum Conn {
    One(redis::Connection),
    Cluster(Box<ClusterConnection>),
}

/// A connected target.
pub(crate) struct Target {
    conn: Conn,
    url: String,
    cluster: bool,
    /// The URL shown in messages (no password).
    pub shown: String,
    /// What the server says it is ("Redis 7.0.15").
    pub server: String,
    /// Whether the server has field TTLs (HPEXPIREAT, HPERSIST).
    pub field_ttls: bool,
}

/// `url` with its password replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth_end, host) = match rest.find('/') {
        Some(slash) => (rest[..slash].rfind('@'), rest),
        None => (rest.rfind('@'), rest),
    };
    match auth_end {
        Some(at) => {
            let userinfo = &host[..at];
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{}", &host[at + 1..])
        }
        None => url.to_string(),
    }
}

/// Whether an error from the client is worth retrying.
fn retryable(e: &redis::RedisError) -> bool {
    if e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
    {
        return true;
    }
    matches!(
        e.code(),
        Some("LOADING" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "MOVED" | "ASK")
    )
}

fn server_error_retryable(code: &str) -> bool {
    matches!(
        code,
        "LOADING" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "MOVED" | "ASK"
    )
}

fn to_cmd(w: &Words) -> Cmd {
    if w.first().map(Vec::as_slice) == Some(GUARD) {
        let mut c = redis::cmd("EVAL");
        c.arg(GUARD_SCRIPT).arg(1).arg(key_of(w));
        return c;
    }
    let mut c = redis::cmd(std::str::from_utf8(&w[0]).unwrap_or("PING"));
    for a in &w[1..] {
        c.arg(a.as_slice());
    }
    c
}

/// The first server error in a reply (looking into EXEC's array).
fn first_error(v: &Value) -> Option<(String, String)> {
    match v {
        Value::ServerError(e) => Some((e.code().to_string(), e.to_string())),
        Value::Array(items) => items.iter().find_map(first_error),
        _ => None,
    }
}

/// A host and port out of a CLUSTER SLOTS node entry.
fn node_of(v: &Value) -> Option<(String, u16)> {
    let Value::Array(parts) = v else { return None };
    let host = match parts.first()? {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let port = match parts.get(1)? {
        Value::Int(p) => u16::try_from(*p).ok()?,
        _ => return None,
    };
    Some((host, port))
}

fn text_of(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        _ => String::new(),
    }
}

impl Target {
    /// Connects to `url` (a single server, or any node of a cluster).
    ///
    /// # Errors
    /// `Err((retryable, message))`.
    pub(crate) fn connect(url: &str, cluster: bool) -> Result<Target, (bool, String)> {
        let shown = redact(url);
        let fail = |e: redis::RedisError| {
            let auth = matches!(e.kind(), redis::ErrorKind::AuthenticationFailed)
                || matches!(e.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"));
            (
                !auth && retryable(&e),
                format!("cannot connect to {shown}: {e}"),
            )
        };
        let conn = if cluster {
            let client = ClusterClient::builder(vec![url])
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(REPLY_TIMEOUT)
                .build()
                .map_err(|e| (false, format!("{shown}: {e}")))?;
            Conn::Cluster(Box::new(client.get_connection().map_err(fail)?))
        } else {
            let client = redis::Client::open(url).map_err(|e| (false, format!("{shown}: {e}")))?;
            let c = client
                .get_connection_with_timeout(CONNECT_TIMEOUT)
                .map_err(fail)?;
            c.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(fail)?;
            c.set_write_timeout(Some(REPLY_TIMEOUT)).map_err(fail)?;
            Conn::One(c)
        };
        let mut t = Target {
            conn,
            url: url.to_string(),
            cluster,
            shown: shown.clone(),
            server: String::new(),
            field_ttls: false,
        };
        t.probe().map_err(fail)?;
        Ok(t)
    }

    /// A new connection to the same target.
    pub(crate) fn connect_again(&self) -> Result<Target, (bool, String)> {
        Target::connect(&self.url, self.cluster)
    }

    fn query_one(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        match &mut self.conn {
            Conn::One(c) => c.req_command(cmd),
            Conn::Cluster(c) => {
                c.route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
            }
        }
    }

    /// What the server is and whether it has field TTLs.
    fn probe(&mut self) -> redis::RedisResult<()> {
        let info = text_of(&self.query_one(redis::cmd("INFO").arg("server"))?);
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        self.server = match (field("valkey_version:"), field("redis_version:")) {
            (Some(v), _) => format!("Valkey {v}"),
            (None, Some(v)) => format!("Redis {v}"),
            (None, None) => "an unknown server".into(),
        };
        let r = self.query_one(redis::cmd("COMMAND").arg("INFO").arg("HPEXPIREAT"))?;
        self.field_ttls =
            matches!(&r, Value::Array(items) if items.iter().any(|v| !matches!(v, Value::Nil)));
        Ok(())
    }

    /// The masters of a cluster (host, port), or `None` on a single server.
    fn masters(&mut self) -> redis::RedisResult<Option<Vec<(String, u16)>>> {
        let Conn::Cluster(_) = &self.conn else {
            return Ok(None);
        };
        let slots = self.query_one(redis::cmd("CLUSTER").arg("SLOTS"))?;
        let mut out: Vec<(String, u16)> = Vec::new();
        if let Value::Array(ranges) = slots {
            for r in &ranges {
                if let Value::Array(parts) = r {
                    if let Some(n) = parts.get(2).and_then(node_of) {
                        if !out.contains(&n) {
                            out.push(n);
                        }
                    }
                }
            }
        }
        Ok(Some(out))
    }

    fn on_node(&mut self, node: &(String, u16), cmd: &Cmd) -> redis::RedisResult<Value> {
        match &mut self.conn {
            Conn::One(c) => c.req_command(cmd),
            Conn::Cluster(c) => c.route_command(
                cmd,
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: node.0.clone(),
                    port: node.1,
                }),
            ),
        }
    }

    /// Keys in the whole target (every master of a cluster).
    pub(crate) fn dbsize(&mut self) -> Result<u64, SendError> {
        let nodes = self
            .masters()
            .map_err(|e| SendError::Retry(e.to_string()))?;
        let nodes = nodes.unwrap_or_else(|| vec![(String::new(), 0)]);
        let mut n = 0u64;
        for node in &nodes {
            match self.on_node(node, &redis::cmd("DBSIZE")) {
                Ok(Value::Int(k)) => n += k.max(0) as u64,
                Ok(_) => {}
                Err(e) => return Err(SendError::Retry(e.to_string())),
            }
        }
        Ok(n)
    }

    /// Every hash key of the target matching `pattern`, to `f` in batches.
    pub(crate) fn scan_hashes(
        &mut self,
        pattern: &[u8],
        mut f: impl FnMut(&mut Target, Vec<Vec<u8>>) -> Result<(), SendError>,
    ) -> Result<(), SendError> {
        let retry = |e: redis::RedisError| SendError::Retry(e.to_string());
        let nodes = self.masters().map_err(retry)?;
        let nodes = nodes.unwrap_or_else(|| vec![(String::new(), 0)]);
        for node in &nodes {
            let mut cursor = 0u64;
            loop {
                let mut c = redis::cmd("SCAN");
                c.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .arg("TYPE")
                    .arg("hash");
                let v = self.on_node(node, &c).map_err(retry)?;
                let Value::Array(parts) = v else { break };
                cursor = text_of(parts.first().unwrap_or(&Value::Nil))
                    .parse()
                    .unwrap_or(0);
                let keys = match parts.get(1) {
                    Some(Value::Array(ks)) => ks
                        .iter()
                        .filter_map(|k| match k {
                            Value::BulkString(b) => Some(b.clone()),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                f(self, keys)?;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Whether the target is a cluster (a full copy then goes through
    /// [`Target::send`], which routes each key).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// Sends RESP commands written ahead to a single server and waits for
    /// every reply; a refusal names the key (`unit` is its index in
    /// `p.keys`).
    pub(crate) fn send_packed(&mut self, p: &Packed) -> Result<(), SendError> {
        let Conn::One(c) = &mut self.conn else {
            return Err(SendError::Retry(
                "a cluster takes no packed commands".into(),
            ));
        };
        if p.count == 0 {
            return Ok(());
        }
        let replies = c
            .req_packed_commands(&p.buf, 0, p.count)
            .map_err(|e| SendError::Retry(e.to_string()))?;
        for (n, v) in replies.iter().enumerate() {
            if let Some((code, message)) = first_error(v) {
                if server_error_retryable(&code) {
                    return Err(SendError::Retry(message));
                }
                let k = p.cmd_key.get(n).copied().unwrap_or(0) as usize;
                return Err(SendError::Refused {
                    unit: k,
                    key: p.keys.get(k).cloned().unwrap_or_default(),
                    message,
                });
            }
        }
        Ok(())
    }

    /// Sends `units` pipelined and waits for every reply.
    ///
    /// # Errors
    /// [`SendError::Retry`] when sending again may work (the units may have
    /// been applied in part: they are safe to apply again);
    /// [`SendError::Refused`] naming the first unit the server refused.
    pub(crate) fn send(&mut self, units: &[&Unit]) -> Result<(), SendError> {
        match &mut self.conn {
            Conn::One(c) => send_one(c, units),
            Conn::Cluster(c) => send_cluster(c, units),
        }
    }
}

fn send_one(c: &mut redis::Connection, units: &[&Unit]) -> Result<(), SendError> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let mut owner: Vec<(usize, usize)> = Vec::new();
    for (i, u) in units.iter().enumerate() {
        let wrap = u.atomic && u.cmds.len() > 1;
        if wrap {
            pipe.cmd("MULTI");
            owner.push((i, 0));
        }
        for (j, w) in u.cmds.iter().enumerate() {
            pipe.add_command(to_cmd(w));
            owner.push((i, j));
        }
        if wrap {
            pipe.cmd("EXEC");
            owner.push((i, 0));
        }
    }
    if owner.is_empty() {
        return Ok(());
    }
    let replies: Vec<Value> = match pipe.query(c) {
        Ok(v) => v,
        Err(e) => return Err(SendError::Retry(e.to_string())),
    };
    for (n, v) in replies.iter().enumerate() {
        if let Some((code, message)) = first_error(v) {
            if server_error_retryable(&code) {
                return Err(SendError::Retry(message));
            }
            let (i, j) = owner.get(n).copied().unwrap_or((0, 0));
            // An error inside EXEC: the key of the command it came from
            // cannot be told apart; the unit's first key names it.
            let key = key_of(&units[i].cmds[j.min(units[i].cmds.len() - 1)]).to_vec();
            return Err(SendError::Refused {
                unit: i,
                key,
                message,
            });
        }
    }
    Ok(())
}

/// The keys a unit's commands touch.
fn unit_keys(u: &Unit) -> Vec<&[u8]> {
    let mut keys: Vec<&[u8]> = Vec::new();
    for w in &u.cmds {
        let k = key_of(w);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

fn send_cluster(c: &mut ClusterConnection, units: &[&Unit]) -> Result<(), SendError> {
    let mut pipe = redis::cluster::cluster_pipe();
    let mut owner: Vec<(usize, usize)> = Vec::new();
    for (i, u) in units.iter().enumerate() {
        let keys = unit_keys(u);
        let one_slot = keys
            .first()
            .is_some_and(|k| keys.iter().all(|o| Slot::for_key(o) == Slot::for_key(k)));
        if u.atomic && u.cmds.len() > 1 && one_slot {
            let mut e = redis::cmd("EVAL");
            e.arg(UNIT_SCRIPT).arg(keys.len()).arg(&keys);
            for w in &u.cmds {
                e.arg(w.len());
                e.arg(w);
            }
            pipe.add_command(e);
            owner.push((i, 0));
        } else {
            for (j, w) in u.cmds.iter().enumerate() {
                pipe.add_command(to_cmd(w));
                owner.push((i, j));
            }
        }
    }
    if owner.is_empty() {
        return Ok(());
    }
    match pipe.query::<Vec<Value>>(c) {
        Ok(_) => Ok(()),
        Err(e) => {
            let retry = retryable(&e);
            let text = e.to_string();
            match e.into_server_errors() {
                Some(errors) => {
                    let Some((n, err)) = errors.first() else {
                        return Err(SendError::Retry("an empty pipeline error".into()));
                    };
                    if server_error_retryable(err.code()) {
                        return Err(SendError::Retry(err.to_string()));
                    }
                    let (i, j) = owner.get(*n).copied().unwrap_or((0, 0));
                    Err(SendError::Refused {
                        unit: i,
                        key: key_of(&units[i].cmds[j.min(units[i].cmds.len() - 1)]).to_vec(),
                        message: err.to_string(),
                    })
                }
                None if retry => Err(SendError::Retry(text)),
                None => Err(SendError::Refused {
                    unit: 0,
                    key: units
                        .first()
                        .and_then(|u| u.cmds.first())
                        .map(|w| key_of(w).to_vec())
                        .unwrap_or_default(),
                    message: text,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("redis://:secret@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://app:secret@h:1"), "redis://app:***@h:1");
    }
}
