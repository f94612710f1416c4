//! Readers in other processes beside a live writer process, both killed
//! with SIGKILL at random moments.
//!
//! The test binary runs itself again as the children: one writer process
//! and four reader processes over one directory. The writer runs, from
//! several threads at once, random hash and key commands (HSET, HDEL,
//! HINCRBY, DEL, PEXPIRE/PERSIST, RENAME, COPY, HSETEX, HPEXPIRE,
//! HPERSIST, HGETDEL, pipelines), transactions that move money between 20
//! accounts (closure transactions and MULTI/EXEC, each also counting itself
//! in a ledger), transactions that set two "mirror" keys to one value,
//! counters that only go up, a snapshot every ~100 ms and automatic
//! snapshots on a small log size. The readers
//! (`Db::open_read_only_with(dir, Options::default())`, background
//! catch-up every 2 ms) check at random moments, with atomic reads
//! (MULTI/EXEC of reads, or a read-only `Db::transaction`), that the
//! account total never changes and the mirrors agree; that no counter goes
//! backwards, that no counter is below what a writer acknowledged or a
//! reader saw before the reader (or writer) started; that the log
//! position never goes backwards; and that no damage is reported. A
//! violation is printed and ends the child with a nonzero status.
//!
//! The parent kills the writer with SIGKILL many times and starts it
//! again (its recovery cuts torn tails; the readers are not restarted),
//! kills and restarts readers at random (sometimes while no writer runs),
//! and stops readers for a while with SIGSTOP, so that snapshots drop the
//! log they had not read and they must load the directory again. Every few
//! kills, and at the end, it stops the writer cleanly instead; every reader
//! must then reach the writer's final log position and export exactly the
//! writer's data (keys, fields, values, key and field expiry times,
//! DBSIZE).
//!
//! `HASHKV_FOLLOW_KILLS` sets the number of writer kills (default 12),
//! `HASHKV_FOLLOW_SEED` the seed (printed either way).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashkv::interop::Format;
use hashkv::{Db, Error, FsyncPolicy, LogPosition, Options, Reply};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// The name of the test, which the children run again.
const TEST_NAME: &str = "readers_follow_a_writer_through_kills_and_restarts";
/// Selects a child's role: "writer" or "reader".
const ROLE_ENV: &str = "HASHKV_FOLLOW_ROLE";
const DIR_ENV: &str = "HASHKV_FOLLOW_DIR";
const CHILD_SEED_ENV: &str = "HASHKV_FOLLOW_CHILD_SEED";
/// The test process's id.
const PARENT_ENV: &str = "HASHKV_FOLLOW_PARENT";
/// The counters' lowest allowed values when a child starts.
const FLOOR_ENV: &str = "HASHKV_FOLLOW_FLOOR";

const ACCOUNTS: usize = 20;
const START_BALANCE: i64 = 1000;
const TOTAL: i64 = ACCOUNTS as i64 * START_BALANCE;
/// Counter hashes `ctr:0..` (field `n`); the ledger (`ledger`, field `n`,
/// one per transfer) comes after them in every list of counter values.
const COUNTERS: usize = 4;
const VALUES: usize = COUNTERS + 1;
const READERS: usize = 4;
/// Random commands use keys `k:0..KEYS`.
const KEYS: usize = 40;
/// The longest short TTL; a clean stop waits longer than this.
const SHORT_TTL_MS: i64 = 1000;
/// Long TTLs never run out during a run.
const LONG_TTL_MS: i64 = 86_400_000;
/// Prefix of every protocol line a child prints.
const TAG: &str = "@@ ";

fn account(i: usize) -> String {
    format!("acct:{i:02}")
}

