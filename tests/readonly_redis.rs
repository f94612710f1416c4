//! A read-only handle against a real Redis replica: the same data written
//! to a Redis master and to a hashkv writer, then the same commands sent to
//! a replica of that master (`--replicaof`, link up) and to a read-only
//! handle over the writer's directory. Every reply and error must be the
//! same, byte for byte, as `redis-cli --no-raw` prints it: `READONLY` for
//! every write after the arity check and before the command's own
//! argument checks, reads answered as on the writer, and inside MULTI a
//! write refused when queued and EXEC answering `EXECABORT`. Redis's own
//! command table (`COMMAND INFO`) says which commands are writes; hashkv
//! must refuse exactly those.
//!
//! Field-TTL commands (HEXPIRE, HSETEX, HTTL, ...) exist only from Redis
//! 7.4; the Redis 7.0 this runs against answers "unknown command" for
//! them, so they are checked on the hashkv side alone: a write answers
//! `READONLY` after its arity check, a read answers as the writer does.
//!
//! Without redis-server the tests are skipped with a printed reason,
//! except under CI where they fail.

mod common;

use std::time::{Duration, Instant};

use common::{redis_or_skip, start_redis, RedisServer, RespClient};
use hashkv::{Db, Error, Options, Reply};

const READONLY: &str = "(error) READONLY You can't write against a read only replica.\n";
/// An absolute expiry far ahead, the same on both sides (EXPIRETIME and
/// PEXPIRETIME read it back exactly).
const FAR_AT: &str = "4102444800";

/// hashkv's answer as redis-cli prints it.
fn hk(r: Result<Reply, Error>) -> String {
    match r {
        Ok(reply) => reply.to_cli_string(),
        Err(e @ (Error::Command(_) | Error::ReadOnly)) => format!("(error) {e}\n"),
        Err(other) => panic!("not a Redis error: {other}"),
    }
}

/// Redis's answer, printed the same way.
fn rd(r: Result<Reply, String>) -> String {
    match r {
        Ok(reply) => reply.to_cli_string(),
        Err(e) => format!("(error) {e}\n"),
    }
}

/// How two replies are compared where Redis leaves the order open.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Order {
    /// As they come.
    Exact,
    /// An array whose elements may come in any order (KEYS, HKEYS of a
    /// hashtable, HRANDFIELD with a count past the size).
    Items,
    /// Field-value pairs in any order.
    Pairs,
    /// SCAN: run to the end on each side, the keys in any order (the
    /// cursors and how keys fall into pages are each server's own).
    Scan,
    /// Any integer on either side (MEMORY USAGE counts differently).
    AnyInteger,
}

fn normalize(r: Result<Reply, String>, order: Order) -> Result<Reply, String> {
    let sort = |items: &mut Vec<Reply>, pairs: bool| {
        if pairs {
            let mut ps: Vec<Vec<Reply>> = items.chunks(2).map(<[Reply]>::to_vec).collect();
            ps.sort_by_key(|p| format!("{p:?}"));
            *items = ps.into_iter().flatten().collect();
        } else {
            items.sort_by_key(|x| format!("{x:?}"));
        }
    };
    match (r, order) {
        (Ok(Reply::Array(mut items)), Order::Items | Order::Pairs) => {
            sort(&mut items, order == Order::Pairs);
            Ok(Reply::Array(items))
        }
        (Ok(Reply::Array(mut keys)), Order::Scan) => {
            sort(&mut keys, false);
            Ok(Reply::Array(keys))
        }
        (Ok(Reply::Integer(_)), Order::AnyInteger) => Ok(Reply::Integer(0)),
        (other, _) => other,
    }
}

/// SCAN `argv` (cursor second) from its cursor to the end: every key
/// returned, or the first reply that is not a page.
fn scan_all(
    argv: &[&str],
    mut call: impl FnMut(&[String]) -> Result<Reply, String>,
) -> Result<Reply, String> {
    let mut argv: Vec<String> = argv.iter().map(|w| (*w).to_owned()).collect();
    let mut keys = Vec::new();
    for _ in 0..10_000 {
        let page = call(&argv)?;
        let Reply::Array(parts) = &page else {
            return Ok(page);
        };
        let [Reply::Bulk(cursor), Reply::Array(items)] = &parts[..] else {
            return Ok(page);
        };
        keys.extend(items.iter().cloned());
        if cursor == b"0" {
            return Ok(Reply::Array(keys));
        }
        argv[1] = String::from_utf8_lossy(cursor).into_owned();
    }
    panic!("SCAN never ended: {argv:?}");
}

