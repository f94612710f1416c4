//! [`Reply`]: what a command returns, with RESP2 semantics, and its
//! rendering in `redis-cli --no-raw` form (the shell's output contract).

use crate::error::CommandError;

/// A command's reply, as Redis's RESP2 protocol types it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// A status line such as `OK`, `PONG` or a TYPE name.
    Status(String),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A binary-safe string.
    Bulk(Vec<u8>),
    /// The null bulk string.
    Nil,
    /// An array (HGETALL's map is flattened to field, value, ... as in RESP2).
    Array(Vec<Reply>),
    /// An error inside an array: EXEC's reply for a queued command that
    /// failed (the text with its `ERR ` prefix). A command that fails on
    /// its own is an `Err`, never this.
    Error(String),
}

impl Reply {
    pub(crate) fn ok() -> Reply {
        Reply::Status("OK".to_owned())
    }

    pub(crate) fn bulk_opt(v: Option<Vec<u8>>) -> Reply {
        v.map_or(Reply::Nil, Reply::Bulk)
    }

    /// The integer, if this is an integer reply.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Reply::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The bytes of a bulk reply.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(b) => Some(b),
            _ => None,
        }
    }

    /// Appends this reply as `redis-cli --no-raw` prints it (with the final
    /// newline).
    pub fn write_cli(&self, out: &mut Vec<u8>) {
        format_tty(self, "", out);
    }

    /// This reply as `redis-cli --no-raw` prints it.
    pub fn to_cli_string(&self) -> String {
        let mut out = Vec::new();
        self.write_cli(&mut out);
        // Output is ASCII by construction: bulk strings are escaped.
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// A command error as `redis-cli --no-raw` prints it.
pub(crate) fn format_cli_error(e: &CommandError, out: &mut Vec<u8>) {
    out.extend_from_slice(b"(error) ");
    out.extend_from_slice(e.message().as_bytes());
    out.push(b'\n');
}

/// Appends `s` quoted as redis-cli's `sdscatrepr` does.
pub(crate) fn push_repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' | b'"' => {
                out.push(b'\\');
                out.push(c);
            }
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(c),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ]);
            }
        }
    }
    out.push(b'"');
}

fn format_tty(r: &Reply, prefix: &str, out: &mut Vec<u8>) {
    match r {
        Reply::Status(s) => {
            out.extend_from_slice(s.as_bytes());
            out.push(b'\n');
        }
        Reply::Integer(i) => {
            out.extend_from_slice(format!("(integer) {i}\n").as_bytes());
        }
        Reply::Bulk(b) => {
            push_repr(out, b);
            out.push(b'\n');
        }
        Reply::Nil => out.extend_from_slice(b"(nil)\n"),
        Reply::Error(e) => {
            out.extend_from_slice(b"(error) ");
            out.extend_from_slice(e.as_bytes());
            out.push(b'\n');
        }
        Reply::Array(items) if items.is_empty() => out.extend_from_slice(b"(empty array)\n"),
        Reply::Array(items) => {
            let idxlen = items.len().to_string().len();
            let child_prefix = format!("{prefix}{}", " ".repeat(idxlen + 2));
            for (i, item) in items.iter().enumerate() {
                let p = if i == 0 { "" } else { prefix };
                out.extend_from_slice(format!("{p}{:>idxlen$}) ", i + 1).as_bytes());
                format_tty(item, &child_prefix, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_format_matches_redis_cli() {
        assert_eq!(Reply::ok().to_cli_string(), "OK\n");
        assert_eq!(Reply::Integer(-3).to_cli_string(), "(integer) -3\n");
        assert_eq!(Reply::Nil.to_cli_string(), "(nil)\n");
        assert_eq!(
            Reply::Bulk(b"a\"b\\c\n\x01\xff\t\r\x07\x08".to_vec()).to_cli_string(),
            "\"a\\\"b\\\\c\\n\\x01\\xff\\t\\r\\a\\b\"\n"
        );
        assert_eq!(Reply::Array(vec![]).to_cli_string(), "(empty array)\n");
        let nested = Reply::Array(vec![
            Reply::Bulk(b"0".to_vec()),
            Reply::Array(vec![Reply::Bulk(b"f".to_vec()), Reply::Bulk(b"v".to_vec())]),
        ]);
        assert_eq!(
            nested.to_cli_string(),
            "1) \"0\"\n2) 1) \"f\"\n   2) \"v\"\n"
        );
        let ten = Reply::Array((0..10).map(Reply::Integer).collect());
        let s = ten.to_cli_string();
        assert!(s.starts_with(" 1) (integer) 0\n 2) "), "{s}");
        assert!(s.ends_with("10) (integer) 9\n"), "{s}");
    }
}
