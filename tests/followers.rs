//! Readers beside a writer in one process: read-only opens, catch-up
//! across segment switches, snapshots and reloads, READONLY for every
//! write, damage behind a reader, and the change feed. (The test with
//! writer and reader processes killed at random is `tests/follow_processes.rs`.)

use std::path::Path;
use std::time::Duration;

use hashkv::feed::{ChangeKind, FieldTtl, RecvError};
use hashkv::{Db, Error, LogPosition, Options, Reply};

fn manual() -> Options {
    Options::default().follow(None).no_auto_snapshots()
}

/// Every key with its fields and TTL, sorted: what two handles must agree on.
fn dump(db: &Db) -> Vec<String> {
    let mut out = Vec::new();
    for key in db.iter_keys_matching("*") {
        let mut pairs = db.hgetall(&key).unwrap();
        pairs.sort();
        let ttl = db.pttl(&key).unwrap();
        out.push(format!(
            "{} ttl={} {:?}",
            String::from_utf8_lossy(&key),
            if ttl >= 0 { "set" } else { "none" },
            pairs
        ));
    }
    out.sort();
    out
}

fn workload(db: &Db, round: usize) {
    for i in 0..50 {
        let k = format!("user:{}", (i * 7 + round) % 23);
        db.hset(
            &k,
            &[("name", format!("n{i}")), ("round", round.to_string())],
        )
        .unwrap();
        db.hincrby(&k, "visits", 1).unwrap();
        if i % 9 == 0 {
            db.del(&[format!("user:{}", (i + round) % 23)]).unwrap();
        }
        if i % 11 == 0 {
            db.pexpire(&k, 600_000).unwrap();
        }
        if i % 13 == 0 {
            db.execute(&["RENAME", &k, &format!("moved:{i}")]).ok();
        }
    }
}

#[test]
fn a_reader_follows_writes_segment_switches_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let w = Db::open_with(dir.path(), manual()).unwrap();
    workload(&w, 0);
    let r = Db::open_read_only_with(dir.path(), manual()).unwrap();
    assert!(r.is_read_only() && !w.is_read_only());
    assert_eq!(dump(&r), dump(&w));
    assert_eq!(r.log_position(), w.log_position());
    for round in 1..6 {
        workload(&w, round);
        if round % 2 == 0 {
            w.snapshot().unwrap();
        }
        r.catch_up().unwrap();
        assert_eq!(dump(&r), dump(&w), "round {round}");
        assert_eq!(r.log_position(), w.log_position(), "round {round}");
    }
    // Two snapshots the reader did not follow: the log it had not read is
    // gone, so it loads the directory again and says so.
    workload(&w, 10);
    w.snapshot().unwrap();
    workload(&w, 11);
    w.snapshot().unwrap();
    workload(&w, 12);
    let mut sub = r.subscribe();
    r.catch_up().unwrap();
    assert_eq!(dump(&r), dump(&w));
    let st = r.reader_status().unwrap();
    assert_eq!(st.reloads, 1, "{st:?}");
    assert!(st.notes.iter().any(|n| n.contains("reloaded")), "{st:?}");
    // The changes it applied before the gap come first, then the reset.
    let mut before_reset = 0;
    loop {
        match sub.try_recv() {
            Ok(_) => before_reset += 1,
            Err(RecvError::Reset) => break,
            Err(e) => panic!("{e} after {before_reset} changes"),
        }
    }
    assert_eq!(sub.try_recv(), Err(RecvError::Empty));
}

