//! The `hashkv` tool's info, check, repair, export and import: output, exit
//! codes and errors; and export into / import from a real Redis.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{redis_or_skip, RespClient};
use hashkv::{Db, Options, Reply};
use rand::{Rng, SeedableRng};

fn hashkv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hashkv"))
}

/// Runs the tool; (exit code, stdout, stderr).
fn run(args: &[&str], dir: Option<&Path>) -> (i32, String, String) {
    let mut c = hashkv();
    for a in args {
        if *a == "DIR" {
            c.arg(dir.unwrap());
        } else {
            c.arg(a);
        }
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn opts() -> Options {
    Options::default().active_expiry(false).no_auto_snapshots()
}

fn populate(dir: &Path) {
    let db = Db::open_with(dir, opts()).unwrap();
    for i in 0..30 {
        db.hset(
            format!("user:{i}"),
            &[("name", format!("n{i}")), ("age", i.to_string())],
        )
        .unwrap();
    }
    let big: Vec<(String, String)> = (0..600)
        .map(|i| (format!("f{i}"), format!("v{i}")))
        .collect();
    db.hset("big", &big).unwrap();
    db.execute(&["EXPIRE", "user:1", "1000"]).unwrap();
}

fn segment(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "aof"))
        .unwrap()
}

#[test]
fn info_reports_keys_encodings_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    populate(&dir);
    {
        // Field TTLs on a dict and on a compact hash.
        let db = Db::open_with(&dir, opts()).unwrap();
        assert_eq!(db.hpexpire("big", 1_000_000, &["f1"]).unwrap(), [1]);
        assert_eq!(db.hpexpire("user:2", 1_000_000, &["age"]).unwrap(), [1]);
    }
    let (code, out, err) = run(&["info", "DIR"], Some(&dir));
    assert_eq!(code, 0, "{err}");
    for line in [
        "keys:31",
        "fields:660",
        "hashes_listpack:30",
        "hashes_hashtable:1",
        "volatile_keys:1",
        "field_ttl_hashes:2",
        "snapshot:none",
        "fsync:everysec",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
    }
    // The users share the field list (name, age) per shard; which users
    // share a shard depends on the process's hash seeds.
    let shaped: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("hashes_shaped:"))
        .and_then(|v| v.parse().ok())
        .expect("hashes_shaped line");
    assert!(shaped <= 29, "{out}");
    assert!(out.lines().any(|l| l.starts_with("shapes:")), "{out}");
    let (code, out, _) = run(&["info", "DIR", "--json"], Some(&dir));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["keys"], 31);
    assert_eq!(v["hashes"]["hashtable"], 1);
    assert!(v["hashes"]["shaped"].as_u64().is_some());
    assert!(v["shapes"].as_u64().is_some());
    assert_eq!(v["field_ttl_hashes"], 2);
    assert!(v["memory_bytes"].as_u64().unwrap() > 600 * 4);
    assert_eq!(v["log_segments"].as_array().unwrap().len(), 1);
    // A missing directory is an error, not created.
    let (code, _, err) = run(&["info", "DIR"], Some(&tmp.path().join("nope")));
    assert_eq!(code, 2);
    assert!(err.contains("no such directory"), "{err}");
    assert!(!tmp.path().join("nope").exists());
}

#[test]
fn check_exit_codes_clean_torn_corrupt_and_unusable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    populate(&dir);
    let (code, out, _) = run(&["check", "DIR"], Some(&dir));
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("clean\n"), "{out}");
    // A torn tail is a warning (open cuts it).
    let seg = segment(&dir);
    let good = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &good[..good.len() - 3]).unwrap();
    let (code, out, _) = run(&["check", "DIR"], Some(&dir));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning:") && out.contains("torn tail"),
        "{out}"
    );
    // Damage before the tail is corruption, named by file and offset.
    let mut bad = good.clone();
    bad[40] ^= 0x55;
    std::fs::write(&seg, &bad).unwrap();
    let (code, out, _) = run(&["check", "DIR"], Some(&dir));
    assert_eq!(code, 1, "{out}");
    let at: u64 = out
        .split("log-000001.aof at byte ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no offset in {out}"));
    assert!(out.contains("CORRUPT:") && (8..=40).contains(&at), "{out}");
    // Opening it for a command: one line saying what, where and what to do.
    let (code, _, err) = run(&["exec", "DIR", "HGET", "user:1", "name"], Some(&dir));
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("log-000001.aof: corrupt at byte") && err.contains("repair --salvage"),
        "{err}"
    );
    std::fs::write(&seg, &good).unwrap();
    // Could not run: missing directory, or not a hashkv directory.
    let (code, _, err) = run(&["check", "DIR"], Some(&tmp.path().join("nope")));
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(&["check", "DIR"], Some(tmp.path()));
    assert_eq!(code, 2);
    assert!(err.contains("not a hashkv directory"), "{err}");
}

