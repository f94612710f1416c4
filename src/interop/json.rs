//! JSON lines: one object per key (the format is described in
//! [`super`]); binary-safe through `{"base64": ...}` for bytes that are not
//! UTF-8.

use base64::Engine as _;
use serde_json::{json, Value};

/// `b` as a JSON string, or `{"base64": ...}` when it is not UTF-8.
pub(crate) fn json_bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) }),
    }
}

/// The bytes a JSON string or `{"base64": ...}` stands for.
pub(crate) fn bytes_of_json(v: &Value, what: &str) -> std::result::Result<Vec<u8>, String> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Object(o) if o.len() == 1 => match o.get("base64") {
            Some(Value::String(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| format!("{what}: bad base64: {e}")),
            _ => Err(format!("{what}: expected a string or {{\"base64\": ...}}")),
        },
        _ => Err(format!("{what}: expected a string or {{\"base64\": ...}}")),
    }
}

/// A key's expiry in a JSON line.
pub(crate) enum KeyExpiry {
    /// `expire_at_ms`: absolute Unix ms.
    At(i64),
    /// `ttl_ms` (older files): ms left at export time.
    In(i64),
}

/// A JSON line: (key, expiry, pairs, field expiries).
pub(crate) type JsonKey = (
    Vec<u8>,
    Option<KeyExpiry>,
    Vec<(Vec<u8>, Vec<u8>)>,
    Vec<(Vec<u8>, i64)>,
);

/// Parses one JSON line of an import.
pub(crate) fn parse_json_line(line: &str) -> std::result::Result<JsonKey, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let o = v.as_object().ok_or("expected an object")?;
    let key = bytes_of_json(o.get("key").ok_or("no \"key\"")?, "key")?;
    let ms = |name: &str| -> std::result::Result<Option<i64>, String> {
        match o.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(t) => t
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("\"{name}\" must be an integer or null")),
        }
    };
    let ttl = match (ms("expire_at_ms")?, ms("ttl_ms")?) {
        (Some(_), Some(_)) => return Err("both \"expire_at_ms\" and \"ttl_ms\"".into()),
        (Some(at), None) => Some(KeyExpiry::At(at)),
        (None, Some(left)) => Some(KeyExpiry::In(left)),
        (None, None) => None,
    };
    let pairs = match o.get("fields").ok_or("no \"fields\"")? {
        Value::Object(m) => m
            .iter()
            .map(|(f, v)| Ok((f.as_bytes().to_vec(), bytes_of_json(v, "value")?)))
            .collect::<std::result::Result<Vec<_>, String>>()?,
        Value::Array(a) => a
            .iter()
            .map(|p| match p.as_array().map(Vec::as_slice) {
                Some([f, v]) => Ok((bytes_of_json(f, "field")?, bytes_of_json(v, "value")?)),
                _ => Err("\"fields\" pairs must be [field, value]".to_owned()),
            })
            .collect::<std::result::Result<Vec<_>, String>>()?,
        _ => return Err("\"fields\" must be an object or an array of pairs".into()),
    };
    if pairs.is_empty() {
        return Err("\"fields\" is empty (a hash has at least one field)".into());
    }
    let expiries = match o.get("field_expire_at_ms") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| match p.as_array().map(Vec::as_slice) {
                Some([f, at]) => Ok((
                    bytes_of_json(f, "field")?,
                    at.as_i64()
                        .ok_or("a field expiry must be an integer (Unix ms)")?,
                )),
                _ => Err("\"field_expire_at_ms\" entries must be [field, unix_ms]".to_owned()),
            })
            .collect::<std::result::Result<Vec<_>, String>>()?,
        _ => return Err("\"field_expire_at_ms\" must be an array of [field, unix_ms]".into()),
    };
    Ok((key, ttl, pairs, expiries))
}
