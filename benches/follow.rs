//! Readers beside a live writer, and the change feed:
//!
//! - `catchup`: a writer appends N records while a reader opened before
//!   them with `follow(None)` waits; one `catch_up()` applies them all
//!   (records/s). Three workloads over keys `user:%012d`: `build` (N
//!   single-field HSETs making N/8 W1 profiles, field by field), `update`
//!   (N/8 profiles loaded before the reader opens, then N single-field
//!   HSETs of random fields of random profiles) and `hincrby` (the same
//!   profiles, then N `HINCRBY key visits 1` on random keys). For
//!   comparison: `open_read_only` on the whole log, and the writer's own
//!   replay (`Db::open`).
//! - `lag`: a writer in a child process writes at a fixed rate (paced),
//!   each write `HSET user:%012d seq SEQ ts SENT_US`, and records when each
//!   call returned; the reader (this process, default background follow)
//!   timestamps each write as its change arrives through `subscribe()`, or
//!   as a thread polling `hget` of the next sequence number finds it.
//!   Lag is the reader's time minus the writer's acknowledgement, both
//!   `SystemTime` in µs on one machine.
//! - `feed`: changes/s a subscriber receives from a writer writing as fast
//!   as one thread can, the writer's rate with and without it; the same on
//!   a reader following that writer; and one catch-up of N records with
//!   and without a subscriber draining the reader's feed.
//! - `memory`: resident memory of a writer process holding P W1 profiles
//!   and of three reader processes holding the same data: one that
//!   followed the load, one opened on the log, one opened on a snapshot.
//! - `idle`: CPU time per second of a following reader process (and of
//!   the idle writer process) while nothing is written.
//!
//! Run: `cargo bench --bench follow [-- PART...]` with PART among
//! `catchup lag feed memory idle` (all by default; under three minutes on
//! 2 cores) and sizes: `--records N` (catch-up, default 2,000,000),
//! `--runs R` (per measurement; default 2, lag 1), `--secs S` and `--rates
//! A,B` (lag: 5 s a run at 20000,100000 writes/s), `--feed-secs S` and
//! `--feed-records N` (3 s, 1,000,000), `--profiles P` (memory,
//! 1,000,000), `--idle-secs S` and `--idle-profiles P` (10 s, 100,000).
//! Under `cargo test --all-targets` it runs every part at a small size.
//!
//! Profiling the apply path: `HASHKV_FOLLOW_ROLE=make-log B DIR WORKLOAD N`
//! writes a workload's log, `HASHKV_FOLLOW_ROLE=open-ro B DIR` replays it
//! through the reader's catch-up (under `perf record`), and
//! `HASHKV_FOLLOW_ROLE=catch-up B WORKLOAD N` runs one catch-up (under
//! `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='*Db::catch_up*'`); B is the binary `cargo bench
//! --no-run --bench follow` prints, WORKLOAD one of `small build update
//! hincrby`.
#![allow(missing_docs)]

#[path = "common/datasets.rs"]
mod datasets;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use datasets::profile;
use hashkv::feed::{ChangeKind, RecvError};
use hashkv::{Db, FsyncPolicy, Options};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const ROLE: &str = "HASHKV_FOLLOW_ROLE";

const FIELDS: [&str; 8] = [
    "username",
    "email",
    "first_name",
    "last_name",
    "joined",
    "avatar",
    "verified",
    "bio",
];

