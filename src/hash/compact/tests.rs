//! Unit tests of the compact encoding: element round trips, lookups and
//! edits, hex packing and validation of damaged buffers.

use super::*;

fn enc(s: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    push_elem(&mut v, s);
    v
}

#[test]
fn integer_encodings_at_every_boundary() {
    // Same first bytes as listpack (listpack.c's integer encodings), minus backlen.
    assert_eq!(enc(b"1"), [0x01]);
    assert_eq!(enc(b"127"), [0x7f]);
    assert_eq!(enc(b"128"), [0xc0, 0x80]);
    assert_eq!(enc(b"-1"), [0xdf, 0xff]);
    assert_eq!(enc(b"4095"), [0xcf, 0xff]);
    assert_eq!(enc(b"-4096"), [0xd0, 0x00]);
    assert_eq!(enc(b"4096"), [0xf1, 0x00, 0x10]);
    assert_eq!(enc(b"32767"), [0xf1, 0xff, 0x7f]);
    assert_eq!(enc(b"-32768"), [0xf1, 0x00, 0x80]);
    assert_eq!(enc(b"8388607"), [0xf2, 0xff, 0xff, 0x7f]);
    assert_eq!(enc(b"-8388608"), [0xf2, 0x00, 0x00, 0x80]);
    assert_eq!(enc(b"2147483647"), [0xf3, 0xff, 0xff, 0xff, 0x7f]);
    assert_eq!(enc(b"9223372036854775807")[0], 0xf4);
    for v in [
        0i64,
        127,
        128,
        -1,
        4095,
        -4096,
        4096,
        -4097,
        32767,
        -32768,
        32768,
        -32769,
        8_388_607,
        -8_388_608,
        8_388_608,
        2_147_483_647,
        -2_147_483_648,
        2_147_483_648,
        i64::MAX,
        i64::MIN,
    ] {
        let e = enc(v.to_string().as_bytes());
        assert_eq!(e.len(), int_size(v));
        assert_eq!(decode_at(&e, 0), Some((Elem::Int(v), e.len())), "{v}");
    }
}

#[test]
fn string_encodings_at_every_boundary() {
    for len in [0usize, 1, 63, 64, 4095, 4096, 70000] {
        let s = vec![b'x'; len];
        let e = enc(&s);
        assert_eq!(e.len(), str_size(len));
        assert_eq!(
            decode_at(&e, 0),
            Some((Elem::Str(&s[..]), e.len())),
            "{len}"
        );
    }
    // Non-canonical numbers stay strings.
    for s in ["007", "-0", "+1", " 1", "1.5", "9223372036854775808"] {
        assert_eq!(
            decode_at(&enc(s.as_bytes()), 0).unwrap().0,
            Elem::Str(s.as_bytes())
        );
    }
}

#[test]
fn set_find_remove_keep_insertion_order() {
    let mut b = Vec::new();
    assert!(set(&mut b, b"name", b"Alice", true));
    assert!(set(&mut b, b"age", b"25", true));
    assert!(set(&mut b, b"1", b"one", true));
    assert!(!set(&mut b, b"name", b"Bob", true));
    assert_eq!(len(&b), 3);
    let got: Vec<(Vec<u8>, Vec<u8>)> = pairs(&b)
        .map(|(f, v)| (f.to_bytes(), v.to_bytes()))
        .collect();
    assert_eq!(
        got,
        vec![
            (b"name".to_vec(), b"Bob".to_vec()),
            (b"age".to_vec(), b"25".to_vec()),
            (b"1".to_vec(), b"one".to_vec())
        ]
    );
    assert!(
        find(&b, &Probe::new(b"01")).is_none(),
        "01 is not the integer 1"
    );
    assert_eq!(
        find(&b, &Probe::new(b"1")).unwrap().value,
        Elem::Str(b"one")
    );
    assert!(remove(&mut b, b"age"));
    assert!(!remove(&mut b, b"age"));
    assert_eq!(validate(&b), Ok(2));
}

#[test]
fn validate_rejects_bad_buffers() {
    assert_eq!(validate(&[]), Err(DecodeError::Empty));
    assert_eq!(validate(&[0x01]), Err(DecodeError::OddCount { count: 1 }));
    assert_eq!(
        validate(&[0x85, b'a']),
        Err(DecodeError::Truncated { offset: 0 })
    );
    assert_eq!(
        validate(&[0xF7]),
        Err(DecodeError::BadEncoding {
            offset: 0,
            byte: 0xF7
        })
    );
    // 5 stored as a 16-bit integer: valid bytes, not canonical.
    assert_eq!(
        validate(&[0xF1, 5, 0, 1]),
        Err(DecodeError::NonCanonical { offset: 0 })
    );
    // "12" stored as a string.
    assert_eq!(
        validate(&[0x82, b'1', b'2', 1]),
        Err(DecodeError::NonCanonical { offset: 0 })
    );
    assert_eq!(
        validate(&[0x81, b'a', 1, 0x81, b'a', 2]),
        Err(DecodeError::DuplicateField { offset: 3 })
    );
}

