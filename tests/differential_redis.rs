//! Differential test: thousands of generated commands run on hashkv and on a
//! real redis-server (started here on a loopback port), with identical
//! replies required. Order-insensitive only where Redis's own order is
//! unspecified (hashtable iteration, KEYS, SCAN/HSCAN pages), shape-only for
//! HRANDFIELD's random picks, tolerant by a few ms for relative TTL reads.
//!
//! Knobs: HASHKV_DIFF_SEED (default random, printed), HASHKV_DIFF_COMMANDS
//! (per phase, default 20000). Without redis-server the test is skipped
//! with a printed reason, except under CI where it fails.
//!
//! Commands are limited to what Redis 7.0 (Debian's) and hashkv agree on:
//! HSCAN NOVALUES (7.0 lacks it) is left out and covered by unit tests;
//! cursor grammar and other fixed edge cases are in `tests/redis_exact.rs`.

mod common;

use common::{redis_or_skip, RespClient};
use hashkv::{Db, Error, Options, Reply};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

type Cmd = Vec<Vec<u8>>;

fn pick<'a, T>(rng: &mut SmallRng, xs: &'a [T]) -> &'a T {
    &xs[rng.gen_range(0..xs.len())]
}

fn pickw<'a>(rng: &mut SmallRng, xs: &[&'a [&'a str]]) -> &'a [&'a str] {
    xs[rng.gen_range(0..xs.len())]
}

struct Gen {
    rng: SmallRng,
    big: bool,
}

impl Gen {
    fn key(&mut self) -> Vec<u8> {
        let n = if self.big { 4 } else { 7 };
        match self.rng.gen_range(0..20) {
            0 => Vec::new(),
            1 => b"k\x00bin".to_vec(),
            _ => format!("k{}", self.rng.gen_range(0..n)).into_bytes(),
        }
    }

    fn field(&mut self) -> Vec<u8> {
        if self.big {
            return format!("f{}", self.rng.gen_range(0..700)).into_bytes();
        }
        match self.rng.gen_range(0..30) {
            0 => Vec::new(),
            1 => b"1".to_vec(),
            2 => b"-5".to_vec(),
            3 => b"007".to_vec(),
            4 => vec![b'L'; 17],
            5 => vec![b'M'; 16],
            6 => b"f\xff\n\"x".to_vec(),
            _ => format!("f{}", self.rng.gen_range(0..12)).into_bytes(),
        }
    }

    fn value(&mut self) -> Vec<u8> {
        let r = &mut self.rng;
        match r.gen_range(0..24) {
            0 => Vec::new(),
            1 => r.gen_range(-200i64..200).to_string().into_bytes(),
            2 => r.gen::<i64>().to_string().into_bytes(),
            3 => b"007".to_vec(),
            4 => b"1.5".to_vec(),
            5 => b"-0".to_vec(),
            6 => vec![b'v'; 16],
            7 => vec![b'w'; 17],
            8 => vec![b'y'; 70],
            9 => b"\x00\x01\xfe".to_vec(),
            10 => b"9223372036854775807".to_vec(),
            11 => b"-9223372036854775808".to_vec(),
            12 => b"inf".to_vec(),
            13 => b" 11".to_vec(),
            14 => b"4095".to_vec(),
            15 => b"-4096".to_vec(),
            16 => b"32768".to_vec(),
            _ => format!("v{}", r.gen_range(0..50)).into_bytes(),
        }
    }

    fn words(&mut self, ws: &[&str]) -> Cmd {
        ws.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn cmd(&mut self) -> Cmd {
        let k = self.key();
        let kind = self.rng.gen_range(0..100);
        let mut c: Cmd = match kind {
            0..=17 => {
                let name = if self.rng.gen_ratio(1, 6) {
                    "HMSET"
                } else {
                    "HSET"
                };
                let pairs = if self.big {
                    self.rng.gen_range(1..40)
                } else {
                    self.rng.gen_range(1..5)
                };
                let mut c = vec![name.as_bytes().to_vec(), k];
                for _ in 0..pairs {
                    c.push(self.field());
                    c.push(self.value());
                }
                if self.rng.gen_ratio(1, 20) {
                    c.pop();
                }
                c
            }
            18..=20 => vec![b"HSETNX".to_vec(), k, self.field(), self.value()],
            21..=26 => vec![b"HGET".to_vec(), k, self.field()],
            27..=28 => {
                let mut c = vec![b"HMGET".to_vec(), k];
                for _ in 0..self.rng.gen_range(1..4) {
                    c.push(self.field());
                }
                c
            }
            29..=31 => vec![
                pick(&mut self.rng, &["HGETALL", "HKEYS", "HVALS"])
                    .as_bytes()
                    .to_vec(),
                k,
            ],
            32..=36 => {
                let mut c = vec![b"HDEL".to_vec(), k];
                for _ in 0..self.rng.gen_range(1..4) {
                    c.push(self.field());
                }
                c
            }
            37..=38 => vec![b"HEXISTS".to_vec(), k, self.field()],
            39..=40 => vec![b"HLEN".to_vec(), k],
            41 => vec![b"HSTRLEN".to_vec(), k, self.field()],
            42..=45 => {
                let inc = pick(
                    &mut self.rng,
                    &[
                        "1",
                        "-1",
                        "5",
                        "1000",
                        "abc",
                        "007",
                        "9223372036854775807",
                        "-9223372036854775808",
                        "4096",
                        "1.5",
                    ],
                );
                vec![
                    b"HINCRBY".to_vec(),
                    k,
                    self.field(),
                    inc.as_bytes().to_vec(),
                ]
            }
            46..=49 => {
                let inc = pick(
                    &mut self.rng,
                    &[
                        "0.1",
                        "1e3",
                        "-1.5",
                        "abc",
                        "inf",
                        "-inf",
                        "nan",
                        "1e-20",
                        "+1.5",
                        ".5",
                        "5.",
                        "0x10",
                        "3.0e2",
                        "10.5",
                        "1e20",
                        "-0.0",
                        "123456789.123456789",
                        "1e400",
                        " 1",
                        "0.0000005",
                    ],
                );
                vec![
                    b"HINCRBYFLOAT".to_vec(),
                    k,
                    self.field(),
                    inc.as_bytes().to_vec(),
                ]
            }
            50..=52 => {
                let mut c = vec![b"HRANDFIELD".to_vec(), k];
                if self.rng.gen_ratio(3, 4) {
                    let count = pick(
                        &mut self.rng,
                        &[
                            "0",
                            "1",
                            "2",
                            "5",
                            "-3",
                            "-20",
                            "100",
                            "abc",
                            "-9223372036854775808",
                            "4611686018427387904",
                        ],
                    );
                    c.push(count.as_bytes().to_vec());
                    match self.rng.gen_range(0..6) {
                        0 | 1 => c.push(b"WITHVALUES".to_vec()),
                        2 => c.push(b"withvalue".to_vec()),
                        3 => c.extend([b"WITHVALUES".to_vec(), b"x".to_vec()]),
                        _ => {}
                    }
                }
                c
            }
            53..=55 => {
                let cursor = pick(
                    &mut self.rng,
                    &["0", "0", "0", "abc", "18446744073709551616", "+0"],
                );
                let mut c = vec![b"HSCAN".to_vec(), k, cursor.as_bytes().to_vec()];
                for _ in 0..self.rng.gen_range(0..3) {
                    let opt: &[&str] = pickw(
                        &mut self.rng,
                        &[
                            &["MATCH", "f*"],
                            &["match", "f1*"],
                            &["COUNT", "2"],
                            &["COUNT", "0"],
                            &["COUNT", "-1"],
                            &["COUNT", "abc"],
                            &["BADOPT"],
                            &["MATCH"],
                            &["MATCH", "*"],
                        ],
                    );
                    c.extend(opt.iter().map(|w| w.as_bytes().to_vec()));
                }
                c
            }
            56..=58 => {
                let mut c = vec![pick(&mut self.rng, &["DEL", "UNLINK", "EXISTS"])
                    .as_bytes()
                    .to_vec()];
                for _ in 0..self.rng.gen_range(1..4) {
                    c.push(self.key());
                }
                if self.rng.gen_ratio(1, 3) {
                    let again = c[1].clone();
                    c.push(again);
                }
                c
            }
            59 => vec![b"TYPE".to_vec(), k],
            60..=61 => {
                let k2 = if self.rng.gen_ratio(1, 5) {
                    k.clone()
                } else {
                    self.key()
                };
                vec![
                    pick(&mut self.rng, &["RENAME", "RENAMENX"])
                        .as_bytes()
                        .to_vec(),
                    k,
                    k2,
                ]
            }
            62..=63 => {
                let k2 = if self.rng.gen_ratio(1, 6) {
                    k.clone()
                } else {
                    self.key()
                };
                let mut c = vec![b"COPY".to_vec(), k, k2];
                let opts: &[&str] = pickw(
                    &mut self.rng,
                    &[
                        &[],
                        &["REPLACE"],
                        &["DB", "0"],
                        &["DB", "100"],
                        &["DB", "abc"],
                        &["FOO"],
                        &["DB"],
                        &["DB", "0", "REPLACE"],
                        &["DB", "99999999999"],
                    ],
                );
                c.extend(opts.iter().map(|w| w.as_bytes().to_vec()));
                c
            }
            64..=69 => {
                // Relative forms only without GT/LT (their outcome would
                // depend on the millisecond each side samples).
                let abs = self.rng.gen_bool(0.5);
                let name = if abs {
                    pick(&mut self.rng, &["EXPIREAT", "PEXPIREAT"])
                } else {
                    pick(&mut self.rng, &["EXPIRE", "PEXPIRE"])
                };
                let ms = name.starts_with('P');
                let t: String = match self.rng.gen_range(0..8) {
                    0 => "-1".into(),
                    1 => "0".into(),
                    2 => "9223372036854775807".into(),
                    3 => "abc".into(),
                    4 => "-9223372036854775808".into(),
                    _ => {
                        let base: i64 = if abs { 4_102_444_800 } else { 0 };
                        let s = base + self.rng.gen_range(100..100_000);
                        if ms {
                            (s * 1000).to_string()
                        } else {
                            s.to_string()
                        }
                    }
                };
                let mut c = vec![name.as_bytes().to_vec(), k, t.into_bytes()];
                let opts: &[&str] = if abs {
                    pickw(
                        &mut self.rng,
                        &[
                            &[],
                            &["NX"],
                            &["XX"],
                            &["GT"],
                            &["LT"],
                            &["nx", "xx"],
                            &["GT", "LT"],
                            &["FOO"],
                            &["gt", "gt"],
                        ],
                    )
                } else {
                    pickw(
                        &mut self.rng,
                        &[&[], &[], &["NX"], &["XX"], &["NX", "GT"], &["BAR"]],
                    )
                };
                c.extend(opts.iter().map(|w| w.as_bytes().to_vec()));
                c
            }
            70..=72 => vec![
                pick(&mut self.rng, &["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"])
                    .as_bytes()
                    .to_vec(),
                k,
            ],
            73 => vec![b"PERSIST".to_vec(), k],
            74..=75 => {
                let p = *pick(
                    &mut self.rng,
                    &["*", "k*", "k[0-2]", "k?", "*1*", "[", "k\\*", "**", "k[^1]"],
                );
                self.words(&["KEYS", p])
            }
            76..=77 => {
                let cur = *pick(&mut self.rng, &["0", "0", "abc", "18446744073709551616"]);
                let mut c = self.words(&["SCAN", cur]);
                let opts: &[&str] = pickw(
                    &mut self.rng,
                    &[
                        &[],
                        &["MATCH", "k*"],
                        &["COUNT", "3"],
                        &["TYPE", "hash"],
                        &["TYPE", "string"],
                        &["TYPE", "foo"],
                        &["COUNT", "0"],
                        &["BAD"],
                        &["COUNT"],
                    ],
                );
                c.extend(opts.iter().map(|w| w.as_bytes().to_vec()));
                c
            }
            78 => self.words(&["DBSIZE"]),
            79..=82 => vec![b"OBJECT".to_vec(), b"ENCODING".to_vec(), k],
            83 => vec![b"MEMORY".to_vec(), b"USAGE".to_vec(), k],
            84 => {
                let v: &[&str] = pickw(
                    &mut self.rng,
                    &[
                        &["PING"],
                        &["PING", "hi"],
                        &["PING", "a", "b"],
                        &["ECHO", "x y"],
                        &["ECHO"],
                        &["OBJECT", "FOO", "k"],
                        &["OBJECT"],
                        &["OBJECT", "ENCODING"],
                        &["MEMORY", "USAGE"],
                        &["MEMORY", "USAGE", "k1", "SAMPLES", "-1"],
                        &["MEMORY", "USAGE", "k1", "SAMPLES", "x"],
                        &["MEMORY", "USAGE", "k1", "FOO"],
                        &["FOO", "a", "b"],
                        &["hget"],
                        &["FLUSHDB", "BAD"],
                        &["FLUSHDB", "SYNC", "X"],
                        &["SELECT", "0"],
                        &["SELECT", "1"],
                        &["SELECT", "-1"],
                        &["SELECT", "x"],
                        &["SELECT", "2147483648"],
                        &["SELECT"],
                        &["SWAPDB", "0", "0"],
                        &["SWAPDB", "0", "1"],
                        &["SWAPDB", "x", "0"],
                        &["SWAPDB", "0", "99999999999"],
                        &["SWAPDB", "0"],
                        &["FLUSHALL", "BAD"],
                        &["FLUSHALL", "SYNC", "X"],
                        &["RESET"],
                        &["RESET", "x"],
                    ],
                );
                self.words(v)
            }
            85 if self.rng.gen_ratio(1, 10) => self.words(&["FLUSHDB"]),
            86 if self.rng.gen_ratio(1, 20) => self.words(&["FLUSHALL", "ASYNC"]),
            _ => vec![b"HGET".to_vec(), k, self.field()],
        };
        // Occasionally drop arguments to provoke arity errors.
        if self.rng.gen_ratio(1, 50) && c.len() > 1 {
            let n = self.rng.gen_range(1..c.len());
            c.truncate(n);
        }
        c
    }
}

fn reply_of(r: Result<Reply, Error>) -> Result<Reply, String> {
    r.map_err(|e| match e {
        Error::Command(c) => c.message().to_owned(),
        other => format!("hashkv error: {other}"),
    })
}

fn sort_flat(r: &mut Result<Reply, String>, pairs: bool) {
    if let Ok(Reply::Array(items)) = r {
        if pairs {
            let mut ps: Vec<Vec<Reply>> = items.chunks(2).map(<[Reply]>::to_vec).collect();
            ps.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
            *items = ps.into_iter().flatten().collect();
        } else {
            items.sort_by_key(|a| format!("{a:?}"));
        }
    }
}

/// Runs HSCAN/SCAN to completion on one side; returns the sorted union.
fn full_scan(
    cmd: &Cmd,
    mut call: impl FnMut(&Cmd) -> Result<Reply, String>,
) -> Result<Reply, String> {
    let is_hscan = cmd[0].eq_ignore_ascii_case(b"hscan");
    let cur_idx = if is_hscan { 2 } else { 1 };
    let mut c = cmd.clone();
    let mut all: Vec<Vec<Reply>> = Vec::new();
    for _ in 0..100_000 {
        let r = call(&c)?;
        let Reply::Array(parts) = r else { return Ok(r) };
        let (Some(Reply::Bulk(cursor)), Some(Reply::Array(items))) = (parts.first(), parts.get(1))
        else {
            return Ok(Reply::Array(parts));
        };
        let novalues = c.iter().any(|w| w.eq_ignore_ascii_case(b"novalues"));
        let chunk = if is_hscan && !novalues { 2 } else { 1 };
        all.extend(items.chunks(chunk).map(<[Reply]>::to_vec));
        if cursor == b"0" {
            break;
        }
        c[cur_idx] = cursor.clone();
    }
    all.sort_by_key(|a| format!("{a:?}"));
    all.dedup();
    Ok(Reply::Array(all.into_iter().flatten().collect()))
}

fn ttl_close(a: &Result<Reply, String>, b: &Result<Reply, String>, tol: i64) -> bool {
    match (a, b) {
        (Ok(Reply::Integer(x)), Ok(Reply::Integer(y))) => {
            (x - y).abs() <= tol && (*x < 0) == (*y < 0)
        }
        _ => a == b,
    }
}

fn shape(r: &Result<Reply, String>) -> String {
    match r {
        Ok(Reply::Array(items)) => format!("array of {}", items.len()),
        Ok(Reply::Bulk(_)) => "bulk".into(),
        other => format!("{other:?}"),
    }
}

fn run_phase(name: &str, seed: u64, n: usize, entries: usize, value: usize, big: bool) {
    let entries_s = entries.to_string();
    let value_s = value.to_string();
    let Some(server) = redis_or_skip(
        name,
        &[
            // One keyspace, as hashkv has (SELECT, SWAPDB, FLUSHALL).
            "--databases",
            "1",
            "--hash-max-listpack-entries",
            &entries_s,
            "--hash-max-listpack-value",
            &value_s,
        ],
    ) else {
        return;
    };
    let mut redis = RespClient::connect(server.port).expect("connect");
    let db = Db::in_memory(
        Options::default()
            .hash_max_listpack_entries(entries)
            .hash_max_listpack_value(value),
    );
    let mut gen = Gen {
        rng: SmallRng::seed_from_u64(seed),
        big,
    };
    let mut compared = 0usize;
    let mut history: Vec<String> = Vec::new();
    for i in 0..n {
        let cmd = gen.cmd();
        let shown = cmd
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        history.push(shown.clone());
        if history.len() > 30 {
            history.remove(0);
        }
        let lname = String::from_utf8_lossy(&cmd[0]).to_ascii_lowercase();
        let key = cmd.get(1).cloned().unwrap_or_default();
        let enc = db.object_encoding(&key).ok().flatten();
        let mut call_redis = |c: &Cmd| {
            let argv: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
            redis.call(&argv).expect("redis i/o")
        };
        let call_hk = |c: &Cmd| reply_of(db.execute(c));
        let scan_like =
            (lname == "hscan" && enc.as_deref() == Some("hashtable")) || lname == "scan";
        let (mut a, mut b) = if scan_like {
            (full_scan(&cmd, call_hk), full_scan(&cmd, &mut call_redis))
        } else {
            (call_hk(&cmd), call_redis(&cmd))
        };
        let same = match lname.as_str() {
            "hrandfield" => shape(&a) == shape(&b),
            "memory" => {
                matches!((&a, &b), (Ok(Reply::Integer(_)), Ok(Reply::Integer(_)))) || a == b
            }
            "ttl" | "expiretime" => ttl_close(&a, &b, 1),
            "pttl" | "pexpiretime" => ttl_close(&a, &b, 100),
            "keys" => {
                sort_flat(&mut a, false);
                sort_flat(&mut b, false);
                a == b
            }
            "hgetall" | "hkeys" | "hvals" if enc.as_deref() == Some("hashtable") => {
                sort_flat(&mut a, lname == "hgetall");
                sort_flat(&mut b, lname == "hgetall");
                a == b
            }
            _ => a == b,
        };
        assert!(
            same,
            "{name}: seed {seed}, command #{i}: {shown}\n hashkv: {a:?}\n redis:  {b:?}\n encoding before: {enc:?}\n last commands:\n  {}",
            history.join("\n  ")
        );
        compared += 1;
        // Whole-state check now and then: same keys, same encodings.
        if i % 500 == 499 {
            for k in 0..8 {
                let key = format!("k{k}");
                let he = reply_of(db.execute(&["OBJECT", "ENCODING", key.as_str()]));
                let re = call_redis(&vec![
                    b"OBJECT".to_vec(),
                    b"ENCODING".to_vec(),
                    key.clone().into_bytes(),
                ]);
                assert_eq!(
                    he, re,
                    "{name}: seed {seed}: encoding of {key} after command #{i}"
                );
            }
        }
    }
    eprintln!("{name}: {compared} commands compared with redis-server (seed {seed})");
}

fn seed() -> u64 {
    std::env::var("HASHKV_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen())
}

fn count() -> usize {
    std::env::var("HASHKV_DIFF_COMMANDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000)
}

#[test]
fn replies_match_redis_with_small_thresholds() {
    run_phase("small-thresholds", seed(), count(), 8, 16, false);
}

#[test]
fn replies_match_redis_with_default_thresholds_and_big_hashes() {
    run_phase("default-thresholds", seed(), count() / 4, 512, 64, true);
}