fn key(i: u64) -> String {
    format!("user:{i:012}")
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

/// The writer's options where the bench is not about the writer's
/// durability: no snapshot or expiry cycle in the middle of a run.
fn quiet_writer() -> Options {
    Options::default()
        .no_auto_snapshots()
        .active_expiry(false)
        .fsync(FsyncPolicy::No)
}

fn manual_reader() -> Options {
    Options::default().follow(None)
}

/// Values of the W1 fields, for single-field writes: `vals[j][f]`.
fn value_table() -> Vec<Vec<String>> {
    (0..4096u64)
        .map(|j| profile(j * 7919).into_iter().map(|(_, v)| v).collect())
        .collect()
}

fn load_profiles(db: &Db, n: u64) {
    for i in 0..n {
        db.hset(key(i), &profile(i)).unwrap();
    }
}

// ---------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------

struct Args {
    full: bool,
    parts: Vec<String>,
    words: Vec<String>,
}

impl Args {
    fn get() -> Args {
        let all: Vec<String> = std::env::args().skip(1).collect();
        let full = all.iter().any(|a| a == "--bench");
        let mut parts = Vec::new();
        let mut i = 0;
        while i < all.len() {
            if all[i].starts_with("--") {
                // `--name value` pairs; a lone flag (cargo's --bench) has none.
                if all[i] != "--bench" {
                    i += 1;
                }
            } else {
                parts.push(all[i].clone());
            }
            i += 1;
        }
        Args {
            full,
            parts,
            words: all,
        }
    }

    fn value(&self, name: &str) -> Option<&str> {
        let i = self.words.iter().position(|a| a == name)?;
        self.words.get(i + 1).map(String::as_str)
    }

    fn num(&self, name: &str, full: f64, smoke: f64) -> f64 {
        self.value(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(if self.full { full } else { smoke })
    }

    fn wants(&self, part: &str) -> bool {
        self.parts.is_empty() || self.parts.iter().any(|p| p == part)
    }
}

// ---------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------

/// This bench binary run again as a writer or a reader, talked to by lines.
struct Child {
    child: std::process::Child,
    out: BufReader<ChildStdout>,
    inp: ChildStdin,
}

impl Child {
    fn spawn(role: &str, args: &[String]) -> Child {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .env(ROLE, role)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let inp = child.stdin.take().expect("stdin");
        Child { child, out, inp }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, line: &str) {
        writeln!(self.inp, "{line}").expect("child stdin");
        self.inp.flush().expect("child stdin");
    }

    /// The rest of the next line starting with `word`.
    fn expect(&mut self, word: &str) -> String {
        loop {
            let mut line = String::new();
            if self.out.read_line(&mut line).expect("child stdout") == 0 {
                panic!("child exited before saying {word}");
            }
            if let Some(rest) = line.trim_end().strip_prefix(word) {
                return rest.trim().to_owned();
            }
        }
    }

    fn quit(mut self) {
        self.send("QUIT");
        let _ = self.child.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// Lines from the parent until `QUIT` (or its end), each handed to `f`.
fn serve(mut f: impl FnMut(&str)) {
    for line in std::io::stdin().lines() {
        let Ok(line) = line else { return };
        if line == "QUIT" {
            return;
        }
        f(&line);
    }
}

fn child_main(role: &str) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(&args[0]);
    match role {
        "lag-writer" => {
            let rate: u64 = args[1].parse().unwrap();
            let count: u64 = args[2].parse().unwrap();
            let acks = Path::new(&args[3]);
            lag_writer(dir, rate, count, acks);
        }
        "writer" => {
            let profiles: u64 = args[1].parse().unwrap();
            let db = Db::open_with(dir, Options::default().no_auto_snapshots()).unwrap();
            say("OPEN");
            serve(|cmd| match cmd {
                "LOAD" => {
                    let t = Instant::now();
                    load_profiles(&db, profiles);
                    say(&format!("LOADED {:.3}", t.elapsed().as_secs_f64()));
                }
                "SNAPSHOT" => {
                    db.snapshot().unwrap();
                    say("SNAPPED");
                }
                _ => {}
            });
        }
        "reader" => {
            let profiles: u64 = args[1].parse().unwrap();
            let opts = match args[2].as_str() {
                "none" => Options::default().follow(None),
                "default" => Options::default(),
                ms => Options::default().follow(Some(Duration::from_millis(ms.parse().unwrap()))),
            };
            let t = Instant::now();
            let db = Db::open_read_only_with(dir, opts).unwrap();
            say(&format!(
                "OPEN {:.3} {}",
                t.elapsed().as_secs_f64(),
                db.dbsize().unwrap()
            ));
            serve(|cmd| {
                if cmd == "WAIT" {
                    while db.dbsize().unwrap() < profiles as i64 {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    say("CAUGHT");
                }
            });
        }
        // For profiling the apply path: `make-log DIR WORKLOAD N` writes
        // the workload's log (and exits), `open-ro DIR` replays it through
        // the reader's catch-up (perf record / callgrind this one).
        "make-log" => {
            let w = workload_of(&args[1]);
            let n: u64 = args[2].parse().unwrap();
            let db = Db::open_with(dir, quiet_writer()).unwrap();
            if matches!(w, Workload::Update | Workload::HIncrBy) {
                load_profiles(&db, (n / 8).max(1));
            }
            write_records(&db, w, n, &value_table());
        }
        // `catch-up WORKLOAD N`: one catch_up() of the workload (for
        // callgrind --toggle-collect='*Db::catch_up*').
        "catch-up" => {
            let n: u64 = args[1].parse().unwrap();
            let r = catchup_run(workload_of(&args[0]), n, &value_table(), false);
            say(&format!(
                "{n} records: {:.2} M records/s",
                n as f64 / r.catch_up / 1e6
            ));
        }
        "open-ro" => {
            let t = Instant::now();
            let db = Db::open_read_only_with(dir, manual_reader()).unwrap();
            let s = t.elapsed().as_secs_f64();
            let n = db.reader_status().unwrap().records;
            say(&format!(
                "{n} records in {s:.3} s = {:.2} M records/s",
                n as f64 / s / 1e6
            ));
        }
        _ => panic!("unknown role {role}"),
    }
}

// ---------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------

/// A `/proc/PID/status` line's value in bytes (`VmRSS`, `RssAnon`, ...).
fn status_bytes(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU time of every live thread of `pid` in ns (`schedstat`), and their
/// context switches.
fn cpu_of(pid: u32) -> (u64, u64) {
    let (mut ns, mut switches) = (0, 0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    for t in tasks.flatten() {
        let p = t.path();
        if let Ok(s) = std::fs::read_to_string(p.join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(s) = std::fs::read_to_string(p.join("status")) {
            for l in s.lines() {
                if l.starts_with("voluntary_ctxt_switches")
                    || l.starts_with("nonvoluntary_ctxt_switches")
                {
                    switches += l
                        .split_whitespace()
                        .nth(1)
                        .and_then(|x| x.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
    }
    (ns, switches)
}

/// utime + stime of the whole process (exited threads included), in ms.
fn cpu_ticks_ms(pid: u32) -> u64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the line (clock ticks of 10 ms).
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) * 10
}

/// CPU time of the calling thread so far, in ns.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Busy CPU ticks of the whole machine and of this process with its
/// waited-for children (`/proc/stat`, `/proc/self/stat`).
fn busy_ticks() -> (u64, u64) {
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let l = s.lines().next()?.to_owned();
            // user nice system idle iowait irq softirq steal
            let f: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            Some(f.iter().take(8).sum::<u64>() - f.get(3)? - f.get(4)?)
        })
        .unwrap_or(0);
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .map(|s| {
            let rest = s.rsplit_once(')').map_or("", |(_, r)| r).to_owned();
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            (11..15).map(|i| f.get(i).copied().unwrap_or(0)).sum()
        })
        .unwrap_or(0);
    (machine, own)
}

/// Runs one part and says how busy the rest of the machine was meanwhile.
fn timed_part(name: &str, f: impl FnOnce()) {
    let (m0, o0) = busy_ticks();
    let t = Instant::now();
    f();
    let (m1, o1) = busy_ticks();
    let el = t.elapsed().as_secs_f64();
    let others = (m1 - m0).saturating_sub(o1 - o0) as f64 / 100.0;
    println!(
        "({name}: {el:.0} s; other processes used {:.2} CPUs on average meanwhile)",
        others / el
    );
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median of three or more runs, else the best (for rates).
fn spread(v: &[f64], scale: f64, unit: &str) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{:.2}", x / scale)).collect();
    let (what, x) = if v.len() >= 3 {
        ("median", median(v.to_vec()))
    } else {
        ("best", v.iter().copied().fold(f64::MIN, f64::max))
    };
    format!(
        "{what} {:.2} {unit} (runs: {})",
        x / scale,
        parts.join(", ")
    )
}

// ---------------------------------------------------------------------
// 1. Catch-up
// ---------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    /// `benches/log_append.rs`'s replay log: `user:{i % 100000}`
    /// `f{i % 7}` = `some value`.
    Small,
    Build,
    Update,
    HIncrBy,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Small => "small (log_append's replay log)",
            Workload::Build => "build",
            Workload::Update => "update",
            Workload::HIncrBy => "hincrby",
        }
    }
}

fn workload_of(name: &str) -> Workload {
    match name {
        "small" => Workload::Small,
        "build" => Workload::Build,
        "update" => Workload::Update,
        _ => Workload::HIncrBy,
    }
}

/// Writes the workload's N records.
fn write_records(db: &Db, w: Workload, n: u64, vals: &[Vec<String>]) {
    let profiles = (n / 8).max(1);
    let mut rng = SmallRng::seed_from_u64(7);
    match w {
        Workload::Small => {
            for i in 0..n {
                db.hset(
                    format!("user:{}", i % 100_000),
                    &[(format!("f{}", i % 7), "some value")],
                )
                .unwrap();
            }
        }
        Workload::Build => {
            let mut i = 0;
            'out: for p in 0..profiles {
                for (f, v) in profile(p) {
                    if i == n {
                        break 'out;
                    }
                    db.hset(key(p), &[(f, v)]).unwrap();
                    i += 1;
                }
            }
            // N not a multiple of 8: the rest as updates of the first key.
            while i < n {
                db.hset(
                    key(0),
                    &[("bio", vals[i as usize % vals.len()][7].as_str())],
                )
                .unwrap();
                i += 1;
            }
        }
        Workload::Update => {
            for _ in 0..n {
                let p = rng.gen_range(0..profiles);
                let f = rng.gen_range(0..8);
                let v = &vals[rng.gen_range(0..vals.len())][f];
                db.hset(key(p), &[(FIELDS[f], v.as_str())]).unwrap();
            }
        }
        Workload::HIncrBy => {
            for _ in 0..n {
                let p = rng.gen_range(0..profiles);
                db.hincrby(key(p), "visits", 1).unwrap();
            }
        }
    }
}

struct CatchUpRun {
    write: f64,
    catch_up: f64,
    /// The catching-up thread's CPU time (s): the rate a busy machine
    /// would give with the core to itself.
    catch_up_cpu: f64,
    open_ro: f64,
    open_ro_records: u64,
    open_rw: f64,
    open_rw_records: u64,
}

fn catchup_run(w: Workload, n: u64, vals: &[Vec<String>], reopen: bool) -> CatchUpRun {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let writer = Db::open_with(&dir, quiet_writer()).unwrap();
    let profiles = (n / 8).max(1);
    if matches!(w, Workload::Update | Workload::HIncrBy) {
        load_profiles(&writer, profiles);
    }
    let reader = Db::open_read_only_with(&dir, manual_reader()).unwrap();
    let t = Instant::now();
    write_records(&writer, w, n, vals);
    let write = t.elapsed().as_secs_f64();
    let (t, cpu) = (Instant::now(), thread_cpu_ns());
    let applied = reader.catch_up().unwrap();
    let catch_up = t.elapsed().as_secs_f64();
    let catch_up_cpu = (thread_cpu_ns() - cpu) as f64 / 1e9;
    assert_eq!(applied, n);
    assert_eq!(reader.log_position(), writer.log_position());
    assert_eq!(reader.dbsize().unwrap(), writer.dbsize().unwrap());
    drop(reader);
    if !reopen {
        return CatchUpRun {
            write,
            catch_up,
            catch_up_cpu,
            open_ro: f64::NAN,
            open_ro_records: 0,
            open_rw: f64::NAN,
            open_rw_records: 0,
        };
    }
    let t = Instant::now();
    let again = Db::open_read_only_with(&dir, manual_reader()).unwrap();
    let open_ro = t.elapsed().as_secs_f64();
    let open_ro_records = again.reader_status().unwrap().records;
    drop(again);
    drop(writer);
    let t = Instant::now();
    let reopened = Db::open_with(&dir, quiet_writer()).unwrap();
    let open_rw = t.elapsed().as_secs_f64();
    let open_rw_records = reopened.recovery_report().records;
    drop(reopened);
    CatchUpRun {
        write,
        catch_up,
        catch_up_cpu,
        open_ro,
        open_ro_records,
        open_rw,
        open_rw_records,
    }
}

fn part_catchup(a: &Args) {
    let n = a.num("--records", 2_000_000.0, 20_000.0) as u64;
    let runs = a.num("--runs", 2.0, 1.0) as usize;
    let vals = value_table();
    println!("## catch-up: {n} records, {runs} run(s) per workload");
    for w in [
        Workload::Small,
        Workload::Build,
        Workload::Update,
        Workload::HIncrBy,
    ] {
        let rs: Vec<CatchUpRun> = (0..runs).map(|_| catchup_run(w, n, &vals, true)).collect();
        let rate = |f: &dyn Fn(&CatchUpRun) -> f64| rs.iter().map(f).collect::<Vec<f64>>();
        println!("{} ({n} records):", w.name());
        println!(
            "  written at {}",
            spread(&rate(&|r| n as f64 / r.write), 1e6, "M records/s")
        );
        println!(
            "  one catch_up(): {}",
            spread(&rate(&|r| n as f64 / r.catch_up), 1e6, "M records/s")
        );
        println!(
            "  the same by the thread's CPU time: {}",
            spread(&rate(&|r| n as f64 / r.catch_up_cpu), 1e6, "M records/s")
        );
        println!(
            "  open_read_only on the log ({} records): {}",
            rs[0].open_ro_records,
            spread(
                &rate(&|r| r.open_ro_records as f64 / r.open_ro),
                1e6,
                "M records/s"
            )
        );
        println!(
            "  Db::open on the log ({} records): {}",
            rs[0].open_rw_records,
            spread(
                &rate(&|r| r.open_rw_records as f64 / r.open_rw),
                1e6,
                "M records/s"
            )
        );
    }
}

// ---------------------------------------------------------------------
// 2. Visibility lag
// ---------------------------------------------------------------------

/// The child: `count` writes paced at `rate`, then the send and ack times
/// of each into `acks` (pairs of little-endian u64 µs).
fn lag_writer(dir: &Path, rate: u64, count: u64, acks: &Path) {
    let db = Db::open(dir).unwrap();
    // Something in the log before the reader opens.
    db.hset("lag:start", &[("at", now_us().to_string())])
        .unwrap();
    say("OPEN");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let mut times = Vec::with_capacity(count as usize);
    let start = Instant::now();
    for seq in 0..count {
        // Paced like an application: the writes due so far, then sleep.
        let due = start + Duration::from_nanos(seq * 1_000_000_000 / rate);
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        }
        let sent = now_us();
        db.hset(
            key(seq % 1_000_000),
            &[("seq", seq.to_string()), ("ts", sent.to_string())],
        )
        .unwrap();
        times.push((sent, now_us()));
    }
    let secs = start.elapsed().as_secs_f64();
    let mut bytes = Vec::with_capacity(times.len() * 16);
    for (s, a) in &times {
        bytes.extend(s.to_le_bytes());
        bytes.extend(a.to_le_bytes());
    }
    std::fs::write(acks, bytes).unwrap();
    say(&format!("DONE {:.0}", count as f64 / secs));
    serve(|_| {});
}

fn seq_of(kind: &ChangeKind) -> Option<u64> {
    if let ChangeKind::HSet { pairs, .. } = kind {
        let (_, v) = pairs.iter().find(|(f, _)| f == b"seq")?;
        return std::str::from_utf8(v).ok()?.parse().ok();
    }
    None
}

struct LagResult {
    written_rate: f64,
    /// Reader time minus ack time, µs, sorted.
    from_ack: Vec<i64>,
    /// Reader time minus send time, µs, sorted.
    from_send: Vec<i64>,
    missing: u64,
    polls: u64,
}

/// One run: the writer child at `rate` for `count` writes; the reader here
/// by subscription (`poll == false`) or by polling.
fn lag_run(rate: u64, count: u64, poll: bool) -> LagResult {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let acks = tmp.path().join("acks");
    let mut w = Child::spawn(
        "lag-writer",
        &[
            dir.display().to_string(),
            rate.to_string(),
            count.to_string(),
            acks.display().to_string(),
        ],
    );
    w.expect("OPEN");
    let reader = Db::open_read_only(&dir).unwrap();
    let seen: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (seen, stop, polls) = (seen.clone(), stop.clone(), polls.clone());
        if poll {
            let r = reader.clone();
            std::thread::spawn(move || {
                let mut next = 0u64;
                while next < count && !stop.load(Ordering::Relaxed) {
                    polls.fetch_add(1, Ordering::Relaxed);
                    let got = r
                        .hget(key(next % 1_000_000), "seq")
                        .unwrap()
                        .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok());
                    if got.is_some_and(|s| s >= next) {
                        seen[next as usize].store(now_us(), Ordering::Relaxed);
                        next += 1;
                    } else {
                        std::thread::sleep(Duration::from_micros(20));
                    }
                }
            })
        } else {
            let mut sub = reader.subscribe();
            std::thread::spawn(move || {
                let mut got = 0u64;
                while got < count && !stop.load(Ordering::Relaxed) {
                    match sub.recv_timeout(Duration::from_millis(50)) {
                        Ok(c) => {
                            let at = now_us();
                            if let Some(s) = seq_of(&c.kind) {
                                seen[s as usize].store(at, Ordering::Relaxed);
                                got += 1;
                            }
                        }
                        Err(RecvError::Timeout) => {}
                        Err(e) => panic!("subscription: {e}"),
                    }
                }
            })
        }
    };
    w.send("GO");
    let written_rate: f64 = w.expect("DONE").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !watcher.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    w.quit();
    let bytes = std::fs::read(&acks).unwrap();
    let (mut from_ack, mut from_send, mut missing) = (Vec::new(), Vec::new(), 0);
    for (i, pair) in bytes.chunks_exact(16).enumerate() {
        let sent = u64::from_le_bytes(pair[..8].try_into().unwrap()) as i64;
        let ack = u64::from_le_bytes(pair[8..].try_into().unwrap()) as i64;
        let at = seen[i].load(Ordering::Relaxed) as i64;
        if at == 0 {
            missing += 1;
            continue;
        }
        from_ack.push(at - ack);
        from_send.push(at - sent);
    }
    if let Ok(path) = std::env::var("HASHKV_FOLLOW_LAG_DUMP") {
        // Every write's send, ack and seen times (µs), for a closer look.
        let mut out = String::new();
        for (i, pair) in bytes.chunks_exact(16).enumerate() {
            let sent = u64::from_le_bytes(pair[..8].try_into().unwrap());
            let ack = u64::from_le_bytes(pair[8..].try_into().unwrap());
            let at = seen[i].load(Ordering::Relaxed);
            out.push_str(&format!("{i} {sent} {ack} {at}\n"));
        }
        let name = format!("{path}-{rate}-{}", if poll { "poll" } else { "sub" });
        std::fs::write(name, out).unwrap();
    }
    from_ack.sort_unstable();
    from_send.sort_unstable();
    LagResult {
        written_rate,
        from_ack,
        from_send,
        missing,
        polls: polls.load(Ordering::Relaxed),
    }
}

