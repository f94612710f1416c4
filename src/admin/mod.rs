//! What the `hashkv` tool does beyond commands, as a library: [`check`] a
//! directory's checksums and [`repair`] it (the `check` module) and
//! [`Db::info`]. Export and import live in [`crate::interop`]; their types
//! are re-exported here, where the tool names them.

use std::path::Path;

use serde_json::{json, Value};

use crate::db::Db;
use crate::error::{Error, Result};
use crate::options::FsyncPolicy;

mod check;
pub use crate::interop::{Format, Transfer};
pub use check::{check, repair, CheckReport, CheckedFile, Finding, RepairReport, Severity};

pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// A file of the directory, for [`Info`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileInfo {
    /// The file name.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// Seconds since it was last modified.
    pub age_secs: u64,
}

/// What [`Db::info`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Info {
    /// Keys (DBSIZE).
    pub keys: u64,
    /// Fields over all hashes.
    pub fields: u64,
    /// Hashes in the compact encoding.
    pub listpack_hashes: u64,
    /// Hashes in the dict encoding.
    pub hashtable_hashes: u64,
    /// Compact hashes that share their field list with others (counted in
    /// `listpack_hashes` too; see [`crate::Options::shapes`]).
    pub shaped_hashes: u64,
    /// Distinct shared field lists.
    pub shapes: u64,
    /// Keys with a TTL.
    pub volatile_keys: u64,
    /// Hashes with at least one field TTL.
    pub field_ttl_hashes: u64,
    /// Bytes held for the data (the sum of MEMORY USAGE).
    pub memory_bytes: u64,
    /// The snapshot, if the directory has one.
    pub snapshot: Option<FileInfo>,
    /// The log segments after it.
    pub segments: Vec<FileInfo>,
    /// The fsync policy of this handle.
    pub fsync: FsyncPolicy,
    /// Whether this handle is a reader ([`Db::open_read_only`]).
    pub read_only: bool,
    /// Where the handle is in the log ([`Db::log_position`]).
    pub position: crate::LogPosition,
    /// On a reader: bytes of whole records past its position, not applied
    /// yet ([`Db::reader_lag_bytes`]).
    pub lag_bytes: Option<u64>,
    /// Keys removed because their TTL passed, since this handle opened
    /// (Redis's `expired_keys`).
    pub expired_keys: u64,
    /// Fields removed because their TTL passed, since this handle opened
    /// (Redis's `expired_subkeys`).
    pub expired_fields: u64,
}

impl Info {
    /// As one JSON object (what `hashkv info --json` prints).
    pub fn to_json(&self) -> Value {
        let file = |f: &FileInfo| json!({"name": f.name, "bytes": f.bytes, "age_secs": f.age_secs});
        json!({
            "keys": self.keys,
            "fields": self.fields,
            "hashes": {
                "listpack": self.listpack_hashes,
                "hashtable": self.hashtable_hashes,
                "shaped": self.shaped_hashes,
            },
            "shapes": self.shapes,
            "volatile_keys": self.volatile_keys,
            "field_ttl_hashes": self.field_ttl_hashes,
            "memory_bytes": self.memory_bytes,
            "snapshot": self.snapshot.as_ref().map(file),
            "log_segments": self.segments.iter().map(file).collect::<Vec<_>>(),
            "log_bytes": self.segments.iter().map(|s| s.bytes).sum::<u64>(),
            "fsync": format!("{:?}", self.fsync).to_lowercase(),
            "role": if self.read_only { "reader" } else { "writer" },
            "log_position": self.position.to_string(),
            "lag_bytes": self.lag_bytes,
            "expired_keys": self.expired_keys,
            "expired_fields": self.expired_fields,
        })
    }
}

fn file_info(dir: &Path, name: &str) -> FileInfo {
    let md = std::fs::metadata(dir.join(name)).ok();
    FileInfo {
        name: name.to_owned(),
        bytes: md.as_ref().map_or(0, std::fs::Metadata::len),
        age_secs: md
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .map_or(0, |d| d.as_secs()),
    }
}

impl Db {
    /// Keys, fields, encodings, memory, the directory's files, and where
    /// the handle is in the log.
    ///
    /// # Examples
    /// ```
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// db.hset("user:1", &[("name", "Alice"), ("age", "25")])?;
    /// let info = db.info()?;
    /// assert_eq!((info.keys, info.fields, info.listpack_hashes), (1, 2, 1));
    /// println!("{}", info.to_json());
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    ///
    /// # Errors
    /// On a reader, [`Error::Io`] when the log cannot be read.
    pub fn info(&self) -> Result<Info> {
        let st = self.keyspace().stats();
        let manifest = match (self.store(), self.path()) {
            (Some(store), Some(_)) => Some(store.manifest()),
            // A reader reads MANIFEST as it is now.
            (None, Some(dir)) => crate::dir::read_manifest(dir).ok().flatten(),
            _ => None,
        };
        let (snapshot, segments) = match (manifest, self.path()) {
            (Some(m), Some(dir)) => (
                m.snapshot.as_deref().map(|s| file_info(dir, s)),
                m.segments.iter().map(|s| file_info(dir, s)).collect(),
            ),
            _ => (None, Vec::new()),
        };
        Ok(Info {
            keys: st.keys,
            fields: st.fields,
            listpack_hashes: st.listpack,
            hashtable_hashes: st.hashtable,
            shaped_hashes: st.shaped,
            shapes: st.shapes,
            volatile_keys: st.volatile,
            field_ttl_hashes: st.field_ttl_hashes,
            memory_bytes: st.memory,
            snapshot,
            segments,
            fsync: self.options().fsync,
            read_only: self.is_read_only(),
            position: self.log_position(),
            lag_bytes: self.reader_lag_bytes()?,
            expired_keys: self
                .keyspace()
                .counters
                .expired_keys
                .load(std::sync::atomic::Ordering::Relaxed),
            expired_fields: self
                .keyspace()
                .counters
                .expired_fields
                .load(std::sync::atomic::Ordering::Relaxed),
        })
    }
}
