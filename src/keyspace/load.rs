//! Bulk loading ([`Keyspace::load_items`]): HSETs applied as one batch
//! whose effects are logged as a single `Effect::Batch` record, and whose
//! new keys become compact hashes built directly from their pairs.
//!
//! The record holds exactly the effects the same HSETs made one call at a
//! time log (per command, a `Del` first when its key had expired, then its
//! `HSet`), inside one whole checksummed frame: replay and read-only
//! followers apply it as they apply a transaction's record, all or
//! nothing. The steps:
//!
//! 1. Every key's shard is write-locked (once, in ascending order).
//! 2. The effects' bodies are encoded into one buffer after room for the
//!    frame's header, which is written last (one CRC for the batch).
//! 3. The log reserves room for the frame, then copies it: the batch is
//!    logged whole, or (a full disk, a poisoned log) not at all and
//!    nothing in memory has changed.
//! 4. The commands are applied in order. A command whose key does not
//!    exist, with pairs a compact hash holds (within the listpack limits,
//!    no field twice) is stored as its compact buffer, encoded straight
//!    from the pairs (interned as a shape when its field list is shared);
//!    any other goes through HSET's own path. An apply error (a hash
//!    outgrowing hashkv's limits) is that command's alone, as replay meets
//!    it the same way.

use super::effect::set_pairs;
use super::{Effect, HSetItem, Keyspace, Shard};
use crate::error::{CommandError, Error};
use crate::hash::compact;
use crate::log::record;
use crate::options::{Now, Options};

/// Pairs checked for a repeated field one against another; longer lists
/// go through HSET's path.
const DIRECT_PAIRS: usize = 32;

