//! The serde mapping: round trips of every primitive and of generated
//! structs, the stored text, and the error cases.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Db, Error, Options};

fn db() -> Db {
    Db::in_memory(Options::default())
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Copy)]
enum Role {
    Admin,
    #[serde(rename = "plain-user")]
    User,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Every {
    i8: i8,
    i16: i16,
    i32: i32,
    i64: i64,
    i128: i128,
    u8: u8,
    u16: u16,
    u32: u32,
    u64: u64,
    u128: u128,
    f32: f32,
    f64: f64,
    b: bool,
    c: char,
    s: String,
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
    role: Role,
    maybe: Option<i64>,
    #[serde(rename = "display name")]
    renamed: String,
}

fn every_strategy() -> impl Strategy<Value = Every> {
    (
        (
            any::<i8>(),
            any::<i16>(),
            any::<i32>(),
            any::<i64>(),
            any::<i128>(),
            any::<u8>(),
            any::<u16>(),
            any::<u32>(),
            any::<u64>(),
            any::<u128>(),
        ),
        (
            any::<f32>().prop_filter("NaN is not equal to itself", |f| !f.is_nan()),
            any::<f64>().prop_filter("NaN is not equal to itself", |f| !f.is_nan()),
            any::<bool>(),
            any::<char>(),
            ".*",
            proptest::collection::vec(any::<u8>(), 0..40),
            prop_oneof![Just(Role::Admin), Just(Role::User)],
            proptest::option::of(any::<i64>()),
            ".*",
        ),
    )
        .prop_map(
            |(
                (i8, i16, i32, i64, i128, u8, u16, u32, u64, u128),
                (f32, f64, b, c, s, bytes, role, maybe, renamed),
            )| Every {
                i8,
                i16,
                i32,
                i64,
                i128,
                u8,
                u16,
                u32,
                u64,
                u128,
                f32,
                f64,
                b,
                c,
                s,
                bytes,
                role,
                maybe,
                renamed,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Every primitive, stored and read back, is the same value; the
    /// stored text is the documented one; None removes its field.
    #[test]
    fn every_primitive_round_trips(v in every_strategy()) {
        let db = db();
        db.hset("k", &[("maybe", "7"), ("other", "kept")]).unwrap();
        db.hset_struct("k", &v).unwrap();
        let back: Every = db.hget_struct("k").unwrap().unwrap();
        prop_assert_eq!(&back, &v);
        let text = |f: &str| db.hget("k", f).unwrap();
        prop_assert_eq!(text("i64"), Some(v.i64.to_string().into_bytes()));
        prop_assert_eq!(text("u128"), Some(v.u128.to_string().into_bytes()));
        prop_assert_eq!(text("b"), Some(if v.b { b"1".to_vec() } else { b"0".to_vec() }));
        prop_assert_eq!(text("bytes"), Some(v.bytes.clone()));
        prop_assert_eq!(text("other"), Some(b"kept".to_vec()));
        prop_assert_eq!(text("maybe"), v.maybe.map(|m| m.to_string().into_bytes()));
        // Integers are Redis integers, floats what HINCRBYFLOAT reads.
        if v.i32 < i32::MAX {
            prop_assert_eq!(db.hincrby("k", "i32", 1).unwrap(), i64::from(v.i32) + 1);
        }
        // HINCRBYFLOAT reads the text as a `long double` (more precise
        // than f64, so the parse can land off the f64) and prints 17
        // decimal places (Redis's `%.17Lf`): from 0.1 up, the value read
        // back is the same f64 or its neighbour (smaller ones lose digits).
        if v.f64.is_finite() && (v.f64 == 0.0 || v.f64.abs() >= 0.1) && v.f64.abs() < 1e300 {
            db.hincrbyfloat("k", "f64", "0").unwrap();
            let back: Every = db.hget_struct("k").unwrap().unwrap();
            prop_assert!(
                (back.f64 - v.f64).abs() <= v.f64.abs() * f64::EPSILON,
                "{} came back as {}", v.f64, back.f64
            );
        }
    }

    /// Maps of strings are one field per entry.
    #[test]
    fn maps_round_trip(m in proptest::collection::btree_map(".+", ".*", 1..30)) {
        let db = db();
        db.hset_struct("m", &m).unwrap();
        let back: BTreeMap<String, String> = db.hget_struct("m").unwrap().unwrap();
        prop_assert_eq!(back, m);
    }

    /// Maps keyed by numbers and bools read back as they were written
    /// (the field names are the keys' text).
    #[test]
    fn maps_with_number_keys_round_trip(
        a in proptest::collection::btree_map(any::<u32>(), ".*", 1..30),
        b in proptest::collection::btree_map(any::<i64>(), any::<bool>(), 1..30),
        c in proptest::collection::btree_map(any::<bool>(), any::<u8>(), 1..3),
    ) {
        let db = db();
        db.hset_struct("a", &a).unwrap();
        db.hset_struct("b", &b).unwrap();
        db.hset_struct("c", &c).unwrap();
        let back_a: BTreeMap<u32, String> = db.hget_struct("a").unwrap().unwrap();
        let back_b: BTreeMap<i64, bool> = db.hget_struct("b").unwrap().unwrap();
        let back_c: BTreeMap<bool, u8> = db.hget_struct("c").unwrap().unwrap();
        prop_assert_eq!(back_a, a);
        prop_assert_eq!(back_b, b);
        prop_assert_eq!(back_c, c);
    }
}

#[test]
fn a_map_key_that_does_not_parse_names_its_field() {
    let db = db();
    db.hset("m", &[("5", "x"), ("five", "y")]).unwrap();
    let err = db.hget_struct::<BTreeMap<u32, String>>("m").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("five") && text.contains("field name"),
        "{text}"
    );
}

#[test]
fn a_missing_key_is_none_and_extra_fields_are_ignored() {
    #[derive(Deserialize, Debug, PartialEq)]
    struct Small {
        a: i64,
    }
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        a: i64,
    }
    let db = db();
    assert_eq!(db.hget_struct::<Small>("nope").unwrap(), None);
    db.hset("k", &[("a", "1"), ("b", "2")]).unwrap();
    assert_eq!(db.hget_struct::<Small>("k").unwrap(), Some(Small { a: 1 }));
    let err = db.hget_struct::<Strict>("k").unwrap_err();
    assert!(matches!(err, Error::Mapping { .. }), "{err}");
    assert!(err.to_string().contains("unknown field `b`"), "{err}");
}

#[test]
fn a_value_that_does_not_parse_names_key_field_and_value() {
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct User {
        name: String,
        age: u32,
    }
    let db = db();
    db.hset("user:1", &[("name", "Al"), ("age", "-3")]).unwrap();
    let err = db.hget_struct::<User>("user:1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "key 'user:1', field 'age', value '-3': not a u32: invalid digit found in string"
    );
    db.hset("user:2", &[("name", "Bo")]).unwrap();
    let err = db.hget_struct::<User>("user:2").unwrap_err();
    assert_eq!(err.to_string(), "key 'user:2': missing field `age`");
    db.hset("user:3", &[("name", "Cy"), ("age", "1.5")])
        .unwrap();
    assert!(db.hget_struct::<User>("user:3").is_err());
    db.hset("user:4", &[(&b"name"[..], &b"\xff"[..]), (b"age", b"4")])
        .unwrap();
    let err = db.hget_struct::<User>("user:4").unwrap_err();
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");
}

#[test]
fn values_with_no_field_encoding_are_refused_by_name_and_write_nothing() {
    #[derive(Serialize)]
    struct Address {
        city: String,
    }
    #[derive(Serialize)]
    struct Nested {
        name: String,
        address: Address,
    }
    #[derive(Serialize)]
    struct Listy {
        name: String,
        tags: Vec<String>,
    }
    #[derive(Serialize)]
    enum Shape {
        Circle(f64),
    }
    #[derive(Serialize)]
    struct WithEnum {
        shape: Shape,
    }
    let db = db();
    let err = db
        .hset_struct(
            "k",
            &Nested {
                name: "x".into(),
                address: Address { city: "y".into() },
            },
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "key 'k', field 'address': a nested struct has no hash field encoding \
         (store it under a key of its own, or flatten it)"
    );
    let err = db
        .hset_struct(
            "k",
            &Listy {
                name: "x".into(),
                tags: vec![],
            },
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("field 'tags': a sequence"),
        "{err}"
    );
    let err = db
        .hset_struct(
            "k",
            &WithEnum {
                shape: Shape::Circle(1.0),
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("field 'shape'"), "{err}");
    let err = db.hset_struct("k", &42i64).unwrap_err();
    assert!(err.to_string().contains("takes a struct or a map"), "{err}");
    // Nothing was written by any of them (the first fields included).
    assert_eq!(db.exists(&["k"]).unwrap(), 0);
}

#[test]
fn flattened_structs_share_the_hash() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Inner {
        city: String,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Outer {
        name: String,
        #[serde(flatten)]
        inner: Inner,
    }
    let db = db();
    let v = Outer {
        name: "a".into(),
        inner: Inner { city: "b".into() },
    };
    db.hset_struct("k", &v).unwrap();
    assert_eq!(db.hlen("k").unwrap(), 2);
    assert_eq!(db.hget_struct::<Outer>("k").unwrap(), Some(v));
}

/// Setting and removing fields together is one log record.
#[test]
fn sets_and_removals_are_one_record() {
    #[derive(Serialize)]
    struct P {
        a: Option<i64>,
        b: Option<i64>,
    }
    let (db, log) = crate::fuzzing::logged_db();
    db.hset("k", &[("a", "1"), ("b", "2")]).unwrap();
    let before = log.bytes().len();
    db.hset_struct(
        "k",
        &P {
            a: Some(5),
            b: None,
        },
    )
    .unwrap();
    let bytes = log.bytes();
    let added = &bytes[before..];
    let len = u32::from_le_bytes(added[0..4].try_into().unwrap()) as usize;
    assert_eq!(
        crate::log::record::FRAME_HEADER + len,
        added.len(),
        "one record"
    );
    assert_eq!(
        db.hgetall("k").unwrap(),
        vec![(b"a".to_vec(), b"5".to_vec())]
    );
}

#[test]
fn structs_inside_transactions_read_their_own_writes() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Account {
        owner: String,
        balance: i64,
    }
    let db = db();
    db.hset_struct(
        "acct:1",
        &Account {
            owner: "a".into(),
            balance: 10,
        },
    )
    .unwrap();
    db.transaction(&["acct:1"], |tx| {
        let mut a: Account = tx.hget_struct("acct:1")?.unwrap();
        a.balance += 5;
        tx.hset_struct("acct:1", &a)?;
        assert_eq!(tx.hget_struct::<Account>("acct:1")?.unwrap().balance, 15);
        Ok(())
    })
    .unwrap();
    assert_eq!(db.hget("acct:1", "balance").unwrap().unwrap(), b"15");
}