#[test]
fn a_background_reader_sees_a_write_within_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    let w = Db::open(dir.path()).unwrap();
    w.hset("k", &[("f", "0")]).unwrap();
    let r = Db::open_read_only(dir.path()).unwrap();
    for i in 1..=200 {
        w.hset("k", &[("f", i.to_string())]).unwrap();
        let started = std::time::Instant::now();
        while r.hget("k", "f").unwrap() != Some(i.to_string().into_bytes()) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "write {i} never arrived"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

#[test]
fn every_write_answers_readonly_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let w = Db::open_with(dir.path(), manual()).unwrap();
    w.hset("h", &[("a", "1"), ("b", "x")]).unwrap();
    w.pexpire("h", 600_000).unwrap();
    let r = Db::open_read_only_with(dir.path(), manual()).unwrap();
    let before = dump(&r);
    let writes: &[&[&str]] = &[
        &["HSET", "h", "a", "2"],
        &["HMSET", "h", "a", "2"],
        &["HSETNX", "h", "c", "2"],
        &["HDEL", "h", "a"],
        &["HINCRBY", "h", "b", "1"], // a type error on a writer: READONLY first
        &["HINCRBYFLOAT", "h", "a", "1.5"],
        &["DEL", "h"],
        &["UNLINK", "h"],
        &["RENAME", "h", "g"],
        &["RENAMENX", "h", "g"],
        &["COPY", "h", "g"],
        &["EXPIRE", "h", "10"],
        &["PEXPIRE", "h", "10", "NX"],
        &["EXPIREAT", "h", "10"],
        &["PEXPIREAT", "h", "10"],
        &["PERSIST", "h"],
        &["FLUSHDB"],
        &["HEXPIRE", "h", "10", "FIELDS", "1", "a"],
        &["HPEXPIRE", "h", "10", "FIELDS", "1", "a"],
        &["HEXPIREAT", "h", "10", "FIELDS", "1", "a"],
        &["HPEXPIREAT", "h", "10", "FIELDS", "1", "a"],
        &["HPERSIST", "h", "FIELDS", "1", "a"],
        &["HGETDEL", "h", "FIELDS", "1", "a"],
        &["HGETEX", "h", "FIELDS", "1", "a"],
        &["HSETEX", "h", "PX", "10", "FIELDS", "1", "a", "b"],
        &["HSET", "h", "a", "1", "SYNTAXERROR_AFTER_ARITY"], // odd pairs: Redis says READONLY
    ];
    for argv in writes {
        let err = r.execute(argv).unwrap_err();
        assert!(matches!(err, Error::ReadOnly), "{argv:?}: {err}");
        assert_eq!(
            err.to_string(),
            "READONLY You can't write against a read only replica."
        );
    }
    // Arity comes first, as on a replica.
    let err = r.execute(&["HSET", "h"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ERR wrong number of arguments for 'hset' command"
    );
    // The typed API, pipelines, closure transactions, snapshots.
    assert!(matches!(r.hset("h", &[("a", "3")]), Err(Error::ReadOnly)));
    assert!(matches!(r.hincrby("h", "a", 1), Err(Error::ReadOnly)));
    assert!(matches!(r.del(&["h"]), Err(Error::ReadOnly)));
    assert!(matches!(r.snapshot(), Err(Error::ReadOnly)));
    let mut p = r.pipeline();
    p.hget("h", "a")
        .hset("h", &[("a", "9")])
        .cmd(&["HDEL", "h", "a"]);
    let replies = p.run();
    assert_eq!(replies[0].as_ref().unwrap(), &Reply::Bulk(b"1".to_vec()));
    assert!(matches!(replies[1], Err(Error::ReadOnly)));
    assert!(matches!(replies[2], Err(Error::ReadOnly)));
    let t = r.transaction(&["h"], |tx| tx.hset("h", &[("a", "5")]));
    assert!(matches!(t, Err(Error::ReadOnly)), "{t:?}");
    let got = r.transaction(&["h"], |tx| tx.hget("h", "a")).unwrap();
    assert_eq!(got.as_deref(), Some(&b"1"[..]));
    assert_eq!(dump(&r), before);
    assert_eq!(dump(&w), before);
}

#[test]
fn multi_exec_of_reads_runs_and_a_queued_write_aborts_it() {
    let dir = tempfile::tempdir().unwrap();
    let w = Db::open_with(dir.path(), manual()).unwrap();
    w.hset("a", &[("n", "1")]).unwrap();
    let r = Db::open_read_only_with(dir.path(), manual()).unwrap();
    let mut s = r.session();
    s.execute(&["MULTI"]).unwrap();
    s.execute(&["HGET", "a", "n"]).unwrap();
    s.execute(&["EXISTS", "a"]).unwrap();
    assert_eq!(
        s.execute(&["EXEC"]).unwrap(),
        Reply::Array(vec![Reply::Bulk(b"1".to_vec()), Reply::Integer(1)])
    );
    s.execute(&["MULTI"]).unwrap();
    assert!(matches!(
        s.execute(&["HSET", "a", "n", "2"]),
        Err(Error::ReadOnly)
    ));
    let err = s.execute(&["EXEC"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "EXECABORT Transaction discarded because of previous errors."
    );
    // WATCH on a reader: a change that arrives through the log aborts EXEC.
    s.execute(&["WATCH", "a"]).unwrap();
    w.hset("a", &[("n", "2")]).unwrap();
    r.catch_up().unwrap();
    s.execute(&["MULTI"]).unwrap();
    s.execute(&["HGET", "a", "n"]).unwrap();
    assert_eq!(s.execute(&["EXEC"]).unwrap(), Reply::Nil);
}

#[test]
fn expired_keys_are_invisible_on_a_reader_until_the_writer_deletes_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = hashkv::ManualClock::new(1_000_000);
    let o = manual().clock(clock.clone()).active_expiry(false);
    let w = Db::open_with(dir.path(), o.clone()).unwrap();
    w.hset("k", &[("f", "v")]).unwrap();
    w.pexpire("k", 100).unwrap();
    w.hset("h", &[("a", "1"), ("b", "2")]).unwrap();
    w.hpexpire("h", 100, &["a"]).unwrap();
    let r = Db::open_read_only_with(dir.path(), o).unwrap();
    clock.advance(500);
    assert_eq!(r.hget("k", "f").unwrap(), None);
    assert_eq!(r.hget("h", "a").unwrap(), None);
    assert_eq!(r.exists(&["k"]).unwrap(), 0);
    // Still there, invisible: DBSIZE counts it, as on a replica.
    assert_eq!(r.dbsize().unwrap(), 2);
    let pos = r.log_position();
    assert_eq!(r.catch_up().unwrap(), 0);
    assert_eq!(r.log_position(), pos, "reads logged nothing");
    // The writer's lazy expiry arrives as a deletion.
    assert_eq!(w.hget("k", "f").unwrap(), None);
    assert_eq!(w.hget("h", "a").unwrap(), None);
    assert_eq!(r.catch_up().unwrap(), 2);
    assert_eq!(r.dbsize().unwrap(), 1);
}

#[test]
fn a_reader_survives_the_writer_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let w = Db::open_with(dir.path(), manual()).unwrap();
    workload(&w, 0);
    let r = Db::open_read_only_with(dir.path(), manual()).unwrap();
    w.close().unwrap();
    r.catch_up().unwrap();
    for round in 1..4 {
        let w = Db::open_with(dir.path(), manual()).unwrap();
        workload(&w, round);
        r.catch_up().unwrap();
        assert_eq!(dump(&r), dump(&w), "round {round}");
        drop(w);
    }
}