#[test]
fn repair_cuts_tails_salvages_and_keeps_a_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    populate(&dir);
    let (code, out, _) = run(&["repair", "DIR"], Some(&dir));
    assert_eq!(
        (code, out.trim()),
        (0, format!("{}: nothing to repair", dir.display()).as_str())
    );
    let seg = segment(&dir);
    let good = std::fs::read(&seg).unwrap();
    // Torn tail: cut, original kept in the backup.
    std::fs::write(&seg, &good[..good.len() - 3]).unwrap();
    let (code, out, err) = run(&["repair", "DIR"], Some(&dir));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cut a torn tail"), "{out}");
    let backup = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("backup-")
        })
        .unwrap();
    assert_eq!(
        std::fs::read(backup.join("log-000001.aof")).unwrap().len(),
        good.len() - 3
    );
    std::fs::remove_dir_all(&backup).unwrap();
    // Corruption: refused without --salvage, salvaged with it.
    let seg = segment(&dir);
    let mut bad = std::fs::read(&seg).unwrap();
    bad[40] ^= 0x55;
    std::fs::write(&seg, &bad).unwrap();
    let (code, _, err) = run(&["repair", "DIR"], Some(&dir));
    assert_eq!(code, 2);
    assert!(err.contains("--salvage"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, out, err) = run(&["repair", "DIR", "--salvage"], Some(&dir));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("dropped bytes") && out.contains("rewrote the log"),
        "{out}"
    );
    let (code, out, _) = run(&["check", "DIR"], Some(&dir));
    assert_eq!(code, 0, "{out}");
    let db = Db::open_with(&dir, opts()).unwrap();
    assert_eq!(
        db.hlen("big").unwrap(),
        600,
        "the records after the damage are kept"
    );
}