fn pct(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1e3
}

fn part_lag(a: &Args) {
    let secs = a.num("--secs", 5.0, 0.3);
    let rates: Vec<u64> = a
        .value("--rates")
        .unwrap_or("20000,100000")
        .split(',')
        .filter_map(|r| r.parse().ok())
        .collect();
    let runs = a.num("--runs", 1.0, 1.0) as usize;
    println!("## visibility lag: writer process paced, reader process with the default follow, {secs} s a run, {runs} run(s)");
    println!("| rate | reader | run | written/s | p50 ms | p99 ms | p99.9 ms | max ms | min ms | p99 from send ms | before the ack | missing |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &rate in &rates {
        let count = (rate as f64 * secs) as u64;
        for poll in [false, true] {
            for run in 0..runs {
                let r = lag_run(rate, count, poll);
                let early = r.from_ack.iter().filter(|&&x| x < 0).count();
                let how = if poll {
                    format!(
                        "poll hget ({:.0} polls/s)",
                        r.polls as f64 / (count as f64 / r.written_rate)
                    )
                } else {
                    "subscribe".to_owned()
                };
                println!(
                    "| {rate} | {how} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {early} | {} |",
                    run + 1,
                    r.written_rate,
                    pct(&r.from_ack, 0.5),
                    pct(&r.from_ack, 0.99),
                    pct(&r.from_ack, 0.999),
                    pct(&r.from_ack, 1.0),
                    pct(&r.from_ack, 0.0),
                    pct(&r.from_send, 0.99),
                    r.missing
                );
            }
        }
    }
}