fn counter_key(i: usize) -> String {
    if i < COUNTERS {
        format!("ctr:{i}")
    } else {
        "ledger".to_owned()
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{TAG}{line}");
    let _ = out.flush();
}

/// Reports a violation and ends the child.
fn violation(what: &str) -> ! {
    say(&format!("violation {}", what.replace('\n', " | ")));
    std::process::exit(1)
}

fn parse_values(words: &[&str]) -> [u64; VALUES] {
    let mut v = [0u64; VALUES];
    for (i, w) in words.iter().take(VALUES).enumerate() {
        v[i] = w.parse().unwrap_or(0);
    }
    v
}

fn join_values(v: &[u64; VALUES]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")
}

fn int_of(v: Option<Vec<u8>>) -> Option<i64> {
    v.map(|b| {
        String::from_utf8_lossy(&b)
            .parse()
            .unwrap_or_else(|_| violation(&format!("not an integer: {b:?}")))
    })
}

/// A JSON value printed with object keys sorted, and the arrays of
/// `fields` (pairs) and `field_expire_at_ms` sorted: field order depends on
/// the encoding, which may differ between handles.
fn canon(v: &Value, key: Option<&str>) -> String {
    match v {
        Value::Object(m) => {
            let mut items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canon(v, Some(k))))
                .collect();
            items.sort();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(a) => {
            let mut items: Vec<String> = a.iter().map(|x| canon(x, None)).collect();
            if matches!(key, Some("fields" | "field_expire_at_ms")) {
                items.sort();
            }
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Everything two handles at one log position must agree on: DBSIZE, then
/// the JSON export (keys, fields, values, key and field expiry times),
/// one canonical line per key, sorted.
fn canonical_dump(db: &Db) -> Vec<String> {
    let mut buf = Vec::new();
    db.export(Format::Json, &mut buf, &mut |_, _| {})
        .unwrap_or_else(|e| violation(&format!("export failed: {e}")));
    let mut lines: Vec<String> = buf
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value = serde_json::from_slice(l)
                .unwrap_or_else(|e| violation(&format!("export line is not JSON: {e}")));
            canon(&v, None)
        })
        .collect();
    lines.sort();
    let size = db
        .dbsize()
        .unwrap_or_else(|e| violation(&format!("DBSIZE: {e}")));
    lines.insert(0, format!("dbsize {size}"));
    lines
}

/// Lines from stdin, and `None` once the parent is gone.
fn stdin_lines() -> Receiver<Option<String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(Some(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    rx
}

fn floor_from_env() -> [u64; VALUES] {
    let s = std::env::var(FLOOR_ENV).unwrap_or_default();
    parse_values(&s.split_whitespace().collect::<Vec<_>>())
}

// ---------------------------------------------------------------------
// The writer process.
// ---------------------------------------------------------------------

/// What the writer's threads share.
struct WriterState {
    db: Db,
    stop: AtomicBool,
    /// Counter values (and the ledger) as last acknowledged.
    acked: [AtomicU64; VALUES],
    /// Commands and transactions acknowledged.
    ops: AtomicU64,
}

impl WriterState {
    fn ack(&self, i: usize, v: i64) {
        self.acked[i].fetch_max(v.max(0) as u64, Ordering::SeqCst);
    }

    fn acked(&self) -> [u64; VALUES] {
        std::array::from_fn(|i| self.acked[i].load(Ordering::SeqCst))
    }
}

/// A command error (Redis's reply to a bad command) is fine for random
/// commands; anything else is the store failing.
fn tolerate(r: hashkv::Result<Reply>, argv: &[String]) {
    match r {
        Ok(_) | Err(Error::Command(_)) => {}
        Err(e) => violation(&format!("writer: {argv:?} failed: {e}")),
    }
}

fn ttl_ms(rng: &mut SmallRng) -> i64 {
    if rng.gen_bool(0.5) {
        rng.gen_range(20..=SHORT_TTL_MS)
    } else {
        LONG_TTL_MS + rng.gen_range(0..LONG_TTL_MS)
    }
}

fn random_value(rng: &mut SmallRng) -> String {
    match rng.gen_range(0..10) {
        0 => (0..16)
            .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
            .collect(),
        1 => "x".repeat(rng.gen_range(40..90)),
        2 => rng.gen_range(-1000..1000).to_string(),
        _ => format!("v{}", rng.gen_range(0..100_000)),
    }
}

/// Random hash and key commands on `k:*`.
fn random_commands(st: &WriterState, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let key = |rng: &mut SmallRng| format!("k:{}", rng.gen_range(0..KEYS));
    let field = |rng: &mut SmallRng| format!("f{}", rng.gen_range(0..12));
    while !st.stop.load(Ordering::Relaxed) {
        let k = key(&mut rng);
        let argv: Vec<String> = match rng.gen_range(0..16) {
            _ if rng.gen_ratio(1, 400) => {
                // A record larger than a reader's first read (16 KiB) and
                // long to copy: more chances to be killed in the middle.
                let mut a = vec!["HSET".to_owned(), k];
                for i in 0..rng.gen_range(20..200) {
                    a.push(format!("big{i}"));
                    a.push(format!("{i}").repeat(rng.gen_range(100..1000)));
                }
                a
            }
            0..=3 => {
                let mut a = vec!["HSET".to_owned(), k];
                for _ in 0..rng.gen_range(1..=4) {
                    a.push(field(&mut rng));
                    a.push(random_value(&mut rng));
                }
                a
            }
            4 => vec!["HDEL".into(), k, field(&mut rng), field(&mut rng)],
            5 => vec![
                "HINCRBY".into(),
                k,
                "i".into(),
                rng.gen_range(-50..50).to_string(),
            ],
            6 => vec!["DEL".into(), k],
            7 => vec!["PEXPIRE".into(), k, ttl_ms(&mut rng).to_string()],
            8 => vec!["PERSIST".into(), k],
            9 => vec!["RENAME".into(), k, key(&mut rng)],
            10 => {
                let mut a = vec!["COPY".into(), k, key(&mut rng)];
                if rng.gen_bool(0.5) {
                    a.push("REPLACE".into());
                }
                a
            }
            11 => {
                let n = rng.gen_range(1..=3);
                let mut a = vec![
                    "HSETEX".into(),
                    k,
                    "PX".into(),
                    ttl_ms(&mut rng).to_string(),
                    "FIELDS".into(),
                    n.to_string(),
                ];
                for _ in 0..n {
                    a.push(field(&mut rng));
                    a.push(random_value(&mut rng));
                }
                a
            }
            12 => vec![
                "HPEXPIRE".into(),
                k,
                ttl_ms(&mut rng).to_string(),
                "FIELDS".into(),
                "2".into(),
                field(&mut rng),
                field(&mut rng),
            ],
            13 => vec![
                "HPERSIST".into(),
                k,
                "FIELDS".into(),
                "1".into(),
                field(&mut rng),
            ],
            14 => vec![
                "HGETDEL".into(),
                k,
                "FIELDS".into(),
                "1".into(),
                field(&mut rng),
            ],
            _ => vec!["HSETNX".into(), k, field(&mut rng), random_value(&mut rng)],
        };
        tolerate(st.db.execute(&argv), &argv);
        st.ops.fetch_add(1, Ordering::Relaxed);
        if rng.gen_ratio(1, 8) {
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..300)));
        }
    }
}

