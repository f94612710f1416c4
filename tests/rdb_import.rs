//! `Db::import_rdb`: files a real Redis wrote (the samples in
//! `tests/data/redis-rdb`, and dumps the redis-server installed in CI saves
//! while the test runs) import with every key, field, value, expiry and
//! encoding as Redis reports them; files built byte by byte per the RDB
//! layout cover what Redis 7.0 cannot write (field-TTL types 22 to 25,
//! expired keys and fields, duplicates); damaged files change nothing.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{redis_or_skip, RespClient};
use hashkv::interop::{RdbImportOptions, RdbVersion};
use hashkv::{Db, Options, Reply};

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/redis-rdb")
        .join(name)
}

fn db() -> Db {
    Db::in_memory(Options::default().active_expiry(false))
}

fn bulk(r: &Reply) -> Vec<u8> {
    r.as_bytes().expect("a bulk reply").to_vec()
}

/// HGETALL of `key` as (field, value) pairs, in reply order.
fn hgetall(db: &Db, key: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Reply::Array(items) = db.execute(&[b"HGETALL".as_slice(), key]).unwrap() else {
        panic!("HGETALL");
    };
    items
        .chunks(2)
        .map(|p| (bulk(&p[0]), bulk(&p[1])))
        .collect()
}

fn text(db: &Db, argv: &[&[u8]]) -> String {
    match db.execute(argv).unwrap() {
        Reply::Integer(n) => n.to_string(),
        r => String::from_utf8_lossy(&bulk(&r)).into_owned(),
    }
}

#[test]
fn the_sample_files_import_to_what_redis_reported() {
    for name in [
        "hash-listpack-v10",
        "hash-dict-ttl-v10",
        "hash-minimal-v10",
        "hash-ziplist-v9",
        "hash-zipmap-v3",
    ] {
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(data(&format!("{name}.json"))).unwrap())
                .unwrap();
        let db = db();
        let t = db.import_rdb(data(&format!("{name}.rdb"))).unwrap();
        assert_eq!(
            u64::from(t.version),
            expected["rdb_version"].as_u64().unwrap(),
            "{name}"
        );
        let keys = expected["keys"].as_object().unwrap();
        assert_eq!(t.keys, keys.len() as u64, "{name}");
        assert_eq!(db.dbsize().unwrap(), keys.len() as i64, "{name}");
        for (key, k) in keys {
            let kb = key.as_bytes();
            let want: Vec<(Vec<u8>, Vec<u8>)> = k["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().as_bytes().to_vec(),
                        p[1].as_str().unwrap().as_bytes().to_vec(),
                    )
                })
                .collect();
            let mut got = hgetall(&db, kb);
            let mut want = want;
            if k["rdb_type"] == 4 {
                // A dict's file order carries no meaning.
                got.sort();
                want.sort();
            }
            assert_eq!(got, want, "{name} {key}");
            let at = k["expire_at_ms"].as_i64().unwrap_or(-1);
            assert_eq!(
                text(&db, &[b"PEXPIRETIME", kb]),
                at.to_string(),
                "{name} {key}"
            );
            assert_eq!(
                text(&db, &[b"OBJECT", b"ENCODING", kb]),
                k["encoding_after_load_7_0_15"].as_str().unwrap(),
                "{name} {key}"
            );
        }
    }
}

/// Builds RDB files byte by byte (the layouts of FORMATS.md §2).
struct Rdb {
    b: Vec<u8>,
}

