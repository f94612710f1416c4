//! Sync's translation against a model target (an in-memory hashkv, which
//! answers the commands sync sends as Redis does): random changes, sent
//! once or again from earlier points (a restart from an older saved
//! position), must leave the target equal to the writer.

use proptest::prelude::*;

use super::translate::{self, Translated, Translator, Words, GUARD};
use crate::{Db, Options};

const KEYS: [&str; 4] = ["a", "b", "c", "{t}d"];
const FIELDS: [&str; 3] = ["f1", "f2", "f3"];

fn op() -> impl Strategy<Value = Vec<String>> {
    let k = || prop::sample::select(KEYS.to_vec()).prop_map(str::to_string);
    let f = || prop::sample::select(FIELDS.to_vec()).prop_map(str::to_string);
    let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    prop_oneof![
        6 => (k(), f(), 0..100u32).prop_map(|(k, f, v)| vec!["HSET".into(), k, f, v.to_string()]),
        2 => (k(), f(), f()).prop_map(move |(k, f, g)| w(&["HSET", &k, &f, "x", &g, "y"])),
        2 => (k(), f()).prop_map(|(k, f)| vec!["HDEL".into(), k, f]),
        2 => (k(), f()).prop_map(|(k, f)| vec!["HINCRBY".into(), k, f, "3".into()]),
        1 => k().prop_map(|k| vec!["DEL".into(), k]),
        2 => (k(), 100..1000u32).prop_map(|(k, s)| vec!["EXPIRE".into(), k, s.to_string()]),
        1 => k().prop_map(|k| vec!["PERSIST".into(), k]),
        2 => (k(), f(), 100..1000u32).prop_map(move |(k, f, s)| w(&["HEXPIRE", &k, &s.to_string(), "FIELDS", "1", &f])),
        1 => (k(), f()).prop_map(move |(k, f)| w(&["HPERSIST", &k, "FIELDS", "1", &f])),
        1 => (k(), f(), 100..1000u32).prop_map(move |(k, f, s)| w(&["HSETEX", &k, "EX", &s.to_string(), "FIELDS", "1", &f, "z"])),
        1 => (k(), f()).prop_map(move |(k, f)| w(&["HSETEX", &k, "KEEPTTL", "FIELDS", "1", &f, "k"])),
        2 => (k(), k()).prop_map(|(a, b)| vec!["RENAME".into(), a, b]),
        2 => (k(), k()).prop_map(|(a, b)| vec!["COPY".into(), a, b, "REPLACE".into()]),
        1 => Just(vec!["FLUSHDB".to_string()]),
        1 => Just(vec!["MULTI".to_string()]),
        1 => Just(vec!["EXEC".to_string()]),
    ]
}

/// What `db` holds, key by key.
fn dump(db: &Db) -> Vec<(Vec<u8>, translate::Content)> {
    let mut keys = translate::all_keys(db, None);
    keys.sort();
    keys.into_iter()
        .filter_map(|k| {
            translate::content(db, &k).map(|mut c| {
                c.pairs.sort();
                c.field_ttls.sort();
                (k, c)
            })
        })
        .collect()
}

fn apply(target: &Db, cmds: &[Words]) {
    for w in cmds {
        if w[0] == GUARD {
            target.execute(&[b"DEL".as_slice(), &w[1]]).unwrap();
        } else {
            let r = target.execute(w);
            assert!(
                r.is_ok(),
                "{:?} -> {r:?}",
                String::from_utf8_lossy(&w.concat())
            );
        }
    }
}

fn deliver(target: &Db, recs: &[Translated]) {
    for t in recs {
        for u in &t.units {
            apply(target, &u.cmds);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn changes_sent_again_leave_the_target_as_sent_once(
        before in prop::collection::vec(op(), 0..25),
        after in prop::collection::vec(op(), 1..60),
        replays in prop::collection::vec((0usize..100, 0usize..100), 0..4),
        pattern in prop::option::of(Just("*d".to_string())),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let writer = Db::open_with(dir.path(), Options::default().no_auto_snapshots()).unwrap();
        let mut s = writer.session();
        for w in &before {
            let _ = s.execute(w);
        }
        if s.in_multi() {
            let _ = s.execute(&["EXEC"]);
        }
        // The full copy, as sync makes it (over a target holding junk).
        let reader = Db::open_read_only_until(dir.path(), Options::default().follow(None), None).unwrap();
        let target = Db::in_memory(Options::default());
        let pat = pattern.as_deref().map(str::as_bytes);
        for k in translate::all_keys(&reader, pat) {
            // An older copy with other fields: replaced whole.
            target.execute(&[b"HSET".as_slice(), &k, b"junk", b"1"]).unwrap();
            let mut cmds = Vec::new();
            translate::replace_cmds(&k, translate::content(&reader, &k).as_ref(), true, &mut cmds);
            apply(&target, &cmds);
        }
        for w in &after {
            let _ = s.execute(w);
        }
        if s.in_multi() {
            let _ = s.execute(&["EXEC"]);
        }
        let mut tr = Translator::new(pat);
        let mut recs = Vec::new();
        reader.follow_with(u64::MAX, &mut |v| tr.visit(v, &reader, &mut recs)).unwrap();
        prop_assert!(!tr.reloaded);
        prop_assert_eq!(reader.log_position(), writer.log_position());
        // Delivery with restarts: up to `a`, then again from `b <= a`.
        let n = recs.len();
        let mut at = 0;
        for (a, b) in replays {
            let a = at.max(a * n / 100);
            deliver(&target, &recs[at..a]);
            at = (b * n / 100).min(a);
        }
        deliver(&target, &recs[at..]);
        let mut want = dump(&writer);
        if let Some(p) = pat {
            want.retain(|(k, _)| crate::command::glob::matches(p, k));
        }
        prop_assert_eq!(dump(&target), want);
    }
}