/// Transfers between accounts (each counted in the ledger), and mirror
/// pairs set in one transaction.
fn transfers(st: &WriterState, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    while !st.stop.load(Ordering::Relaxed) {
        let a = rng.gen_range(0..ACCOUNTS);
        let b = (a + rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
        let (ka, kb) = (account(a), account(b));
        let x: i64 = rng.gen_range(1..200);
        match rng.gen_range(0..8) {
            0..=3 => {
                let ledger = st
                    .db
                    .transaction(&[ka.as_str(), kb.as_str(), "ledger"], |tx| {
                        tx.hincrby(&ka, "balance", -x)?;
                        tx.hincrby(&kb, "balance", x)?;
                        tx.hincrby("ledger", "n", 1)
                    })
                    .unwrap_or_else(|e| violation(&format!("writer: transfer failed: {e}")));
                st.ack(COUNTERS, ledger);
            }
            4..=6 => {
                let mut s = st.db.session();
                let xs = x.to_string();
                let nx = (-x).to_string();
                let words: [&[&str]; 5] = [
                    &["MULTI"],
                    &["HINCRBY", &ka, "balance", &nx],
                    &["HINCRBY", &kb, "balance", &xs],
                    &["HINCRBY", "ledger", "n", "1"],
                    &["EXEC"],
                ];
                let mut last = Reply::Nil;
                for w in words {
                    last = s.execute(w).unwrap_or_else(|e| {
                        violation(&format!("writer: MULTI transfer {w:?} failed: {e}"))
                    });
                }
                match last {
                    Reply::Array(r) if r.len() == 3 => {
                        st.ack(COUNTERS, r[2].as_integer().unwrap_or(0));
                    }
                    other => violation(&format!("writer: EXEC answered {other:?}")),
                }
            }
            _ => {
                let v = random_value(&mut rng);
                st.db
                    .transaction(&["mirror:a", "mirror:b"], |tx| {
                        if v.len() > 60 {
                            tx.del(&["mirror:a", "mirror:b"])?;
                            return Ok(());
                        }
                        tx.hset("mirror:a", &[("v", &v)])?;
                        tx.hset("mirror:b", &[("v", &v)])?;
                        Ok(())
                    })
                    .unwrap_or_else(|e| violation(&format!("writer: mirror failed: {e}")));
            }
        }
        st.ops.fetch_add(1, Ordering::Relaxed);
        if rng.gen_ratio(1, 4) {
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..300)));
        }
    }
}

/// Counters that only go up, one command at a time or in pipelines.
fn counters(st: &WriterState, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    while !st.stop.load(Ordering::Relaxed) {
        if rng.gen_bool(0.3) {
            let mut p = st.db.pipeline();
            let picks: Vec<(usize, String)> = (0..rng.gen_range(2..6))
                .map(|_| {
                    (
                        rng.gen_range(0..COUNTERS),
                        rng.gen_range(1..5i64).to_string(),
                    )
                })
                .collect();
            for (i, d) in &picks {
                p.cmd(&["HINCRBY", &counter_key(*i), "n", d]);
            }
            for ((i, _), r) in picks.iter().zip(p.run()) {
                match r {
                    Ok(Reply::Integer(v)) => st.ack(*i, v),
                    other => violation(&format!("writer: pipelined HINCRBY: {other:?}")),
                }
            }
        } else {
            let i = rng.gen_range(0..COUNTERS);
            let v = st
                .db
                .hincrby(counter_key(i), "n", rng.gen_range(1..5))
                .unwrap_or_else(|e| violation(&format!("writer: HINCRBY failed: {e}")));
            st.ack(i, v);
        }
        st.ops.fetch_add(1, Ordering::Relaxed);
        if rng.gen_ratio(1, 4) {
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..300)));
        }
    }
}

/// Large records (about 50-300 KiB) one after another, on a few keys of
/// their own: a writer killed at a random moment is then often in the
/// middle of copying one, and leaves a torn tail.
fn large_records(st: &WriterState, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    while !st.stop.load(Ordering::Relaxed) {
        let k = format!("bulk:{}", rng.gen_range(0..3));
        let fill = char::from(b'a' + rng.gen_range(0..26u8)).to_string();
        let mut argv = vec!["HSET".to_owned(), k];
        for i in 0..rng.gen_range(100..300) {
            argv.push(format!("f{i}"));
            argv.push(fill.repeat(rng.gen_range(500..1000)));
        }
        tolerate(st.db.execute(&argv), &argv);
        st.ops.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..500)));
    }
}

fn snapshots(st: &WriterState, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    while !st.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(rng.gen_range(50..150)));
        if let Err(e) = st.db.snapshot() {
            violation(&format!("writer: snapshot failed: {e}"));
        }
    }
}

/// The accounts' balances read in one transaction: all present and summing
/// to the total, or all absent.
fn account_total(db: &Db) -> Option<i64> {
    let keys: Vec<String> = (0..ACCOUNTS).map(account).collect();
    let vals = db
        .transaction(&keys, |tx| {
            keys.iter()
                .map(|k| tx.hget(k, "balance"))
                .collect::<hashkv::Result<Vec<_>>>()
        })
        .unwrap_or_else(|e| violation(&format!("reading accounts: {e}")));
    let present = vals.iter().filter(|v| v.is_some()).count();
    if present == 0 {
        return None;
    }
    if present != ACCOUNTS {
        violation(&format!("only {present} of {ACCOUNTS} accounts exist"));
    }
    Some(vals.into_iter().map(|v| int_of(v).unwrap_or(0)).sum())
}

fn counter_values(db: &Db) -> [u64; VALUES] {
    std::array::from_fn(|i| {
        let v = db
            .hget(counter_key(i), "n")
            .unwrap_or_else(|e| violation(&format!("HGET {}: {e}", counter_key(i))));
        int_of(v).unwrap_or(0).max(0) as u64
    })
}