impl Rdb {
    fn new(version: u32) -> Rdb {
        Rdb {
            b: format!("REDIS{version:04}").into_bytes(),
        }
    }
    fn len(&mut self, n: u64) -> &mut Self {
        if n < 64 {
            self.b.push(n as u8);
        } else if n < 16384 {
            self.b.push(0x40 | (n >> 8) as u8);
            self.b.push(n as u8);
        } else if n <= u64::from(u32::MAX) {
            self.b.push(0x80);
            self.b.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.b.push(0x81);
            self.b.extend_from_slice(&n.to_be_bytes());
        }
        self
    }
    fn str(&mut self, s: &[u8]) -> &mut Self {
        self.len(s.len() as u64);
        self.b.extend_from_slice(s);
        self
    }
    fn byte(&mut self, x: u8) -> &mut Self {
        self.b.push(x);
        self
    }
    fn i64(&mut self, x: i64) -> &mut Self {
        self.b.extend_from_slice(&x.to_le_bytes());
        self
    }
    /// A listpack of string elements, and integer elements for `Err(i)`.
    fn listpack(&mut self, elems: &[Result<&[u8], i64>]) -> &mut Self {
        let mut lp = vec![0u8; 6];
        for e in elems {
            let start = lp.len();
            match e {
                Ok(s) if s.len() < 64 => {
                    lp.push(0x80 | s.len() as u8);
                    lp.extend_from_slice(s);
                }
                Ok(s) => {
                    assert!(s.len() < 4096);
                    lp.push(0xE0 | (s.len() >> 8) as u8);
                    lp.push(s.len() as u8);
                    lp.extend_from_slice(s);
                }
                Err(i) => {
                    lp.push(0xF4);
                    lp.extend_from_slice(&i.to_le_bytes());
                }
            }
            // The back-length: 7 bits a byte, the high part first.
            let l = lp.len() - start;
            assert!(l < 16383);
            if l < 128 {
                lp.push(l as u8);
            } else {
                lp.push((l >> 7) as u8);
                lp.push((l & 127) as u8 | 128);
            }
        }
        lp.push(0xFF);
        let total = lp.len() as u32;
        lp[0..4].copy_from_slice(&total.to_le_bytes());
        lp[4..6].copy_from_slice(&(elems.len() as u16).to_le_bytes());
        self.str(&lp)
    }
    /// EOF and the CRC-64 trailer.
    fn finish(&mut self) -> Vec<u8> {
        self.b.push(0xFF);
        let crc = crc64(&self.b);
        self.b.extend_from_slice(&crc.to_le_bytes());
        self.b.clone()
    }
}

/// CRC-64/REDIS, bit by bit (independent of the crate's table version).
fn crc64(bytes: &[u8]) -> u64 {
    let mut crc = 0u64;
    for &b in bytes {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x95ac_9329_ac4b_c9b5
            } else {
                crc >> 1
            };
        }
    }
    crc
}

fn import_bytes(
    db: &Db,
    bytes: &[u8],
    opts: &RdbImportOptions,
) -> hashkv::Result<hashkv::interop::RdbImport> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("dump.rdb");
    std::fs::write(&p, bytes).unwrap();
    db.import_rdb_with(&p, opts, &mut |_, _| {})
}

const FUTURE: i64 = 4_102_444_800_000; // 2100-01-01
const PAST: i64 = 1_000_000_000_000; // 2001

