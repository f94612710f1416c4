//! hashkv: Redis hashes in process.
//!
//! hashkv gives a Rust program the Redis hash and key commands — `HSET`,
//! `HGET`, `HINCRBY`, `HGETALL`, `HSCAN`, `EXPIRE`, field expiration
//! (`HEXPIRE`, `HGETEX`, `HSETEX`, ...) and the rest — with Redis's
//! exact replies and error strings, and no server. Hashes live in memory in a
//! compact listpack-style encoding or a dict encoding, converting at Redis's
//! thresholds (512 fields, 64-byte values by default). Compact hashes with
//! the same field names in the same order share one copy of the names
//! ([`Options::shapes`]), and values that are runs of hex digits (digests,
//! object addresses) are kept two digits a byte ([`Options::pack_hex`]);
//! neither changes a reply.
//!
//! A Rust struct is a hash, one field per struct field, through serde
//! ([`Db::hset_struct`], [`Db::hget_struct`]; the value forms are in
//! [`typed`]); iterators walk keys and fields in batches; [`Db::sync`]
//! makes every write so far durable, whatever the fsync policy:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct User {
//!     name: String,
//!     age: u32,
//!     bio: Option<String>, // None: no field
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let db = hashkv::Db::open(dir.path())?;
//! db.hset_struct("user:1", &User { name: "Alice".into(), age: 25, bio: None })?;
//! db.hincrby("user:1", "age", 1)?; // fields are plain Redis values
//! let alice: User = db.hget_struct("user:1")?.expect("stored above");
//! assert_eq!(alice.age, 26);
//! for key in db.iter_keys_matching("user:*") {
//!     assert_eq!(key, b"user:1");
//! }
//! db.sync()?; // on disk now
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every command, with Redis's replies and errors:
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let db = hashkv::Db::open(dir.path())?;
//! db.hset("user:1", &[("name", "Alice"), ("age", "25")])?;
//! assert_eq!(db.hget("user:1", "name")?, Some(b"Alice".to_vec()));
//! assert_eq!(db.hincrby("user:1", "age", 1)?, 26);
//! // Any command, as its words, with Redis's reply:
//! let reply = db.execute(&["HGETALL", "user:1"])?;
//! assert_eq!(reply.to_cli_string(), "1) \"name\"\n2) \"Alice\"\n3) \"age\"\n4) \"26\"\n");
//! assert_eq!(db.object_encoding("user:1")?.as_deref(), Some("listpack"));
//! // Fields can expire on their own (Redis 7.4+):
//! assert_eq!(db.hpexpire("user:1", 60_000, &["age"])?, vec![1]);
//! let left = db.hpttl("user:1", &["age", "name"])?; // ms left; -1: no TTL
//! assert!((59_000..=60_000).contains(&left[0]) && left[1] == -1);
//! assert_eq!(db.object_encoding("user:1")?.as_deref(), Some("listpackex"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Transactions: a closure over declared keys ([`Db::transaction`]), or
//! Redis's MULTI/EXEC/WATCH in a [`Session`] (what `hashkv shell` runs);
//! either is applied all at once and logged as one record.
//!
//! ```
//! use hashkv::Reply;
//! let db = hashkv::Db::in_memory(hashkv::Options::default());
//! db.hset("acct:a", &[("balance", "100")])?;
//! // Move 30 only if it is there; nobody sees the money in between.
//! let moved = db.transaction(&["acct:a", "acct:b"], |tx| {
//!     let a: i64 = tx.hget("acct:a", "balance")?
//!         .map_or(0, |v| String::from_utf8_lossy(&v).parse().unwrap_or(0));
//!     if a < 30 {
//!         return Ok(false);
//!     }
//!     tx.hincrby("acct:a", "balance", -30)?;
//!     tx.hincrby("acct:b", "balance", 30)?;
//!     Ok(true)
//! })?;
//! assert!(moved);
//! // The same in Redis's words, in a session:
//! let mut s = db.session();
//! s.execute(&["WATCH", "acct:a"])?;
//! s.execute(&["MULTI"])?;
//! s.execute(&["HINCRBY", "acct:a", "balance", "-10"])?;
//! s.execute(&["HINCRBY", "acct:b", "balance", "10"])?;
//! assert_eq!(s.execute(&["EXEC"])?, Reply::Array(vec![Reply::Integer(60), Reply::Integer(40)]));
//! # Ok::<(), hashkv::Error>(())
//! ```
//!
//! Many commands at once: a [`pipeline::Pipeline`] ([`Db::pipeline`])
//! returns exactly what the single calls would, takes each shard's lock
//! once per batch and prefetches the batch's keys before it reads them.
//!
//! Readers in other processes: one process opens a directory for writing,
//! any number of others open it read-only ([`Db::open_read_only`]) and
//! follow its log within milliseconds, like Redis replicas: reads answer as
//! on the writer, writes answer [`Error::ReadOnly`]. Every change is also a
//! [`Change`] on a bounded feed ([`Db::subscribe`], [`Db::subscribe_from`]
//! a saved [`LogPosition`]), in the writer's process and in readers.
//!
//! What it is not: a server (no network protocol), a cache with eviction, or
//! a store of Redis's other types (strings, lists, sets, ...). One process
//! writes a database; others may read it.
//!
//! Durability: a [`Db`] opened on a directory logs every write to an
//! append-only log (CRC-framed records, fsync policy like Redis's
//! `appendfsync`) and replays it on open, cutting a torn tail (saved to
//! `lost+found/` first) and refusing any other damage with its file and
//! offset; open never deletes what it cannot prove is garbage. Snapshots ([`Db::snapshot`], also
//! taken automatically) capture the keyspace as of one instant while writers
//! keep going, and let the log they cover be dropped; see docs/DURABILITY.md
//! and docs/FORMAT.md.
//!
//! # Layout
//! - [`db`]: the [`Db`] handle and its typed methods.
//! - [`command`]: parse -> [`Command`] -> execute -> [`Reply`]; every Redis
//!   error string lives here.
//! - `keyspace`: the sharded key table, key and field TTLs, lazy and active
//!   expiry.
//! - `hash`: the compact encoding (`hash::compact`), its variant with field
//!   TTLs (`hash::compact_ex`), shared field lists (`hash::shape`) and the
//!   dict encoding (`hash::dict` over `hash::table`, an
//!   arena-backed table with incremental rehash).
//! - `numeric`: Redis's integer grammar and `long double` arithmetic.
//! - `log`: record framing, the writer (fsync policies, group commit) and the
//!   reader (torn tail versus corruption); `dir`: LOCK and MANIFEST;
//!   [`recovery`]: opening a directory and its [`RecoveryReport`].
//! - `snapshot`: the snapshot file format, the point-in-time capture driver
//!   and restore ([`SnapshotInfo`]).
//! - [`shell`]: redis-cli quoting in, `redis-cli --no-raw` output out.
//! - [`session`]: [`Session`], one client's MULTI queue and WATCHed keys;
//!   `transaction`: [`Db::transaction`] and [`Transaction`]; both run
//!   their commands directly on the shards they lock (`command::Ctx`),
//!   keeping each key's old state for a rollback.
//! - [`pipeline`]: [`pipeline::Pipeline`], batches of commands.
//! - `follow`: a read-only handle's view of the log it follows (loading,
//!   catch-up, damage, reloads; [`ReaderStatus`]), over `log::tail`, which
//!   reads a segment another process is still writing; [`feed`]: the change
//!   feed ([`Change`], [`Subscription`], [`LogPosition`]).
//! - [`interop`]: export and import in RESP, JSON lines and Redis RDB
//!   files ([`Db::import_rdb`], [`Db::export_rdb`]); [`admin`]: check,
//!   repair, info.
//! - [`typed`]: structs through serde ([`Db::hset_struct`],
//!   [`Db::hget_struct`]) and the key and field iterators.
//! - [`options`]: [`Options`] and the [`Clock`] seam.
//! - [`error`]: [`Error`] and [`CommandError`].
//!
//! # Limits
//! A single dict-encoded hash holds at most 8 GiB of fields and values
//! (its arena's address space); beyond that writes fail with an error.
//! `HINCRBYFLOAT` matches Redis digit for digit where C's `long double` is
//! the same as Redis's build (x87 80-bit on x86-64).

pub mod admin;
pub mod command;
pub mod db;
mod dir;
pub mod error;
pub mod feed;
mod follow;
#[doc(hidden)]
pub mod fuzzing;
mod hash;
pub mod interop;
mod keyspace;
mod log;
mod numeric;
pub mod options;
pub mod pipeline;
mod prefetch;
pub mod recovery;
pub mod session;
pub mod shell;
mod snapshot;
#[cfg(feature = "sync")]
pub mod sync;
mod transaction;
pub mod typed;

pub use command::{Command, Reply};
pub use db::{Db, HashView, WriteBatch};
pub use error::{CommandError, Error, Result};
pub use feed::{Change, ChangeKind, LogPosition, RecvError, Subscription};
pub use follow::ReaderStatus;
pub use options::{Clock, FsyncPolicy, ManualClock, Options, RecoveryMode, SystemClock};
pub use recovery::RecoveryReport;
pub use session::Session;
pub use snapshot::SnapshotInfo;
pub use transaction::Transaction;

/// The Rust examples of README.md, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