#[test]
fn hex_values_are_packed_from_eight_digits_and_print_back() {
    let value = |v: &[u8], pack: bool| {
        let mut b = Vec::new();
        push_elem(&mut b, b"f");
        push_value(&mut b, v, pack);
        b
    };
    let sha = b"da39a3ee5e6b4b0d3255bfef95601890afd80709";
    let b = value(sha, true);
    assert_eq!(b.len(), 2 + 2 + 20, "a 40-digit digest takes 22 bytes");
    assert_eq!(b[2], HEX_LOWER);
    assert_eq!(pairs(&b).next().unwrap().1.to_bytes(), sha);
    assert_eq!(check(&b), Ok((1, 40)));
    for (v, packed) in [
        (&b"DA39A3EE"[..], Some(HEX_UPPER)),
        (b"00000042", Some(HEX_LOWER)),
        (b"0000004", None),  // odd length
        (b"abcdef", None),   // under 8 digits
        (b"aBcDeF01", None), // mixed case
        (b"12345678", None), // a canonical integer
        (b"abcdefgh", None), // not hex
    ] {
        let b = value(v, true);
        assert_eq!(
            b.get(2).copied().filter(|&t| t >= HEX_LOWER),
            packed,
            "{v:?}"
        );
        assert_eq!(pairs(&b).next().unwrap().1.to_bytes(), v);
        assert_eq!(pairs(&b).next().unwrap().1.len(), v.len());
        assert!(check(&b).is_ok());
    }
    // Unpacked is valid too (packing is an option).
    assert_eq!(value(sha, false).len(), 2 + 41);
    assert_eq!(check(&value(sha, false)), Ok((1, 40)));
    let longest = vec![b'a'; MAX_PACKED_HEX];
    assert_eq!(value(&longest, true)[2], HEX_LOWER);
    assert_eq!(value(&[b'a'; MAX_PACKED_HEX + 2], true)[2], 0xE2);
}

#[test]
fn packed_hex_is_checked() {
    // A packed field is refused: lookups compare fields byte for byte.
    let mut b = Vec::new();
    push_value(&mut b, b"deadbeef", true);
    push_elem(&mut b, b"v");
    assert_eq!(check(&b), Err(DecodeError::NonCanonical { offset: 0 }));
    // Too short a run, and upper case without a letter.
    assert_eq!(
        check(&[0x81, b'f', HEX_LOWER, 1, 0xab]),
        Err(DecodeError::NonCanonical { offset: 2 })
    );
    assert_eq!(
        check(&[0x81, b'f', HEX_UPPER, 4, 0x01, 0x23, 0x45, 0x67]),
        Err(DecodeError::NonCanonical { offset: 2 })
    );
    assert_eq!(
        check(&[0x81, b'f', HEX_LOWER, 5, 0x01]),
        Err(DecodeError::Truncated { offset: 2 })
    );
    // "36760076" is the integer 36760076 (a fuzzer found this one);
    // "00760076" is not an integer and stays packed.
    assert_eq!(
        check(&[0x81, b'f', HEX_LOWER, 4, 0x36, 0x76, 0x00, 0x76]),
        Err(DecodeError::NonCanonical { offset: 2 })
    );
    assert!(check(&[0x81, b'f', HEX_LOWER, 4, 0x00, 0x76, 0x00, 0x76]).is_ok());
}

#[test]
fn set_and_overwrite_pack_values() {
    let mut b = Vec::new();
    assert!(set(&mut b, b"id", b"0123456789abcdef", true));
    assert_eq!(b.len(), 3 + 2 + 8);
    // Same packed size: in place.
    assert!(overwrite(&mut b, b"id", b"fedcba9876543210", true));
    assert_eq!(
        find(&b, &Probe::new(b"id")).unwrap().value.to_bytes(),
        b"fedcba9876543210"
    );
    // Unpacked would be bigger: not in place.
    assert!(!overwrite(&mut b, b"id", b"fedcba9876543210", false));
    assert!(!set(&mut b, b"id", b"plain text", true));
    assert_eq!(
        find(&b, &Probe::new(b"id")).unwrap().value,
        Elem::Str(b"plain text")
    );
    assert!(!set(&mut b, b"id", b"ABCDEF0123", true));
    assert_eq!(
        find(&b, &Probe::new(b"id")).unwrap().value.to_bytes(),
        b"ABCDEF0123"
    );
    assert_eq!(validate(&b), Ok(1));
}

#[test]
fn duplicates_found_in_big_buffers_too() {
    // Past 16 fields the check goes through the hash table.
    for n in [2usize, 16, 17, 100, 600] {
        let mut buf = Vec::new();
        for i in 0..n {
            push_elem(&mut buf, format!("field-{i}").as_bytes());
            push_elem(&mut buf, &(i as u64).to_string().into_bytes());
        }
        assert_eq!(check(&buf), Ok((n, 6 + (n - 1).to_string().len())));
        for dup in [0, n / 2, n - 1] {
            let mut bad = buf.clone();
            let at = bad.len();
            push_elem(&mut bad, format!("field-{dup}").as_bytes());
            push_elem(&mut bad, b"v");
            assert_eq!(
                validate(&bad),
                Err(DecodeError::DuplicateField { offset: at }),
                "{n} fields, duplicate of {dup}"
            );
        }
    }
}

#[test]
fn probes_match_elements_at_the_end_of_a_buffer() {
    // A field list: every element, the last one too, is found by a probe
    // of its own bytes and no other, whatever bytes come before it.
    let names: [&[u8]; 9] = [
        b"a",
        b"bio",
        b"1",
        b"-5",
        b"1234567",
        b"seven77",
        b"eight888",
        b"",
        b"x",
    ];
    for pad in 0..10 {
        for last in names {
            let mut buf = Vec::new();
            for i in 0..pad {
                push_elem(&mut buf, format!("p{i}").as_bytes());
            }
            let pos = buf.len();
            push_elem(&mut buf, last);
            let size = buf.len() - pos;
            for probe in names {
                let want = probe == last;
                assert_eq!(
                    Probe::new(probe).matches_at(&buf, pos, size),
                    want,
                    "{last:?} at {pos} against {probe:?}"
                );
            }
            let other = Probe::new(b"bia");
            assert_eq!(other.matches_at(&buf, pos, size), last == b"bia");
        }
    }
}
