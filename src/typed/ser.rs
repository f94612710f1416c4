//! A value as hash fields: a serde `Serializer` that turns a struct (or a
//! map) into one field per struct field (or map entry), each value written
//! as the text a Redis user would store (see the table in [`super`]).

use std::fmt::Display;
use std::io::Write;

use serde::ser::{self, Impossible, Serialize};

/// Fields collected from a value: names and values back to back in one
/// buffer; `None` for a field to remove (`Option::None`).
#[derive(Default)]
pub(crate) struct Fields {
    pub(crate) bytes: Vec<u8>,
    /// (name start, name end, value end or None); a value starts where its
    /// name ends.
    pub(crate) spans: Vec<(usize, usize, Option<usize>)>,
}

impl Fields {
    /// (field, value) pairs to set, in order.
    pub(crate) fn sets(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans
            .iter()
            .filter_map(|&(s, m, e)| e.map(|e| (&self.bytes[s..m], &self.bytes[m..e])))
    }

    /// Fields to remove, in order.
    pub(crate) fn removals(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.spans
            .iter()
            .filter(|(_, _, e)| e.is_none())
            .map(|&(s, m, _)| &self.bytes[s..m])
    }
}

/// What went wrong mapping a value to fields, with the field if known.
#[derive(Debug)]
pub(crate) struct SerError {
    pub(crate) field: Option<String>,
    pub(crate) message: String,
}

impl Display for SerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SerError {}

impl ser::Error for SerError {
    fn custom<T: Display>(msg: T) -> Self {
        SerError {
            field: None,
            message: msg.to_string(),
        }
    }
}

fn no_encoding(what: &str) -> SerError {
    SerError {
        field: None,
        message: format!(
            "{what} has no hash field encoding (store it under a key of its own, or flatten it)"
        ),
    }
}

/// Serializes a top-level struct or map into `out`.
pub(crate) struct Top<'a> {
    pub(crate) out: &'a mut Fields,
}

/// Serializes one field's value: appends its bytes to `out.bytes` and says
/// whether there is a value (`Option::None` is none).
struct Value<'a> {
    out: &'a mut Vec<u8>,
}

/// A map key, as field name bytes.
struct Key<'a> {
    out: &'a mut Vec<u8>,
}

impl Fields {
    fn field<T: Serialize + ?Sized>(&mut self, name: &[u8], value: &T) -> Result<(), SerError> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name);
        let mid = self.bytes.len();
        self.value(start, mid, name, value)
    }

    fn value<T: Serialize + ?Sized>(
        &mut self,
        start: usize,
        mid: usize,
        name: &[u8],
        value: &T,
    ) -> Result<(), SerError> {
        match value.serialize(Value {
            out: &mut self.bytes,
        }) {
            Ok(present) => {
                self.spans
                    .push((start, mid, present.then_some(self.bytes.len())));
                Ok(())
            }
            Err(mut e) => {
                self.bytes.truncate(start);
                if e.field.is_none() {
                    e.field = Some(String::from_utf8_lossy(name).into_owned());
                }
                Err(e)
            }
        }
    }
}