// ---------------------------------------------------------------------
// 3. The feed
// ---------------------------------------------------------------------

/// Single-field HSETs of random profile fields over `keys` keys, as fast
/// as one thread goes, for `dur`; returns how many.
fn write_flat_out(db: &Db, keys: u64, dur: Duration, vals: &[Vec<String>], seed: u64) -> u64 {
    let mut rng = SmallRng::seed_from_u64(seed);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..256 {
            let p = rng.gen_range(0..keys);
            let f = rng.gen_range(0..8);
            let v = &vals[rng.gen_range(0..vals.len())][f];
            db.hset(key(p), &[(FIELDS[f], v.as_str())]).unwrap();
            n += 1;
        }
    }
    n
}

/// A thread counting what `sub` receives (changes, and changes missed)
/// until `stop`.
fn counter(
    mut sub: hashkv::Subscription,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicU64>, std::thread::JoinHandle<(u64, u64)>) {
    let got = Arc::new(AtomicU64::new(0));
    let g = got.clone();
    let h = std::thread::spawn(move || {
        let mut missed = 0;
        loop {
            match sub.recv_timeout(Duration::from_millis(20)) {
                Ok(_) => {
                    g.fetch_add(1, Ordering::Relaxed);
                }
                Err(RecvError::Lagged(n)) => missed += n,
                Err(RecvError::Timeout) if stop.load(Ordering::Relaxed) => break,
                Err(RecvError::Timeout) => {}
                Err(e) => panic!("subscription: {e}"),
            }
        }
        (g.load(Ordering::Relaxed), missed)
    });
    (got, h)
}