/// `export --format rdb` writes a Redis RDB file (its loading in a real
/// Redis is checked by tests/rdb_export.rs) and `import --format rdb`
/// reads it back whole, with a summary; a damaged file is refused before
/// the directory is touched, and standard input is refused for RDB.
#[test]
fn rdb_export_and_import_through_the_tool() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    populate(&dir);
    let file = tmp.path().join("dump.rdb");
    let (code, out, err) = run(
        &[
            "export",
            "DIR",
            "--format",
            "rdb",
            "--output",
            file.to_str().unwrap(),
        ],
        Some(&dir),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "exported 31 keys, 660 fields");
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(&bytes[..9], b"REDIS0010");
    let copy = tmp.path().join("copy");
    let (code, out, err) = run(
        &["import", "DIR", "--format", "rdb", file.to_str().unwrap()],
        Some(&copy),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().next().unwrap(),
        "imported 31 hashes (660 fields) from RDB version 10"
    );
    let (a, b) = (
        Db::open_with(&dir, opts()).unwrap(),
        Db::open_with(&copy, opts()).unwrap(),
    );
    let Reply::Array(keys) = a.execute(&["KEYS", "*"]).unwrap() else {
        panic!("KEYS")
    };
    assert_eq!(keys.len(), 31);
    // Contents, not order (a dict's order is its own).
    let sorted = |r: Reply| {
        let Reply::Array(items) = r else {
            panic!("HGETALL")
        };
        let mut pairs: Vec<String> = items
            .chunks(2)
            .map(|p| format!("{:?}={:?}", p[0], p[1]))
            .collect();
        pairs.sort();
        pairs
    };
    for k in keys {
        let k = k.as_bytes().unwrap();
        let same = sorted(a.execute(&[b"HGETALL".as_slice(), k]).unwrap())
            == sorted(b.execute(&[b"HGETALL".as_slice(), k]).unwrap());
        assert!(same, "{}", String::from_utf8_lossy(k));
        assert_eq!(
            a.execute(&[b"PEXPIRETIME".as_slice(), k]).unwrap(),
            b.execute(&[b"PEXPIRETIME".as_slice(), k]).unwrap()
        );
    }
    drop((a, b));
    // Damage: refused, naming the offset, and nothing created.
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 3] ^= 1;
    std::fs::write(&file, &bad).unwrap();
    let fresh = tmp.path().join("fresh");
    let (code, _, err) = run(
        &["import", "DIR", "--format", "rdb", file.to_str().unwrap()],
        Some(&fresh),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("checksum mismatch") && err.contains("offset"),
        "{err}"
    );
    let (code, _, err) = run(&["import", "DIR", "--format", "rdb", "-"], Some(&fresh));
    assert_eq!(code, 2);
    assert!(err.contains("not standard input"), "{err}");
    // Field TTLs need version 12.
    let ttl = tmp.path().join("ttl");
    let db = Db::open_with(&ttl, opts()).unwrap();
    db.hset("h", &[("a", "1"), ("b", "2")]).unwrap();
    db.hpexpire("h", 3_600_000, &["a"]).unwrap();
    db.close().unwrap();
    let out12 = tmp.path().join("v12.rdb");
    let (code, _, err) = run(
        &[
            "export",
            "DIR",
            "--format",
            "rdb",
            "--output",
            out12.to_str().unwrap(),
        ],
        Some(&ttl),
    );
    assert_eq!(code, 2);
    assert!(err.contains("RDB version 12"), "{err}");
    let (code, _, err) = run(
        &[
            "export",
            "DIR",
            "--format",
            "rdb",
            "--rdb-version",
            "12",
            "--output",
            out12.to_str().unwrap(),
        ],
        Some(&ttl),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(&std::fs::read(&out12).unwrap()[..9], b"REDIS0012");
}