#[test]
fn field_ttl_types_import_with_their_ttls_and_expired_parts_are_dropped() {
    let mut f = Rdb::new(12);
    // Type 25: min_expire, then triples (TTL fields first, by expiry).
    f.byte(25).str(b"lpex").i64(FUTURE).listpack(&[
        Ok(b"gone"),
        Ok(b"1"),
        Err(PAST),
        Ok(b"a"),
        Ok(b"x"),
        Err(FUTURE),
        Ok(b"b"),
        Ok(b"y"),
        Err(0),
    ]);
    // Type 23 (7.4 RC): the same without min_expire.
    f.byte(23)
        .str(b"lpex-rc")
        .listpack(&[Ok(b"a"), Ok(b"x"), Err(FUTURE + 5)]);
    // Type 24: min_expire; per field len ttl (relative: min + k - 1),
    // field, value.
    f.byte(24).str(b"dictex").i64(FUTURE).len(2);
    f.len(1).str(b"a").str(b"x"); // expires at FUTURE
    f.len(0).str(b"b").str(b"y"); // no TTL
                                  // Type 22 (7.4 RC): absolute TTLs.
    f.byte(22).str(b"dictex-rc").len(2);
    f.len(FUTURE as u64 + 9).str(b"a").str(b"x");
    f.len(PAST as u64).str(b"old").str(b"y");
    // Every field expired: the key is dropped.
    f.byte(25)
        .str(b"all-gone")
        .i64(PAST)
        .listpack(&[Ok(b"f"), Ok(b"v"), Err(PAST)]);
    // An expired key, in seconds and in milliseconds.
    f.byte(0xFD)
        .b
        .extend_from_slice(&1_000_000i32.to_le_bytes());
    f.byte(4).str(b"expired-s").len(1).str(b"f").str(b"v");
    f.byte(0xFC).i64(PAST);
    f.byte(4).str(b"expired-ms").len(1).str(b"f").str(b"v");
    // A live key TTL in seconds.
    f.byte(0xFD)
        .b
        .extend_from_slice(&2_000_000_000i32.to_le_bytes());
    f.byte(4).str(b"live-s").len(1).str(b"f").str(b"v");
    // An empty hash: skipped.
    f.byte(4).str(b"empty").len(0);
    let bytes = f.finish();
    let db = db();
    let t = import_bytes(&db, &bytes, &RdbImportOptions::default()).unwrap();
    assert_eq!(t.version, 12);
    assert_eq!(t.keys, 5, "{t:?}");
    assert_eq!(t.expired_keys, 3, "{t:?}");
    assert_eq!(t.expired_fields, 3, "{t:?}");
    assert_eq!(t.empty_keys, 1, "{t:?}");
    assert_eq!(db.dbsize().unwrap(), 5);
    let ttl = |key: &str, field: &str| {
        text(
            &db,
            &[
                b"HPEXPIRETIME",
                key.as_bytes(),
                b"FIELDS",
                b"1",
                field.as_bytes(),
            ],
        )
    };
    let ttl = |key: &str, field: &str| {
        let Reply::Array(a) = db
            .execute(&[
                b"HPEXPIRETIME".as_slice(),
                key.as_bytes(),
                b"FIELDS",
                b"1",
                field.as_bytes(),
            ])
            .unwrap()
        else {
            panic!("HPEXPIRETIME")
        };
        let _ = &ttl;
        a[0].as_integer().unwrap()
    };
    assert_eq!(
        hgetall(&db, b"lpex"),
        vec![
            (b"a".to_vec(), b"x".to_vec()),
            (b"b".to_vec(), b"y".to_vec())
        ]
    );
    assert_eq!(ttl("lpex", "a"), FUTURE);
    assert_eq!(ttl("lpex", "b"), -1);
    assert_eq!(text(&db, &[b"OBJECT", b"ENCODING", b"lpex"]), "listpackex");
    assert_eq!(ttl("lpex-rc", "a"), FUTURE + 5);
    assert_eq!(ttl("dictex", "a"), FUTURE);
    assert_eq!(ttl("dictex", "b"), -1);
    assert_eq!(ttl("dictex-rc", "a"), FUTURE + 9);
    assert_eq!(
        hgetall(&db, b"dictex-rc"),
        vec![(b"a".to_vec(), b"x".to_vec())]
    );
    assert_eq!(text(&db, &[b"PEXPIRETIME", b"live-s"]), "2000000000000");
    assert_eq!(text(&db, &[b"PEXPIRETIME", b"lpex"]), "-1");
}

