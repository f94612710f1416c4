//! Replay property: any command sequence, with snapshots taken at random
//! points of it, then close and reopen, gives the same HGETALL / TTL /
//! encoding state as before closing (encodings as the contents call for:
//! reopening may make a shrunken dict compact again).

use hashkv::{Db, Options, Reply};
use proptest::prelude::*;

fn opts() -> Options {
    Options::default()
        .active_expiry(false)
        .no_auto_snapshots()
        .hash_max_listpack_entries(6)
        .hash_max_listpack_value(12)
}

fn arg_strategy() -> impl Strategy<Value = Vec<String>> {
    let key = prop::sample::select(vec!["a", "b", "c", "d"]);
    let field = prop::sample::select(vec![
        "f1",
        "f2",
        "f3",
        "f4",
        "f5",
        "f6",
        "f7",
        "0",
        "-3",
        "a-long-field-name",
    ]);
    let value = prop::sample::select(vec![
        "1",
        "-7",
        "x",
        "",
        "1.5",
        "a value of 20 bytes!",
        "007",
    ]);
    prop_oneof![
        5 => (key.clone(), prop::collection::vec((field.clone(), value.clone()), 1..8)).prop_map(|(k, ps)| {
            let mut v = vec!["HSET".to_owned(), k.to_owned()];
            for (f, x) in ps { v.push(f.to_owned()); v.push(x.to_owned()); }
            v
        }),
        2 => (key.clone(), prop::collection::vec(field.clone(), 1..4)).prop_map(|(k, fs)| {
            let mut v = vec!["HDEL".to_owned(), k.to_owned()];
            v.extend(fs.into_iter().map(str::to_owned));
            v
        }),
        2 => (key.clone(), field.clone(), -5i64..5).prop_map(|(k, f, d)| vec!["HINCRBY".into(), k.into(), f.into(), d.to_string()]),
        2 => (key.clone(), field.clone(), prop::sample::select(vec!["0.1", "1e3", "-2.5"])).prop_map(|(k, f, d)| vec!["HINCRBYFLOAT".into(), k.into(), f.into(), d.into()]),
        1 => (key.clone(), 4_102_444_800_000i64..4_102_444_900_000).prop_map(|(k, t)| vec!["PEXPIREAT".into(), k.into(), t.to_string()]),
        1 => key.clone().prop_map(|k| vec!["PERSIST".into(), k.into()]),
        1 => key.clone().prop_map(|k| vec!["EXPIRE".into(), k.into(), "-1".into()]),
        1 => (key.clone(), key.clone()).prop_map(|(a, b)| vec!["RENAME".into(), a.into(), b.into()]),
        1 => (key.clone(), key.clone()).prop_map(|(a, b)| vec!["COPY".into(), a.into(), b.into(), "REPLACE".into()]),
        1 => key.clone().prop_map(|k| vec!["DEL".into(), k.into()]),
        1 => (key, field, value).prop_map(|(k, f, x)| vec!["HSETNX".into(), k.into(), f.into(), x.into()]),
    ]
}

/// Per key: name, sorted pairs, PEXPIRETIME reply, whether it fits compact.
type KeyState = (String, Vec<(Vec<u8>, Vec<u8>)>, Reply, bool);

fn state(db: &Db) -> Vec<KeyState> {
    ["a", "b", "c", "d"]
        .iter()
        .map(|k| {
            let mut pairs = db.hgetall(k).unwrap();
            pairs.sort();
            let ttl = db.execute(&["PEXPIRETIME", k]).unwrap();
            // The encoding must be what the contents call for after reopen.
            let fits =
                pairs.len() <= 6 && pairs.iter().all(|(f, v)| f.len() <= 12 && v.len() <= 12);
            (k.to_string(), pairs, ttl, fits)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn prop_reopen_gives_the_same_state(
        cmds in prop::collection::vec(arg_strategy(), 1..80),
        snaps in prop::collection::vec(0usize..80, 0..3),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let db = Db::open_with(dir.path(), opts()).unwrap();
            for (i, c) in cmds.iter().enumerate() {
                if snaps.contains(&i) {
                    db.snapshot().unwrap();
                }
                let _ = db.execute(c);
            }
            state(&db)
        };
        let db = Db::open_with(dir.path(), opts()).unwrap();
        let after = state(&db);
        prop_assert_eq!(&after, &before);
        for (k, pairs, _, fits) in &after {
            let enc = db.object_encoding(k).unwrap();
            let want = if pairs.is_empty() { None } else if *fits { Some("listpack") } else { Some("hashtable") };
            prop_assert_eq!(enc.as_deref(), want, "key {}", k);
        }
    }
}
