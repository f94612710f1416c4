//! Redis's glob matcher (`stringmatchlen` of util.c), byte for byte, for
//! KEYS, SCAN MATCH and HSCAN MATCH. See Redis's util.c (stringmatchlen) for the edge
//! rules it reproduces (empty classes, unterminated classes, reversed
//! ranges, signed-char ranges, the nesting limit).

/// Whether `string` matches `pattern`.
pub(crate) fn matches(pattern: &[u8], string: &[u8]) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, string, &mut skip_longer, 0)
}

/// The pattern byte at `i`, or 0 past the end (C reads the NUL terminator).
#[inline]
fn at(p: &[u8], i: usize) -> u8 {
    p.get(i).copied().unwrap_or(0)
}

fn match_impl(pattern: &[u8], string: &[u8], skip_longer: &mut bool, nesting: u32) -> bool {
    // Protection against abusive patterns, as in Redis.
    if nesting > 1000 {
        return false;
    }
    let (mut p, mut s) = (0usize, 0usize);
    let (plen, slen) = (pattern.len(), string.len());
    while p < plen && s < slen {
        match pattern[p] {
            b'*' => {
                while p < plen && at(pattern, p + 1) == b'*' {
                    p += 1;
                }
                if plen - p == 1 {
                    return true;
                }
                while s < slen {
                    if match_impl(&pattern[p + 1..], &string[s..], skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let not = at(pattern, p) == b'^';
                if not {
                    p += 1;
                }
                let mut matched = false;
                let c = string[s];
                loop {
                    let rem = plen.saturating_sub(p);
                    if at(pattern, p) == b'\\' && rem >= 2 {
                        p += 1;
                        if pattern[p] == c {
                            matched = true;
                        }
                    } else if at(pattern, p) == b']' {
                        break;
                    } else if rem == 0 {
                        // Unterminated class: step back so the main loop's
                        // advance ends the pattern.
                        p -= 1;
                        break;
                    } else if rem >= 3 && pattern[p + 1] == b'-' {
                        // Bytes compare as C `char`, signed on x86-64.
                        let mut start = i32::from(pattern[p] as i8);
                        let mut end = i32::from(pattern[p + 2] as i8);
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        p += 2;
                        let ci = i32::from(c as i8);
                        if ci >= start && ci <= end {
                            matched = true;
                        }
                    } else if pattern[p] == c {
                        matched = true;
                    }
                    p += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s += 1;
            }
            b'\\' => {
                if plen - p >= 2 {
                    p += 1;
                }
                if pattern[p] != string[s] {
                    return false;
                }
                s += 1;
            }
            other => {
                if other != string[s] {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == slen {
            while at(pattern, p) == b'*' && p < plen {
                p += 1;
            }
            break;
        }
    }
    p >= plen && s == slen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pattern: &str) -> Vec<&'static str> {
        let all = [
            "", "hello", "hallo", "hxllo", "hllo", "heeeello", "a*b", "a\\b", "ab", "a]", "a-",
            "b", "[", "x",
        ];
        let mut v: Vec<&str> = all
            .iter()
            .copied()
            .filter(|k| matches(pattern.as_bytes(), k.as_bytes()))
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn glob_table_of_spec_section_7() {
        // Vectors checked on a live Redis 7.0.
        assert_eq!(keys("h?llo"), ["hallo", "hello", "hxllo"]);
        assert_eq!(
            keys("h*llo"),
            ["hallo", "heeeello", "hello", "hllo", "hxllo"]
        );
        assert_eq!(keys("h[ae]llo"), ["hallo", "hello"]);
        assert_eq!(keys("h[^e]llo"), ["hallo", "hxllo"]);
        assert_eq!(keys("h[b-a]llo"), ["hallo"]);
        assert_eq!(keys("a\\*b"), ["a*b"]);
        assert_eq!(keys("a*b"), ["a*b", "a\\b", "ab"]);
        assert_eq!(keys("a\\\\b"), ["a\\b"]);
        assert_eq!(keys("a[^]"), ["a-", "a]", "ab"]);
        assert_eq!(keys("a[-]"), ["a-"]);
        assert_eq!(keys("a[\\]]"), ["a]"]);
        assert!(keys("a[]]").is_empty());
        assert!(keys("a[]").is_empty());
        assert!(keys("[").is_empty());
        assert_eq!(keys("?"), ["[", "b", "x"]);
        assert!(!keys("**").contains(&""));
        assert!(matches(b"", b""));
        assert!(!matches(b"*", b""));
        assert!(matches(b"a[a-]", b"a]"));
        assert!(matches(b"[abc", b"b"));
        assert!(matches(b"a\\", b"a\\"));
    }

    #[test]
    fn abusive_patterns_terminate() {
        let pat = "a*".repeat(2000) + "b";
        let s = "a".repeat(3000);
        assert!(!matches(pat.as_bytes(), s.as_bytes()));
    }
}