#[test]
fn export_and_import_through_the_tool() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    populate(&dir);
    for format in ["resp", "json"] {
        let file = tmp.path().join(format!("dump.{format}"));
        let (code, out, err) = run(
            &[
                "export",
                "DIR",
                "--format",
                format,
                "--output",
                file.to_str().unwrap(),
            ],
            Some(&dir),
        );
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.trim(), "exported 31 keys, 660 fields");
        let copy = tmp.path().join(format!("copy-{format}"));
        let (code, out, err) = run(
            &["import", "DIR", "--format", format, file.to_str().unwrap()],
            Some(&copy),
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("660 fields; 0 errors"), "{out}");
        let (a, b) = (
            Db::open_with(&dir, opts()).unwrap(),
            Db::open_with(&copy, opts()).unwrap(),
        );
        for k in ["user:0", "user:1", "big"] {
            let (mut x, mut y) = (a.hgetall(k).unwrap(), b.hgetall(k).unwrap());
            x.sort();
            y.sort();
            assert_eq!(x, y, "{format} {k}");
        }
        assert!(b.pttl("user:1").unwrap() > 0, "{format}: TTL kept");
    }
    // Export to stdout, import from stdin.
    let out = hashkv().arg("export").arg(&dir).output().unwrap();
    assert!(out.status.success());
    let mut child = hashkv()
        .args(["import"])
        .arg(tmp.path().join("piped"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let res = child.wait_with_output().unwrap();
    assert!(res.status.success());
    assert!(String::from_utf8_lossy(&res.stdout).contains("imported"));
    // Malformed input and failing commands: exit 2, one clear line.
    let bad = tmp.path().join("bad.resp");
    std::fs::write(&bad, b"*2\r\n$4\r\nHGET\r\n$1\r\nk\r\n*1\r\n$3\r\nfoo").unwrap();
    let (code, _, err) = run(
        &["import", "DIR", bad.to_str().unwrap()],
        Some(&tmp.path().join("x")),
    );
    assert_eq!(code, 2);
    assert!(err.contains("bad.resp") && err.contains("byte"), "{err}");
    std::fs::write(&bad, b"*2\r\n$4\r\nHSET\r\n$1\r\nk\r\n").unwrap();
    let (code, out, err) = run(
        &["import", "DIR", bad.to_str().unwrap()],
        Some(&tmp.path().join("y")),
    );
    assert_eq!(code, 2);
    assert!(out.contains("wrong number of arguments"), "{out}");
    assert!(err.contains("1 commands failed"), "{err}");
    let (code, _, err) = run(&["export", "DIR", "--format", "xml"], Some(&dir));
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'xml'"), "{err}");
}

/// Every key of a Redis server: (key, sorted pairs, PEXPIRETIME).
type Dump = Vec<(Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>, i64)>;

fn redis_dump(c: &mut RespClient) -> Dump {
    let Ok(Reply::Array(keys)) = c.call(&[b"KEYS".as_slice(), b"*"]).unwrap() else {
        panic!()
    };
    let mut out = Vec::new();
    for k in keys {
        let Reply::Bulk(k) = k else { panic!() };
        let Ok(Reply::Array(flat)) = c.call(&[b"HGETALL".as_slice(), &k]).unwrap() else {
            panic!()
        };
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = flat
            .chunks(2)
            .map(|p| match (&p[0], &p[1]) {
                (Reply::Bulk(f), Reply::Bulk(v)) => (f.clone(), v.clone()),
                _ => panic!(),
            })
            .collect();
        pairs.sort();
        let Ok(Reply::Integer(at)) = c.call(&[b"PEXPIRETIME".as_slice(), &k]).unwrap() else {
            panic!()
        };
        out.push((k, pairs, at));
    }
    out.sort();
    out
}

fn hashkv_dump(db: &Db) -> Dump {
    let Reply::Array(keys) = db.execute(&["KEYS", "*"]).unwrap() else {
        panic!()
    };
    let mut out = Vec::new();
    for k in keys {
        let Reply::Bulk(k) = k else { panic!() };
        let mut pairs = db.hgetall(&k).unwrap();
        pairs.sort();
        let Reply::Integer(at) = db.execute(&[b"PEXPIRETIME".as_slice(), &k]).unwrap() else {
            panic!()
        };
        out.push((k, pairs, at));
    }
    out.sort();
    out
}

fn random_bytes(rng: &mut impl Rng, n: usize) -> Vec<u8> {
    (0..rng.gen_range(1..=n)).map(|_| rng.gen()).collect()
}

#[test]
fn export_loads_into_real_redis_and_a_redis_dataset_imports_unchanged() {
    let Some(server) = redis_or_skip("export_loads_into_real_redis", &[]) else {
        return;
    };
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    {
        let db = Db::open_with(&dir, opts()).unwrap();
        for i in 0..200 {
            let mut key = random_bytes(&mut rng, 8);
            key.extend_from_slice(format!(":{i}").as_bytes());
            let n = if i % 20 == 0 {
                1500
            } else {
                rng.gen_range(1..10)
            };
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
                .map(|j| {
                    let mut f = random_bytes(&mut rng, 6);
                    f.extend_from_slice(format!("#{j}").as_bytes());
                    (f, random_bytes(&mut rng, 80))
                })
                .collect();
            db.hset(&key, &pairs).unwrap();
            if i % 3 == 0 {
                let at = 4_000_000_000_000i64 + i;
                db.execute(&[b"PEXPIREAT".to_vec(), key, at.to_string().into_bytes()])
                    .unwrap();
            }
        }
    }
    // hashkv -> redis-cli --pipe -> Redis.
    let export = hashkv().arg("export").arg(&dir).output().unwrap();
    assert!(export.status.success());
    let mut pipe = Command::new("redis-cli")
        .args(["-p", &server.port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli (Debian package redis-tools)");
    pipe.stdin
        .take()
        .unwrap()
        .write_all(&export.stdout)
        .unwrap();
    let res = pipe.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&res.stdout);
    assert!(res.status.success() && said.contains("errors: 0"), "{said}");
    let mut c = RespClient::connect(server.port).unwrap();
    let ours = hashkv_dump(&Db::open_with(&dir, opts()).unwrap());
    assert_eq!(redis_dump(&mut c), ours, "Redis holds what hashkv exported");

    // A Redis dataset, written out as RESP commands, imports unchanged.
    c.call(&[b"FLUSHALL".as_slice()]).unwrap().unwrap();
    let mut resp = Vec::new();
    for i in 0..100 {
        let key = format!("redis:{i}").into_bytes();
        let pairs: Vec<Vec<u8>> = (0..rng.gen_range(1..700))
            .flat_map(|j| [format!("f{j}").into_bytes(), random_bytes(&mut rng, 30)])
            .collect();
        let mut argv: Vec<&[u8]> = vec![b"HSET", &key];
        argv.extend(pairs.iter().map(Vec::as_slice));
        c.call(&argv).unwrap().unwrap();
        c.call(&[b"HINCRBY".as_slice(), &key, b"counter", b"7"])
            .unwrap()
            .unwrap();
        if i % 4 == 0 {
            c.call(&[b"PEXPIRE".as_slice(), &key, b"90000000"])
                .unwrap()
                .unwrap();
        }
    }
    let theirs = redis_dump(&mut c);
    for (key, pairs, at) in &theirs {
        let mut argv: Vec<&[u8]> = vec![b"HSET", key];
        for (f, v) in pairs {
            argv.push(f);
            argv.push(v);
        }
        RespClient::encode(&argv, &mut resp);
        if *at >= 0 {
            let at = at.to_string();
            RespClient::encode(&[b"PEXPIREAT", key, at.as_bytes()], &mut resp);
        }
    }
    let file = tmp.path().join("from-redis.resp");
    std::fs::write(&file, &resp).unwrap();
    let copy = tmp.path().join("copy");
    let (code, _, err) = run(&["import", "DIR", file.to_str().unwrap()], Some(&copy));
    assert_eq!(code, 0, "{err}");
    assert_eq!(hashkv_dump(&Db::open_with(&copy, opts()).unwrap()), theirs);
}

/// Bad command lines: one line on stderr naming what and the help to read,
/// exit code 2; help itself still prints in full with exit code 0.
#[test]
fn bad_arguments_are_one_line_errors() {
    for (args, want) in [
        (&["export"][..], "hashkv export --help"),
        (&["export", "d", "--format", "xml"], "hashkv export --help"),
        (&["frobnicate"], "hashkv --help"),
        (&["check", "--bogus", "d"], "hashkv check --help"),
        (&["exec"], "hashkv exec --help"),
    ] {
        let out = hashkv().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("hashkv: ") && err.contains(want),
            "{args:?}: {err}"
        );
    }
    let out = hashkv().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
}

/// Two exports of the same data are the same bytes: a dict hash's fields
/// and field TTLs come out sorted by field, whatever order the table
/// holds them in.
#[test]
fn json_export_of_the_same_data_is_the_same_bytes() {
    let export = |order: &mut dyn Iterator<Item = usize>| {
        let db = Db::in_memory(opts());
        for i in order {
            let f = format!("f{i:04}");
            db.hset("h", &[(f.as_str(), "v")]).unwrap();
            if i % 3 == 0 {
                let at = (4_000_000_000_000u64 + i as u64).to_string();
                db.execute(&["HPEXPIREAT", "h", &at, "FIELDS", "1", &f])
                    .unwrap();
            }
        }
        assert_eq!(
            db.object_encoding("h").unwrap().as_deref(),
            Some("hashtable")
        );
        let mut out = Vec::new();
        db.export(hashkv::admin::Format::Json, &mut out, &mut |_, _| {})
            .unwrap();
        String::from_utf8(out).unwrap()
    };
    let a = export(&mut (0..700));
    let b = export(&mut (0..700).rev());
    assert!(a.contains("field_expire_at_ms"), "{a}");
    assert_eq!(a, b);
}