fn run_writer(dir: &Path, seed: u64) -> i32 {
    let mut rng = SmallRng::seed_from_u64(seed);
    let floor = floor_from_env();
    let always = rng.gen_bool(0.3);
    let opts = Options::default()
        .fsync(if always {
            FsyncPolicy::Always
        } else {
            FsyncPolicy::EverySec
        })
        .compact_log_at(Some(rng.gen_range(32u64 << 10..256 << 10)))
        .hash_max_listpack_entries(8)
        .hash_max_listpack_value(48);
    let db = Db::open_with(dir, opts)
        .unwrap_or_else(|e| violation(&format!("writer: open failed: {e}")));
    match account_total(&db) {
        Some(TOTAL) => {}
        Some(t) => violation(&format!("writer: accounts total {t} after open")),
        None => {
            let keys: Vec<String> = (0..ACCOUNTS).map(account).collect();
            db.transaction(&keys, |tx| {
                for k in &keys {
                    tx.hset(k, &[("balance", START_BALANCE.to_string())])?;
                }
                Ok(())
            })
            .unwrap_or_else(|e| violation(&format!("writer: creating accounts: {e}")));
        }
    }
    let opened = counter_values(&db);
    for i in 0..VALUES {
        if opened[i] < floor[i] {
            violation(&format!(
                "writer: {} is {} after open, below {} acknowledged or seen before",
                counter_key(i),
                opened[i],
                floor[i]
            ));
        }
    }
    let st = Arc::new(WriterState {
        db: db.clone(),
        stop: AtomicBool::new(false),
        acked: std::array::from_fn(|i| AtomicU64::new(opened[i])),
        ops: AtomicU64::new(0),
    });
    let mut workers: Vec<fn(&WriterState, u64)> = vec![
        random_commands,
        random_commands,
        transfers,
        counters,
        snapshots,
    ];
    if rng.gen_bool(0.3) {
        workers.push(large_records);
    }
    let threads: Vec<_> = workers
        .iter()
        .map(|&f| {
            let st = st.clone();
            let s = rng.gen();
            std::thread::spawn(move || f(&st, s))
        })
        .collect();
    let report = db.recovery_report();
    say(&format!(
        "ready {} {} {} {}",
        join_values(&opened),
        if always { "always" } else { "everysec" },
        u8::from(report.torn_tail.is_some()),
        report.removed.len() + report.moved_aside.len()
    ));
    let input = stdin_lines();
    loop {
        match input.recv_timeout(Duration::from_millis(20)) {
            Ok(Some(l)) if l.starts_with("stop ") => {
                st.stop.store(true, Ordering::SeqCst);
                for t in threads {
                    t.join().expect("a writer thread panicked");
                }
                let out = PathBuf::from(&l["stop ".len()..]);
                return finish_writer(&st, &out);
            }
            Ok(Some(_)) | Err(RecvTimeoutError::Timeout) => {}
            Ok(None) | Err(RecvTimeoutError::Disconnected) => return 0,
        }
        say(&format!(
            "acked {} {}",
            join_values(&st.acked()),
            st.ops.load(Ordering::Relaxed)
        ));
    }
}

/// A clean stop: lets every short TTL run out and the writer delete what
/// expired, takes a last snapshot, writes the export to `out`, closes the
/// log and reports the final position.
fn finish_writer(st: &WriterState, out: &Path) -> i32 {
    let db = &st.db;
    std::thread::sleep(Duration::from_millis(SHORT_TTL_MS as u64 + 300));
    let _ = canonical_dump(db);
    std::thread::sleep(Duration::from_millis(250));
    db.snapshot()
        .unwrap_or_else(|e| violation(&format!("writer: last snapshot failed: {e}")));
    let dump = canonical_dump(db);
    if canonical_dump(db) != dump {
        violation("writer: two exports in a row differ");
    }
    match account_total(db) {
        Some(TOTAL) => {}
        t => violation(&format!("writer: accounts total {t:?} at the end")),
    }
    db.clone()
        .close()
        .unwrap_or_else(|e| violation(&format!("writer: close failed: {e}")));
    let pos = db.log_position();
    std::fs::write(out, dump.join("\n")).expect("writing the writer's export");
    say(&format!(
        "final {} {} {} {}",
        pos.segment,
        pos.offset,
        join_values(&st.acked()),
        dump.len() - 1
    ));
    0
}

// ---------------------------------------------------------------------
// A reader process.
// ---------------------------------------------------------------------

struct ReaderChecks {
    sums: u64,
    counters: u64,
    mirrors: u64,
    reads: u64,
}

