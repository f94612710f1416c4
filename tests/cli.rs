//! The `hashkv` binary: `exec` and piped `shell` output in
//! `redis-cli --no-raw` form, and clear errors with exit code 2.

use std::io::Write;
use std::process::{Command, Stdio};

fn hashkv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hashkv"))
}

#[test]
fn piped_shell_prints_redis_cli_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = hashkv()
        .arg("shell")
        .arg(dir.path().join("db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let script = concat!(
        "HSET user:1 name Alice age 25\n",
        "HGET user:1 name\n",
        "HGET user:1 nope\n",
        "HGETALL user:1\n",
        "HINCRBY user:1 name 1\n",
        "HSET user:1 \"bio\" 'line\\'s' \"x\\ny\" \"\\x01\"\n",
        "HMGET user:1 \"x\\ny\" nope\n",
        "\n",
        "HSCAN user:1 0 MATCH a*\n",
        "HKEYS none\n",
        "OBJECT ENCODING user:1\n",
        "\"unbalanced\n",
        "PING\n",
        "NOSUCH a\n",
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let expected = concat!(
        "(integer) 2\n",
        "\"Alice\"\n",
        "(nil)\n",
        "1) \"name\"\n2) \"Alice\"\n3) \"age\"\n4) \"25\"\n",
        "(error) ERR hash value is not an integer\n",
        "(integer) 2\n",
        "1) \"\\x01\"\n2) (nil)\n",
        "1) \"0\"\n2) 1) \"age\"\n   2) \"25\"\n",
        "(empty array)\n",
        "\"listpack\"\n",
        "Invalid argument(s)\n",
        "PONG\n",
        "(error) ERR unknown command 'NOSUCH', with args beginning with: 'a' \n",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

#[test]
fn exec_runs_one_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = hashkv()
        .arg("exec")
        .arg(dir.path())
        .args(["HSET", "h", "f", "-5"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "(integer) 1\n");
    let out = hashkv()
        .arg("exec")
        .arg(dir.path())
        .args(["HGET", "h"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "(error) ERR wrong number of arguments for 'hget' command\n"
    );
}

#[test]
fn unusable_directory_is_a_clear_error_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let out = hashkv()
        .arg("exec")
        .arg(file.join("sub"))
        .args(["PING"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("hashkv: cannot open"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn run(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = hashkv().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn snapshot_restore_and_compact() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let os = |p: &std::path::Path| p.as_os_str().to_owned();
    for i in 0..50 {
        let (code, _, err) = run(&[
            "exec".as_ref(),
            &os(&db),
            "HSET".as_ref(),
            format!("user:{i}").as_ref(),
            "name".as_ref(),
            format!("n{i}").as_ref(),
        ]);
        assert_eq!(code, 0, "{err}");
    }
    // compact: a snapshot in the directory; the log it covers is gone.
    let (code, out, err) = run(&["compact".as_ref(), &os(&db)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("50 keys"), "{out}");
    assert!(out.contains("bytes before"), "{out}");
    let manifest = std::fs::read_to_string(db.join("MANIFEST")).unwrap();
    assert!(manifest.contains("snapshot snap-"), "{manifest}");
    // snapshot --output, then restore into a new directory.
    let file = tmp.path().join("backup.hks");
    let (code, out, err) = run(&[
        "snapshot".as_ref(),
        &os(&db),
        "--output".as_ref(),
        &os(&file),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("50 keys"), "{out}");
    // The same data without compression: a bigger file, restored the same.
    let plain = tmp.path().join("plain.hks");
    let (code, _, err) = run(&[
        "--no-snapshot-compression".as_ref(),
        "snapshot".as_ref(),
        &os(&db),
        "--output".as_ref(),
        &os(&plain),
    ]);
    assert_eq!(code, 0, "{err}");
    let (packed, unpacked) = (
        std::fs::metadata(&file).unwrap().len(),
        std::fs::metadata(&plain).unwrap().len(),
    );
    assert!(packed < unpacked, "compressed {packed}, plain {unpacked}");
    let (code, _, err) = run(&[
        "restore".as_ref(),
        &os(&plain),
        &os(&tmp.path().join("from-plain")),
    ]);
    assert_eq!(code, 0, "{err}");
    let copy = tmp.path().join("copy");
    let (code, out, err) = run(&["restore".as_ref(), &os(&file), &os(&copy)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        format!(
            "restored 50 keys from {} into {}",
            file.display(),
            copy.display()
        )
    );
    let (code, out, _) = run(&[
        "exec".as_ref(),
        &os(&copy),
        "HGET".as_ref(),
        "user:49".as_ref(),
        "name".as_ref(),
    ]);
    assert_eq!((code, out.as_str()), (0, "\"n49\"\n"));
    // Restoring over a database, or from a damaged file: exit 2, one line.
    let (code, _, err) = run(&["restore".as_ref(), &os(&file), &os(&copy)]);
    assert_eq!(code, 2);
    assert!(err.contains("already holds a database"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&file, &bytes).unwrap();
    let (code, _, err) = run(&[
        "restore".as_ref(),
        &os(&file),
        &os(&tmp.path().join("never")),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("corrupt") && err.contains("backup.hks"),
        "{err}"
    );
    assert!(!tmp.path().join("never").exists());
    // A snapshot of a directory another process holds: locked, exit 2.
    let holder = hashkv::Db::open(&copy).unwrap();
    let (code, _, err) = run(&["snapshot".as_ref(), &os(&copy)]);
    assert_eq!(code, 2);
    assert!(err.contains("locked"), "{err}");
    drop(holder);
}

/// The shell on a pseudo-terminal: prompt, line editing, hints, history
/// kept across sessions.
#[test]
fn interactive_shell_has_a_prompt_hints_and_history() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let hist = tmp.path().join("history");
    let shell = || {
        let mut c = hashkv();
        c.arg("shell")
            .arg(&db)
            .env("HASHKV_HISTFILE", &hist)
            .env("TERM", "xterm");
        rexpect::session::spawn_command(c, Some(10_000)).unwrap()
    };
    let prompt = format!("hashkv {}> ", db.display());
    let mut p = shell();
    p.exp_string(&prompt).unwrap();
    p.send_line("HSET user:1 name Alice").unwrap();
    p.exp_string("(integer) 1").unwrap();
    p.exp_string(&prompt).unwrap();
    // The hint of HSET's arguments appears as the name is typed.
    p.send("HSET ").unwrap();
    p.flush().unwrap();
    p.exp_string("key field value").unwrap();
    // Line editing: erase the line (Ctrl-U) and type another command.
    p.send_control('u').unwrap();
    p.send_line("HGET user:1 name").unwrap();
    p.exp_string("\"Alice\"").unwrap();
    p.exp_string(&prompt).unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
    let saved = std::fs::read_to_string(&hist).unwrap();
    assert!(
        saved.contains("HSET user:1 name Alice") && saved.contains("HGET user:1 name"),
        "{saved}"
    );
    // A new session recalls the last command with the Up arrow.
    let mut p = shell();
    p.exp_string(&prompt).unwrap();
    p.send("\x1b[A").unwrap();
    p.send_line("").unwrap();
    p.exp_string("\"Alice\"").unwrap();
    p.send_line("QUIT").unwrap();
    p.exp_eof().unwrap();
}