fn part_feed(a: &Args) {
    let secs = a.num("--feed-secs", 3.0, 0.2);
    let runs = a.num("--runs", 2.0, 1.0) as usize;
    let keys = 100_000;
    let dur = Duration::from_secs_f64(secs);
    let vals = value_table();
    println!("## the feed: one writer thread flat out, {secs} s a run, {runs} run(s), single-field HSETs over {keys} profiles (loaded first), fsync EverySec");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let w = Db::open_with(&dir, Options::default().no_auto_snapshots()).unwrap();
    load_profiles(&w, keys);
    let (mut bare, mut with, mut recv, mut lost) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        let n = write_flat_out(&w, keys, dur, &vals, run as u64);
        bare.push(n as f64 / secs);
        let stop = Arc::new(AtomicBool::new(false));
        let (got, h) = counter(w.subscribe(), stop.clone());
        let t = Instant::now();
        let n = write_flat_out(&w, keys, dur, &vals, 100 + run as u64);
        let el = t.elapsed().as_secs_f64();
        let received = got.load(Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        let (total, missed) = h.join().unwrap();
        with.push(n as f64 / el);
        recv.push(received as f64 / el);
        lost.push(missed as f64);
        println!("  writer run {}: {n} writes, {total} changes received ({received} while writing), {missed} missed (Lagged)", run + 1);
    }
    println!(
        "writer without a subscriber: {}",
        spread(&bare, 1e6, "M writes/s")
    );
    println!(
        "writer with a subscriber:    {}",
        spread(&with, 1e6, "M writes/s")
    );
    println!(
        "changes received on the writer: {}; missed {:?}",
        spread(&recv, 1e6, "M changes/s"),
        lost
    );

    // A reader in this process following that writer, with a subscriber.
    let (mut rw, mut rrecv, mut rlost) = (vec![], vec![], vec![]);
    for run in 0..runs {
        let reader = Db::open_read_only(&dir).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (got, h) = counter(reader.subscribe(), stop.clone());
        let t = Instant::now();
        let n = write_flat_out(&w, keys, dur, &vals, 200 + run as u64);
        let el = t.elapsed().as_secs_f64();
        let received = got.load(Ordering::Relaxed);
        // Let it finish (a catch-up under way holds the position).
        let t2 = Instant::now();
        while reader.log_position() != w.log_position() && t2.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let drained = t2.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let (total, missed) = h.join().unwrap();
        rw.push(n as f64 / el);
        rrecv.push(received as f64 / el);
        rlost.push(missed as f64);
        println!("  reader run {}: {n} writes, {total} changes received ({received} while writing), {missed} missed (Lagged); the reader had applied everything {drained:.3} s after the writer stopped", run + 1);
    }
    println!(
        "writer with a following reader (subscribed): {}",
        spread(&rw, 1e6, "M writes/s")
    );
    println!(
        "changes received on the reader: {}; missed {:?}",
        spread(&rrecv, 1e6, "M changes/s"),
        rlost
    );
    drop(w);

    // One catch-up of N records, with and without a subscriber draining.
    let n = a.num("--feed-records", 1_000_000.0, 20_000.0) as u64;
    let (mut plain, mut subbed, mut drain, mut missed_all) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        let w = Db::open_with(&dir, quiet_writer()).unwrap();
        let a_ = Db::open_read_only_with(&dir, manual_reader()).unwrap();
        let b = Db::open_read_only_with(&dir, manual_reader().change_feed_capacity(n as usize + 1))
            .unwrap();
        write_records(&w, Workload::Build, n, &vals);
        let t = Instant::now();
        assert_eq!(a_.catch_up().unwrap(), n);
        plain.push(n as f64 / t.elapsed().as_secs_f64());
        drop(a_);
        let stop = Arc::new(AtomicBool::new(false));
        let (got, h) = counter(b.subscribe(), stop.clone());
        let t = Instant::now();
        assert_eq!(b.catch_up().unwrap(), n);
        subbed.push(n as f64 / t.elapsed().as_secs_f64());
        while got.load(Ordering::Relaxed) < n && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_micros(200));
        }
        drain.push(got.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64());
        stop.store(true, Ordering::Relaxed);
        let (_, missed) = h.join().unwrap();
        missed_all.push(missed);
    }
    println!("one catch_up() of {n} records (build):");
    println!(
        "  no subscriber:     {}",
        spread(&plain, 1e6, "M records/s")
    );
    println!(
        "  one subscriber:    {}",
        spread(&subbed, 1e6, "M records/s")
    );
    println!(
        "  the subscriber received all of them at {}; missed {missed_all:?}",
        spread(&drain, 1e6, "M changes/s")
    );
}