fn run_reader(dir: &Path, seed: u64) -> i32 {
    let mut rng = SmallRng::seed_from_u64(seed);
    let db = Db::open_read_only_with(dir, Options::default())
        .unwrap_or_else(|e| violation(&format!("reader: open failed: {e}")));
    let mut last = floor_from_env();
    let mut last_pos = LogPosition::default();
    let mut c = ReaderChecks {
        sums: 0,
        counters: 0,
        mirrors: 0,
        reads: 0,
    };
    let accounts: Vec<String> = (0..ACCOUNTS).map(account).collect();
    let input = stdin_lines();
    let mut reported = Instant::now();
    loop {
        match input.try_recv() {
            Ok(Some(l)) if l.starts_with("final ") => {
                let w: Vec<&str> = l.split_whitespace().collect();
                let target = LogPosition::new(w[1].parse().unwrap(), w[2].parse().unwrap());
                reader_final(&db, target, Path::new(w[3]), &c);
            }
            Ok(Some(l)) if l == "exit" => {
                report_seen(&db, &last, &c);
                return 0;
            }
            Ok(Some(_)) | Err(mpsc::TryRecvError::Empty) => {}
            Ok(None) | Err(mpsc::TryRecvError::Disconnected) => return 0,
        }
        match rng.gen_range(0..12) {
            0..=2 => {
                // The accounts in one MULTI/EXEC of reads.
                let mut s = db.session();
                s.execute(&["MULTI"]).unwrap();
                for k in &accounts {
                    s.execute(&["HGET", k, "balance"]).unwrap();
                }
                let Reply::Array(vals) = s.execute(&["EXEC"]).unwrap() else {
                    violation("reader: EXEC of reads did not answer an array");
                };
                let vals: Vec<Option<Vec<u8>>> = vals
                    .into_iter()
                    .map(|r| match r {
                        Reply::Bulk(b) => Some(b),
                        _ => None,
                    })
                    .collect();
                if vals.iter().any(Option::is_none) {
                    violation(&format!("reader: an account is missing in {vals:?}"));
                }
                let total: i64 = vals.into_iter().map(|v| int_of(v).unwrap_or(0)).sum();
                if total != TOTAL {
                    violation(&format!(
                        "reader: accounts total {total} in MULTI/EXEC, expected {TOTAL} (at {})",
                        db.log_position()
                    ));
                }
                c.sums += 1;
            }
            3..=4 => {
                let total = account_total(&db);
                if total != Some(TOTAL) {
                    violation(&format!(
                        "reader: accounts total {total:?} in a transaction, expected {TOTAL} (at {})",
                        db.log_position()
                    ));
                }
                c.sums += 1;
            }
            5..=7 => {
                let now = counter_values(&db);
                for i in 0..VALUES {
                    if now[i] < last[i] {
                        violation(&format!(
                            "reader: {} went from {} to {} (at {})",
                            counter_key(i),
                            last[i],
                            now[i],
                            db.log_position()
                        ));
                    }
                }
                last = now;
                c.counters += 1;
            }
            8 => {
                let mut s = db.session();
                s.execute(&["MULTI"]).unwrap();
                s.execute(&["HGET", "mirror:a", "v"]).unwrap();
                s.execute(&["HGET", "mirror:b", "v"]).unwrap();
                match s.execute(&["EXEC"]).unwrap() {
                    Reply::Array(v) if v.len() == 2 && v[0] == v[1] => {}
                    other => violation(&format!("reader: mirrors differ: {other:?}")),
                }
                c.mirrors += 1;
            }
            9..=10 => {
                let k = format!("k:{}", rng.gen_range(0..KEYS));
                let reads: [&[&str]; 5] = [
                    &["HGETALL", &k],
                    &["HPTTL", &k, "FIELDS", "2", "f0", "f1"],
                    &["PTTL", &k],
                    &["HLEN", &k],
                    &["HSCAN", &k, "0", "COUNT", "5"],
                ];
                let argv = reads[rng.gen_range(0..reads.len())];
                if let Err(e) = db.execute(argv) {
                    violation(&format!("reader: {argv:?} failed: {e}"));
                }
                c.reads += 1;
            }
            _ => {
                let st = db.reader_status().expect("a read-only handle");
                if let Some(d) = &st.damage {
                    violation(&format!("reader: damage reported: {d}; {st:?}"));
                }
                if st.position < last_pos {
                    violation(&format!(
                        "reader: position went back from {last_pos} to {}",
                        st.position
                    ));
                }
                last_pos = st.position;
            }
        }
        if reported.elapsed() >= Duration::from_millis(50) {
            report_seen(&db, &last, &c);
            reported = Instant::now();
        }
        if rng.gen_ratio(1, 3) {
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..2000)));
        }
    }
}

fn report_seen(db: &Db, last: &[u64; VALUES], c: &ReaderChecks) {
    let st = db.reader_status().expect("a read-only handle");
    say(&format!(
        "seen {} {} {} {} {} {} {}",
        join_values(last),
        c.sums,
        c.counters,
        c.mirrors,
        c.reads,
        st.records,
        st.reloads
    ));
}

