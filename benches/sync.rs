//! `hashkv sync` figures (docs/PERFORMANCE.md, "Sync into Redis"):
//!
//! - full copy: W1 profiles (keys `user:%012d`, 8 fields) copied into a
//!   standalone redis-server by `Sync::run_once`, against
//!   `hashkv export --format resp | redis-cli --pipe` of the same directory
//!   into the same server (each after FLUSHALL; best of `--runs`);
//! - lag: a writer in this process makes 20,000 changes a second (HSET of
//!   uniform random keys) for `--seconds` while sync follows it into a
//!   3-master Redis Cluster on loopback; the lag of a change is from the
//!   write returning to the target acknowledging its position.
//!
//! `cargo bench --bench sync -- --keys 1000000 --runs 3` (needs
//! redis-server and redis-cli; `--what copy|lag`). Without `--bench` (as
//! `cargo test --benches` runs it) it does a small run of each.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashkv::sync::{Event, Sync};
use hashkv::{Db, LogPosition, Options};
use rand::{Rng, SeedableRng};

#[path = "common/datasets.rs"]
mod datasets;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(port: u16, dir: &std::path::Path, extra: &[&str]) -> Server {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let s = Server(child);
    for _ in 0..200 {
        if cli(port, &["PING"]).is_some_and(|o| o.contains("PONG")) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("redis-server on {port} did not start");
}

fn cli(port: u16, args: &[&str]) -> Option<String> {
    let o = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn load(dir: &std::path::Path, keys: u64) {
    let db = Db::open_with(dir, Options::default().no_auto_snapshots()).unwrap();
    for i in 0..keys {
        db.hset(format!("user:{i:012}"), &datasets::profile(i))
            .unwrap();
    }
    db.snapshot().unwrap();
    db.close().unwrap();
}

fn copy(keys: u64, runs: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    load(&data, keys);
    let port = 27400 + (std::process::id() % 100) as u16;
    let _server = start(port, tmp.path(), &[]);
    let url = format!("redis://127.0.0.1:{port}");
    let hashkv = env!("CARGO_BIN_EXE_hashkv");
    let (mut pipe, mut sync) = (f64::MAX, f64::MAX);
    for _ in 0..runs {
        cli(port, &["FLUSHALL"]);
        let t = Instant::now();
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{hashkv} -q export {} --format resp | redis-cli -p {port} --pipe >/dev/null",
                data.display()
            ))
            .status()
            .unwrap();
        assert!(st.success());
        pipe = pipe.min(t.elapsed().as_secs_f64());
        assert_eq!(cli(port, &["DBSIZE"]).unwrap().trim(), keys.to_string());
        cli(port, &["FLUSHALL"]);
        let t = Instant::now();
        let r = Sync::builder(&data, &url)
            .build()
            .unwrap()
            .run_once()
            .unwrap();
        sync = sync.min(t.elapsed().as_secs_f64());
        assert_eq!(r.copied_keys, keys);
        assert_eq!(cli(port, &["DBSIZE"]).unwrap().trim(), keys.to_string());
    }
    let rate = |s: f64| keys as f64 / s / 1e3;
    println!("full copy of {keys} W1 profiles into Redis 7.0 (best of {runs}):");
    println!("| | seconds | keys/s |");
    println!("|---|---|---|");
    println!(
        "| hashkv export --format resp \\| redis-cli --pipe | {pipe:.2} | {:.0}k |",
        rate(pipe)
    );
    println!(
        "| hashkv sync --once | {sync:.2} | {:.0}k ({:.2}x) |",
        rate(sync),
        pipe / sync
    );
}

fn cluster(tmp: &std::path::Path) -> (Vec<Server>, Vec<u16>) {
    let base = 27500 + (std::process::id() % 100) as u16 * 3;
    let ports: Vec<u16> = (base..base + 3).collect();
    let servers = ports
        .iter()
        .map(|&p| {
            let conf = tmp.join(format!("nodes-{p}.conf"));
            start(
                p,
                tmp,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    conf.to_str().unwrap(),
                ],
            )
        })
        .collect();
    let mut c = Command::new("redis-cli");
    c.args(["--cluster", "create"]);
    for p in &ports {
        c.arg(format!("127.0.0.1:{p}"));
    }
    let o = c
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(o.status.success());
    for _ in 0..400 {
        if ports
            .iter()
            .all(|&p| cli(p, &["CLUSTER", "INFO"]).is_some_and(|s| s.contains("cluster_state:ok")))
        {
            return (servers, ports);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the cluster did not come up");
}

fn lag(seconds: u64, rate: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    load(&data, 10_000);
    let (_servers, ports) = cluster(tmp.path());
    let db = Db::open(&data).unwrap();
    let acks: Arc<Mutex<Vec<(LogPosition, Instant)>>> = Arc::default();
    let copied = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (a, c, s) = (acks.clone(), copied.clone(), stop.clone());
    let url = format!("redis://127.0.0.1:{}", ports[0]);
    let runner = std::thread::spawn(move || {
        let mut sync = Sync::builder(&data, &url)
            .cluster(true)
            .on_event(move |e| match e {
                Event::CopyDone { .. } => c.store(true, Ordering::SeqCst),
                Event::Acknowledged { position, .. } => {
                    a.lock().unwrap().push((*position, Instant::now()))
                }
                _ => {}
            })
            .build()
            .unwrap();
        sync.run(&s).unwrap()
    });
    while !copied.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut writes: Vec<(LogPosition, Instant)> = Vec::new();
    let start = Instant::now();
    let total = seconds * rate;
    for i in 0..total {
        // Paced: write i is due at i / rate seconds.
        let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        let k = format!("user:{:012}", rng.gen_range(0..1_000_000u64));
        db.hset(&k, &[("visits", i.to_string())]).unwrap();
        writes.push((db.log_position(), Instant::now()));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let report = runner.join().unwrap();
    let acks = acks.lock().unwrap();
    let mut lags: Vec<f64> = Vec::with_capacity(writes.len());
    let mut j = 0;
    for (pos, t) in &writes {
        while j < acks.len() && acks[j].0 < *pos {
            j += 1;
        }
        let Some((_, at)) = acks.get(j) else {
            panic!("write at {pos} never acknowledged");
        };
        lags.push(at.saturating_duration_since(*t).as_secs_f64() * 1e3);
    }
    lags.sort_by(f64::total_cmp);
    let q = |p: f64| lags[((lags.len() - 1) as f64 * p) as usize];
    println!(
        "lag into a 3-master cluster at {rate} changes/s for {seconds} s ({} changes, {} acknowledged):",
        lags.len(),
        report.changes
    );
    println!(
        "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        q(0.5),
        q(0.99),
        q(0.999),
        lags[lags.len() - 1]
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let what = arg("--what").unwrap_or_else(|| "all".into());
    let have = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok();
    if !have {
        eprintln!("sync bench: redis-server unavailable");
        return;
    }
    if what == "all" || what == "copy" {
        let keys = arg("--keys").and_then(|s| s.parse().ok());
        let runs = arg("--runs").and_then(|s| s.parse().ok());
        copy(
            keys.unwrap_or(if full { 1_000_000 } else { 2_000 }),
            runs.unwrap_or(if full { 3 } else { 1 }),
        );
    }
    if what == "all" || what == "lag" {
        let secs = arg("--seconds").and_then(|s| s.parse().ok());
        lag(secs.unwrap_or(if full { 10 } else { 1 }), 20_000);
    }
}
