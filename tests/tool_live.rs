//! The `hashkv` tool on a directory another process has open for writing
//! (here: this test process): `exec`, `info`, `export`, `check`, `shell`
//! and `snapshot --output` open it read-only and say so on stderr; writes
//! answer READONLY; `watch` prints each change as the writer makes it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hashkv::{Db, Options};

fn hashkv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hashkv"))
}

/// Runs the tool on `dir`; (exit code, stdout, stderr).
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut c = hashkv();
    let mut args = args.iter();
    c.arg(args.next().unwrap()).arg(dir).args(args);
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn writer(dir: &Path) -> Db {
    let db = Db::open_with(dir, Options::default().no_auto_snapshots()).unwrap();
    db.hset("user:1", &[("name", "Alice"), ("age", "25")])
        .unwrap();
    db.hset("user:2", &[("name", "Bob")]).unwrap();
    db
}

fn held_line(stderr: &str) -> bool {
    stderr.contains(&format!(
        "is open for writing in another process (pid {}); opened it read-only (writes answer READONLY)",
        std::process::id()
    ))
}

#[test]
fn exec_info_export_and_check_work_beside_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = writer(dir.path());
    let (code, out, err) = run(dir.path(), &["exec", "HGET", "user:1", "name"]);
    assert_eq!((code, out.as_str()), (0, "\"Alice\"\n"), "{err}");
    assert!(held_line(&err), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let (_, out, _) = run(dir.path(), &["exec", "HSET", "user:1", "name", "Eve"]);
    assert_eq!(
        out,
        "(error) READONLY You can't write against a read only replica.\n"
    );
    assert_eq!(
        db.hget("user:1", "name").unwrap().as_deref(),
        Some(&b"Alice"[..])
    );
    // info: the position, and the reader's role and lag.
    let (code, out, err) = run(dir.path(), &["info"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("keys:2\n"), "{out}");
    assert!(out.contains("role:reader\n"), "{out}");
    assert!(
        out.contains(&format!("log_position:{}\n", db.log_position())),
        "{out}"
    );
    assert!(out.contains("lag_bytes:0\n"), "{out}");
    let (_, out, _) = run(dir.path(), &["info", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["role"], "reader");
    assert_eq!(v["log_position"], db.log_position().to_string());
    // export: every key as the writer has it.
    let (code, out, err) = run(dir.path(), &["export", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("Alice") && out.contains("Bob"), "{out}");
    // check: clean beside the writer.
    let (code, _, err) = run(dir.path(), &["check"]);
    assert_eq!(code, 0, "{err}");
    // A standalone snapshot is taken beside the writer; one into the
    // directory is the writer's job.
    let file = dir.path().join("copy.hks");
    let (code, _, err) = run(
        dir.path(),
        &["snapshot", "--output", file.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(file.exists());
    let (code, _, err) = run(dir.path(), &["snapshot"]);
    assert_ne!(code, 0);
    assert!(err.contains("locked by another hashkv process"), "{err}");
    drop(db);
    // With the writer gone, exec opens for writing again.
    let (_, out, err) = run(dir.path(), &["exec", "HSET", "user:1", "name", "Eve"]);
    assert_eq!(out, "(integer) 0\n");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn the_shell_reads_beside_a_writer_and_read_only_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let db = writer(dir.path());
    let mut child = hashkv()
        .arg("shell")
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"HGET user:2 name\nHDEL user:2 name\nMULTI\nHGET user:2 name\nEXEC\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "\"Bob\"\n(error) READONLY You can't write against a read only replica.\nOK\nQUEUED\n1) \"Bob\"\n"
    );
    assert!(held_line(&String::from_utf8_lossy(&out.stderr)));
    drop(db);
    // --read-only without a writer: no lock taken, writes refused.
    let mut child = hashkv()
        .args(["shell", "--read-only"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"HSET x f v\nDBSIZE\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "(error) READONLY You can't write against a read only replica.\n(integer) 2\n"
    );
}

/// Reads lines from a child's stdout until `n` arrived or `timeout`.
/// A child's output lines, read on a thread (a read never blocks the test).
struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    fn of(out: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines(rx)
    }
}

/// Up to `n` lines from `r`, waiting at most `timeout` in all.
fn lines(r: &mut Lines, n: usize, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match r.0.recv_timeout(left) {
            Ok(line) => out.push(line.trim_end().to_owned()),
            Err(_) => break,
        }
    }
    out
}

#[test]
fn watch_prints_each_change_as_the_writer_makes_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = writer(dir.path());
    let from = db.log_position();
    let spawn = |args: &[&str]| {
        hashkv()
            .arg("watch")
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut all = spawn(&[]);
    let mut users = spawn(&["user:*", "--json"]);
    let mut resumed = spawn(&["--from", &from.to_string()]);
    // The watchers are following once the first change reaches them.
    let mut out_all = Lines::of(all.stdout.take().unwrap());
    let mut out_users = Lines::of(users.stdout.take().unwrap());
    let mut out_resumed = Lines::of(resumed.stdout.take().unwrap());
    // Probe until both live watchers print: then they are following.
    let probe = "hset user:9 probe 1";
    let started = Instant::now();
    let (mut seen_all, mut seen_users) = (false, false);
    while !(seen_all && seen_users) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the watchers never printed"
        );
        db.hset("user:9", &[("probe", "1")]).unwrap();
        for line in lines(&mut out_all, 100, Duration::from_millis(200)) {
            assert_eq!(line, probe);
            seen_all = true;
        }
        for line in lines(&mut out_users, 100, Duration::from_millis(50)) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["key"], "user:9");
            seen_users = true;
        }
    }
    db.hset("other", &[("f", "two words")]).unwrap();
    db.hset("user:1", &[("bin", b"\x00\xff".as_slice())])
        .unwrap();
    db.del(&["user:9", "other"]).unwrap();
    // Probes still on their way are skipped.
    let mut got = Vec::new();
    while got.len() < 3 {
        let line = lines(&mut out_all, 1, Duration::from_secs(20));
        assert_eq!(line.len(), 1, "after {got:?}");
        if line[0] != probe {
            got.push(line[0].clone());
        }
    }
    assert_eq!(
        got,
        [
            "hset other f \"two words\"",
            "hset user:1 bin \"\\x00\\xff\"",
            "del user:9 other",
        ]
    );
    // The JSON watcher saw only user:* keys (the probes, then the rest).
    let mut json: Vec<serde_json::Value> = Vec::new();
    while json.last().is_none_or(|v| v["op"] != "del") {
        let line = lines(&mut out_users, 1, Duration::from_secs(20));
        assert_eq!(line.len(), 1, "after {json:?}");
        let v: serde_json::Value = serde_json::from_str(&line[0]).unwrap();
        if v["fields"][0][0] != "probe" {
            json.push(v);
        }
    }
    assert_eq!(json.len(), 2, "{json:?}");
    assert_eq!(json[1]["keys"], serde_json::json!(["user:9"]));
    assert_eq!(json[0]["key"], "user:1");
    assert_eq!(json[0]["fields"][0][1]["base64"], "AP8=");
    // --from printed everything after the position, probes included.
    let resumed_lines = lines(&mut out_resumed, 1, Duration::from_secs(10));
    assert_eq!(resumed_lines, ["hset user:9 probe 1"]);
    for mut c in [all, users, resumed] {
        let _ = c.kill();
        let _ = c.wait();
    }
}