/// The `Serializer` methods for values that have no hash field encoding
/// (sequences, tuples, enum variants with data): each an error made by
/// `$err` from what the value is.
macro_rules! refuse_compounds {
    ($ok:ty, $err:ident) => {
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<$ok, SerError> {
            Err($err("an enum variant with data"))
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, SerError> {
            Err($err("a sequence"))
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, SerError> {
            Err($err("a tuple"))
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, SerError> {
            Err($err("a tuple struct"))
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, SerError> {
            Err($err("an enum variant with data"))
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, SerError> {
            Err($err("an enum variant with data"))
        }
    };
}

/// A map key that is not a scalar.
fn compound_key(_what: &str) -> SerError {
    no_encoding("a compound map key")
}

macro_rules! top_only {
    ($($name:ident($($t:ty),*)),* $(,)?) => {$(
        fn $name(self, $(_: $t),*) -> Result<(), SerError> {
            Err(SerError {
                field: None,
                message: "hset_struct takes a struct or a map".into(),
            })
        }
    )*};
}

impl<'a> ser::Serializer for Top<'a> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = Impossible<(), SerError>;
    type SerializeTuple = Impossible<(), SerError>;
    type SerializeTupleStruct = Impossible<(), SerError>;
    type SerializeTupleVariant = Impossible<(), SerError>;
    type SerializeMap = TopMap<'a>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), SerError>;

    top_only!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), SerError> {
        value.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        value.serialize(self)
    }
    refuse_compounds!((), no_encoding);

    fn serialize_map(self, _: Option<usize>) -> Result<TopMap<'a>, SerError> {
        Ok(TopMap {
            out: self.out,
            pending: None,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, SerError> {
        Ok(self)
    }
}

impl ser::SerializeStruct for Top<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        self.out.field(key.as_bytes(), value)
    }
    fn end(self) -> Result<(), SerError> {
        Ok(())
    }
}

/// A top-level map: each entry a field.
pub(crate) struct TopMap<'a> {
    out: &'a mut Fields,
    /// The key just serialized: (start, end) in `out.bytes`.
    pending: Option<(usize, usize)>,
}

impl ser::SerializeMap for TopMap<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), SerError> {
        let start = self.out.bytes.len();
        key.serialize(Key {
            out: &mut self.out.bytes,
        })?;
        self.pending = Some((start, self.out.bytes.len()));
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        let (start, mid) = self.pending.take().ok_or_else(|| SerError {
            field: None,
            message: "a map value without its key".into(),
        })?;
        let name = self.out.bytes[start..mid].to_vec();
        self.out.value(start, mid, &name, value)
    }
    fn end(self) -> Result<(), SerError> {
        Ok(())
    }
}

fn write_display(out: &mut Vec<u8>, v: impl Display) -> Result<bool, SerError> {
    write!(out, "{v}").map_err(|e| SerError {
        field: None,
        message: e.to_string(),
    })?;
    Ok(true)
}

/// A float as the shortest text that parses back to the same value
/// (`{:?}`: `0.1`, `1.0`, `1e300`), which HINCRBYFLOAT also reads; `inf`,
/// `-inf` and `NaN` for the others.
fn write_float(out: &mut Vec<u8>, v: impl std::fmt::Debug) -> Result<bool, SerError> {
    write!(out, "{v:?}").map_err(|e| SerError {
        field: None,
        message: e.to_string(),
    })?;
    Ok(true)
}

