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
