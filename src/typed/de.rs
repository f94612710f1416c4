//! Hash fields as a value: a serde `Deserializer` over a hash's (field,
//! value) pairs, reading each value from the text [`super::ser`] writes
//! (and any canonical Redis form of it: an integer HINCRBY left, a float
//! HINCRBYFLOAT left).

use std::fmt::Display;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

/// What went wrong reading fields into a value: with the field and its
/// value when one field was at fault.
#[derive(Debug)]
pub(crate) struct DeError {
    pub(crate) field: Option<(String, String)>,
    pub(crate) message: String,
}

impl Display for DeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: Display>(msg: T) -> Self {
        DeError {
            field: None,
            message: msg.to_string(),
        }
    }
}

/// A hash's pairs as a map (a struct's fields by name).
pub(crate) struct Top<I> {
    pub(crate) pairs: I,
}

macro_rules! as_map {
    ($($name:ident),*) => {$(
        fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.deserialize_map(visitor)
        }
    )*};
}

impl<'de, 'a, I: Iterator<Item = (&'a [u8], &'a [u8])>> de::Deserializer<'de> for Top<I> {
    type Error = DeError;

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(Pairs {
            pairs: self.pairs,
            value: None,
        })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }
    as_map!(deserialize_any, deserialize_ignored_any);

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct seq tuple
        tuple_struct enum identifier
    }
}

struct Pairs<'a, I> {
    pairs: I,
    /// The value of the key just given (with that key, for errors).
    value: Option<(&'a [u8], &'a [u8])>,
}

impl<'de, 'a, I: Iterator<Item = (&'a [u8], &'a [u8])>> MapAccess<'de> for Pairs<'a, I> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((field, value)) = self.pairs.next() else {
            return Ok(None);
        };
        // A field name reads as a value does, so a map's keys come back
        // as they were written (`5` as a u32, `true` as a bool).
        let key = seed.deserialize(Value(field)).map_err(|mut e| {
            if e.field.is_none() {
                e.field = Some((
                    String::from_utf8_lossy(field).into_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                ));
                e.message = format!("the field name: {}", e.message);
            }
            e
        })?;
        self.value = Some((field, value));
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (field, value) = self.value.take().ok_or_else(|| DeError {
            field: None,
            message: "a value asked for before its field".into(),
        })?;
        seed.deserialize(Value(value)).map_err(|mut e| {
            if e.field.is_none() {
                e.field = Some((
                    String::from_utf8_lossy(field).into_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                ));
            }
            e
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.pairs.size_hint().1
    }
}

/// One field's value.
struct Value<'a>(&'a [u8]);

impl Value<'_> {
    fn text(&self) -> Result<&str, DeError> {
        std::str::from_utf8(self.0).map_err(|_| de::Error::custom("not valid UTF-8"))
    }

    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError>
    where
        T::Err: Display,
    {
        self.text()?
            .parse()
            .map_err(|e| de::Error::custom(format!("not {what}: {e}")))
    }
}

fn no_encoding(what: &str) -> DeError {
    de::Error::custom(format!("{what} cannot be read from a hash field"))
}

macro_rules! parse_as {
    ($($name:ident $visit:ident $t:ty, $what:expr);* $(;)?) => {$(
        fn $name<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            visitor.$visit(self.parse::<$t>($what)?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Value<'_> {
    type Error = DeError;

    /// Self-describing reads (untagged enums, flattened fields, `serde`'s
    /// buffering): the text, or the bytes when they are not UTF-8.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match std::str::from_utf8(self.0) {
            Ok(s) => visitor.visit_str(s),
            Err(_) => visitor.visit_bytes(self.0),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            b"1" | b"true" => visitor.visit_bool(true),
            b"0" | b"false" => visitor.visit_bool(false),
            _ => Err(de::Error::custom("not a bool (1, 0, true or false)")),
        }
    }

    parse_as! {
        deserialize_i8 visit_i8 i8, "an i8";
        deserialize_i16 visit_i16 i16, "an i16";
        deserialize_i32 visit_i32 i32, "an i32";
        deserialize_i64 visit_i64 i64, "an i64";
        deserialize_i128 visit_i128 i128, "an i128";
        deserialize_u8 visit_u8 u8, "a u8";
        deserialize_u16 visit_u16 u16, "a u16";
        deserialize_u32 visit_u32 u32, "a u32";
        deserialize_u64 visit_u64 u64, "a u64";
        deserialize_u128 visit_u128 u128, "a u128";
        deserialize_f32 visit_f32 f32, "an f32";
        deserialize_f64 visit_f64 f64, "an f64";
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let mut chars = self.text()?.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(de::Error::custom("not a single character")),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(self.text()?)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_bytes(self.0)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_bytes(self.0)
    }

    /// A field that is there is `Some` (a missing one is `None`).
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DeError> {
        Err(no_encoding("a unit value"))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: V,
    ) -> Result<V::Value, DeError> {
        Err(no_encoding("a unit struct"))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DeError> {
        Err(no_encoding("a sequence"))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, DeError> {
        Err(no_encoding("a tuple"))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value, DeError> {
        Err(no_encoding("a tuple struct"))
    }

    fn deserialize_map<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DeError> {
        Err(no_encoding("a map"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, DeError> {
        Err(no_encoding("a nested struct"))
    }

    /// Unit variants, by name.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_enum(self.text()?.into_deserializer())
    }

    /// A struct's field name (bytes when they are not UTF-8: an unknown
    /// field is then ignored, as any other).
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}