impl ser::Serializer for Value<'_> {
    type Ok = bool;
    type Error = SerError;
    type SerializeSeq = Impossible<bool, SerError>;
    type SerializeTuple = Impossible<bool, SerError>;
    type SerializeTupleStruct = Impossible<bool, SerError>;
    type SerializeTupleVariant = Impossible<bool, SerError>;
    type SerializeMap = Impossible<bool, SerError>;
    type SerializeStruct = Impossible<bool, SerError>;
    type SerializeStructVariant = Impossible<bool, SerError>;

    fn serialize_bool(self, v: bool) -> Result<bool, SerError> {
        self.out.push(if v { b'1' } else { b'0' });
        Ok(true)
    }
    fn serialize_i8(self, v: i8) -> Result<bool, SerError> {
        crate::numeric::push_i64(self.out, i64::from(v));
        Ok(true)
    }
    fn serialize_i16(self, v: i16) -> Result<bool, SerError> {
        crate::numeric::push_i64(self.out, i64::from(v));
        Ok(true)
    }
    fn serialize_i32(self, v: i32) -> Result<bool, SerError> {
        crate::numeric::push_i64(self.out, i64::from(v));
        Ok(true)
    }
    fn serialize_i64(self, v: i64) -> Result<bool, SerError> {
        crate::numeric::push_i64(self.out, v);
        Ok(true)
    }
    fn serialize_i128(self, v: i128) -> Result<bool, SerError> {
        write_display(self.out, v)
    }
    fn serialize_u8(self, v: u8) -> Result<bool, SerError> {
        crate::numeric::push_i64(self.out, i64::from(v));
        Ok(true)
    }
    fn serialize_u16(self, v: u16) -> Result<bool, SerError> {
        crate::numeric::push_i64(self.out, i64::from(v));
        Ok(true)
    }
    fn serialize_u32(self, v: u32) -> Result<bool, SerError> {
        crate::numeric::push_i64(self.out, i64::from(v));
        Ok(true)
    }
    fn serialize_u64(self, v: u64) -> Result<bool, SerError> {
        write_display(self.out, v)
    }
    fn serialize_u128(self, v: u128) -> Result<bool, SerError> {
        write_display(self.out, v)
    }
    fn serialize_f32(self, v: f32) -> Result<bool, SerError> {
        write_float(self.out, v)
    }
    fn serialize_f64(self, v: f64) -> Result<bool, SerError> {
        write_float(self.out, v)
    }
    fn serialize_char(self, v: char) -> Result<bool, SerError> {
        let mut b = [0u8; 4];
        self.out.extend_from_slice(v.encode_utf8(&mut b).as_bytes());
        Ok(true)
    }
    fn serialize_str(self, v: &str) -> Result<bool, SerError> {
        self.out.extend_from_slice(v.as_bytes());
        Ok(true)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<bool, SerError> {
        self.out.extend_from_slice(v);
        Ok(true)
    }
    fn serialize_none(self) -> Result<bool, SerError> {
        Ok(false)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<bool, SerError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<bool, SerError> {
        Err(no_encoding("a unit value"))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<bool, SerError> {
        Err(no_encoding("a unit struct"))
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<bool, SerError> {
        self.out.extend_from_slice(variant.as_bytes());
        Ok(true)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<bool, SerError> {
        value.serialize(self)
    }
    refuse_compounds!(bool, no_encoding);

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, SerError> {
        Err(no_encoding("a map"))
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, SerError> {
        Err(no_encoding("a nested struct"))
    }
}

/// Map keys: strings, bytes, chars, integers and unit variants, as text.
impl ser::Serializer for Key<'_> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = Impossible<(), SerError>;
    type SerializeTuple = Impossible<(), SerError>;
    type SerializeTupleStruct = Impossible<(), SerError>;
    type SerializeTupleVariant = Impossible<(), SerError>;
    type SerializeMap = Impossible<(), SerError>;
    type SerializeStruct = Impossible<(), SerError>;
    type SerializeStructVariant = Impossible<(), SerError>;

    fn serialize_bool(self, v: bool) -> Result<(), SerError> {
        Value { out: self.out }.serialize_bool(v).map(drop)
    }
    fn serialize_i8(self, v: i8) -> Result<(), SerError> {
        write_display(self.out, v).map(drop)
    }
    fn serialize_i16(self, v: i16) -> Result<(), SerError> {
        write_display(self.out, v).map(drop)
    }
    fn serialize_i32(self, v: i32) -> Result<(), SerError> {
        write_display(self.out, v).map(drop)
    }
    fn serialize_i64(self, v: i64) -> Result<(), SerError> {
        write_display(self.out, v).map(drop)
    }
    fn serialize_i128(self, v: i128) -> Result<(), SerError> {
        write_display(self.out, v).map(drop)
    }
    fn serialize_u8(self, v: u8) -> Result<(), SerError> {
        write_display(self.out, v).map(drop)
    }
    fn serialize_u16(self, v: u16) -> Result<(), SerError> {
        write_display(self.out, v).map(drop)
    }
    fn serialize_u32(self, v: u32) -> Result<(), SerError> {
        write_display(self.out, v).map(drop)
    }
    fn serialize_u64(self, v: u64) -> Result<(), SerError> {
        write_display(self.out, v).map(drop)
    }
    fn serialize_u128(self, v: u128) -> Result<(), SerError> {
        write_display(self.out, v).map(drop)
    }
    fn serialize_f32(self, _: f32) -> Result<(), SerError> {
        Err(no_encoding("a float map key"))
    }
    fn serialize_f64(self, _: f64) -> Result<(), SerError> {
        Err(no_encoding("a float map key"))
    }
    fn serialize_char(self, v: char) -> Result<(), SerError> {
        Value { out: self.out }.serialize_char(v).map(drop)
    }
    fn serialize_str(self, v: &str) -> Result<(), SerError> {
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), SerError> {
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), SerError> {
        Err(no_encoding("a missing map key"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), SerError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), SerError> {
        Err(no_encoding("a unit map key"))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), SerError> {
        Err(no_encoding("a unit map key"))
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), SerError> {
        self.out.extend_from_slice(variant.as_bytes());
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        value.serialize(self)
    }
    refuse_compounds!((), compound_key);

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, SerError> {
        Err(no_encoding("a compound map key"))
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, SerError> {
        Err(no_encoding("a compound map key"))
    }
}