/// After a clean stop: catch up to exactly the writer's last position and
/// export exactly what the writer did.
fn reader_final(db: &Db, target: LogPosition, expected: &Path, c: &ReaderChecks) {
    let started = Instant::now();
    loop {
        if let Err(e) = db.catch_up() {
            violation(&format!(
                "reader: catch-up failed on the way to {target}: {e}; {:?}",
                db.reader_status()
            ));
        }
        let pos = db.log_position();
        if pos == target {
            break;
        }
        if pos > target {
            violation(&format!(
                "reader: at {pos}, past the writer's last position {target}"
            ));
        }
        if started.elapsed() > Duration::from_secs(60) {
            violation(&format!(
                "reader: stopped following at {pos}, the writer ended at {target}; {:?}",
                db.reader_status()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let want: Vec<String> = std::fs::read_to_string(expected)
        .expect("the writer's export")
        .lines()
        .map(str::to_owned)
        .collect();
    let got = canonical_dump(db);
    if got != want {
        let only_writer: Vec<&String> = want.iter().filter(|l| !got.contains(l)).collect();
        let only_reader: Vec<&String> = got.iter().filter(|l| !want.contains(l)).collect();
        violation(&format!(
            "reader: at {target} the export differs from the writer's: writer only {:?}, reader only {:?}; {:?}",
            &only_writer[..only_writer.len().min(5)],
            &only_reader[..only_reader.len().min(5)],
            db.reader_status()
        ));
    }
    let st = db.reader_status().expect("a read-only handle");
    say(&format!(
        "match {} {} {} {}",
        st.records,
        st.reloads,
        c.sums,
        got.len() - 1
    ));
}

// ---------------------------------------------------------------------
// The parent.
// ---------------------------------------------------------------------

/// A child process, killed when dropped.
struct Proc {
    id: u64,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Proc {
    fn send(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Event {
    Line(String),
    Eof,
}

#[derive(Default, Clone, Copy)]
struct ReaderFigures {
    sums: u64,
    counters: u64,
    mirrors: u64,
    reads: u64,
    records: u64,
    reloads: u64,
}

struct Harness {
    dir: PathBuf,
    out: PathBuf,
    seed: u64,
    exe: PathBuf,
    tx: Sender<(u64, Event)>,
    rx: Receiver<(u64, Event)>,
    next_id: u64,
    writer: Option<Proc>,
    readers: Vec<Proc>,
    /// Ids whose end is expected (killed, or told to stop).
    ending: HashSet<u64>,
    ended: HashSet<u64>,
    /// Lowest value each counter may have from now on.
    floor: [u64; VALUES],
    figures: HashMap<u64, ReaderFigures>,
    /// Commands each writer run acknowledged.
    writer_ops: HashMap<u64, u64>,
    writer_runs: u64,
    always_runs: u64,
    /// Writer opens that cut a torn tail, and files they removed or moved
    /// aside (left by a snapshot that was killed).
    torn_tails: u64,
    files_cleaned: u64,
    /// Writers killed before or right after they opened.
    early_kills: u64,
}

impl Harness {
    fn spawn(&mut self, role: &str) -> Proc {
        let id = self.next_id;
        self.next_id += 1;
        let mut child = Command::new(&self.exe)
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads", "1"])
            .env(ROLE_ENV, role)
            .env(DIR_ENV, &self.dir)
            .env(
                CHILD_SEED_ENV,
                (self.seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_string(),
            )
            .env(FLOOR_ENV, join_values(&self.floor))
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting a child");
        let stdout = child.stdout.take().expect("piped");
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness may print "test ... " before the first line.
                if let Some(at) = line.find(TAG) {
                    let rest = &line[at + TAG.len()..];
                    if tx.send((id, Event::Line(rest.to_owned()))).is_err() {
                        return;
                    }
                }
            }
            let _ = tx.send((id, Event::Eof));
        });
        let stdin = child.stdin.take();
        Proc { id, child, stdin }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what} (seed {}: HASHKV_FOLLOW_SEED={})",
            self.seed, self.seed
        )
    }

    fn raise_floor(&mut self, v: &[u64; VALUES]) {
        for (f, &x) in self.floor.iter_mut().zip(v) {
            *f = (*f).max(x);
        }
    }

    /// Handles one event: counter floors, figures, violations, ends.
    fn handle(&mut self, id: u64, ev: &Event) {
        match ev {
            Event::Line(l) => {
                let w: Vec<&str> = l.split_whitespace().collect();
                match w.first().copied() {
                    Some("violation") => self.fail(&format!("child {id}: {l}")),
                    Some("acked" | "ready") => {
                        self.raise_floor(&parse_values(&w[1..]));
                        if w[0] == "acked" {
                            self.writer_ops.insert(id, w[VALUES + 1].parse().unwrap());
                        }
                    }
                    Some("final") => {
                        self.raise_floor(&parse_values(&w[3..]));
                    }
                    Some("seen") => {
                        self.raise_floor(&parse_values(&w[1..]));
                        let n: Vec<u64> =
                            w[VALUES + 1..].iter().map(|s| s.parse().unwrap()).collect();
                        self.figures.insert(
                            id,
                            ReaderFigures {
                                sums: n[0],
                                counters: n[1],
                                mirrors: n[2],
                                reads: n[3],
                                records: n[4],
                                reloads: n[5],
                            },
                        );
                    }
                    _ => {}
                }
            }
            Event::Eof => {
                self.ended.insert(id);
                if !self.ending.contains(&id) {
                    self.fail(&format!("child {id} ended on its own"));
                }
            }
        }
    }

    /// Handles events until `want(id, line)` matches one (returned), or
    /// fails after `limit`.
    fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        mut want: impl FnMut(u64, &str) -> bool,
    ) -> (u64, String) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((id, ev)) => {
                    self.handle(id, &ev);
                    if let Event::Line(l) = ev {
                        if want(id, &l) {
                            return (id, l);
                        }
                    }
                }
                Err(_) => self.fail(&format!("timed out waiting for {what}")),
            }
        }
    }

    /// Handles events for `d`.
    fn run_for(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok((id, ev)) => self.handle(id, &ev),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => unreachable!("the harness holds a sender"),
            }
        }
    }

    /// Ends `p` with SIGKILL, and handles everything it printed before.
    fn kill(&mut self, mut p: Proc) {
        self.ending.insert(p.id);
        p.child.kill().expect("SIGKILL");
        let _ = p.child.wait();
        let id = p.id;
        drop(p);
        self.wait_ended(id);
    }

    fn wait_ended(&mut self, id: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.ended.contains(&id) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((i, ev)) => self.handle(i, &ev),
                Err(_) => self.fail(&format!("child {id}'s output never ended")),
            }
        }
    }

    fn start_writer(&mut self) {
        let p = self.spawn("writer");
        let id = p.id;
        self.writer = Some(p);
        let (_, l) = self.wait_for(Duration::from_secs(60), "the writer to open", |i, l| {
            i == id && l.starts_with("ready ")
        });
        self.writer_runs += 1;
        let w: Vec<&str> = l.split_whitespace().collect();
        self.always_runs += u64::from(w[VALUES + 1] == "always");
        self.torn_tails += w[VALUES + 2].parse::<u64>().unwrap();
        self.files_cleaned += w[VALUES + 3].parse::<u64>().unwrap();
    }

    /// Starts a writer and kills it before or soon after it opened (during
    /// its recovery, or its first writes).
    fn start_and_kill_writer(&mut self, after: Duration) {
        let p = self.spawn("writer");
        self.run_for(after);
        self.kill(p);
        self.early_kills += 1;
    }

    fn start_reader(&mut self) -> Proc {
        self.spawn("reader")
    }

    /// Stops the writer cleanly; every reader must reach its last position
    /// and export the same data. Returns the keys compared.
    fn clean_stop(&mut self, round: usize) -> u64 {
        let mut w = self.writer.take().expect("a writer runs");
        let out = self.out.join(format!("writer-{round}.txt"));
        w.send(&format!("stop {}", out.display()));
        let wid = w.id;
        self.ending.insert(wid);
        let (_, l) = self.wait_for(
            Duration::from_secs(60),
            "the writer's clean stop",
            |i, l| i == wid && l.starts_with("final "),
        );
        let status = w.child.wait().expect("waiting for the writer");
        assert!(status.success(), "the writer ended with {status}");
        drop(w);
        self.wait_ended(wid);
        let f: Vec<&str> = l.split_whitespace().collect();
        let (seg, off) = (f[1], f[2]);
        let keys: u64 = f[VALUES + 3].parse().unwrap();
        let line = format!("final {seg} {off} {}", out.display());
        let ids: Vec<u64> = self.readers.iter().map(|r| r.id).collect();
        for r in &mut self.readers {
            r.send(&line);
        }
        let mut pending: HashSet<u64> = ids.into_iter().collect();
        while !pending.is_empty() {
            let (id, _) =
                self.wait_for(Duration::from_secs(120), "the readers to match", |i, l| {
                    pending.contains(&i) && l.starts_with("match ")
                });
            pending.remove(&id);
        }
        keys
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Children are killed by their own Drop; the writer first.
        self.writer.take();
        self.readers.clear();
    }
}

