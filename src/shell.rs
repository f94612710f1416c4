//! The shell's input and output contract (DESIGN.md): lines split with
//! redis-cli's quoting rules (`sdssplitargs`), replies printed as
//! `redis-cli --no-raw` prints them, one flush per reply.

use std::io::{BufRead, Write};

use crate::command::reply::format_cli_error;
use crate::db::Db;
use crate::error::Error;
use crate::session::Session;

/// A line that redis-cli's parser rejects (unbalanced quotes, or a closing
/// quote followed by something other than a space).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid argument(s)")]
pub struct InvalidArguments;

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Splits a line into words exactly as redis-cli's `sdssplitargs` does:
/// double quotes with `\n \r \t \b \a \xHH` and `\<c>` escapes, single
/// quotes with `\'`, a closing quote must be followed by a space or the end.
///
/// # Errors
/// [`InvalidArguments`] where redis-cli prints "Invalid argument(s)".
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, InvalidArguments> {
    // C reads a NUL terminator past the end; `at` mirrors that.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut out = Vec::new();
    let mut p = 0;
    loop {
        while at(p) != 0 && is_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            // An embedded NUL ends the line for sdssplitargs, too.
            return Ok(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq, mut done) = (false, false, false);
        while !done {
            let c = at(p);
            if inq {
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && hex(at(p + 2)).is_some()
                    && hex(at(p + 3)).is_some()
                {
                    cur.push(hex(at(p + 2)).unwrap_or(0) * 16 + hex(at(p + 3)).unwrap_or(0));
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    cur.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(InvalidArguments);
                    }
                    done = true;
                } else if c == 0 {
                    return Err(InvalidArguments);
                } else {
                    cur.push(c);
                }
            } else if insq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(InvalidArguments);
                    }
                    done = true;
                } else if c == 0 {
                    return Err(InvalidArguments);
                } else {
                    cur.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    _ => cur.push(c),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        out.push(cur);
    }
}

/// Runs one line against `db` and appends what redis-cli would print.
/// Returns false when the line asks to quit. Stateless: MULTI and WATCH
/// need [`run_session_line`].
pub fn run_line(db: &Db, line: &[u8], out: &mut Vec<u8>) -> bool {
    run_with(line, out, |words| db.execute(words))
}

/// [`run_line`] in a [`Session`]: MULTI, EXEC, DISCARD, WATCH and UNWATCH
/// work across lines, as in redis-cli.
pub fn run_session_line(session: &mut Session, line: &[u8], out: &mut Vec<u8>) -> bool {
    run_with(line, out, |words| session.execute(words))
}

fn run_with(
    line: &[u8],
    out: &mut Vec<u8>,
    mut exec: impl FnMut(&[Vec<u8>]) -> Result<crate::Reply, Error>,
) -> bool {
    let words = match split_args(line) {
        Ok(w) => w,
        Err(e) => {
            out.extend_from_slice(format!("{e}\n").as_bytes());
            return true;
        }
    };
    let Some(first) = words.first() else {
        return true;
    };
    if first.eq_ignore_ascii_case(b"quit") || first.eq_ignore_ascii_case(b"exit") {
        return false;
    }
    match exec(&words) {
        Ok(reply) => reply.write_cli(out),
        Err(Error::Command(e)) => format_cli_error(&e, out),
        // Redis's own error reply, with its own prefix.
        Err(e @ Error::ReadOnly) => out.extend_from_slice(format!("(error) {e}\n").as_bytes()),
        Err(e) => out.extend_from_slice(format!("(error) ERR {e}\n").as_bytes()),
    }
    true
}

/// Reads commands from `input` one per line until its end, printing each
/// reply to `output` and flushing after each.
///
/// # Errors
/// I/O errors of `input` or `output`.
pub fn run<R: BufRead, W: Write>(
    db: &Db,
    mut input: R,
    mut output: W,
    prompt: Option<&str>,
) -> std::io::Result<()> {
    let mut session = db.session();
    let mut line = Vec::new();
    let mut out = Vec::new();
    loop {
        if let Some(p) = prompt {
            output.write_all(p.as_bytes())?;
            output.flush()?;
        }
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        while line.last().is_some_and(|&c| c == b'\n' || c == b'\r') {
            line.pop();
        }
        out.clear();
        let go_on = run_session_line(&mut session, &line, &mut out);
        output.write_all(&out)?;
        output.flush()?;
        if !go_on {
            return Ok(());
        }
    }
}