#[test]
fn a_reader_opens_beside_no_writer_and_takes_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    {
        let w = Db::open(dir.path()).unwrap();
        workload(&w, 3);
    }
    let r1 = Db::open_read_only(dir.path()).unwrap();
    let r2 = Db::open_read_only(dir.path()).unwrap();
    // A writer can still open it.
    let w = Db::open_with(dir.path(), manual()).unwrap();
    assert_eq!(dump(&r1), dump(&w));
    assert_eq!(dump(&r2), dump(&w));
    // And a reader of a directory that is not a database says so.
    let empty = tempfile::tempdir().unwrap();
    let err = Db::open_read_only(empty.path()).unwrap_err();
    assert!(err.to_string().contains("no database here"), "{err}");
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "aof"))
        .collect();
    v.sort();
    v
}

/// A flipped byte in a record the reader has not read yet, followed by a
/// sync mark that vouches for it: damage, reported with file and offset,
/// while the reader keeps serving what it had.
#[test]
fn damage_behind_a_reader_is_reported_and_the_last_state_served() {
    let dir = tempfile::tempdir().unwrap();
    let w = Db::open_with(dir.path(), manual()).unwrap();
    w.hset("before", &[("f", "1")]).unwrap();
    let r = Db::open_read_only_with(dir.path(), manual()).unwrap();
    let at = w.log_position();
    w.hset("damaged", &[("f", "2")]).unwrap();
    w.hset("after", &[("f", "3")]).unwrap();
    w.sync().unwrap(); // writes a sync mark vouching for both
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[at.offset as usize + 12] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    // The first look sees a frame that may still be being written; the
    // proof is looked for once it stays (20 ms).
    let mut err = None;
    for _ in 0..50 {
        match r.catch_up() {
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("the damage is reported");
    match &err {
        Error::Corrupt {
            file,
            offset,
            reason,
        } => {
            assert!(
                file.ends_with(seg.file_name().unwrap().to_str().unwrap()),
                "{file}"
            );
            assert_eq!(*offset, at.offset);
            assert!(reason.contains("sync mark"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(r.hget("before", "f").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(r.hget("damaged", "f").unwrap(), None);
    assert_eq!(r.hget("after", "f").unwrap(), None);
    assert!(r.catch_up().is_err(), "reported again");
    assert!(r.reader_status().unwrap().damage.is_some());
}

#[test]
fn a_garbage_manifest_is_reported_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let w = Db::open_with(dir.path(), manual()).unwrap();
    w.hset("a", &[("f", "1")]).unwrap();
    let r = Db::open_read_only_with(dir.path(), manual()).unwrap();
    drop(w);
    let good = std::fs::read(dir.path().join("MANIFEST")).unwrap();
    std::fs::write(dir.path().join("MANIFEST"), b"\x00garbage\xff").unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let err = r.catch_up().unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert_eq!(r.hget("a", "f").unwrap().as_deref(), Some(&b"1"[..]));
    // A reader opened now refuses, naming MANIFEST.
    let err = Db::open_read_only(dir.path()).unwrap_err();
    assert!(err.to_string().contains("MANIFEST"), "{err}");
    std::fs::write(dir.path().join("MANIFEST"), good).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    r.catch_up().unwrap();
}

#[test]
fn the_feed_gives_each_change_in_log_order_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let w = Db::open_with(dir.path(), manual()).unwrap();
    let r = Db::open_read_only_with(dir.path(), manual()).unwrap();
    let mut ws = w.subscribe();
    let mut rs = r.subscribe();
    let mut users = w.subscribe_matching("user:*");
    w.hset("user:1", &[("name", "Alice")]).unwrap();
    w.hincrby("user:1", "age", 25).unwrap();
    w.execute(&[
        "HSETEX",
        "user:1",
        "PXAT",
        "4000000000000",
        "FIELDS",
        "1",
        "tmp",
        "x",
    ])
    .unwrap();
    w.execute(&["HSETEX", "user:1", "KEEPTTL", "FIELDS", "1", "tmp", "y"])
        .unwrap();
    w.execute(&[
        "HPEXPIREAT",
        "user:1",
        "4000000000001",
        "FIELDS",
        "1",
        "tmp",
    ])
    .unwrap();
    w.execute(&["HPERSIST", "user:1", "FIELDS", "1", "tmp"])
        .unwrap();
    w.execute(&["PEXPIREAT", "user:1", "4000000000000"])
        .unwrap();
    w.execute(&["PERSIST", "user:1"]).unwrap();
    w.execute(&["COPY", "user:1", "user:2"]).unwrap();
    w.execute(&["RENAME", "user:2", "other"]).unwrap();
    w.execute(&["HDEL", "user:1", "tmp"]).unwrap();
    w.del(&["other", "user:1"]).unwrap();
    w.hset("other", &[("f", "v")]).unwrap();
    w.transaction(&["user:3", "other"], |tx| {
        tx.hset("user:3", &[("a", "1")])?;
        tx.hset("other", &[("b", "2")])
    })
    .unwrap();
    w.execute(&["FLUSHDB"]).unwrap();
    let expected = [
        "hset user:1 name Alice",
        "hset user:1 age 25",
        "hsetex user:1 PXAT 4000000000000 FIELDS 1 tmp x",
        "hsetex user:1 KEEPTTL FIELDS 1 tmp y",
        "hpexpireat user:1 4000000000001 FIELDS 1 tmp",
        "hpersist user:1 FIELDS 1 tmp",
        "pexpireat user:1 4000000000000",
        "persist user:1",
        "copy user:1 user:2 REPLACE",
        "rename user:2 other",
        "hdel user:1 tmp",
        "del other user:1",
        "hset other f v",
        "multi ; hset user:3 a 1 ; hset other b 2 ; exec",
        "flushdb",
    ];
    let mut last = LogPosition::default();
    for want in expected {
        let c = ws.try_recv().unwrap();
        assert_eq!(c.to_cli_line(), want);
        assert!(c.position > last);
        last = c.position;
    }
    assert_eq!(last, w.log_position());
    assert_eq!(ws.try_recv(), Err(RecvError::Empty));
    // The reader feeds the same changes, with the same positions, as it
    // applies them.
    r.catch_up().unwrap();
    let mut w2 = w.subscribe_from(LogPosition::new(1, 0)).unwrap();
    for want in expected {
        let a = rs.try_recv().unwrap();
        let b = w2.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(a.to_cli_line(), want);
        assert_eq!(a, b);
    }
    // The pattern keeps what concerns user:* keys.
    let got: Vec<String> = std::iter::from_fn(|| users.try_recv().ok())
        .map(|c| c.to_cli_line())
        .collect();
    assert_eq!(
        got,
        [
            "hset user:1 name Alice",
            "hset user:1 age 25",
            "hsetex user:1 PXAT 4000000000000 FIELDS 1 tmp x",
            "hsetex user:1 KEEPTTL FIELDS 1 tmp y",
            "hpexpireat user:1 4000000000001 FIELDS 1 tmp",
            "hpersist user:1 FIELDS 1 tmp",
            "pexpireat user:1 4000000000000",
            "persist user:1",
            "copy user:1 user:2 REPLACE",
            "rename user:2 other",
            "hdel user:1 tmp",
            "del user:1",
            "multi ; hset user:3 a 1 ; exec",
            "flushdb",
        ]
    );
}

#[test]
fn subscribe_from_resumes_after_a_position_and_joins_the_live_changes() {
    let dir = tempfile::tempdir().unwrap();
    let w = Db::open_with(dir.path(), manual()).unwrap();
    let mut positions = Vec::new();
    for i in 0..300 {
        w.hset(format!("k{i}"), &[("v", i.to_string())]).unwrap();
        positions.push(w.log_position());
        if i == 100 {
            w.sync().unwrap(); // a sync mark between records
        }
    }
    let from = positions[149];
    let mut s = w.subscribe_from(from).unwrap();
    let writer = {
        let w = w.clone();
        std::thread::spawn(move || {
            for i in 300..2000 {
                w.hset(format!("k{i}"), &[("v", i.to_string())]).unwrap();
            }
        })
    };
    for i in 150..2000 {
        let c = s.recv_timeout(Duration::from_secs(10)).unwrap();
        match &c.kind {
            ChangeKind::HSet { key, field_ttl, .. } => {
                assert_eq!(key, format!("k{i}").as_bytes());
                assert_eq!(*field_ttl, FieldTtl::Clear);
            }
            other => panic!("{other:?}"),
        }
    }
    writer.join().unwrap();
    assert_eq!(s.try_recv(), Err(RecvError::Empty));
    // Positions that are not a record's end, or past the end, are refused.
    let bad = LogPosition::new(from.segment, from.offset + 1);
    assert!(matches!(
        w.subscribe_from(bad),
        Err(Error::PositionGone { .. })
    ));
    let past = LogPosition::new(from.segment, w.log_position().offset + 100);
    assert!(matches!(
        w.subscribe_from(past),
        Err(Error::PositionGone { .. })
    ));
    // A snapshot drops the segment: the position is gone.
    w.snapshot().unwrap();
    let err = w.subscribe_from(from).unwrap_err();
    assert!(err.to_string().contains("dropped"), "{err}");
    // The current position after the snapshot works.
    let mut s = w.subscribe_from(w.log_position()).unwrap();
    w.hset("new", &[("f", "1")]).unwrap();
    assert_eq!(
        s.recv_timeout(Duration::from_secs(5))
            .unwrap()
            .to_cli_line(),
        "hset new f 1"
    );
}

#[test]
fn a_slow_subscriber_is_told_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let w = Db::open_with(dir.path(), manual().change_feed_capacity(100)).unwrap();
    let mut s = w.subscribe();
    for i in 0..250 {
        w.hset("k", &[("f", i.to_string())]).unwrap();
    }
    assert_eq!(s.try_recv(), Err(RecvError::Lagged(150)));
    let c = s.try_recv().unwrap();
    assert_eq!(c.to_cli_line(), "hset k f 150");
    drop(w);
    for _ in 0..99 {
        s.try_recv().unwrap();
    }
    assert_eq!(s.try_recv(), Err(RecvError::Closed));
}

/// An RDB import changes the writer's keys without commands: each key is
/// logged whole, so a reader and a subscriber see it as the writer has it.
#[test]
fn an_rdb_import_reaches_readers_and_subscribers() {
    let src = tempfile::tempdir().unwrap();
    let rdb = src.path().join("dump.rdb");
    {
        let db = Db::open_with(src.path().join("db"), manual()).unwrap();
        db.hset("a", &[("f", "1"), ("g", "2")]).unwrap();
        let big: Vec<(String, String)> =
            (0..600).map(|i| (format!("f{i}"), i.to_string())).collect();
        db.hset("big", &big).unwrap();
        db.pexpire("big", 600_000).unwrap();
        let mut f = std::fs::File::create(&rdb).unwrap();
        db.export_rdb_to(&mut f, &hashkv::interop::RdbExportOptions::default())
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let w = Db::open_with(dir.path(), manual()).unwrap();
    w.hset("a", &[("old", "x")]).unwrap(); // replaced by the import
    let r = Db::open_read_only_with(dir.path(), manual()).unwrap();
    let mut sub = w.subscribe();
    w.import_rdb(&rdb).unwrap();
    r.catch_up().unwrap();
    assert_eq!(dump(&r), dump(&w));
    assert_eq!(r.hget("a", "old").unwrap(), None);
    let got: Vec<Vec<u8>> = std::iter::from_fn(|| sub.try_recv().ok())
        .flat_map(|c| {
            c.kind
                .keys()
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        got.contains(&b"a".to_vec()) && got.contains(&b"big".to_vec()),
        "{got:?}"
    );
    assert!(matches!(r.import_rdb(&rdb), Err(Error::ReadOnly)));
}

/// A byte flipped in a part of the log the reader has already applied
/// changes nothing it serves, and following goes on.
#[test]
fn damage_in_what_a_reader_already_read_changes_nothing_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    let w = Db::open_with(dir.path(), manual()).unwrap();
    w.hset("a", &[("f", "1")]).unwrap();
    let r = Db::open_read_only_with(dir.path(), manual()).unwrap();
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[12] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    w.hset("b", &[("f", "2")]).unwrap();
    assert_eq!(r.catch_up().unwrap(), 1);
    assert_eq!(r.hget("a", "f").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(r.hget("b", "f").unwrap().as_deref(), Some(&b"2"[..]));
}
