//! MULTI/EXEC/DISCARD/WATCH/UNWATCH against a real redis-server: two
//! clients on each side (two connections to Redis, two `Session`s on
//! hashkv), generated scripts of transactions around hash and key commands
//! with queue-time errors (unknown command, wrong arity), run-time errors,
//! nested MULTI, WATCH inside MULTI, and the other client touching watched
//! keys or not. Every reply must be the same, line for line.
//!
//! HASHKV_TX_COMMANDS sets the number of commands (default 6000),
//! HASHKV_TX_SEED the seed. Without redis-server the test is skipped (it
//! fails under CI).

mod common;

use common::{redis_or_skip, RespClient};
use hashkv::{Db, Error, Options, Reply, Session};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn reply_of(r: Result<Reply, Error>) -> Result<Reply, String> {
    r.map_err(|e| match e {
        Error::Command(c) => c.message().to_owned(),
        other => format!("hashkv error: {other}"),
    })
}

fn pick<'a>(rng: &mut SmallRng, xs: &[&'a str]) -> &'a str {
    xs[rng.gen_range(0..xs.len())]
}

/// One command of the script, as words.
fn command(rng: &mut SmallRng) -> Vec<String> {
    let keys = ["k0", "k1", "k2", "k3"];
    let fields = ["f0", "f1", "f2"];
    let values = ["1", "7", "-3", "x", "1.5", ""];
    let k = pick(rng, &keys).to_owned();
    let f = pick(rng, &fields).to_owned();
    let v = pick(rng, &values).to_owned();
    let w = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    match rng.gen_range(0..40) {
        0..=5 => w(&["MULTI"]),
        6..=9 => w(&["EXEC"]),
        10 => w(&["DISCARD"]),
        11..=13 => {
            let mut c = w(&["WATCH", &k]);
            if rng.gen_bool(0.3) {
                c.push(pick(rng, &keys).to_owned());
            }
            c
        }
        14 => w(&["UNWATCH"]),
        15 => w(&["HSET", &k]),
        16 => w(&["NOSUCHCMD", &k]),
        17 => w(&["HGET", &k]),
        18 => w(&["MULTI", "extra"]),
        19..=22 => w(&["HSET", &k, &f, &v]),
        23 => w(&["HGET", &k, &f]),
        24..=25 => w(&["HINCRBY", &k, &f, "2"]),
        26 => w(&["HINCRBYFLOAT", &k, &f, "0.5"]),
        27 => w(&["HDEL", &k, &f]),
        28 => w(&["HLEN", &k]),
        29 => w(&["HGETALL", &k]),
        30 => w(&["DEL", &k]),
        31 => w(&["EXISTS", &k, pick(rng, &keys)]),
        32 => w(&["EXPIRE", &k, "100"]),
        33 => w(&["PERSIST", &k]),
        34 => w(&["RENAME", &k, pick(rng, &keys)]),
        35 => w(&["HSETNX", &k, &f, &v]),
        36 => w(&["HSET", &k, &f, &v, "odd"]),
        37 => w(&["DBSIZE"]),
        38 if rng.gen_range(0..8) == 0 => w(&["FLUSHDB"]),
        _ => w(&["PING"]),
    }
}

/// What the other client does: writes that may touch watched keys, or
/// nothing that changes anything.
fn other_command(rng: &mut SmallRng) -> Vec<String> {
    let k = pick(rng, &["k0", "k1", "k2", "k3", "unrelated"]).to_owned();
    let w = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    match rng.gen_range(0..6) {
        0 => w(&["HSET", &k, "f0", "9"]),
        1 => w(&["DEL", &k]),
        2 => w(&["HDEL", &k, "nosuchfield"]),
        3 => w(&["HGET", &k, "f0"]),
        4 => w(&["HINCRBY", &k, "f1", "1"]),
        _ => w(&["EXPIRE", &k, "1000"]),
    }
}

fn run(
    redis: &mut RespClient,
    session: &mut Session,
    words: &[String],
) -> (Result<Reply, String>, Result<Reply, String>) {
    let argv: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    let want = redis.call(&argv).expect("redis answers");
    let got = reply_of(session.execute(&argv));
    (want, got)
}

