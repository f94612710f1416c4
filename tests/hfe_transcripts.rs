//! Field expiration against a real Redis: the scripts of
//! `tests/data/hfe-transcripts/` (copied from the project's shared test
//! data, `shared/testdata/hfe-transcripts/`; see the README there) run
//! through the shell, whose output
//! must equal what a Redis with field expiration printed for them
//! (`redis-cli --no-raw`). Replies of HGETALL/HKEYS/HVALS on hashtable
//! hashes come in table order and are compared as multisets, as the README
//! of the transcripts says; everything else line for line. Then the final
//! state, field TTLs included, must come back the same from the log and
//! from a snapshot.

use std::path::PathBuf;

use hashkv::{shell, Db, Options};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/hfe-transcripts")
}

/// Whether `line` is a command whose reply order follows a hashtable.
fn table_ordered(db: &Db, line: &[u8]) -> bool {
    let Ok(words) = shell::split_args(line) else {
        return false;
    };
    let Some(cmd) = words.first() else {
        return false;
    };
    let unordered = [b"hgetall".as_slice(), b"hkeys", b"hvals"]
        .iter()
        .any(|c| cmd.eq_ignore_ascii_case(c));
    unordered
        && words.len() == 2
        && db.object_encoding(&words[1]).ok().flatten().as_deref() == Some("hashtable")
}

/// The elements of a printed array reply, without redis-cli's index
/// prefixes (`  1) "a"` -> `"a"`).
fn elements(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .map(|l| match l.split_once(") ") {
            Some((_, rest)) => rest.to_string(),
            None => l.to_string(),
        })
        .collect()
}

fn run_script(n: u32) {
    let read = |name: String| {
        let path = dir().join(&name);
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the transcripts live in tests/data/hfe-transcripts)",
                path.display()
            )
        })
    };
    let script = read(format!("script-{n}.txt"));
    let expected = String::from_utf8(read(format!("transcript-{n}.txt"))).unwrap();
    let expected: Vec<&str> = expected.lines().collect();
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options::default().active_expiry(false);
    let db = Db::open_with(dir.path(), opts()).unwrap();
    let mut at = 0;
    for (i, line) in script.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let unordered = table_ordered(&db, line);
        let mut out = Vec::new();
        shell::run_line(&db, line, &mut out);
        let got = String::from_utf8_lossy(&out).into_owned();
        let got: Vec<&str> = got.lines().collect();
        let want = &expected[at.min(expected.len())..(at + got.len()).min(expected.len())];
        let cmd = String::from_utf8_lossy(line);
        if unordered {
            let mut a = elements(&got);
            let mut b = elements(want);
            // Pairs of an HGETALL stay pairs: compare (field, value) pairs.
            if cmd.to_ascii_lowercase().starts_with("hgetall") {
                let pa: Vec<String> = a.chunks(2).map(|c| c.join("\u{0}")).collect();
                let pb: Vec<String> = b.chunks(2).map(|c| c.join("\u{0}")).collect();
                a = pa;
                b = pb;
            }
            a.sort();
            b.sort();
            assert_eq!(
                a,
                b,
                "script-{n} line {}: {cmd} (table order ignored)",
                i + 1
            );
        } else {
            assert_eq!(got, want, "script-{n} line {}: {cmd}", i + 1);
        }
        at += got.len();
    }
    assert_eq!(at, expected.len(), "script-{n}: transcript has more lines");
    // The same state, field TTLs included, after reopening from the log,
    // and from a snapshot.
    let live = hashkv::fuzzing::dump(&db);
    drop(db);
    let db = Db::open_with(dir.path(), opts()).unwrap();
    assert_eq!(
        without_encodings(hashkv::fuzzing::dump(&db)),
        without_encodings(live.clone()),
        "script-{n}: replayed"
    );
    db.snapshot().unwrap();
    drop(db);
    let db = Db::open_with(dir.path(), opts()).unwrap();
    assert_eq!(
        without_encodings(hashkv::fuzzing::dump(&db)),
        without_encodings(live),
        "script-{n}: from a snapshot"
    );
}

/// One key's contents: name, pairs, has a key TTL, field expiries.
type Contents = (Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>, bool, Vec<(Vec<u8>, i64)>);

/// A dump without encodings (reopening picks them again from the contents).
fn without_encodings(d: hashkv::fuzzing::Dump) -> Vec<Contents> {
    d.into_iter().map(|(k, p, t, _, f)| (k, p, t, f)).collect()
}

#[test]
fn transcript_301() {
    run_script(301);
}

#[test]
fn transcript_302() {
    run_script(302);
}

#[test]
fn transcript_303() {
    run_script(303);
}

#[test]
fn transcript_304() {
    run_script(304);
}
