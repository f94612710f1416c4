//! WATCH: which sessions watch which keys, and marking them touched.
//!
//! Every change to a key goes through [`super::Keyspace::log`] as an
//! effect; when any key is watched, the effect's keys mark their watchers
//! dirty there (one relaxed atomic load otherwise). As in Redis 7.0: a key
//! already expired when watched may be deleted (by expiry) without marking
//! it; FLUSHDB marks only watched keys that exist.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::Effect;

/// One session's watch of one key.
#[derive(Debug)]
pub(crate) struct Watch {
    pub(crate) key: Vec<u8>,
    /// Touched since WATCH: EXEC aborts.
    pub(crate) dirty: AtomicBool,
    /// The key was expired when watched: its deletion does not count.
    pub(crate) expired_at_watch: AtomicBool,
}

/// The keys watched by every session.
#[derive(Default)]
pub(crate) struct Watches {
    count: AtomicUsize,
    by_key: Mutex<HashMap<Vec<u8>, Vec<Arc<Watch>>>>,
}

impl Watches {
    /// Registers a watch of `key`.
    pub(crate) fn add(&self, key: &[u8], expired: bool) -> Arc<Watch> {
        let w = Arc::new(Watch {
            key: key.to_vec(),
            dirty: AtomicBool::new(false),
            expired_at_watch: AtomicBool::new(expired),
        });
        self.by_key
            .lock()
            .entry(key.to_vec())
            .or_default()
            .push(w.clone());
        self.count.fetch_add(1, Ordering::SeqCst);
        w
    }

    /// Removes the watches `ws`.
    pub(crate) fn remove(&self, ws: &[Arc<Watch>]) {
        if ws.is_empty() {
            return;
        }
        let mut map = self.by_key.lock();
        for w in ws {
            if let Some(list) = map.get_mut(&w.key) {
                let before = list.len();
                list.retain(|x| !Arc::ptr_eq(x, w));
                self.count.fetch_sub(before - list.len(), Ordering::SeqCst);
                if list.is_empty() {
                    map.remove(&w.key);
                }
            }
        }
    }

    /// Marks the watchers of the keys `e` changes (call before applying).
    pub(crate) fn touch(&self, e: &Effect<'_>) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let map = self.by_key.lock();
        touch_in(&map, e);
    }

    /// Marks the watchers of the keys a transaction changed, given with
    /// whether the change was a deletion, in order.
    pub(crate) fn touch_changed<'k>(&self, changed: impl Iterator<Item = (&'k [u8], bool)>) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let map = self.by_key.lock();
        for (k, del) in changed {
            for w in map.get(k).into_iter().flatten() {
                mark(w, del);
            }
        }
    }

    /// FLUSHDB: marks the watchers of every watched key that `exists`.
    pub(crate) fn touch_existing(&self, exists: &mut dyn FnMut(&[u8]) -> bool) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let map = self.by_key.lock();
        for (k, list) in map.iter() {
            if exists(k) {
                // A deletion: a key already expired when watched changes
                // nothing logically (Redis's "FLUSHDB while watching stale
                // keys should not fail EXEC").
                for w in list {
                    mark(w, true);
                }
            }
        }
    }

    /// The watchers of every watched key that `exists` (FLUSHDB in a
    /// transaction, marked with [`mark_deleted`] once it commits).
    pub(crate) fn existing(&self, exists: &mut dyn FnMut(&[u8]) -> bool) -> Vec<Arc<Watch>> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        let map = self.by_key.lock();
        map.iter()
            .filter(|(k, _)| exists(k))
            .flat_map(|(_, list)| list.iter().cloned())
            .collect()
    }

    /// Marks every watcher (a follower loaded a newer state: anything may
    /// have changed).
    pub(crate) fn touch_all(&self) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        for list in self.by_key.lock().values() {
            for w in list {
                w.dirty.store(true, Ordering::SeqCst);
            }
        }
    }
}

fn touch_in(map: &HashMap<Vec<u8>, Vec<Arc<Watch>>>, e: &Effect<'_>) {
    match e {
        Effect::Batch { effects } => effects.iter().for_each(|e| touch_in(map, e)),
        // FLUSHDB marks only keys that exist: see `touch_existing`.
        Effect::FlushDb => {}
        Effect::Del { keys } => {
            for k in keys {
                for w in map.get(*k).into_iter().flatten() {
                    mark(w, true);
                }
            }
        }
        // COPY changes only its destination (Redis signals `dst` alone).
        Effect::Copy { dst, .. } => {
            for w in map.get(*dst).into_iter().flatten() {
                mark(w, false);
            }
        }
        other => {
            for k in other.keys() {
                for w in map.get(k).into_iter().flatten() {
                    mark(w, false);
                }
            }
        }
    }
}

/// Marks watchers whose keys were deleted.
pub(crate) fn mark_deleted(ws: &[Arc<Watch>]) {
    for w in ws {
        mark(w, true);
    }
}

/// Marks `w` touched by a change (`del`: a deletion).
fn mark(w: &Watch, del: bool) {
    if del {
        // Deleting a key that was already expired when watched changes
        // nothing logically (Redis 7.0).
        if !w.expired_at_watch.swap(false, Ordering::SeqCst) {
            w.dirty.store(true, Ordering::SeqCst);
        }
    } else {
        w.expired_at_watch.store(false, Ordering::SeqCst);
        w.dirty.store(true, Ordering::SeqCst);
    }
}