/// What a writer killed in the middle of an append leaves (its appends are
/// copies into a shared mapping of zeroed space, which survive the process):
/// the first bytes of a frame after the last whole one. Writes a strict
/// prefix of a copy of the last frame there, in the open segment (the
/// highest-numbered one, when MANIFEST lists it). Only while no writer runs.
/// Returns whether it did.
fn tear_tail(dir: &Path, rng: &mut SmallRng) -> bool {
    use std::os::unix::fs::FileExt;
    let mut segs: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("log-") && n.ends_with(".aof"))
        .collect();
    segs.sort();
    let Some(name) = segs.pop() else { return false };
    let manifest = std::fs::read_to_string(dir.join("MANIFEST")).unwrap_or_default();
    if !manifest.contains(&name) {
        return false; // a segment a killed snapshot created but never listed
    }
    let path = dir.join(&name);
    let bytes = std::fs::read(&path).unwrap();
    // Frames: a 4-byte length (little-endian), a checksum, the payload;
    // zeros after the last one.
    let (mut at, mut last) = (8usize, None);
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        if at + 8 + len > bytes.len() {
            return false; // already torn
        }
        last = Some(at..at + 8 + len);
        at += 8 + len;
    }
    let Some(frame) = last else { return false };
    if bytes[at..].iter().any(|&b| b != 0) {
        return false;
    }
    let cut = rng.gen_range(1..frame.len());
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&bytes[frame.start..frame.start + cut], at as u64)
        .unwrap();
    true
}

impl Harness {
    /// Sends SIGSTOP or SIGCONT to `pid` (a reader's); a reader that is
    /// gone says why first.
    fn signal(&mut self, name: &str, pid: u32) {
        let status = Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .expect("running kill");
        if !status.success() {
            self.run_for(Duration::from_secs(1));
            self.fail(&format!("kill -{name} {pid}: {status}"));
        }
    }
}

/// A child dies with the test process, even while stopped (SIGSTOP).
#[allow(unsafe_code)]
fn die_with_parent(parent: u32) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) reads no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    assert_eq!(rc, 0, "prctl(PR_SET_PDEATHSIG)");
    if std::os::unix::process::parent_id() != parent {
        std::process::exit(0); // the parent died before the line above
    }
}

fn child_role() -> Option<i32> {
    let role = std::env::var(ROLE_ENV).ok()?;
    let parent: u32 = std::env::var(PARENT_ENV)
        .expect("the parent")
        .parse()
        .expect("a pid");
    die_with_parent(parent);
    let dir = PathBuf::from(std::env::var(DIR_ENV).expect("the directory"));
    let seed: u64 = std::env::var(CHILD_SEED_ENV)
        .expect("the seed")
        .parse()
        .expect("a number");
    Some(match role.as_str() {
        "writer" => run_writer(&dir, seed),
        "reader" => run_reader(&dir, seed),
        other => panic!("unknown role {other}"),
    })
}