#[test]
fn other_types_and_databases_are_skipped_and_counted_or_refused() {
    let mut f = Rdb::new(10);
    f.byte(0xFA).str(b"redis-ver").str(b"7.0.15");
    f.byte(0xFE).len(0).byte(0xFB).len(9).len(0);
    f.byte(0).str(b"s").str(b"string value");
    f.byte(0)
        .str(b"i")
        .byte(0xC2)
        .b
        .extend_from_slice(&123456i32.to_le_bytes());
    f.byte(1).str(b"l").len(2).str(b"a").str(b"b");
    f.byte(2).str(b"set").len(1).str(b"m");
    f.byte(3)
        .str(b"z")
        .len(2)
        .str(b"m")
        .byte(3)
        .b
        .extend_from_slice(b"1.5");
    f.str(b"n").byte(254); // +inf
    f.byte(5)
        .str(b"z2")
        .len(1)
        .str(b"m")
        .b
        .extend_from_slice(&1.5f64.to_le_bytes());
    f.byte(18).str(b"ql").len(1).len(2).str(b"packed node");
    f.byte(4).str(b"h").len(1).str(b"f").str(b"v");
    // Module value: id, then opcodes (uint, string, double) until 0.
    f.byte(7)
        .str(b"mod")
        .len(12345)
        .len(2)
        .len(7)
        .len(5)
        .str(b"x")
        .len(4);
    f.b.extend_from_slice(&[0; 8]);
    f.len(0);
    // A function library and module aux data.
    f.byte(0xF5).str(b"#!lua name=lib\n");
    f.byte(0xF7).len(99).len(2).len(2).len(0);
    // Database 1.
    f.byte(0xFE).len(1);
    f.byte(4).str(b"h").len(1).str(b"in-db-1").str(b"v");
    f.byte(0).str(b"s1").str(b"x");
    let bytes = f.finish();

    let db0 = db();
    let t = import_bytes(&db0, &bytes, &RdbImportOptions::default()).unwrap();
    assert_eq!(t.keys, 1);
    assert_eq!(t.other_db_keys, 1);
    let skipped: Vec<(&str, u64)> = t.skipped.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(
        skipped,
        vec![
            ("list", 2),
            ("module", 1),
            ("set", 1),
            ("sorted set", 2),
            ("string", 2)
        ]
    );
    assert_eq!(hgetall(&db0, b"h"), vec![(b"f".to_vec(), b"v".to_vec())]);
    assert!(
        t.summary().iter().any(|l| l.contains("2 string")),
        "{:?}",
        t.summary()
    );
    // What the other database held, by type, is said too.
    let others: Vec<((u64, &str), u64)> = t.other_dbs.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(others, vec![((1, "hash"), 1), ((1, "string"), 1)]);
    assert!(
        t.summary().iter().any(
            |l| l == "skipped 1 string key(s) in database 1 (--db picks the database imported)"
        ),
        "{:?}",
        t.summary()
    );

    let db1 = db();
    let t = import_bytes(
        &db1,
        &bytes,
        &RdbImportOptions {
            db: 1,
            strict: false,
        },
    )
    .unwrap();
    assert_eq!((t.keys, t.other_db_keys), (1, 1));
    // Seen from database 1, database 0's other types are listed by type.
    assert_eq!(t.other_dbs.get(&(0, "string")), Some(&2));
    assert_eq!(t.other_dbs.get(&(0, "hash")), Some(&1));
    assert_eq!(
        hgetall(&db1, b"h"),
        vec![(b"in-db-1".to_vec(), b"v".to_vec())]
    );

    let strict = db();
    let err = import_bytes(
        &strict,
        &bytes,
        &RdbImportOptions {
            db: 0,
            strict: true,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("--strict"), "{err}");
    assert_eq!(
        strict.dbsize().unwrap(),
        0,
        "a refused file imports nothing"
    );
}

#[test]
fn damaged_files_are_refused_naming_the_offset() {
    let good = std::fs::read(data("hash-dict-ttl-v10.rdb")).unwrap();
    // A checksum that does not match: nothing is imported.
    let check = |bytes: &[u8], want: &str| check_applied(bytes, want, 1, "");
    // Every truncation is refused.
    for cut in [0, 5, 9, 100, 3000, good.len() - 9, good.len() - 1] {
        check(&good[..cut], "");
    }
    // A flipped byte anywhere: the checksum (or the structure) finds it.
    for at in [20, 200, 1000, 4000, good.len() - 20, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        check(&bad, "");
    }
    let mut bad = good.clone();
    bad[good.len() - 1] ^= 1;
    check(&bad, "checksum mismatch");
    let mut v13 = good.clone();
    v13[5..9].copy_from_slice(b"0013");
    check(&v13, "RDB version 13");
    let mut valkey = good.clone();
    valkey[..6].copy_from_slice(b"VALKEY");
    check(&valkey, "Valkey");
    // Structural damage behind a matching checksum (a writer's bug): the
    // hashes before it are put back and the error says so; with no
    // checksum to trust, the file is checked whole first. Either way
    // nothing is imported. Duplicates are found although Redis only finds them with
    // sanitize-dump-payload.
    let both = |build: &dyn Fn(&mut Rdb), want: &str| {
        let mut f = Rdb::new(10);
        f.byte(4).str(b"before").len(1).str(b"f").str(b"v");
        build(&mut f);
        let mut unsummed = f.finish();
        check_applied(
            &unsummed,
            want,
            1,
            "the 1 hash(es) stored before this point were put back",
        );
        let n = unsummed.len();
        unsummed[n - 8..].fill(0);
        check_applied(&unsummed, want, 1, "");
    };
    both(
        &|f| {
            f.byte(4)
                .str(b"k")
                .len(2)
                .str(b"f")
                .str(b"1")
                .str(b"f")
                .str(b"2");
        },
        "duplicate field",
    );
    both(
        &|f| {
            f.byte(16)
                .str(b"k")
                .listpack(&[Ok(b"f"), Ok(b"1"), Ok(b"f"), Ok(b"2")]);
        },
        "duplicate field",
    );
    both(
        &|f| {
            f.byte(16).str(b"before").listpack(&[Ok(b"g"), Ok(b"2")]);
        },
        "duplicate key 'before'",
    );
    both(
        &|f| {
            f.byte(16)
                .str(b"k")
                .listpack(&[Ok(b"f"), Ok(b"1"), Ok(b"g")]);
        },
        "odd number",
    );
    // A length far beyond the file.
    both(
        &|f| {
            f.byte(4)
                .str(b"k")
                .byte(0x81)
                .b
                .extend_from_slice(&u64::MAX.to_be_bytes());
        },
        "fields cannot fit",
    );
}

/// Imports `bytes` into a database holding one key: the import fails
/// naming the offset and `want`, and leaves `keys` keys.
fn check_applied(bytes: &[u8], want: &str, keys: i64, also: &str) {
    let db = db();
    db.hset("keep", &[("f", "v")]).unwrap();
    let err = import_bytes(&db, bytes, &RdbImportOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("offset"), "{msg}");
    assert!(msg.contains(want), "wanted {want:?} in {msg}");
    assert!(msg.contains(also), "wanted {also:?} in {msg}");
    assert_eq!(db.dbsize().unwrap(), keys, "{msg}");
}

#[test]
fn a_zero_checksum_is_accepted_with_a_warning_and_trailing_bytes_are_reported() {
    let mut bytes = std::fs::read(data("hash-minimal-v10.rdb")).unwrap();
    let n = bytes.len();
    bytes[n - 8..].fill(0);
    bytes.extend_from_slice(b"junk");
    let db = db();
    let t = import_bytes(&db, &bytes, &RdbImportOptions::default()).unwrap();
    assert_eq!(t.keys, 3);
    assert_eq!(t.warnings.len(), 2, "{:?}", t.warnings);
}

#[test]
fn an_import_replaces_keys_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db")).unwrap();
    db.hset("m:plain", &[("old", "field")]).unwrap();
    db.hset("mine", &[("f", "v")]).unwrap();
    let t = db.import_rdb(data("hash-minimal-v10.rdb")).unwrap();
    assert_eq!((t.keys, t.replaced), (3, 1));
    let before: Vec<_> = ["m:plain", "m:lp", "m:ttl", "mine"]
        .iter()
        .map(|k| {
            (
                hgetall(&db, k.as_bytes()),
                text(&db, &[b"PEXPIRETIME", k.as_bytes()]),
            )
        })
        .collect();
    assert_eq!(
        before[0].0,
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"hello".to_vec())
        ]
    );
    db.close().unwrap();
    let db = Db::open(dir.path().join("db")).unwrap();
    let after: Vec<_> = ["m:plain", "m:lp", "m:ttl", "mine"]
        .iter()
        .map(|k| {
            (
                hgetall(&db, k.as_bytes()),
                text(&db, &[b"PEXPIRETIME", k.as_bytes()]),
            )
        })
        .collect();
    assert_eq!(before, after);
}

