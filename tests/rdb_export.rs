//! `Db::export_rdb`: the file loads in the real redis-server (Redis 7.0,
//! installed in CI), and every key, field, value, key expiry and encoding
//! there is what hashkv holds.

mod common;

use std::time::{Duration, Instant};

use common::{redis_or_skip, RespClient};
use hashkv::interop::RdbCompression;
use hashkv::{Db, Options, Reply};

#[test]
fn an_exported_rdb_loads_in_redis_with_every_key_as_hashkv_has_it() {
    let db = Db::in_memory(Options::default().active_expiry(false));
    // Small hashes with integer-looking values of every listpack integer
    // width, strings that are not canonical integers, binary bytes.
    let ints = common::INT_EDGES;
    let pairs: Vec<(String, &str)> = ints
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("f{i}"), *v))
        .collect();
    db.hset("ints", &pairs).unwrap();
    db.hset(
        b"bin\x00\xff".as_slice(),
        &[(b"\x01\x02".as_slice(), b"\xfe\x00v".as_slice())],
    )
    .unwrap();
    db.hset("12345", &[("67", "89")]).unwrap(); // integer-looking key
                                                // A value past 64 bytes, and a hash past 512 fields: dicts.
    db.hset("long", &[("f", "x".repeat(65))]).unwrap();
    let many: Vec<(String, String)> = (0..600)
        .map(|i| (format!("m{i}"), format!("{i}")))
        .collect();
    db.hset("many", &many).unwrap();
    // Strings of every RDB length form (6-bit, 14-bit, 32-bit).
    db.hset(
        "lens",
        &[
            ("a", "y".repeat(63)),
            ("b", "y".repeat(64)),
            ("c", "y".repeat(20_000)),
        ],
    )
    .unwrap();
    // Compressible and incompressible text, in listpacks and in dicts.
    let text = "the quick brown fox jumps over the lazy dog ".repeat(40);
    let noise: String = (0..200u32)
        .map(|i| char::from(b'!' + (i.wrapping_mul(7919) % 90) as u8))
        .collect();
    db.hset("text", &[("t", text.as_str()), ("n", noise.as_str())])
        .unwrap();
    db.hset(
        "lp",
        &[
            (
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            ),
            ("c", "aaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ],
    )
    .unwrap();
    for i in 0..50 {
        db.hset(
            format!("user:{i}"),
            &[("name", format!("n{i}")), ("age", format!("{}", 20 + i))],
        )
        .unwrap();
    }
    // Packed hex values (compact and dict) and shared field lists go out
    // as the strings they are.
    for i in 0..20u64 {
        db.hset(
            format!("obj:{i}"),
            &[
                (
                    "sha",
                    format!("{:040x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15),
                ),
                ("up", format!("{:010X}", i * 0xdead_beef + 0xA)),
                ("pad", format!("{i:010}")),
            ],
        )
        .unwrap();
    }
    let hexdict: Vec<(String, String)> = (0..600u64)
        .map(|i| (format!("h{i}"), format!("{:032x}", i * 7919)))
        .collect();
    db.hset("hexdict", &hexdict).unwrap();
    assert!(db.info().unwrap().shaped_hashes > 0);
    db.execute(&["PEXPIREAT", "user:3", "4102444800000"])
        .unwrap();
    db.execute(&["PEXPIREAT", "many", "4102444800123"]).unwrap();

    let mut sizes = Vec::new();
    for compression in [RdbCompression::Lzf, RdbCompression::None] {
        sizes.push(loads_in_redis(&db, compression));
    }
    assert!(
        sizes[0] < sizes[1] / 2,
        "LZF {} bytes, raw {}",
        sizes[0],
        sizes[1]
    );
}

/// Exports `db` with `compression`, starts redis-server on the file and
/// compares every key there with `db`; returns the file's size.
fn loads_in_redis(db: &Db, compression: RdbCompression) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dump.rdb");
    let t = db
        .export_rdb_to(
            &mut std::io::BufWriter::new(std::fs::File::create(&file).unwrap()),
            &hashkv::interop::RdbExportOptions {
                compression,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(t.items, db.dbsize().unwrap() as u64);
    let bytes = std::fs::metadata(&file).unwrap().len();
    let d = dir.path().display().to_string();
    let Some(server) = redis_or_skip(
        "an_exported_rdb_loads_in_redis",
        &["--dir", &d, "--dbfilename", "dump.rdb"],
    ) else {
        return bytes;
    };
    let mut c = RespClient::connect(server.port).unwrap();
    // PING answers while the file loads; wait for the keys.
    let deadline = Instant::now() + Duration::from_secs(10);
    let size = loop {
        match c.call(&[b"DBSIZE".as_slice()]).unwrap() {
            Ok(Reply::Integer(n)) => break n,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("DBSIZE: {other:?}"),
        }
    };
    assert_eq!(size, db.dbsize().unwrap());
    let Reply::Array(keys) = db.execute(&["KEYS", "*"]).unwrap() else {
        panic!("KEYS");
    };
    for k in keys {
        let k = k.as_bytes().unwrap().to_vec();
        let ours = |cmd: &[u8]| db.execute(&[cmd, &k]).unwrap();
        let theirs = |c: &mut RespClient, cmd: &[u8]| c.call(&[cmd, &k]).unwrap().unwrap();
        let sorted = |r: Reply| {
            let Reply::Array(items) = r else {
                panic!("HGETALL")
            };
            let mut pairs: Vec<(Reply, Reply)> = items
                .chunks(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect();
            pairs.sort_by_key(|(f, _)| format!("{f:?}"));
            pairs
        };
        let name = String::from_utf8_lossy(&k).into_owned();
        assert_eq!(
            sorted(theirs(&mut c, b"HGETALL")),
            sorted(ours(b"HGETALL")),
            "{name}"
        );
        assert_eq!(
            theirs(&mut c, b"PEXPIRETIME"),
            ours(b"PEXPIRETIME"),
            "{name}"
        );
        assert_eq!(
            c.call(&[b"OBJECT".as_slice(), b"ENCODING", &k])
                .unwrap()
                .unwrap(),
            db.execute(&[b"OBJECT".as_slice(), b"ENCODING", &k])
                .unwrap(),
            "{name}"
        );
    }
    bytes
}

#[test]
fn field_ttls_are_refused_by_version_10_rather_than_dropped() {
    let db = Db::in_memory(Options::default());
    db.hset("h", &[("a", "1"), ("b", "2")]).unwrap();
    db.hpexpire("h", 60_000, &["a"]).unwrap();
    let err = db
        .export_rdb_to(&mut Vec::new(), &Default::default())
        .unwrap_err();
    assert!(err.to_string().contains("field TTLs"), "{err}");
}