#[test]
fn readers_follow_a_writer_through_kills_and_restarts() {
    if let Some(code) = child_role() {
        std::process::exit(code);
    }
    let kills: usize = std::env::var("HASHKV_FOLLOW_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("HASHKV_FOLLOW_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("follow_processes: {kills} writer kills, seed {seed}");
    let started = Instant::now();
    let mut rng = SmallRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel();
    let mut h = Harness {
        dir: dir.path().to_path_buf(),
        out: out.path().to_path_buf(),
        seed,
        exe: std::env::current_exe().unwrap(),
        tx,
        rx,
        next_id: 0,
        writer: None,
        readers: Vec::new(),
        ending: HashSet::new(),
        ended: HashSet::new(),
        floor: [0; VALUES],
        figures: HashMap::new(),
        writer_ops: HashMap::new(),
        writer_runs: 0,
        always_runs: 0,
        torn_tails: 0,
        files_cleaned: 0,
        early_kills: 0,
    };
    h.start_writer();
    for _ in 0..READERS {
        let r = h.start_reader();
        h.readers.push(r);
    }
    // A clean stop about every fourth kill in short runs, every tenth in
    // long ones, and one at the end.
    let stop_every = if kills <= 40 { 4 } else { 10 };
    let (mut reader_kills, mut clean_stops, mut keys_compared) = (0u64, 0u64, 0u64);
    let (mut pauses, mut torn_injected) = (0u64, 0u64);
    for round in 1..=kills {
        let run = Duration::from_millis(rng.gen_range(30..300));
        if rng.gen_bool(0.4) {
            let at = run.mul_f64(rng.gen_range(0.0..1.0));
            h.run_for(at);
            let i = rng.gen_range(0..READERS);
            let victim = h.readers.remove(i);
            h.kill(victim);
            let r = h.start_reader();
            h.readers.insert(i, r);
            reader_kills += 1;
            h.run_for(run - at);
        } else {
            h.run_for(run);
        }
        // A reader stopped for a while (SIGSTOP): the snapshots meanwhile
        // drop the log it had not read, and it must load the directory
        // again. Half of them resume only after the writer was killed and
        // started again.
        let mut paused = None;
        if rng.gen_bool(0.25) {
            let i = rng.gen_range(0..READERS);
            let pid = h.readers[i].child.id();
            h.signal("STOP", pid);
            h.run_for(Duration::from_millis(rng.gen_range(150..600)));
            if round % stop_every != 0 && rng.gen_bool(0.5) {
                paused = Some((i, pid));
            } else {
                h.signal("CONT", pid);
            }
            pauses += 1;
        }
        if round % stop_every == 0 {
            keys_compared += h.clean_stop(round);
            clean_stops += 1;
        } else {
            let w = h.writer.take().expect("a writer runs");
            h.kill(w);
            if rng.gen_bool(0.5) && tear_tail(&h.dir, &mut rng) {
                torn_injected += 1;
            }
            if rng.gen_bool(0.15) {
                h.start_and_kill_writer(Duration::from_millis(rng.gen_range(0..40)));
            }
            if rng.gen_bool(0.2) {
                // A reader that starts while no writer runs, beside a log
                // that may end in a torn record.
                let i = rng.gen_range(0..READERS);
                if paused.is_some_and(|(p, _)| p == i) {
                    paused = None;
                }
                let victim = h.readers.remove(i);
                h.kill(victim);
                let r = h.start_reader();
                h.readers.insert(i, r);
                reader_kills += 1;
                h.run_for(Duration::from_millis(rng.gen_range(0..50)));
            }
        }
        h.start_writer();
        if let Some((_, pid)) = paused {
            h.run_for(Duration::from_millis(rng.gen_range(0..200)));
            h.signal("CONT", pid);
        }
        if round % 20 == 0 {
            eprintln!(
                "follow_processes: {round}/{kills} kills, {:.0?}, {} writer commands",
                started.elapsed(),
                h.writer_ops.values().sum::<u64>()
            );
        }
    }
    h.run_for(Duration::from_millis(rng.gen_range(100..300)));
    keys_compared += h.clean_stop(kills + 1);
    clean_stops += 1;
    let final_values = h.floor;
    for r in &mut h.readers {
        r.send("exit");
        h.ending.insert(r.id);
    }
    let ids: Vec<u64> = h.readers.iter().map(|r| r.id).collect();
    for id in ids {
        h.wait_ended(id);
    }
    for r in &mut h.readers {
        let status = r.child.wait().expect("waiting for a reader");
        assert!(status.success(), "reader {} ended with {status}", r.id);
    }
    let total = h
        .figures
        .values()
        .fold(ReaderFigures::default(), |a, f| ReaderFigures {
            sums: a.sums + f.sums,
            counters: a.counters + f.counters,
            mirrors: a.mirrors + f.mirrors,
            reads: a.reads + f.reads,
            records: a.records + f.records,
            reloads: a.reloads + f.reloads,
        });
    let transfers = final_values[COUNTERS];
    eprintln!(
        "follow_processes: {kills} writer kills ({} writer runs, {} with fsync always, {} \
         commands and transactions acknowledged, {} more kills during or right after \
         opening, {torn_injected} torn tails written after a kill, {} opens cut a torn \
         tail, {} files left by killed snapshots cleaned), \
         {reader_kills} reader kills, {pauses} reader pauses, {clean_stops} clean stops ({keys_compared} keys compared \
         with every reader), {transfers} transfer transactions, counters {:?}; readers applied \
         {} records ({} reloads) and checked the total {} times, counters {} times, mirrors {} \
         times, {} other reads; 0 violations; {:.1?} (seed {seed})",
        h.writer_runs,
        h.always_runs,
        h.writer_ops.values().sum::<u64>(),
        h.early_kills,
        h.torn_tails,
        h.files_cleaned,
        &final_values[..COUNTERS],
        total.records,
        total.reloads,
        total.sums,
        total.counters,
        total.mirrors,
        total.reads,
        started.elapsed()
    );
    assert!(transfers > 0, "no transfer was made");
    assert!(
        total.sums > kills as u64 && total.counters > kills as u64,
        "too few checks to mean anything"
    );
    assert!(total.records > 0, "the readers applied nothing");
    drop(h);
}