#[test]
fn transactions_match_redis_line_for_line() {
    let Some(server) = redis_or_skip("transactions_match_redis_line_for_line", &[]) else {
        return;
    };
    let n: usize = std::env::var("HASHKV_TX_COMMANDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6000);
    let seed: u64 = std::env::var("HASHKV_TX_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut ra = RespClient::connect(server.port).unwrap();
    let mut rb = RespClient::connect(server.port).unwrap();
    let db = Db::in_memory(Options::default().active_expiry(false));
    let mut sa = db.session();
    let mut sb = db.session();
    let mut history: Vec<String> = Vec::new();
    let mut execs = 0;
    let mut watch_aborts = 0;
    for i in 0..n {
        let (words, client_b) = if rng.gen_range(0..5) == 0 {
            (other_command(&mut rng), true)
        } else {
            (command(&mut rng), false)
        };
        let shown = format!(
            "{}{}",
            if client_b { "B: " } else { "A: " },
            words.join(" ")
        );
        history.push(shown);
        if history.len() > 40 {
            history.remove(0);
        }
        let (want, got) = if client_b {
            run(&mut rb, &mut sb, &words)
        } else {
            run(&mut ra, &mut sa, &words)
        };
        if words[0] == "EXEC" && matches!(want, Ok(Reply::Array(_))) {
            execs += 1;
        }
        if words[0] == "EXEC" && matches!(want, Ok(Reply::Nil)) {
            watch_aborts += 1;
        }
        assert_eq!(
            got,
            want,
            "seed {seed}, command {i}; last commands:\n{}",
            history.join("\n")
        );
    }
    eprintln!(
        "{n} commands compared, {execs} transactions executed, {watch_aborts} aborted by WATCH (seed {seed})"
    );
    assert!(execs > n / 100, "too few transactions ran: {execs}");
    assert!(watch_aborts > 0, "WATCH never aborted an EXEC");
}

/// Scripts of two clients, replies compared with Redis's line for line:
/// the cases a generated script rarely reaches.
#[test]
fn watch_edge_cases_match_redis() {
    let Some(server) = redis_or_skip("watch_edge_cases_match_redis", &["--databases", "1"]) else {
        return;
    };
    let scripts: &[&[&str]] = &[
        // COPY signals its destination only.
        &[
            "A HSET src f 1",
            "A WATCH src",
            "B COPY src dst",
            "A MULTI",
            "A PING",
            "A EXEC",
        ],
        &[
            "A HSET src f 1",
            "A WATCH dst",
            "B COPY src dst REPLACE",
            "A MULTI",
            "A PING",
            "A EXEC",
        ],
        // FLUSHDB while watching a key already expired when watched.
        &[
            "A HSET x f foo",
            "A PEXPIRE x 1",
            "SLEEP",
            "A WATCH x",
            "B FLUSHDB",
            "A MULTI",
            "A PING",
            "A EXEC",
        ],
        // ... and one that was live.
        &[
            "A HSET x f foo",
            "A WATCH x",
            "B FLUSHDB",
            "A MULTI",
            "A PING",
            "A EXEC",
        ],
        // EXEC with arguments leaves MULTI and drops the WATCHes.
        &[
            "A WATCH y",
            "A MULTI",
            "A PING",
            "A EXEC x",
            "A EXEC",
            "B HSET y f 1",
            "A MULTI",
            "A PING",
            "A EXEC",
        ],
        &[
            "A WATCH y",
            "A EXEC x",
            "B HSET y f 1",
            "A MULTI",
            "A PING",
            "A EXEC",
        ],
        // One keyspace: SELECT, SWAPDB and FLUSHALL queue in MULTI; RESET
        // runs at once, leaving MULTI and dropping the WATCHes.
        &[
            "A MULTI",
            "A SELECT 0",
            "A SWAPDB 0 0",
            "A HSET z f 1",
            "A FLUSHALL",
            "A SELECT 1",
            "A EXEC",
            "A EXISTS z",
        ],
        &[
            "A HSET z f 1",
            "A WATCH z",
            "B FLUSHALL",
            "A MULTI",
            "A PING",
            "A EXEC",
        ],
        &[
            "A HSET z f 1",
            "A WATCH z",
            "B SWAPDB 0 0",
            "A MULTI",
            "A PING",
            "A EXEC",
        ],
        &[
            "A WATCH z",
            "A MULTI",
            "A PING",
            "A RESET",
            "B HSET z f 2",
            "A MULTI",
            "A PING",
            "A EXEC",
            "A EXEC",
        ],
        &[
            "A MULTI",
            "A SELECT",
            "A EXEC",
            "A MULTI",
            "A RESET x",
            "A EXEC",
        ],
    ];
    for script in scripts {
        let mut ra = RespClient::connect(server.port).unwrap();
        let mut rb = RespClient::connect(server.port).unwrap();
        ra.call(&[b"FLUSHDB".as_slice()]).unwrap().unwrap();
        let db = Db::in_memory(Options::default().active_expiry(false));
        let mut sa = db.session();
        let mut sb = db.session();
        for line in *script {
            if *line == "SLEEP" {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            let (client, rest) = line.split_at(2);
            let words: Vec<String> = rest.split(' ').map(str::to_owned).collect();
            let (want, got) = if client == "A " {
                run(&mut ra, &mut sa, &words)
            } else {
                run(&mut rb, &mut sb, &words)
            };
            assert_eq!(got, want, "{script:?}: {line}");
        }
    }
}