fn hk_reply(r: Result<Reply, Error>) -> Result<Reply, String> {
    r.map_err(|e| hk(Err(e)))
}

/// A Redis master, a replica of it with its link up, a hashkv writer and a
/// read-only handle over the writer's directory, all holding the same data.
struct Pair {
    _master: RedisServer,
    _replica: RedisServer,
    master: RespClient,
    replica: RespClient,
    _dir: tempfile::TempDir,
    writer: Db,
    reader: Db,
}

/// Runs `argv` on the master and on the hashkv writer; both must accept it
/// the same way.
fn write_both(master: &mut RespClient, writer: &Db, argv: &[&str]) {
    let words: Vec<&[u8]> = argv.iter().map(|w| w.as_bytes()).collect();
    let want = rd(master.call(&words).expect("the master answers"));
    let got = hk(writer.execute(argv));
    assert_eq!(got, want, "writing {argv:?}");
}

fn setup(test: &str) -> Option<Pair> {
    let master_server = redis_or_skip(test, &[])?;
    let port = master_server.port.to_string();
    let replica_server = start_redis(&["--replicaof", "127.0.0.1", &port])
        .unwrap_or_else(|e| panic!("{test}: the replica does not start: {e}"));
    let mut master = RespClient::connect(master_server.port).expect("connect to the master");
    let mut replica = RespClient::connect(replica_server.port).expect("connect to the replica");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = replica
            .call(&[b"INFO".as_slice(), b"replication"])
            .expect("the replica answers INFO");
        let Ok(Reply::Bulk(text)) = info else {
            panic!("INFO replication: {info:?}");
        };
        let text = String::from_utf8_lossy(&text).into_owned();
        if text.contains("master_link_status:up") {
            assert!(text.contains("role:slave"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{test}: the replica's link never came up:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = tempfile::tempdir().unwrap();
    let writer = Db::open_with(dir.path(), Options::default().follow(None)).unwrap();
    let mut fields = vec!["HSET", "big"];
    let names: Vec<String> = (0..600).map(|i| format!("f{i}")).collect();
    let values: Vec<String> = (0..600).map(|i| format!("v{i}")).collect();
    for (f, v) in names.iter().zip(&values) {
        fields.push(f);
        fields.push(v);
    }
    let long = "L".repeat(70);
    let data: Vec<Vec<&str>> = vec![
        vec!["HSET", "h", "a", "1", "b", "x", "c", "1.5"],
        vec!["HSET", "n", "counter", "10"],
        vec!["HSET", "t", "f", "v"],
        vec!["EXPIREAT", "t", FAR_AT],
        fields,
        vec!["HSET", "long", "f", &long],
        vec!["HSET", "gone", "f", "v"],
        vec!["PEXPIRE", "gone", "1"],
    ];
    for argv in &data {
        write_both(&mut master, &writer, argv);
    }
    // Everything has reached the replica.
    let acked = master
        .call(&[b"WAIT".as_slice(), b"1", b"10000"])
        .expect("WAIT");
    assert_eq!(acked, Ok(Reply::Integer(1)), "the replica acknowledged");
    let reader = Db::open_read_only_with(dir.path(), Options::default().follow(None)).unwrap();
    assert!(reader.is_read_only());
    // `gone` has expired by now on both sides: a replica and a reader hide
    // it without deleting it.
    std::thread::sleep(Duration::from_millis(20));
    Some(Pair {
        _master: master_server,
        _replica: replica_server,
        master,
        replica,
        _dir: dir,
        writer,
        reader,
    })
}

impl Pair {
    /// One command on the replica and on the reader: the two printed
    /// replies, after `order`.
    fn both(&mut self, argv: &[&str], order: Order) -> (String, String) {
        let (want, got) = if order == Order::Scan {
            let replica = &mut self.replica;
            let want = scan_all(argv, |a| {
                let words: Vec<&[u8]> = a.iter().map(|w| w.as_bytes()).collect();
                replica.call(&words).expect("the replica answers")
            });
            let reader = &self.reader;
            let got = scan_all(argv, |a| hk_reply(reader.execute(a)));
            (want, got)
        } else {
            let words: Vec<&[u8]> = argv.iter().map(|w| w.as_bytes()).collect();
            let want = self.replica.call(&words).expect("the replica answers");
            (want, hk_reply(self.reader.execute(argv)))
        };
        let want = rd(normalize(want, order));
        let got = match normalize(got, order) {
            Ok(r) => r.to_cli_string(),
            Err(printed) => printed,
        };
        (want, got)
    }

    /// The same, asserted equal; returns the reply.
    fn same(&mut self, argv: &[&str], order: Order) -> String {
        let (want, got) = self.both(argv, order);
        assert_eq!(
            got, want,
            "{argv:?}: hashkv (left) and the Redis replica (right)"
        );
        want
    }

    /// Deletes the expired `gone` on both writers (an access does it) and
    /// waits until the replica and the reader have the deletion.
    fn expire_gone(&mut self) {
        let got = self
            .master
            .call(&[b"EXISTS".as_slice(), b"gone"])
            .expect("EXISTS");
        assert_eq!(got, Ok(Reply::Integer(0)));
        assert_eq!(self.writer.exists(&["gone"]).unwrap(), 0);
        let acked = self
            .master
            .call(&[b"WAIT".as_slice(), b"1", b"10000"])
            .expect("WAIT");
        assert_eq!(acked, Ok(Reply::Integer(1)));
        self.reader.catch_up().unwrap();
    }

    /// Every key, field, value and expiry on the replica and on the reader:
    /// what a refused write must leave alone.
    fn state(&mut self) -> String {
        let mut out = String::new();
        for key in ["h", "n", "t", "big", "long", "gone", "nokey", "h2", "x"] {
            for argv in [
                vec!["HGETALL", key],
                vec!["EXPIRETIME", key],
                vec!["OBJECT", "ENCODING", key],
            ] {
                let (want, got) = self.both(&argv, Order::Pairs);
                assert_eq!(got, want, "{argv:?}");
                out.push_str(&want);
            }
        }
        out
    }
}

/// What the replica must answer to a write case (checked, so a replica
/// that accepted writes could not make the comparison vacuous).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Want {
    ReadOnly,
    Arity,
    Unknown,
}

/// Every write command hashkv knows, with the right and wrong numbers of
/// arguments, bad arguments (READONLY comes first), on a missing key and
/// on keys that exist, with and without a TTL, in a listpack and a
/// hashtable.
fn write_cases() -> Vec<(Vec<&'static str>, Want)> {
    use Want::*;
    let c = |argv: &[&'static str], w: Want| (argv.to_vec(), w);
    vec![
        c(&["HSET", "h", "a", "2"], ReadOnly),
        c(&["HSET", "nokey", "a", "1"], ReadOnly),
        c(&["HSET", "big", "f1", "new", "z", "1"], ReadOnly),
        c(&["HSET", "h", "a", "1", "b"], ReadOnly), // odd pairs: checked later
        c(&["hset", "h", "a", "2"], ReadOnly),
        c(&["HSET", "h", "a"], Arity),
        c(&["HSET", "h"], Arity),
        c(&["HSET"], Arity),
        c(&["HMSET", "h", "a", "2"], ReadOnly),
        c(&["HMSET", "nokey", "a", "1", "b", "2"], ReadOnly),
        c(&["HMSET", "h", "a", "1", "b"], ReadOnly),
        c(&["HMSET", "h", "a"], Arity),
        c(&["HSETNX", "h", "z", "1"], ReadOnly),
        c(&["HSETNX", "h", "a", "1"], ReadOnly),
        c(&["HSETNX", "nokey", "a", "1"], ReadOnly),
        c(&["HSETNX", "h", "a"], Arity),
        c(&["HSETNX", "h", "a", "1", "extra"], Arity),
        c(&["HDEL", "h", "a"], ReadOnly),
        c(&["HDEL", "h", "zz", "a", "b", "c"], ReadOnly),
        c(&["HDEL", "nokey", "a"], ReadOnly),
        c(&["HDEL", "h"], Arity),
        c(&["HINCRBY", "n", "counter", "1"], ReadOnly),
        c(&["HINCRBY", "nokey", "f", "1"], ReadOnly),
        c(&["HINCRBY", "h", "b", "1"], ReadOnly), // not an integer there
        c(&["HINCRBY", "n", "counter", "notanint"], ReadOnly),
        c(
            &["HINCRBY", "n", "counter", "9223372036854775807"],
            ReadOnly,
        ),
        c(&["HINCRBY", "n", "counter"], Arity),
        c(&["HINCRBY", "n", "counter", "1", "2"], Arity),
        c(&["HINCRBYFLOAT", "h", "c", "1.5"], ReadOnly),
        c(&["HINCRBYFLOAT", "nokey", "f", "1"], ReadOnly),
        c(&["HINCRBYFLOAT", "h", "b", "1"], ReadOnly),
        c(&["HINCRBYFLOAT", "h", "c", "abc"], ReadOnly),
        c(&["HINCRBYFLOAT", "h", "c", "inf"], ReadOnly),
        c(&["HINCRBYFLOAT", "h", "c"], Arity),
        c(&["DEL", "h"], ReadOnly),
        c(&["DEL", "nokey"], ReadOnly),
        c(&["DEL", "h", "n", "nokey"], ReadOnly),
        c(&["DEL", "gone"], ReadOnly),
        c(&["DEL"], Arity),
        c(&["UNLINK", "h"], ReadOnly),
        c(&["UNLINK", "nokey", "big"], ReadOnly),
        c(&["UNLINK"], Arity),
        c(&["RENAME", "h", "h2"], ReadOnly),
        c(&["RENAME", "nokey", "x"], ReadOnly), // no such key
        c(&["RENAME", "h", "h"], ReadOnly),
        c(&["RENAME", "h"], Arity),
        c(&["RENAME", "h", "a", "b"], Arity),
        c(&["RENAMENX", "h", "h2"], ReadOnly),
        c(&["RENAMENX", "h", "n"], ReadOnly),
        c(&["RENAMENX", "nokey", "x"], ReadOnly),
        c(&["RENAMENX", "h"], Arity),
        c(&["COPY", "h", "h2"], ReadOnly),
        c(&["COPY", "h", "n"], ReadOnly),
        c(&["COPY", "nokey", "x"], ReadOnly),
        c(&["COPY", "h", "n", "REPLACE"], ReadOnly),
        c(&["COPY", "h", "h2", "DB", "1"], ReadOnly),
        c(&["COPY", "h", "h2", "DB", "notanint"], ReadOnly),
        c(&["COPY", "h", "h2", "BADOPT"], ReadOnly),
        c(&["COPY", "h"], Arity),
        c(&["EXPIRE", "h", "100"], ReadOnly),
        c(&["EXPIRE", "nokey", "100"], ReadOnly),
        c(&["EXPIRE", "t", "100", "GT"], ReadOnly),
        c(&["EXPIRE", "h", "100", "NX", "XX"], ReadOnly),
        c(&["EXPIRE", "h", "100", "BAD"], ReadOnly),
        c(&["EXPIRE", "h", "notanum"], ReadOnly),
        c(&["EXPIRE", "h", "-1"], ReadOnly),
        c(&["EXPIRE", "h", "99999999999999999"], ReadOnly),
        c(&["EXPIRE", "h"], Arity),
        c(&["PEXPIRE", "h", "100000"], ReadOnly),
        c(&["PEXPIRE", "nokey", "1"], ReadOnly),
        c(&["PEXPIRE", "h", "1.5"], ReadOnly),
        c(&["PEXPIRE", "h", "10", "LT", "BAD"], ReadOnly),
        c(&["PEXPIRE"], Arity),
        c(&["EXPIREAT", "h", FAR_AT], ReadOnly),
        c(&["EXPIREAT", "h", "1"], ReadOnly), // in the past: a delete
        c(&["EXPIREAT", "nokey", FAR_AT], ReadOnly),
        c(&["EXPIREAT", "h", "x"], ReadOnly),
        c(&["EXPIREAT", "h"], Arity),
        c(&["PEXPIREAT", "t", "4102444800000", "XX"], ReadOnly),
        c(&["PEXPIREAT", "h", "1"], ReadOnly),
        c(&["PEXPIREAT", "h", ""], ReadOnly),
        c(&["PEXPIREAT", "h"], Arity),
        c(&["PERSIST", "t"], ReadOnly),
        c(&["PERSIST", "h"], ReadOnly),
        c(&["PERSIST", "nokey"], ReadOnly),
        c(&["PERSIST"], Arity),
        c(&["PERSIST", "t", "extra"], Arity),
        c(&["FLUSHDB"], ReadOnly),
        c(&["FLUSHDB", "ASYNC"], ReadOnly),
        c(&["FLUSHDB", "SYNC"], ReadOnly),
        c(&["flushdb", "BAD"], ReadOnly),
        c(&["FLUSHDB", "SYNC", "X"], ReadOnly),
        c(&["HSETX", "h", "a", "1"], Unknown),
        c(&["NOSUCH"], Unknown),
    ]
}

/// Reads, on every kind of key, including the expired one a replica hides
/// (before anything deletes it).
fn read_cases() -> Vec<(Vec<&'static str>, Order)> {
    use Order::*;
    let c = |argv: &[&'static str], o: Order| (argv.to_vec(), o);
    vec![
        c(&["HGET", "h", "a"], Exact),
        c(&["HGET", "h", "zz"], Exact),
        c(&["HGET", "nokey", "a"], Exact),
        c(&["HGET", "big", "f599"], Exact),
        c(&["HGET", "h"], Exact),
        c(&["HMGET", "h", "a", "zz", "c"], Exact),
        c(&["HMGET", "nokey", "a"], Exact),
        c(&["HMGET", "h"], Exact),
        c(&["HGETALL", "h"], Exact),
        c(&["HGETALL", "big"], Pairs),
        c(&["HGETALL", "nokey"], Exact),
        c(&["HKEYS", "h"], Exact),
        c(&["HKEYS", "big"], Items),
        c(&["HVALS", "h"], Exact),
        c(&["HVALS", "long"], Exact),
        c(&["HLEN", "h"], Exact),
        c(&["HLEN", "big"], Exact),
        c(&["HLEN", "nokey"], Exact),
        c(&["HLEN"], Exact),
        c(&["HEXISTS", "h", "a"], Exact),
        c(&["HEXISTS", "h", "zz"], Exact),
        c(&["HEXISTS", "nokey", "a"], Exact),
        c(&["HSTRLEN", "h", "c"], Exact),
        c(&["HSTRLEN", "long", "f"], Exact),
        c(&["HSTRLEN", "nokey", "f"], Exact),
        c(&["HSCAN", "h", "0"], Exact),
        c(&["HSCAN", "h", "0", "MATCH", "a*"], Exact),
        c(&["HSCAN", "h", "0", "COUNT", "0"], Exact),
        c(&["HSCAN", "h", "notacursor"], Exact),
        c(&["HSCAN", "nokey", "0"], Exact),
        c(&["HSCAN", "h"], Exact),
        c(&["HRANDFIELD", "nokey"], Exact),
        c(&["HRANDFIELD", "nokey", "5"], Exact),
        c(&["HRANDFIELD", "h", "0"], Exact),
        c(&["HRANDFIELD", "h", "10"], Items),
        c(&["HRANDFIELD", "h", "10", "WITHVALUES"], Pairs),
        c(&["HRANDFIELD", "h", "x"], Exact),
        c(&["EXISTS", "h", "nokey", "h", "big"], Exact),
        c(&["EXISTS"], Exact),
        c(&["TYPE", "h"], Exact),
        c(&["TYPE", "nokey"], Exact),
        c(&["TTL", "h"], Exact),
        c(&["TTL", "nokey"], Exact),
        c(&["PTTL", "h"], Exact),
        c(&["EXPIRETIME", "t"], Exact),
        c(&["PEXPIRETIME", "t"], Exact),
        c(&["EXPIRETIME", "h"], Exact),
        c(&["PEXPIRETIME", "nokey"], Exact),
        c(&["OBJECT", "ENCODING", "h"], Exact),
        c(&["OBJECT", "ENCODING", "big"], Exact),
        c(&["OBJECT", "ENCODING", "long"], Exact),
        c(&["OBJECT", "ENCODING", "nokey"], Exact),
        c(&["OBJECT", "ENCODING"], Exact),
        c(&["OBJECT", "FOO", "h"], Exact),
        c(&["OBJECT"], Exact),
        c(&["MEMORY", "USAGE", "h"], AnyInteger),
        c(&["MEMORY", "USAGE", "nokey"], Exact),
        c(&["MEMORY", "USAGE", "h", "SAMPLES", "x"], Exact),
        c(&["PING"], Exact),
        c(&["PING", "hi"], Exact),
        c(&["ECHO", "x y"], Exact),
        c(&["ECHO"], Exact),
        // The expired key: gone for reads on a replica and on a reader,
        // though neither deleted it.
        c(&["EXISTS", "gone"], Exact),
        c(&["HGET", "gone", "f"], Exact),
        c(&["HGETALL", "gone"], Exact),
        c(&["HLEN", "gone"], Exact),
        c(&["TTL", "gone"], Exact),
        c(&["TYPE", "gone"], Exact),
        c(&["OBJECT", "ENCODING", "gone"], Exact),
    ]
}

/// Reads over the whole keyspace, once the expired key is deleted.
fn keyspace_reads() -> Vec<(Vec<&'static str>, Order)> {
    use Order::*;
    let c = |argv: &[&'static str], o: Order| (argv.to_vec(), o);
    vec![
        c(&["DBSIZE"], Exact),
        c(&["KEYS", "*"], Items),
        c(&["KEYS", "h*"], Items),
        c(&["SCAN", "0", "COUNT", "1000"], Scan),
        c(&["SCAN", "0", "TYPE", "hash", "COUNT", "1000"], Scan),
        c(&["SCAN", "0", "MATCH", "l*", "COUNT", "1000"], Scan),
        c(&["SCAN", "0", "COUNT", "0"], Exact),
    ]
}

#[test]
fn writes_answer_readonly_and_reads_answer_as_a_redis_replica_does() {
    let Some(mut p) = setup("writes_answer_readonly_and_reads_answer_as_a_redis_replica_does")
    else {
        return;
    };
    let before = p.state();
    let mut compared = 0;
    for (argv, order) in read_cases() {
        p.same(&argv, order);
        compared += 1;
    }
    let writes = write_cases();
    for (argv, want) in &writes {
        let reply = p.same(argv, Order::Exact);
        let ok = match want {
            Want::ReadOnly => reply == READONLY,
            Want::Arity => reply.starts_with("(error) ERR wrong number of arguments for '"),
            Want::Unknown => reply.starts_with("(error) ERR unknown command '"),
        };
        assert!(
            ok,
            "{argv:?}: the replica answered {reply:?}, expected {want:?}"
        );
        compared += 1;
    }
    assert_eq!(p.state(), before, "a refused write changed something");
    p.expire_gone();
    for (argv, order) in keyspace_reads() {
        p.same(&argv, order);
        compared += 1;
    }
    let refused = writes.iter().filter(|(_, w)| *w == Want::ReadOnly).count();
    eprintln!(
        "{compared} commands compared with a Redis replica ({} writes, {refused} of them refused with READONLY)",
        writes.len()
    );
}

/// MULTI/EXEC on a replica and on a reader (one connection, one
/// `Db::session` each): a write is refused when queued and EXEC aborts;
/// reads alone run.
#[test]
fn multi_exec_on_a_reader_answers_as_on_a_redis_replica() {
    let Some(mut p) = setup("multi_exec_on_a_reader_answers_as_on_a_redis_replica") else {
        return;
    };
    let before = p.state();
    let scripts: Vec<Vec<Vec<&str>>> = vec![
        // Reads alone.
        vec![
            vec!["MULTI"],
            vec!["HGET", "h", "a"],
            vec!["HLEN", "h"],
            vec!["EXISTS", "h", "nokey"],
            vec!["HGETALL", "h"],
            vec!["HGET", "gone", "f"],
            vec!["EXPIRETIME", "t"],
            vec!["EXEC"],
        ],
        vec![vec!["MULTI"], vec!["EXEC"]],
        // A run-time error among reads is that command's reply.
        vec![
            vec!["MULTI"],
            vec!["HSCAN", "h", "bad"],
            vec!["HGET", "h", "b"],
            vec!["EXEC"],
        ],
        // A write queued: refused, and EXEC aborts.
        vec![vec!["MULTI"], vec!["HSET", "h", "a", "9"], vec!["EXEC"]],
        vec![
            vec!["MULTI"],
            vec!["HGET", "h", "a"],
            vec!["DEL", "h"],
            vec!["HLEN", "h"],
            vec!["EXEC"],
        ],
        vec![vec!["MULTI"], vec!["HINCRBY", "h", "b", "1"], vec!["EXEC"]],
        vec![
            vec!["MULTI"],
            vec!["HSET", "h", "a", "1", "b"],
            vec!["EXEC"],
        ],
        vec![
            vec!["MULTI"],
            vec!["EXPIRE", "h", "10", "BAD"],
            vec!["EXEC"],
        ],
        vec![vec!["MULTI"], vec!["FLUSHDB"], vec!["EXEC"]],
        vec![vec!["MULTI"], vec!["RENAME", "nokey", "x"], vec!["EXEC"]],
        // Arity and unknown names abort as on any server.
        vec![vec!["MULTI"], vec!["HSET", "h"], vec!["EXEC"]],
        vec![vec!["MULTI"], vec!["NOSUCH", "h"], vec!["EXEC"]],
        vec![
            vec!["MULTI"],
            vec!["HGET", "h"],
            vec!["HGET", "h", "a"],
            vec!["EXEC"],
        ],
        // DISCARD after a refused write; EXEC with no MULTI.
        vec![
            vec!["MULTI"],
            vec!["FLUSHDB"],
            vec!["DISCARD"],
            vec!["EXEC"],
            vec!["DISCARD"],
        ],
        // Nested MULTI and WATCH inside MULTI are errors that do not abort.
        vec![
            vec!["MULTI"],
            vec!["MULTI"],
            vec!["WATCH", "h"],
            vec!["HGET", "h", "a"],
            vec!["EXEC"],
        ],
        // WATCH on a replica: nothing changes, EXEC runs.
        vec![
            vec!["WATCH", "h", "nokey"],
            vec!["MULTI"],
            vec!["HGET", "h", "a"],
            vec!["EXEC"],
        ],
        vec![
            vec!["WATCH", "h"],
            vec!["MULTI"],
            vec!["HDEL", "h", "a"],
            vec!["EXEC"],
            vec!["UNWATCH"],
        ],
        // The transaction commands' own arity.
        vec![vec!["MULTI", "x"], vec!["EXEC", "x"], vec!["DISCARD", "x"]],
        vec![vec!["MULTI"], vec!["EXEC", "x"], vec!["EXEC"]],
    ];
    let mut client = p.reader.session();
    let mut lines = 0;
    let mut aborted = 0;
    for script in &scripts {
        for argv in script {
            let words: Vec<&[u8]> = argv.iter().map(|w| w.as_bytes()).collect();
            let want = rd(p.replica.call(&words).expect("the replica answers"));
            let got = hk(client.execute(argv));
            assert_eq!(
                got, want,
                "{argv:?} in {script:?}: hashkv (left) and the Redis replica (right)"
            );
            if want.starts_with("(error) EXECABORT") {
                aborted += 1;
            }
            lines += 1;
        }
        assert!(!client.in_multi(), "{script:?} left hashkv in MULTI");
    }
    assert!(aborted >= 10, "only {aborted} EXECs aborted");
    assert_eq!(p.state(), before, "a transaction changed something");
    eprintln!(
        "{} transactions, {lines} commands compared with a Redis replica",
        scripts.len()
    );
}

/// Redis's command table decides what a write is: for every command
/// hashkv knows that Redis 7.0 has, the reader refuses it with READONLY
/// (after the arity check) exactly when `COMMAND INFO` flags it `write`.
#[test]
fn the_commands_refused_are_the_ones_redis_flags_as_writes() {
    let Some(mut p) = setup("the_commands_refused_are_the_ones_redis_flags_as_writes") else {
        return;
    };
    // Each with arguments that pass the arity check.
    let commands: &[(&str, &[&str])] = &[
        // (KEYS and SCAN are compared in any order below.)
        ("hset", &["HSET", "h", "a", "1"]),
        ("hmset", &["HMSET", "h", "a", "1"]),
        ("hsetnx", &["HSETNX", "h", "a", "1"]),
        ("hget", &["HGET", "h", "a"]),
        ("hmget", &["HMGET", "h", "a"]),
        ("hgetall", &["HGETALL", "h"]),
        ("hkeys", &["HKEYS", "h"]),
        ("hvals", &["HVALS", "h"]),
        ("hlen", &["HLEN", "h"]),
        ("hdel", &["HDEL", "h", "a"]),
        ("hexists", &["HEXISTS", "h", "a"]),
        ("hstrlen", &["HSTRLEN", "h", "a"]),
        ("hincrby", &["HINCRBY", "n", "counter", "1"]),
        ("hincrbyfloat", &["HINCRBYFLOAT", "n", "counter", "1"]),
        ("hrandfield", &["HRANDFIELD", "nokey"]),
        ("hscan", &["HSCAN", "h", "0"]),
        ("del", &["DEL", "h"]),
        ("unlink", &["UNLINK", "h"]),
        ("exists", &["EXISTS", "h"]),
        ("type", &["TYPE", "h"]),
        ("ttl", &["TTL", "h"]),
        ("pttl", &["PTTL", "h"]),
        ("expiretime", &["EXPIRETIME", "h"]),
        ("pexpiretime", &["PEXPIRETIME", "h"]),
        ("persist", &["PERSIST", "t"]),
        ("keys", &["KEYS", "*"]),
        ("echo", &["ECHO", "x"]),
        ("rename", &["RENAME", "h", "h2"]),
        ("renamenx", &["RENAMENX", "h", "h2"]),
        ("copy", &["COPY", "h", "h2"]),
        ("expire", &["EXPIRE", "h", "10"]),
        ("pexpire", &["PEXPIRE", "h", "10"]),
        ("expireat", &["EXPIREAT", "h", "10"]),
        ("pexpireat", &["PEXPIREAT", "h", "10"]),
        ("scan", &["SCAN", "0"]),
        ("dbsize", &["DBSIZE"]),
        ("flushdb", &["FLUSHDB"]),
        ("ping", &["PING"]),
        ("object|encoding", &["OBJECT", "ENCODING", "h"]),
        ("memory|usage", &["MEMORY", "USAGE", "h"]),
    ];
    let mut writes = 0;
    for (name, argv) in commands {
        let info = p
            .replica
            .call(&[b"COMMAND".as_slice(), b"INFO", name.as_bytes()])
            .expect("COMMAND INFO");
        let Ok(Reply::Array(entries)) = &info else {
            panic!("COMMAND INFO {name}: {info:?}");
        };
        let Some(Reply::Array(doc)) = entries.first() else {
            panic!("COMMAND INFO {name}: Redis does not have it: {info:?}");
        };
        let Some(Reply::Array(flags)) = doc.get(2) else {
            panic!("COMMAND INFO {name}: no flags: {doc:?}");
        };
        let write = flags.contains(&Reply::Status("write".into()));
        let order = match *name {
            "keys" => Order::Items,
            "scan" => Order::Scan,
            _ => Order::AnyInteger,
        };
        let (want, got) = p.both(argv, order);
        assert_eq!(got, want, "{argv:?}");
        assert_eq!(
            got == READONLY,
            write,
            "{name}: Redis flags it {flags:?}; hashkv answered {got:?}"
        );
        writes += usize::from(write);
    }
    assert_eq!(
        writes, 17,
        "the write commands hashkv has that Redis 7.0 has"
    );
    // The field-TTL commands (Redis 7.4 and later) on the hashkv side
    // alone: writes refused after their arity check, reads as the writer.
    let field_ttl: &[(&[&str], bool)] = &[
        (&["HEXPIRE", "h", "10", "FIELDS", "1", "a"], true),
        (&["HEXPIRE", "nokey", "10", "FIELDS", "1", "a"], true),
        (&["HEXPIRE", "h", "bad", "FIELDS", "1", "a"], true),
        (&["HEXPIRE", "h", "10", "FIELDS", "2", "a"], true),
        (&["HPEXPIRE", "h", "10", "NX", "FIELDS", "1", "a"], true),
        (&["HEXPIREAT", "h", FAR_AT, "FIELDS", "1", "a"], true),
        (&["HPEXPIREAT", "h", "1", "FIELDS", "1", "a"], true),
        (&["HPERSIST", "h", "FIELDS", "1", "a"], true),
        (&["HPERSIST", "h", "FIELDS", "x", "a"], true),
        (&["HGETDEL", "h", "FIELDS", "1", "a"], true),
        (&["HGETEX", "h", "FIELDS", "1", "a"], true),
        (&["HGETEX", "h", "PX", "10", "FIELDS", "1", "a"], true),
        (&["HGETEX", "h", "PERSIST", "FIELDS", "1", "a"], true),
        (&["HSETEX", "h", "FIELDS", "1", "a", "b"], true),
        (
            &["HSETEX", "h", "FNX", "PX", "10", "FIELDS", "1", "a", "b"],
            true,
        ),
        (&["HSETEX", "h", "FIELDS", "2", "a", "b"], true),
        (&["HEXPIRE", "h", "10", "FIELDS"], false),
        (&["HPERSIST", "h", "FIELDS"], false),
        (&["HGETDEL", "h", "FIELDS", "1"], false),
        (&["HSETEX", "h", "FIELDS", "1"], false),
        (&["HTTL", "h", "FIELDS", "1", "a"], false),
        (&["HPTTL", "h", "FIELDS", "2", "a", "zz"], false),
        (&["HEXPIRETIME", "nokey", "FIELDS", "1", "a"], false),
        (&["HPEXPIRETIME", "h", "FIELDS", "1", "a"], false),
        (&["HTTL", "h", "FIELDS", "0"], false),
        (&["HTTL", "h", "FIELDS"], false),
    ];
    for (argv, refused) in field_ttl {
        let got = hk(p.reader.execute(argv));
        if *refused {
            assert_eq!(got, READONLY, "{argv:?}");
        } else {
            // An arity error or a read: what the writer answers.
            let want = hk(p.writer.execute(argv));
            assert_ne!(want, READONLY, "{argv:?}");
            assert_eq!(
                got, want,
                "{argv:?}: the reader (left) and the writer (right)"
            );
        }
    }
}
