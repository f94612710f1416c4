//! [`LogWriter`]: appends framed records to the open segment and makes them
//! durable according to the [`FsyncPolicy`].
//!
//! - `append` runs with the effect's shard locks held: it encodes the record
//!   and writes it to the file (one `write` per record, so a process crash
//!   loses nothing that was acknowledged). A failed or short write is cut
//!   back off the file, so the log never holds half a record and memory is
//!   never changed; if even that fails the writer is poisoned.
//! - `sync` runs after the locks are released. `Always`: group commit — one
//!   caller runs `fdatasync` for everything appended so far while the others
//!   wait for it and share it. `EverySec`: a background thread syncs once a
//!   second. `No`: the OS decides.
//! - A failed fsync poisons the writer (the kernel may have dropped the dirty
//!   pages; retrying cannot be trusted): further writes fail with
//!   [`Error::Poisoned`], reads keep working.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::record;
use crate::error::Error;
use crate::keyspace::{Effect, Journal};
use crate::options::FsyncPolicy;

struct Inner {
    file: File,
    len: u64,
    seq: u64,
    buf: Vec<u8>,
}

#[derive(Default)]
struct SyncState {
    synced: u64,
    syncing: bool,
}

/// The log writer of an open database.
pub(crate) struct LogWriter {
    inner: Mutex<Inner>,
    /// A second handle on the segment, for fsync without the append lock.
    sync_file: File,
    state: Mutex<SyncState>,
    cond: Condvar,
    poisoned: std::sync::atomic::AtomicBool,
    policy: FsyncPolicy,
    path: PathBuf,
}

fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

impl LogWriter {
    /// A writer appending to `file` (already positioned at `len`, its valid
    /// end, and opened for appending).
    pub(crate) fn new(
        file: File,
        len: u64,
        path: PathBuf,
        policy: FsyncPolicy,
    ) -> Result<Arc<Self>, Error> {
        let sync_file = file
            .try_clone()
            .map_err(|e| io("cloning log handle", &path, e))?;
        let w = Arc::new(LogWriter {
            inner: Mutex::new(Inner {
                file,
                len,
                seq: 0,
                buf: Vec::with_capacity(256),
            }),
            sync_file,
            state: Mutex::new(SyncState::default()),
            cond: Condvar::new(),
            poisoned: std::sync::atomic::AtomicBool::new(false),
            policy,
            path,
        });
        if policy == FsyncPolicy::EverySec {
            let weak = Arc::downgrade(&w);
            std::thread::Builder::new()
                .name("hashkv-fsync".into())
                .spawn(move || every_second(&weak))
                .map_err(|e| io("starting the fsync thread for", &w.path, e))?;
        }
        Ok(w)
    }

    fn is_poisoned(&self) -> bool {
        self.poisoned.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn poison(&self) {
        self.poisoned
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Syncs everything appended so far; used by `Always` and on close.
    fn sync_all(&self) -> Result<(), Error> {
        let target = self.inner.lock().seq;
        self.sync_upto(target)
    }

    fn sync_upto(&self, ticket: u64) -> Result<(), Error> {
        let mut st = self.state.lock();
        loop {
            if st.synced >= ticket {
                return Ok(());
            }
            if self.is_poisoned() {
                return Err(Error::Poisoned);
            }
            if st.syncing {
                self.cond.wait(&mut st);
                continue;
            }
            st.syncing = true;
            drop(st);
            // Everything appended before this point is covered by the fsync.
            let target = self.inner.lock().seq;
            let res = self.sync_file.sync_data();
            st = self.state.lock();
            st.syncing = false;
            match res {
                Ok(()) => st.synced = st.synced.max(target),
                Err(e) => {
                    self.poison();
                    self.cond.notify_all();
                    return Err(io("syncing log", &self.path, e));
                }
            }
            self.cond.notify_all();
        }
    }
}

impl Journal for LogWriter {
    fn append(&self, e: &Effect<'_>) -> Result<u64, Error> {
        if self.is_poisoned() {
            return Err(Error::Poisoned);
        }
        let mut g = self.inner.lock();
        let inner = &mut *g;
        inner.buf.clear();
        record::encode(e, &mut inner.buf).map_err(|m| {
            io(
                "encoding a record for",
                &self.path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, m),
            )
        })?;
        match inner.file.write_all(&inner.buf) {
            Ok(()) => {
                inner.len += inner.buf.len() as u64;
                inner.seq += 1;
                Ok(inner.seq)
            }
            Err(err) => {
                // Cut a partial record back off, so the log stays whole and
                // the next write (once the disk has room) starts clean.
                if inner.file.set_len(inner.len).is_err() {
                    self.poison();
                }
                Err(io("appending to log", &self.path, err))
            }
        }
    }

    fn sync(&self, ticket: u64) -> Result<(), Error> {
        match self.policy {
            FsyncPolicy::Always => self.sync_upto(ticket),
            FsyncPolicy::EverySec | FsyncPolicy::No => {
                if self.is_poisoned() {
                    return Err(Error::Poisoned);
                }
                Ok(())
            }
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.policy != FsyncPolicy::No && !self.is_poisoned() {
            let _ = self.sync_all();
        }
    }
}

fn every_second(w: &Weak<LogWriter>) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let Some(w) = w.upgrade() else { return };
        if w.is_poisoned() {
            return;
        }
        let _ = w.sync_all();
    }
}
