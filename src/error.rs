//! Error types: [`Error`] for everything a [`crate::Db`] call can fail with, and
//! [`CommandError`], which carries Redis's exact error text.
//!
//! Low layers return small local errors; the layer that knows more (which file,
//! which command) wraps them. Display always says what happened and, where it
//! helps, what to do next.

use std::fmt;

/// Result alias used across hashkv.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a hashkv operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A command was rejected with Redis's error reply (the text is exact,
    /// including its `ERR ` or `WRONGTYPE ` prefix).
    #[error("{0}")]
    Command(#[from] CommandError),
    /// A file failed its checks: what is wrong, in which file, at which byte.
    /// Nothing was changed. `hashkv check DIR` names the fix: `hashkv
    /// repair` for MANIFEST trouble, `RecoveryMode::Salvage` (`hashkv
    /// repair --salvage`) for damaged log records, a backup for a damaged
    /// snapshot.
    #[error("{file}: corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        file: String,
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// Another `Db` (in this or another process) has the directory open
    /// for writing. [`crate::Db::open_read_only`] opens it beside that one.
    #[error("{}", locked_text(path, *pid))]
    Locked {
        /// The directory.
        path: String,
        /// The process holding it, when it wrote its id in `LOCK`.
        pid: Option<u32>,
    },
    /// An earlier log write or fsync failed and could not be undone; the
    /// handle now refuses writes. Close and re-open the directory.
    #[error(
        "the log is unusable after an earlier error ({cause}); close and re-open the database"
    )]
    Poisoned {
        /// The first error: what failed, on which file.
        cause: String,
    },
    /// A Rust value could not be stored as a hash's fields, or a hash's
    /// fields could not be read as one ([`crate::Db::hset_struct`],
    /// [`crate::Db::hget_struct`]): which key, which field and value (when
    /// one field was at fault), and why. Nothing was written.
    #[error("{}", mapping_text(key, field.as_deref(), value.as_deref(), reason))]
    Mapping {
        /// The key.
        key: String,
        /// The field at fault, if one was.
        field: Option<String>,
        /// Its stored value (reading only).
        value: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// A write was sent to a read-only handle ([`crate::Db::open_read_only`]):
    /// Redis's replica error, nothing changed. Writes go to the process
    /// that opened the directory with [`crate::Db::open`].
    #[error("READONLY You can't write against a read only replica.")]
    ReadOnly,
    /// [`crate::Db::subscribe_from`] was asked for changes after a position
    /// the log no longer holds (a snapshot dropped its segment, or it was
    /// never a frame boundary): start again from the current state (a
    /// snapshot or a full copy) and subscribe from [`crate::Db::log_position`].
    #[error("log position {requested} is no longer in the log ({why}); start from a full copy and subscribe from the current position")]
    PositionGone {
        /// The position asked for.
        requested: crate::feed::LogPosition,
        /// Why it cannot be served.
        why: String,
    },
    /// An I/O operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What hashkv was doing, e.g. "creating directory".
        op: &'static str,
        /// The file or directory involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn locked_text(path: &str, pid: Option<u32>) -> String {
    match pid {
        Some(p) if p == std::process::id() => format!(
            "{path} is already open in this process (another Db handle holds it; drop that handle first, or open it read-only)"
        ),
        Some(p) => format!(
            "{path} is locked by another hashkv process (pid {p}; close it first, or open it read-only)"
        ),
        None => format!(
            "{path} is locked by another hashkv process (close it first, or open it read-only)"
        ),
    }
}

fn mapping_text(key: &str, field: Option<&str>, value: Option<&str>, reason: &str) -> String {
    match (field, value) {
        (Some(f), Some(v)) => format!("key '{key}', field '{f}', value '{v}': {reason}"),
        (Some(f), None) => format!("key '{key}', field '{f}': {reason}"),
        _ => format!("key '{key}': {reason}"),
    }
}

/// A command error with Redis's exact reply text, e.g.
/// `ERR value is not an integer or out of range`.
///
/// Clients match on these strings, so they are reproduced byte for byte; see
/// Redis's command documentation and docs/COMPATIBILITY.md.
#[derive(Clone, PartialEq, Eq)]
pub struct CommandError {
    message: String,
}

impl CommandError {
    /// An error whose full text (prefix included) is `message`. As Redis
    /// does for every error reply, CR and LF at either end are trimmed and
    /// any others (from user bytes quoted in the text) become spaces, so an
    /// error is always one line.
    pub fn new(message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.contains(['\r', '\n']) {
            message = message
                .trim_matches(['\r', '\n'])
                .replace(['\r', '\n'], " ");
        }
        CommandError { message }
    }

    /// `ERR <text>`.
    pub(crate) fn err(text: impl AsRef<str>) -> Self {
        CommandError::new(format!("ERR {}", text.as_ref()))
    }

    /// The full error text as Redis sends it after the `-`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The first word of the message: `ERR`, `WRONGTYPE`, ...
    pub fn kind(&self) -> &str {
        self.message.split(' ').next().unwrap_or("")
    }

    pub(crate) fn wrong_arity(cmd: &str) -> Self {
        CommandError::err(format!("wrong number of arguments for '{cmd}' command"))
    }

    pub(crate) fn syntax() -> Self {
        CommandError::err("syntax error")
    }

    pub(crate) fn not_integer() -> Self {
        CommandError::err("value is not an integer or out of range")
    }

    pub(crate) fn not_float() -> Self {
        CommandError::err("value is not a valid float")
    }

    pub(crate) fn out_of_range() -> Self {
        CommandError::err("value is out of range")
    }

    pub(crate) fn invalid_cursor() -> Self {
        CommandError::err("invalid cursor")
    }

    pub(crate) fn no_such_key() -> Self {
        CommandError::err("no such key")
    }

    pub(crate) fn invalid_expire(cmd: &str) -> Self {
        CommandError::err(format!("invalid expire time in '{cmd}' command"))
    }

    pub(crate) fn too_large() -> Self {
        CommandError::err("hash is too large for hashkv (a single hash holds at most 8 GiB)")
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandError({:?})", self.message)
    }
}

impl std::error::Error for CommandError {}