/// A key's pairs, PEXPIRETIME and OBJECT ENCODING.
type View = (Vec<(Vec<u8>, Vec<u8>)>, Reply, Reply);

/// What a redis-server reports for `key`: HGETALL (sorted unless the
/// encoding keeps order), PEXPIRETIME, OBJECT ENCODING.
fn redis_view(c: &mut RespClient, key: &[u8]) -> View {
    let Reply::Array(items) = c.call(&[b"HGETALL".as_slice(), key]).unwrap().unwrap() else {
        panic!("HGETALL");
    };
    let enc = c
        .call(&[b"OBJECT".as_slice(), b"ENCODING", key])
        .unwrap()
        .unwrap();
    let mut pairs: Vec<_> = items
        .chunks(2)
        .map(|p| (bulk(&p[0]), bulk(&p[1])))
        .collect();
    if enc != Reply::Bulk(b"listpack".to_vec()) {
        pairs.sort();
    }
    let at = c.call(&[b"PEXPIRETIME".as_slice(), key]).unwrap().unwrap();
    (pairs, at, enc)
}

fn hashkv_view(db: &Db, key: &[u8]) -> View {
    let enc = db
        .execute(&[b"OBJECT".as_slice(), b"ENCODING", key])
        .unwrap();
    let mut pairs = hgetall(db, key);
    if enc != Reply::Bulk(b"listpack".to_vec()) {
        pairs.sort();
    }
    let at = db.execute(&[b"PEXPIRETIME".as_slice(), key]).unwrap();
    (pairs, at, enc)
}

fn wait_loaded(c: &mut RespClient) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.call(&[b"DBSIZE".as_slice()]).unwrap() {
            Ok(Reply::Integer(n)) => return n,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("DBSIZE: {other:?}"),
        }
    }
}

