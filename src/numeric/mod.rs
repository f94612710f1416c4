//! Numbers exactly as Redis reads and writes them: the `string2ll` integer
//! grammar (canonical decimal i64 only) and HINCRBYFLOAT's `long double`
//! arithmetic (see [`longdouble`]).

pub(crate) mod longdouble;

/// Parses `s` as Redis's `string2ll` does: exactly the canonical decimal
/// renderings of an i64 (no `+`, no leading zeros, no `-0`, at most 20 bytes).
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    // Length bound first: it protects the digit loop below from overflow games
    // and matches Redis, which rejects 21+ byte strings outright.
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let first = *digits.first()?;
    if !(b'1'..=b'9').contains(&first) {
        return None;
    }
    // Accumulate as a negative number so that i64::MIN parses.
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(c - b'0'))?;
    }
    if neg {
        Some(v)
    } else {
        v.checked_neg()
    }
}

/// Parses a SCAN/HSCAN cursor as Redis 7.0 does (`strtoul` on the C
/// string, so bytes after a NUL are ignored): no leading whitespace, an
/// optional sign, decimal digits to the end; `""` is 0; a negative value
/// wraps (`-1` is 18446744073709551615); a magnitude past `u64::MAX` is an
/// error.
pub(crate) fn parse_cursor(s: &[u8]) -> Option<u64> {
    let s = s.split(|&b| b == 0).next().unwrap_or(&[]);
    if s.is_empty() {
        // strtoul consumed nothing and stopped at the terminator.
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Appends the decimal text of `v` to `out`.
pub(crate) fn push_i64(out: &mut Vec<u8>, v: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let neg = v < 0;
    let mut u = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if neg {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

/// The decimal text of `v`.
pub(crate) fn i64_bytes(v: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    push_i64(&mut out, v);
    out
}

/// Number of bytes in the decimal text of `v` (HSTRLEN of an integer value).
pub(crate) fn i64_len(v: i64) -> usize {
    let mut n = usize::from(v < 0);
    let mut u = v.unsigned_abs();
    loop {
        n += 1;
        u /= 10;
        if u == 0 {
            return n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_grammar_matches_string2ll() {
        for ok in [
            "0",
            "-1",
            "1",
            "9223372036854775807",
            "-9223372036854775808",
            "10",
        ] {
            assert_eq!(
                parse_i64(ok.as_bytes()).map(|v| v.to_string()),
                Some(ok.to_string()),
                "{ok}"
            );
        }
        for bad in [
            "",
            "+1",
            "01",
            "007",
            "-0",
            "00",
            "-",
            " 1",
            "1 ",
            "1.0",
            "1e3",
            "0x10",
            "9223372036854775808",
            "-9223372036854775809",
            "1\0",
            "000000000000000000001",
        ] {
            assert_eq!(parse_i64(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn cursor_grammar() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551616"), None);
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"-18446744073709551615"), Some(1));
        assert_eq!(parse_cursor(b"+5"), Some(5));
        assert_eq!(parse_cursor(b"007"), Some(7));
        assert_eq!(parse_cursor(b" 7"), None);
        assert_eq!(parse_cursor(b"7 "), None);
        assert_eq!(parse_cursor(b"abc"), None);
        assert_eq!(parse_cursor(b"-"), None);
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"3\0junk"), Some(3));
    }

    #[test]
    fn decimal_rendering() {
        for v in [0, 1, -1, 9, 10, -10, i64::MAX, i64::MIN, 1234567890] {
            assert_eq!(i64_bytes(v), v.to_string().into_bytes());
            assert_eq!(i64_len(v), v.to_string().len());
        }
    }
}
