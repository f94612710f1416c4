//! `Db::pipeline`: every command's reply is exactly what the single call
//! returns, and the database ends in the same state (a property test over
//! random mixes of reads, writes, expiry, errors and whole-keyspace
//! commands), and a pipeline's writes survive a reopen.

use std::sync::Arc;

use hashkv::{Db, ManualClock, Options};
use proptest::prelude::*;

fn opts(clock: Arc<ManualClock>) -> Options {
    Options::default()
        .active_expiry(false)
        .no_auto_snapshots()
        .hash_max_listpack_entries(4)
        .hash_max_listpack_value(8)
        .clock(clock)
}

fn command() -> impl Strategy<Value = Vec<String>> {
    let key = prop_oneof![Just("a"), Just("b"), Just("c"), Just("d"), Just("e")];
    let field = prop_oneof![
        Just("f0"),
        Just("f1"),
        Just("f2"),
        Just("f3"),
        Just("f4"),
        Just("n")
    ];
    let value = prop_oneof![
        Just("1".to_owned()),
        Just("-7".to_owned()),
        Just("x".to_owned()),
        Just("a-long-value-over-eight".to_owned()),
    ];
    (0..18u8, key.clone(), key, field.clone(), field, value).prop_map(|(op, k, k2, f, f2, v)| {
        let s = |x: &[&str]| x.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        match op {
            0 | 1 => s(&["HGET", k, f]),
            2 => s(&["HMGET", k, f, f2]),
            3 => s(&["HGETALL", k]),
            4 | 5 => s(&["HSET", k, f, &v]),
            6 => s(&["HINCRBY", k, f, "3"]),
            7 => s(&["HDEL", k, f]),
            8 => s(&["EXISTS", k]),
            9 => s(&["DEL", k, k2]),
            10 => s(&["PEXPIRE", k, "5"]),
            11 => s(&["HPEXPIRE", k, "5", "FIELDS", "1", f]),
            12 => s(&["HLEN", k]),
            13 => s(&["RENAME", k, k2]),
            14 => s(&["DBSIZE"]),
            15 => s(&["HEXISTS", k, f]),
            16 => s(&["HGET", k]), // wrong arity
            _ => s(&["NOSUCH", k]),
        }
    })
}

type Replies = Vec<Result<hashkv::Reply, String>>;

/// Queues `c` through the typed method that makes it when `typed` (and
/// there is one), else as words.
fn queue(p: &mut hashkv::pipeline::Pipeline<'_>, c: &[String], typed: bool) {
    let w: Vec<&str> = c.iter().map(String::as_str).collect();
    if !typed {
        p.cmd(&w);
        return;
    }
    match w.as_slice() {
        ["HGET", k, f] => p.hget(k, f),
        ["HMGET", k, fields @ ..] => p.hmget(k, fields),
        ["HGETALL", k] => p.hgetall(k),
        ["HSET", k, f, v] => p.hset(k, &[(f, v)]),
        ["HINCRBY", k, f, d] => p.hincrby(k, f, d.parse().unwrap()),
        ["HDEL", k, fields @ ..] => p.hdel(k, fields),
        ["EXISTS", keys @ ..] => p.exists(keys),
        ["DEL", keys @ ..] => p.del(keys),
        _ => p.cmd(&w),
    };
}