/// Every command's arguments as redis-cli's hints show them, for an
/// interactive shell (sorted by name).
pub const SYNTAX: &[(&str, &str)] = &[
    ("COPY", "source destination [DB destination-db] [REPLACE]"),
    ("DBSIZE", ""),
    ("DEL", "key [key ...]"),
    ("ECHO", "message"),
    ("EXISTS", "key [key ...]"),
    ("EXPIRE", "key seconds [NX|XX|GT|LT]"),
    ("EXPIREAT", "key unix-time-seconds [NX|XX|GT|LT]"),
    ("EXPIRETIME", "key"),
    ("FLUSHALL", "[ASYNC|SYNC]"),
    ("FLUSHDB", "[ASYNC|SYNC]"),
    ("HDEL", "key field [field ...]"),
    ("HEXISTS", "key field"),
    (
        "HEXPIRE",
        "key seconds [NX|XX|GT|LT] FIELDS numfields field [field ...]",
    ),
    (
        "HEXPIREAT",
        "key unix-time-seconds [NX|XX|GT|LT] FIELDS numfields field [field ...]",
    ),
    ("HEXPIRETIME", "key FIELDS numfields field [field ...]"),
    ("HGET", "key field"),
    ("HGETALL", "key"),
    ("HGETDEL", "key FIELDS numfields field [field ...]"),
    (
        "HGETEX",
        "key [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|PERSIST] FIELDS numfields field [field ...]",
    ),
    ("HINCRBY", "key field increment"),
    ("HINCRBYFLOAT", "key field increment"),
    ("HKEYS", "key"),
    ("HLEN", "key"),
    ("HMGET", "key field [field ...]"),
    ("HMSET", "key field value [field value ...]"),
    ("HPERSIST", "key FIELDS numfields field [field ...]"),
    (
        "HPEXPIRE",
        "key milliseconds [NX|XX|GT|LT] FIELDS numfields field [field ...]",
    ),
    (
        "HPEXPIREAT",
        "key unix-time-milliseconds [NX|XX|GT|LT] FIELDS numfields field [field ...]",
    ),
    ("HPEXPIRETIME", "key FIELDS numfields field [field ...]"),
    ("HPTTL", "key FIELDS numfields field [field ...]"),
    ("HRANDFIELD", "key [count [WITHVALUES]]"),
    (
        "HSCAN",
        "key cursor [MATCH pattern] [COUNT count] [NOVALUES]",
    ),
    ("HSET", "key field value [field value ...]"),
    (
        "HSETEX",
        "key [FNX|FXX] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL] FIELDS numfields field value [field value ...]",
    ),
    ("HSETNX", "key field value"),
    ("HSTRLEN", "key field"),
    ("HTTL", "key FIELDS numfields field [field ...]"),
    ("HVALS", "key"),
    ("KEYS", "pattern"),
    ("MEMORY", "USAGE key [SAMPLES count]"),
    ("OBJECT", "ENCODING key"),
    ("PERSIST", "key"),
    ("PEXPIRE", "key milliseconds [NX|XX|GT|LT]"),
    ("PEXPIREAT", "key unix-time-milliseconds [NX|XX|GT|LT]"),
    ("PEXPIRETIME", "key"),
    ("PING", "[message]"),
    ("PTTL", "key"),
    ("RENAME", "key newkey"),
    ("RENAMENX", "key newkey"),
    ("RESET", ""),
    ("SCAN", "cursor [MATCH pattern] [COUNT count] [TYPE type]"),
    ("SELECT", "index"),
    ("SWAPDB", "index1 index2"),
    ("TTL", "key"),
    ("TYPE", "key"),
    ("UNLINK", "key [key ...]"),
];

/// The hint redis-cli would show after what was typed so far: the
/// arguments of the command named by the first word, minus the ones
/// already typed. `None` when there is nothing to show.
pub fn hint(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let name = words.first()?;
    let (_, args) = SYNTAX.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?;
    if args.is_empty() {
        return None;
    }
    let spaced = line.ends_with(' ');
    if words.len() == 1 && !spaced {
        return Some(format!(" {args}"));
    }
    if !spaced {
        return None; // in the middle of a word
    }
    let parts: Vec<&str> = args.split(' ').collect();
    parts
        .get(words.len() - 1..)
        .filter(|rest| !rest.is_empty())
        .map(|rest| rest.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_follow_the_typed_arguments() {
        assert_eq!(
            hint("hset").as_deref(),
            Some(" key field value [field value ...]")
        );
        assert_eq!(
            hint("HSET ").as_deref(),
            Some("key field value [field value ...]")
        );
        assert_eq!(
            hint("HSET user:1 ").as_deref(),
            Some("field value [field value ...]")
        );
        assert_eq!(hint("HSET user:1"), None);
        assert_eq!(hint("HGET k f "), None);
        assert_eq!(hint("DBSIZE"), None);
        assert_eq!(hint("NOSUCH "), None);
        assert_eq!(hint(""), None);
        // Every command the engine knows has a hint entry, and only those.
        for (name, _) in SYNTAX {
            let reply = crate::Db::in_memory(crate::Options::default()).execute(&[*name]);
            if let Err(crate::Error::Command(e)) = reply {
                assert!(!e.to_string().contains("unknown command"), "{name}: {e}");
            }
        }
        assert!(SYNTAX.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
    }

    fn words(s: &str) -> Vec<String> {
        split_args(s.as_bytes())
            .unwrap()
            .into_iter()
            .map(|w| String::from_utf8_lossy(&w).into_owned())
            .collect()
    }

    #[test]
    fn quoting_matches_sdssplitargs() {
        assert_eq!(words("HSET  h f v"), ["HSET", "h", "f", "v"]);
        assert_eq!(words(r#"set "a b" 'c d'"#), ["set", "a b", "c d"]);
        assert_eq!(words(r#""\x41\n\t\"\\z""#), ["A\n\t\"\\z"]);
        assert_eq!(words(r#"'it\'s'"#), ["it's"]);
        assert_eq!(words(r#""""#), [""]);
        assert_eq!(words("a\"b\""), ["ab"]);
        assert!(words("").is_empty());
        assert_eq!(split_args(br#""abc"def"#), Err(InvalidArguments));
        assert_eq!(split_args(br#""abc"#), Err(InvalidArguments));
        assert_eq!(split_args(b"'abc"), Err(InvalidArguments));
        assert_eq!(split_args(br#""\xzz""#).unwrap(), vec![b"xzz".to_vec()]);
    }
}