// ---------------------------------------------------------------------
// 4. Memory and 5. idle cost
// ---------------------------------------------------------------------

fn rss_line(name: &str, pid: u32) {
    println!(
        "| {name} | {} | {} | {} | {} |",
        mb(status_bytes(pid, "VmRSS:")),
        mb(status_bytes(pid, "RssAnon:")),
        mb(status_bytes(pid, "RssFile:")),
        mb(status_bytes(pid, "VmHWM:"))
    );
}

fn part_memory(a: &Args) {
    let profiles = a.num("--profiles", 1_000_000.0, 10_000.0) as u64;
    println!("## memory: {profiles} W1 profiles, each process on its own");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db").display().to_string();
    let p = profiles.to_string();
    let mut w = Child::spawn("writer", &[dir.clone(), p.clone()]);
    w.expect("OPEN");
    let mut follower = Child::spawn("reader", &[dir.clone(), p.clone(), "default".into()]);
    follower.expect("OPEN");
    w.send("LOAD");
    println!("writer loaded in {} s", w.expect("LOADED"));
    follower.send("WAIT");
    follower.expect("CAUGHT");
    let mut on_log = Child::spawn("reader", &[dir.clone(), p.clone(), "default".into()]);
    let secs = |s: String| s.split(' ').next().unwrap_or("").to_owned();
    println!(
        "reader opened on the log in {} s",
        secs(on_log.expect("OPEN"))
    );
    w.send("SNAPSHOT");
    w.expect("SNAPPED");
    let mut on_snap = Child::spawn("reader", &[dir.clone(), p.clone(), "default".into()]);
    println!(
        "reader opened on the snapshot in {} s",
        secs(on_snap.expect("OPEN"))
    );
    std::thread::sleep(Duration::from_millis(500));
    println!("| process | VmRSS | RssAnon | RssFile | peak (VmHWM) |");
    println!("|---|---|---|---|---|");
    rss_line("writer (loaded the data)", w.pid());
    rss_line("reader that followed the load", follower.pid());
    rss_line("reader opened on the log", on_log.pid());
    rss_line("reader opened on the snapshot", on_snap.pid());
    // For comparison: a writer opened on the same snapshot.
    w.quit();
    let mut again = Child::spawn("writer", &[dir.clone(), p.clone()]);
    again.expect("OPEN");
    std::thread::sleep(Duration::from_millis(500));
    rss_line("writer reopened on the snapshot", again.pid());
    for c in [again, on_snap, on_log, follower] {
        c.quit();
    }
}