thread_local! {
    /// The record of the thread's last load batch (kept for the next).
    static RECORD: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    /// A compact buffer being built.
    static PAIRS: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Record buffers larger than this are freed rather than kept.
const KEEP_RECORD: usize = 4 << 20;

impl Keyspace {
    /// Runs the HSETs of `items` in order as one load batch (see the module
    /// doc): `done` gets each command's index and its count of new fields,
    /// or its error. Returns the ticket of the batch's record; `Err` when
    /// it could not be logged, and then nothing was applied.
    pub(crate) fn load_items(
        &self,
        items: &[HSetItem<'_>],
        now: &Now<'_>,
        opts: &Options,
        done: impl FnMut(usize, Result<i64, CommandError>),
    ) -> Result<Option<u64>, Error> {
        let mut locked = self.lock_items(items, now)?;
        let ticket = match self.journal.get() {
            Some(journal) if !items.is_empty() => {
                let mut buf = RECORD.try_with(std::cell::Cell::take).unwrap_or_default();
                buf.clear();
                buf.resize(record::BATCH_HEAD_ROOM, 0);
                let mut scratch = Vec::new();
                let mut count = 0u64;
                let mut next_expired = locked.expired.iter().peekable();
                for (i, it) in items.iter().enumerate() {
                    if next_expired.next_if_eq(&&i).is_some() {
                        let len = record::encode(&Effect::Del { keys: vec![it.key] }, &mut scratch)
                            .map_err(|m| Error::Command(CommandError::err(m)))?;
                        buf.extend_from_slice(&scratch[record::FRAME_HEADER + 1..len]);
                        count += 1;
                    }
                    record::push_hset_body(&mut buf, it.key, it.pairs);
                    count += 1;
                }
                let logged = record::batch_frame_at(&mut buf, count)
                    .map_err(|m| Error::Command(CommandError::err(m)))
                    .and_then(|start| journal.append_frames(&buf[start..], 1));
                if buf.capacity() <= KEEP_RECORD {
                    let _ = RECORD.try_with(|c| c.set(buf));
                }
                Some(logged?)
            }
            _ => None,
        };
        // Logged: from here on nothing fails as a batch. New keys have no
        // entry to prefetch: only their slots are.
        let mut pairs_buf = PAIRS.try_with(std::cell::Cell::take).unwrap_or_default();
        self.apply_items(items, &mut locked, false, done, |i, shard, h| {
            load_one(shard, &items[i], h, opts, &mut pairs_buf)
        });
        let _ = PAIRS.try_with(|c| c.set(pairs_buf));
        Ok(ticket)
    }
}

/// Whether `pairs` name no field twice (checked one against another;
/// callers bound the count).
fn distinct_fields(pairs: &[(&[u8], &[u8])]) -> bool {
    pairs
        .iter()
        .enumerate()
        .all(|(i, (f, _))| pairs[..i].iter().all(|(g, _)| g != f))
}

/// One HSET of a load: stored directly as a new compact hash when it can
/// be one, else through HSET's path.
fn load_one(
    shard: &mut Shard,
    it: &HSetItem<'_>,
    hash: u64,
    opts: &Options,
    buf: &mut Vec<u8>,
) -> Result<i64, CommandError> {
    let n = it.pairs.len();
    let direct = n > 0
        && n <= DIRECT_PAIRS
        && n <= opts.hash_max_listpack_entries
        && it.pairs.iter().all(|(f, v)| {
            f.len() <= opts.hash_max_listpack_value && v.len() <= opts.hash_max_listpack_value
        })
        && shard.raw_hashed(it.key, hash).is_none()
        && distinct_fields(it.pairs);
    if !direct {
        return set_pairs(shard, it.key, it.pairs, 0, false, opts);
    }
    buf.clear();
    for (f, v) in it.pairs {
        compact::push_elem(buf, f);
        compact::push_value(buf, v, opts.pack_hex);
    }
    let flag = shard.snap_bit;
    shard.store_pairs(it.key, buf, flag, None)?;
    Ok(n as i64)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::db::Db;
    use crate::keyspace::Journal;

    /// A journal that keeps every frame, and fails appends (a full disk)
    /// while `full` is set.
    #[derive(Default)]
    struct Disk {
        frames: Mutex<Vec<u8>>,
        records: AtomicU64,
        full: AtomicBool,
    }

    impl Journal for Disk {
        fn append(&self, e: &Effect<'_>) -> Result<u64, Error> {
            let mut buf = Vec::new();
            let len = record::encode(e, &mut buf).map_err(CommandError::err)?;
            self.append_frame(&buf[..len])
        }
        fn append_frame(&self, frame: &[u8]) -> Result<u64, Error> {
            self.append_frames(frame, 1)
        }
        fn append_frames(&self, frames: &[u8], count: u64) -> Result<u64, Error> {
            if self.full.load(Ordering::SeqCst) {
                return Err(crate::admin::io(
                    "appending to log",
                    std::path::Path::new("fake/log"),
                    std::io::Error::from_raw_os_error(libc::ENOSPC),
                ));
            }
            self.frames.lock().unwrap().extend_from_slice(frames);
            Ok(self.records.fetch_add(count, Ordering::SeqCst) + count)
        }
        fn sync(&self, _: u64) -> Result<(), Error> {
            Ok(())
        }
    }

    /// Every key with its pairs, sorted.
    type State = Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)>;

    fn all(db: &Db) -> State {
        let keys = std::iter::once("old".to_owned()).chain((0..1_200).map(|i| format!("k{i}")));
        keys.filter_map(|k| {
            let mut h = db.hgetall(&k).unwrap();
            h.sort();
            (!h.is_empty()).then_some((k, h))
        })
        .collect()
    }

    /// What replaying the journal's frames gives.
    fn replayed(disk: &Disk) -> State {
        let ks = Keyspace::default();
        let opts = Options::default();
        let bytes = disk.frames.lock().unwrap().clone();
        let mut at = 0;
        while at < bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let payload = &bytes[at + record::FRAME_HEADER..at + record::FRAME_HEADER + len];
            let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
            assert_eq!(crc, crc32fast::hash(payload));
            ks.apply(&record::decode(payload).unwrap(), &opts).unwrap();
            at += record::FRAME_HEADER + len;
        }
        all(&Db::with_keyspace(ks, opts))
    }

    /// A full disk fails the load with the disk's error: memory keeps
    /// every batch logged before it and nothing after, as the log does;
    /// once there is room the load goes through and the log agrees.
    #[test]
    fn a_failed_append_leaves_memory_and_log_alike() {
        let disk = Arc::new(Disk::default());
        let ks = Keyspace::default();
        ks.set_journal(disk.clone());
        let db = Db::with_keyspace(ks, Options::default().active_expiry(false));
        db.hset("old", &[("f", "1")]).unwrap();
        let items =
            |from: u32| (from..from + 600).map(|i| (format!("k{i}"), [("a", "1"), ("b", "2")]));
        // 1,200 fields: two batches, the first fills up to 1,000 fields.
        db.load(items(0)).unwrap();
        let before = all(&db);
        assert_eq!(before.len(), 601);
        assert_eq!(replayed(&disk), before);
        disk.full.store(true, Ordering::SeqCst);
        let err = db.load(items(600)).unwrap_err();
        assert!(
            matches!(err, Error::Io { .. }) && err.to_string().contains("fake/log"),
            "{err}"
        );
        assert_eq!(all(&db), before);
        assert_eq!(replayed(&disk), before);
        disk.full.store(false, Ordering::SeqCst);
        let t = db.load(items(600)).unwrap();
        assert_eq!(t.fields, 1_200);
        assert_eq!(all(&db).len(), 1_201);
        assert_eq!(replayed(&disk), all(&db));
        // Two batch records per load of 1,200 fields, one for the HSET.
        assert_eq!(disk.records.load(Ordering::SeqCst), 5);
    }
}