/// Hash keys of the server's current db.
fn redis_hashes(c: &mut RespClient) -> Vec<Vec<u8>> {
    let Reply::Array(keys) = c.call(&[b"KEYS".as_slice(), b"*"]).unwrap().unwrap() else {
        panic!("KEYS");
    };
    let mut out = Vec::new();
    for k in keys {
        let k = bulk(&k);
        if c.call(&[b"TYPE".as_slice(), &k]).unwrap().unwrap() == Reply::Status("hash".into()) {
            out.push(k);
        }
    }
    out.sort();
    out
}

#[test]
fn a_dump_redis_saves_imports_as_redis_has_it_and_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let Some(server) = redis_or_skip(
        "a_dump_redis_saves_imports_as_redis_has_it_and_goes_back",
        &["--dir", &d, "--dbfilename", "dump.rdb"],
    ) else {
        return;
    };
    let mut c = RespClient::connect(server.port).unwrap();
    fn call_on(c: &mut RespClient, argv: &[&[u8]]) {
        if let Err(e) = c.call(argv).unwrap() {
            panic!("{:?}: {e}", String::from_utf8_lossy(argv[0]));
        }
    }
    let mut call = |argv: &[&[u8]]| call_on(&mut c, argv);
    // Hashes: small, integer-looking values of every width, binary bytes,
    // values over 64 bytes (dict), more than 512 fields (dict), key TTLs.
    let ints = common::INT_EDGES;
    let mut argv: Vec<Vec<u8>> = vec![b"HSET".to_vec(), b"ints".to_vec()];
    for (i, v) in ints.iter().enumerate() {
        argv.push(format!("f{i}").into_bytes());
        argv.push(v.as_bytes().to_vec());
    }
    call(&argv.iter().map(Vec::as_slice).collect::<Vec<_>>());
    call(&[b"HSET", b"bin\x00\xff", b"\x01\x02", b"\xfe\x00v"]);
    call(&[b"HSET", b"12345", b"67", b"89"]);
    let long = "x".repeat(65);
    call(&[b"HSET", b"long", b"f", long.as_bytes(), b"g", b"short"]);
    let text = "the quick brown fox jumps over the lazy dog ".repeat(40);
    call(&[b"HSET", b"text", b"t", text.as_bytes()]);
    let mut argv: Vec<Vec<u8>> = vec![b"HSET".to_vec(), b"many".to_vec()];
    for i in 0..600 {
        argv.push(format!("m{i}").into_bytes());
        argv.push(format!("{}", i * 1000).into_bytes());
    }
    call(&argv.iter().map(Vec::as_slice).collect::<Vec<_>>());
    for i in 0..200 {
        let k = format!("user:{i}");
        let name = format!("name {i}");
        let age = format!("{}", 20 + i);
        call(&[
            b"HSET",
            k.as_bytes(),
            b"name",
            name.as_bytes(),
            b"age",
            age.as_bytes(),
        ]);
    }
    call(&[b"PEXPIREAT", b"user:3", b"4102444800000"]);
    call(&[b"PEXPIREAT", b"many", b"4102444800123"]);
    call(&[b"PEXPIREAT", b"long", b"4102444800999"]);
    // Other types, which the import skips and counts.
    call(&[b"SET", b"str", b"value"]);
    call(&[b"SET", b"num", b"12345"]);
    call(&[b"RPUSH", b"list", b"a", b"b", b"c"]);
    call(&[b"SADD", b"intset", b"1", b"2", b"3"]);
    call(&[b"SADD", b"set", b"a", b"b"]);
    call(&[b"ZADD", b"zset", b"1.5", b"a", b"2", b"b"]);
    let big: Vec<String> = (0..200)
        .map(|i| format!("member-{i}-{}", "y".repeat(70)))
        .collect();
    let mut zargv: Vec<&[u8]> = vec![b"ZADD", b"bigzset"];
    let scores: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    for (s, m) in scores.iter().zip(&big) {
        zargv.push(s.as_bytes());
        zargv.push(m.as_bytes());
    }
    call(&zargv);
    call(&[b"XADD", b"stream", b"*", b"f", b"v"]);
    call(&[b"XGROUP", b"CREATE", b"stream", b"g", b"0"]);
    call(&[
        b"XREADGROUP",
        b"GROUP",
        b"g",
        b"c1",
        b"COUNT",
        b"1",
        b"STREAMS",
        b"stream",
        b">",
    ]);
    // A hash in another database.
    call(&[b"SELECT", b"2"]);
    call(&[b"HSET", b"elsewhere", b"f", b"v"]);
    call(&[b"SELECT", b"0"]);

    let file = dir.path().join("dump.rdb");
    let mut sizes = Vec::new();
    for compression in ["yes", "no"] {
        call_on(
            &mut c,
            &[b"CONFIG", b"SET", b"rdbcompression", compression.as_bytes()],
        );
        call_on(&mut c, &[b"SAVE"]);
        sizes.push(std::fs::metadata(&file).unwrap().len());
        let db = db();
        let t = db.import_rdb(&file).unwrap();
        let hashes = redis_hashes(&mut c);
        assert_eq!(t.keys, hashes.len() as u64, "{compression}");
        assert_eq!(t.other_db_keys, 1);
        let skipped: Vec<(&str, u64)> = t.skipped.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(
            skipped,
            vec![
                ("list", 1),
                ("set", 2),
                ("sorted set", 2),
                ("stream", 1),
                ("string", 2)
            ],
            "{compression}"
        );
        for k in &hashes {
            assert_eq!(
                hashkv_view(&db, k),
                redis_view(&mut c, k),
                "{} (rdbcompression {compression})",
                String::from_utf8_lossy(k)
            );
        }
        assert_eq!(db.dbsize().unwrap(), hashes.len() as i64);
        if compression == "yes" {
            // And back: hashkv's export loads in a second server with the
            // same contents.
            let dir2 = tempfile::tempdir().unwrap();
            db.export_rdb(dir2.path().join("dump.rdb")).unwrap();
            let d2 = dir2.path().display().to_string();
            let second = common::start_redis(&["--dir", &d2, "--dbfilename", "dump.rdb"]).unwrap();
            let mut c2 = RespClient::connect(second.port).unwrap();
            assert_eq!(wait_loaded(&mut c2), hashes.len() as i64);
            for k in &hashes {
                assert_eq!(
                    redis_view(&mut c2, k),
                    redis_view(&mut c, k),
                    "{} after Redis -> hashkv -> Redis",
                    String::from_utf8_lossy(k)
                );
            }
        }
    }
    assert!(sizes[0] < sizes[1], "LZF made the dump smaller: {sizes:?}");
}

