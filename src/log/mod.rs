//! The append-only log: record framing ([`record`]), the writer with its
//! fsync policies ([`writer`]) over a mapped, preallocated segment
//! ([`mapped`]) behind the file seam ([`file`]), the reader that tells a torn tail from corruption
//! ([`reader`]) and the follower's reader of a segment still being written
//! ([`tail`]).

pub(crate) mod file;
pub(crate) mod mapped;
pub(crate) mod reader;
pub(crate) mod record;
pub(crate) mod tail;
pub(crate) mod writer;

#[cfg(test)]
mod powercut_tests;