fn dump(db: &Db) -> Vec<String> {
    ["a", "b", "c", "d", "e"]
        .iter()
        .map(|k| {
            let mut pairs = db.hgetall(k).unwrap();
            pairs.sort();
            format!(
                "{k} {pairs:?} {:?} {:?}",
                db.object_encoding(k).unwrap(),
                db.pttl(k).unwrap()
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_pipeline_answers_as_the_single_calls_do(
        batches in proptest::collection::vec(proptest::collection::vec(command(), 1..40), 1..6)
    ) {
        let (ca, cb) = (ManualClock::new(1_000_000), ManualClock::new(1_000_000));
        let cc = ManualClock::new(1_000_000);
        let a = Db::in_memory(opts(ca.clone()));
        let b = Db::in_memory(opts(cb.clone()));
        // The same batches through `run_with`, which lends the replies.
        let c = Db::in_memory(opts(cc.clone()));
        for batch in &batches {
            let mut p = a.pipeline();
            for (n, cmd) in batch.iter().enumerate() {
                queue(&mut p, cmd, n % 2 == 0);
            }
            let piped: Replies = p.run().into_iter().map(|r| r.map_err(|e| e.to_string())).collect();
            let single: Replies = batch.iter().map(|cmd| b.execute(cmd).map_err(|e| e.to_string())).collect();
            let mut p = c.pipeline();
            for (n, cmd) in batch.iter().enumerate() {
                queue(&mut p, cmd, n % 2 == 1);
            }
            let mut lent: Replies = Vec::new();
            p.run_with(|i, r| {
                assert_eq!(i, lent.len(), "replies are lent in order");
                lent.push(r.cloned().map_err(|e| e.to_string()));
            });
            prop_assert_eq!(&piped, &single, "batch {:?}", batch);
            prop_assert_eq!(&lent, &single, "batch {:?}", batch);
            prop_assert_eq!(dump(&a), dump(&b));
            prop_assert_eq!(dump(&c), dump(&b));
            // Let TTLs set in this batch pass before the next.
            ca.advance(10);
            cb.advance(10);
            cc.advance(10);
        }
    }
}

#[test]
fn typed_queueing_methods_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    {
        let db = Db::open(&dir).unwrap();
        let mut p = db.pipeline();
        for i in 0..500 {
            p.hset(
                format!("k{i}"),
                &[("n", i.to_string()), ("m", "x".to_owned())],
            );
        }
        p.hincrby("k1", "n", 10)
            .hdel("k2", &["m"])
            .del(&["k3"])
            .exists(&["k3", "k4"])
            .hmget("k1", &["n", "m", "zz"])
            .hgetall("k2")
            .hget("k5", "n");
        let r = p.run();
        assert_eq!(r.len(), 507);
        assert!(r[..500]
            .iter()
            .all(|x| x.as_ref().unwrap() == &hashkv::Reply::Integer(2)));
        use hashkv::Reply::*;
        assert_eq!(r[500].as_ref().unwrap(), &Integer(11));
        assert_eq!(r[501].as_ref().unwrap(), &Integer(1));
        assert_eq!(r[502].as_ref().unwrap(), &Integer(1));
        assert_eq!(r[503].as_ref().unwrap(), &Integer(1));
        assert_eq!(
            r[504].as_ref().unwrap(),
            &Array(vec![Bulk(b"11".to_vec()), Bulk(b"x".to_vec()), Nil])
        );
        assert_eq!(
            r[505].as_ref().unwrap(),
            &Array(vec![Bulk(b"n".to_vec()), Bulk(b"2".to_vec())])
        );
        assert_eq!(r[506].as_ref().unwrap(), &Bulk(b"5".to_vec()));
        assert!(db.pipeline().run().is_empty());
        // Typed calls with nothing to act on answer as the single calls do.
        let mut p = db.pipeline();
        let none: [&str; 0] = [];
        p.hdel("k1", &none).exists(&none).hmget("k1", &none);
        let empty_pairs: [(&str, &str); 0] = [];
        p.hset("k1", &empty_pairs);
        for r in p.run() {
            assert!(r
                .unwrap_err()
                .to_string()
                .starts_with("ERR wrong number of arguments"));
        }
        db.close().unwrap();
    }
    let db = Db::open(&dir).unwrap();
    assert_eq!(db.dbsize().unwrap(), 499);
    assert_eq!(db.hget("k1", "n").unwrap().unwrap(), b"11");
    assert_eq!(db.hlen("k2").unwrap(), 1);
}

/// Pipelines from several threads, beside closure transactions and single
/// calls on the same keys: no deadlock, no lost increment.
#[test]
fn concurrent_pipelines_transactions_and_calls_lose_nothing() {
    use rand::{Rng, SeedableRng};
    let db = Db::in_memory(Options::default());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(t);
                let mut added = 0i64;
                for round in 0..3000 {
                    match (t + round) % 3 {
                        0 => {
                            let mut p = db.pipeline();
                            for _ in 0..64 {
                                let k = format!("k{}", rng.gen_range(0..50));
                                if rng.gen_bool(0.3) {
                                    p.hget(&k, "n");
                                } else {
                                    p.hincrby(&k, "n", 1);
                                    added += 1;
                                }
                            }
                            if rng.gen_bool(0.1) {
                                p.cmd(&["DBSIZE"]);
                            }
                            for r in p.run() {
                                r.unwrap();
                            }
                        }
                        1 => {
                            let a = format!("k{}", rng.gen_range(0..50));
                            let b = format!("k{}", rng.gen_range(0..50));
                            db.transaction(&[&a, &b], |tx| {
                                tx.hincrby(&a, "n", 1)?;
                                tx.hincrby(&b, "n", 1)?;
                                Ok(())
                            })
                            .unwrap();
                            added += 2;
                        }
                        _ => {
                            db.hincrby(format!("k{}", rng.gen_range(0..50)), "n", 1)
                                .unwrap();
                            added += 1;
                        }
                    }
                }
                added
            })
        })
        .collect();
    let added: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let total: i64 = (0..50)
        .map(|i| {
            db.hget(format!("k{i}"), "n")
                .unwrap()
                .map_or(0, |v| String::from_utf8(v).unwrap().parse::<i64>().unwrap())
        })
        .sum();
    assert_eq!(total, added);
}