#[test]
fn version_12_export_round_trips_field_ttls() {
    let src = db();
    src.hset("small", &[("a", "1"), ("b", "2"), ("c", "3")])
        .unwrap();
    src.hpexpire("small", 3_600_000, &["b"]).unwrap();
    let many: Vec<(String, String)> = (0..600)
        .map(|i| (format!("f{i}"), format!("v{i}")))
        .collect();
    src.hset("big", &many).unwrap();
    src.hpexpire("big", 7_200_000, &["f7", "f9"]).unwrap();
    src.hset("plain", &[("x", "y")]).unwrap();
    src.execute(&["PEXPIREAT", "plain", "4102444800000"])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v12.rdb");
    src.export_rdb_to(
        &mut std::io::BufWriter::new(std::fs::File::create(&file).unwrap()),
        &hashkv::interop::RdbExportOptions {
            version: RdbVersion::V12,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(&std::fs::read(&file).unwrap()[..9], b"REDIS0012");
    let dst = db();
    let t = dst.import_rdb(&file).unwrap();
    assert_eq!(t.keys, 3);
    for key in ["small", "big", "plain"] {
        // Order too for the listpacks; a dict's order is its table's.
        let (mut a, mut b) = (hgetall(&dst, key.as_bytes()), hgetall(&src, key.as_bytes()));
        if key == "big" {
            a.sort();
            b.sort();
        }
        assert!(a == b, "{key}");
        for cmd in ["PEXPIRETIME", "OBJECT ENCODING"] {
            let mut argv: Vec<&str> = cmd.split(' ').collect();
            argv.push(key);
            assert_eq!(
                dst.execute(&argv).unwrap(),
                src.execute(&argv).unwrap(),
                "{cmd} {key}"
            );
        }
        let fields: Vec<String> = hgetall(&src, key.as_bytes())
            .into_iter()
            .map(|(f, _)| String::from_utf8(f).unwrap())
            .collect();
        let mut argv = vec![
            "HPEXPIRETIME".to_owned(),
            key.to_owned(),
            "FIELDS".to_owned(),
            fields.len().to_string(),
        ];
        argv.extend(fields);
        assert_eq!(
            dst.execute(&argv).unwrap(),
            src.execute(&argv).unwrap(),
            "{key}"
        );
    }
}

/// A listpack whose values are longer than `hash-max-listpack-value`
/// loads as a listpack, as Redis 7.0 loads it (it checks only the entry
/// count of a listpack or ziplist; a zipmap or a dict is converted for a
/// long element too).
#[test]
fn a_listpack_with_long_values_stays_a_listpack_as_redis_loads_it() {
    let long = vec![b'x'; 100];
    let mut f = Rdb::new(10);
    f.byte(16)
        .str(b"lp")
        .listpack(&[Ok(b"a"), Ok(&long), Ok(b"b"), Err(1)]);
    let bytes = f.finish();
    let db = db();
    import_bytes(&db, &bytes, &RdbImportOptions::default()).unwrap();
    assert_eq!(
        db.object_encoding("lp").unwrap().as_deref(),
        Some("listpack")
    );
    assert_eq!(db.hget("lp", "a").unwrap(), Some(long.clone()));
    // A write of a long value converts it, as in Redis.
    db.hset("lp", &[(&b"c"[..], &long[..])]).unwrap();
    assert_eq!(
        db.object_encoding("lp").unwrap().as_deref(),
        Some("hashtable")
    );
    // Redis 7.0.15 loads the same file so.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dump.rdb"), &bytes).unwrap();
    let Some(server) = common::redis_or_skip(
        "a_listpack_with_long_values_stays_a_listpack",
        &[
            "--dir",
            &dir.path().display().to_string(),
            "--dbfilename",
            "dump.rdb",
        ],
    ) else {
        return;
    };
    let mut c = RespClient::connect(server.port).unwrap();
    assert_eq!(wait_loaded(&mut c), 1);
    let enc = c
        .call(&[b"OBJECT".as_slice(), b"ENCODING", b"lp"])
        .unwrap()
        .unwrap();
    assert_eq!(enc, Reply::Bulk(b"listpack".to_vec()));
}

/// A function library in the format of Redis 7.0's release candidates
/// (opcode 246: name, engine, an optional description, the code) is
/// skipped as other functions are; Redis 7.0.15 loads such a file.
#[test]
fn a_release_candidate_function_record_is_skipped() {
    let mut f = Rdb::new(10);
    f.byte(0xF6)
        .str(b"mylib")
        .str(b"lua")
        .len(1)
        .str(b"a library")
        .str(b"redis.register_function('f', function() return 1 end)");
    f.byte(16).str(b"h").listpack(&[Ok(b"a"), Ok(b"1")]);
    let bytes = f.finish();
    let db = db();
    let t = import_bytes(&db, &bytes, &RdbImportOptions::default()).unwrap();
    assert_eq!(t.keys, 1);
    assert_eq!(db.hget("h", "a").unwrap(), Some(b"1".to_vec()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dump.rdb"), &bytes).unwrap();
    let Some(server) = common::redis_or_skip(
        "a_release_candidate_function_record_is_skipped",
        &[
            "--dir",
            &dir.path().display().to_string(),
            "--dbfilename",
            "dump.rdb",
        ],
    ) else {
        return;
    };
    let mut c = RespClient::connect(server.port).unwrap();
    assert_eq!(wait_loaded(&mut c), 1);
}

/// A file refused after some of its hashes went in (here `--strict` meets a
/// string after two hashes, behind a matching checksum) leaves the
/// database as it was: the keys it stored are removed, the ones it
/// replaced put back, and the log says so (a reopen agrees).
#[test]
fn a_refused_file_leaves_the_database_as_it_was() {
    let mut f = Rdb::new(10);
    f.byte(16).str(b"new").listpack(&[Ok(b"a"), Ok(b"1")]);
    f.byte(16).str(b"old").listpack(&[Ok(b"b"), Ok(b"2")]);
    f.byte(0).str(b"s").str(b"x");
    let bytes = f.finish();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::open(&path).unwrap();
    db.hset("old", &[("kept", "yes")]).unwrap();
    db.pexpire("old", 600_000).unwrap();
    let err = import_bytes(
        &db,
        &bytes,
        &RdbImportOptions {
            db: 0,
            strict: true,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("--strict"), "{err}");
    assert!(err.to_string().contains("nothing was imported"), "{err}");
    let check = |db: &Db| {
        assert_eq!(db.dbsize().unwrap(), 1);
        assert_eq!(
            hgetall(db, b"old"),
            vec![(b"kept".to_vec(), b"yes".to_vec())]
        );
        assert!(db.pttl("old").unwrap() > 0);
    };
    check(&db);
    drop(db);
    check(&Db::open(&path).unwrap());
}