fn part_idle(a: &Args) {
    let secs = a.num("--idle-secs", 10.0, 0.5);
    let profiles = a.num("--idle-profiles", 100_000.0, 1_000.0) as u64;
    println!("## idle: {profiles} W1 profiles loaded, then nothing written for {secs} s");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db").display().to_string();
    let p = profiles.to_string();
    let mut w = Child::spawn("writer", &[dir.clone(), p.clone()]);
    w.expect("OPEN");
    w.send("LOAD");
    w.expect("LOADED");
    let mut readers = Vec::new();
    for (name, follow) in [
        ("reader, default follow (2 ms)", "default"),
        ("reader, follow(None)", "none"),
    ] {
        let mut r = Child::spawn("reader", &[dir.clone(), p.clone(), follow.into()]);
        r.expect("OPEN");
        r.send("WAIT");
        r.expect("CAUGHT");
        readers.push((name, r));
    }
    // Past the readers' first proof checks (20 ms) and the opening work.
    std::thread::sleep(Duration::from_secs(1));
    let mut procs: Vec<(&str, u32)> = vec![("writer, idle", w.pid())];
    procs.extend(readers.iter().map(|(n, r)| (*n, r.pid())));
    let before: Vec<((u64, u64), u64)> = procs
        .iter()
        .map(|(_, pid)| (cpu_of(*pid), cpu_ticks_ms(*pid)))
        .collect();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let el = t.elapsed().as_secs_f64();
    println!("| process | CPU ms per s (schedstat) | CPU ms per s (utime+stime) | context switches per s |");
    println!("|---|---|---|---|");
    for ((name, pid), ((ns0, sw0), ms0)) in procs.iter().zip(before) {
        let (ns1, sw1) = cpu_of(*pid);
        let ms1 = cpu_ticks_ms(*pid);
        println!(
            "| {name} | {:.3} | {:.1} | {:.0} |",
            (ns1 - ns0) as f64 / 1e6 / el,
            (ms1 - ms0) as f64 / el,
            (sw1 - sw0) as f64 / el
        );
    }
    for (_, r) in readers {
        r.quit();
    }
    w.quit();
}

/// A part of the bench: its name and what runs it.
type Part = (&'static str, fn(&Args));

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        child_main(&role);
        return;
    }
    let a = Args::get();
    println!(
        "{} on {} CPUs",
        if a.full {
            "full run"
        } else {
            "smoke run (no --bench)"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let parts: [Part; 5] = [
        ("catchup", part_catchup),
        ("lag", part_lag),
        ("feed", part_feed),
        ("memory", part_memory),
        ("idle", part_idle),
    ];
    for (name, f) in parts {
        if a.wants(name) {
            timed_part(name, || f(&a));
        }
    }
}
