//! Replies turned into the Rust values the typed APIs return ([`crate::Db`],
//! [`crate::Transaction`]): one place that knows each reply's shape.

use super::Reply;
use crate::error::{CommandError, Error};

/// The error for a reply of a shape the command never gives.
pub(crate) fn unexpected(reply: &Reply) -> Error {
    Error::Command(CommandError::err(format!(
        "internal: unexpected reply {reply:?}"
    )))
}

/// An integer reply.
pub(crate) fn int(reply: Reply) -> Result<i64, Error> {
    match reply {
        Reply::Integer(i) => Ok(i),
        other => Err(unexpected(&other)),
    }
}

/// A bulk reply, or nil.
pub(crate) fn bulk(reply: Reply) -> Result<Option<Vec<u8>>, Error> {
    match reply {
        Reply::Bulk(b) => Ok(Some(b)),
        Reply::Nil => Ok(None),
        other => Err(unexpected(&other)),
    }
}

/// An array of bulks (nils left out).
pub(crate) fn bulks(reply: Reply) -> Result<Vec<Vec<u8>>, Error> {
    match reply {
        Reply::Array(items) => Ok(items
            .into_iter()
            .filter_map(|r| match r {
                Reply::Bulk(b) => Some(b),
                _ => None,
            })
            .collect()),
        other => Err(unexpected(&other)),
    }
}

/// An array of bulks or nils.
pub(crate) fn optional_bulks(reply: Reply) -> Result<Vec<Option<Vec<u8>>>, Error> {
    match reply {
        Reply::Array(items) => Ok(items
            .into_iter()
            .map(|r| match r {
                Reply::Bulk(b) => Some(b),
                _ => None,
            })
            .collect()),
        other => Err(unexpected(&other)),
    }
}

/// Field/value pairs, owned.
pub(crate) type OwnedPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// HGETALL's flat array as (field, value) pairs.
pub(crate) fn pairs(reply: Reply) -> Result<OwnedPairs, Error> {
    let mut items = bulks(reply)?.into_iter();
    let mut out = Vec::with_capacity(items.len() / 2);
    while let (Some(f), Some(v)) = (items.next(), items.next()) {
        out.push((f, v));
    }
    Ok(out)
}
