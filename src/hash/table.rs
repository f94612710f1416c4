//! [`ArenaTable`]: the hash table under both the dict encoding and the
//! keyspace. It maps byte-string names to byte-string payloads.
//!
//! Layout, chosen for memory and for the absence of pauses:
//! - Entries live packed in an [`Arena`] of pages (at most 32 KiB, entries
//!   larger than 8 KiB get a page of their own), each entry
//!   `[varint name_len][varint payload_len][name][payload]` padded to 2 bytes
//!   (the address counts 2-byte units: 2^18 pages of 32 KiB, 8 GiB a table;
//!   4-byte units cost the big dataset 6% more memory).
//!   There is no per-entry heap allocation and no allocator header. A table
//!   made [`ArenaTable::with_kinds`] (a dict) stores `payload_len << 2 |
//!   kind` instead, a 2-bit kind per entry that says how its payload is
//!   stored (the dict's packed hex values, `hash::dict`).
//! - The table is open addressing with linear probing over two parallel
//!   arrays: a tag byte per slot (empty, tombstone, or 7 bits of the hash) and
//!   a `u32` arena address. About 5 bytes per slot.
//! - Growing or shrinking allocates the new arrays (zeroed memory, which the
//!   OS hands out lazily) and migrates a bounded number of slots per write
//!   (incremental rehash, as Redis's dict does), so no single call copies the
//!   whole table. Lookups consult both arrays while a migration runs.
//! - Replaced or removed entries leave dead bytes in their page; a page more
//!   than half dead is compacted (its live entries moved to the tail page),
//!   one page per write, which bounds the work of any single call.
//! - [`ArenaTable::scan`] is Redis's reverse-binary cursor over *home*
//!   buckets (the slot a name hashes to), which keeps Redis's guarantee that
//!   an entry present for a whole scan is returned at least once, across
//!   resizes.
//!
//! The hash function is ahash keyed with random seeds chosen once per
//! process, so names chosen by an attacker cannot be made to collide.
//!
//! This module owns the slots, the rehash, scans and page compaction; the
//! pages and the entry layout are [`arena`]'s.

mod arena;

use std::sync::OnceLock;

use rand::Rng;

use arena::{get_varint, make_addr, padded, split_addr, Arena};

/// Smallest slot array.
const MIN_SLOTS: usize = 8;
/// Slots visited per migration step (cheap: tag bytes only).
const STEP_VISITS: usize = 256;
/// Live entries moved per migration step.
const STEP_MOVES: usize = 8;

/// Zero: a slot array is allocated zeroed (`ZeroedChunk`).
const EMPTY: u8 = 0;
const TOMB: u8 = 1;

fn hasher() -> &'static ahash::RandomState {
    static STATE: OnceLock<ahash::RandomState> = OnceLock::new();
    STATE.get_or_init(ahash::RandomState::new)
}

/// The per-process seeded hash of a name.
#[inline]
pub(crate) fn hash_name(name: &[u8]) -> u64 {
    hasher().hash_one(name)
}

#[inline]
fn tag_of(hash: u64) -> u8 {
    0x80 | ((hash >> 32) as u8 & 0x7F)
}

/// The table ran out of addressable arena pages (8 GiB of entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// Slots per chunk of a slot array.
const CHUNK_SLOTS: usize = 1 << 16;

/// A slot array stored in chunks of at most [`CHUNK_SLOTS`] elements,
/// each allocated on its first write.
///
/// Why chunks: releasing one 80 MB array is one `munmap`, which holds the
/// process-wide mmap lock for milliseconds and stalls every page fault and
/// `brk` of the writer meanwhile (measured with strace while growing a hash
/// to 10M fields: a 5.9 ms unmap, a 5.4 ms `brk`). Chunks of 64-256 KiB are
/// released one by one, each holding the lock briefly. Why lazily: zeroing
/// all chunks up front when a migration starts cost up to 190 ms.
struct Chunked<T> {
    chunks: Vec<Option<Box<[T]>>>,
    per: usize,
    zero: T,
}

impl<T: Copy> Chunked<T> {
    fn filled(n: usize, zero: T) -> Self {
        let per = n.min(CHUNK_SLOTS);
        Chunked {
            chunks: (0..n.div_ceil(per)).map(|_| None).collect(),
            per,
            zero,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        let (per, zero) = (self.per, &self.zero);
        self.chunks.iter().flat_map(move |c| {
            let (slice, missing): (&[T], usize) = match c {
                Some(c) => (c, 0),
                None => (&[], per),
            };
            slice.iter().chain(std::iter::repeat_n(zero, missing))
        })
    }

    fn has_chunk(&self, i: usize) -> bool {
        self.chunks
            .get(i / CHUNK_SLOTS)
            .is_some_and(Option::is_some)
    }

    fn bytes(&self) -> usize {
        self.chunks.iter().flatten().map(|c| c.len()).sum::<usize>() * std::mem::size_of::<T>()
            + self.chunks.capacity() * std::mem::size_of::<Option<Box<[T]>>>()
    }
}

impl<T: Copy> std::ops::Index<usize> for Chunked<T> {
    type Output = T;
    #[inline]
    fn index(&self, i: usize) -> &T {
        match &self.chunks[i / CHUNK_SLOTS] {
            Some(c) => &c[i % CHUNK_SLOTS],
            None => &self.zero,
        }
    }
}

/// Element types whose all-zero bytes are their `zero`, so a chunk is
/// allocated zeroed: `calloc` hands over fresh pages untouched, faulted in
/// one at a time as slots are written. (`vec![zero; n]` of a struct writes
/// every element: a 320 KiB chunk faulted in at once, 200-500 us on this VM,
/// in the write that first touched the chunk.)
trait ZeroedChunk: Copy + Sized {
    fn zeroed_chunk(n: usize) -> Box<[Self]>;
}

impl ZeroedChunk for Slot {
    fn zeroed_chunk(n: usize) -> Box<[Slot]> {
        let layout = match std::alloc::Layout::array::<Slot>(n) {
            Ok(l) if l.size() > 0 => l,
            _ => return Box::new([]),
        };
        // SAFETY: the layout has a non-zero size; the memory is zeroed, and
        // a `Slot` is a `u8` and a `u32`, for which all-zero bytes are valid
        // values (zero is the empty slot: `EMPTY`, address 0); the box owns
        // the allocation with the layout `[Slot]` of length `n` frees it
        // with, which is `layout`.
        #[allow(unsafe_code)]
        unsafe {
            let p = std::alloc::alloc_zeroed(layout).cast::<Slot>();
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n))
        }
    }
}

impl<T: ZeroedChunk> std::ops::IndexMut<usize> for Chunked<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        let per = self.per;
        let c = self.chunks[i / CHUNK_SLOTS].get_or_insert_with(|| T::zeroed_chunk(per));
        &mut c[i % CHUNK_SLOTS]
    }
}

/// A slot: the tag (`EMPTY`, `TOMB`, or `0x80 |` 7 bits of the hash) and
/// the entry's arena address, side by side (5 bytes) so that a probe that
/// matches the tag finds the address in the same cache line.
#[derive(Clone, Copy)]
#[repr(C, packed)]
struct Slot {
    tag: u8,
    addr: u32,
}

/// One slot array (the table, or the old table during a migration).
struct Slots {
    slots: Chunked<Slot>,
    mask: usize,
    live: usize,
    tombs: usize,
}

impl Slots {
    fn new(n: usize) -> Self {
        debug_assert!(n.is_power_of_two());
        Slots {
            // The zero of `Slot::zeroed_chunk`: all-zero bytes.
            slots: Chunked::filled(
                n,
                Slot {
                    tag: EMPTY,
                    addr: 0,
                },
            ),
            mask: n - 1,
            live: 0,
            tombs: 0,
        }
    }

    fn cap(&self) -> usize {
        self.mask + 1
    }

    #[inline]
    fn find(&self, arena: &Arena, hash: u64, name: &[u8]) -> Option<usize> {
        let tag = tag_of(hash);
        let mut i = hash as usize & self.mask;
        loop {
            let t = self.slots[i].tag;
            if t == EMPTY {
                return None;
            }
            if t == tag && arena.entry(self.slots[i].addr).0 == name {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    fn find_addr(&self, hash: u64, addr: u32) -> Option<usize> {
        let tag = tag_of(hash);
        let mut i = hash as usize & self.mask;
        loop {
            let t = self.slots[i].tag;
            if t == EMPTY {
                return None;
            }
            if t == tag && self.slots[i].addr == addr {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Inserts a name known to be absent.
    fn insert_new(&mut self, hash: u64, addr: u32) {
        let mut i = hash as usize & self.mask;
        while self.slots[i].tag >= 0x80 {
            i = (i + 1) & self.mask;
        }
        if self.slots[i].tag == TOMB {
            self.tombs -= 1;
        }
        self.slots[i].tag = tag_of(hash);
        self.slots[i].addr = addr;
        self.live += 1;
    }

    fn remove_at(&mut self, i: usize) {
        self.slots[i].tag = TOMB;
        self.live -= 1;
        self.tombs += 1;
    }

    fn over_loaded(&self) -> bool {
        // Max load 0.8 counting tombstones; keeps probe runs short and always
        // leaves empty slots, which ends every probe loop.
        (self.live + self.tombs) * 5 >= self.cap() * 4
    }

    fn bytes(&self) -> usize {
        self.slots.bytes()
    }
}

/// Slots for a table of `n` entries that will not grow while filled.
fn slots_for(n: usize) -> usize {
    (n.saturating_mul(2)).next_power_of_two().max(MIN_SLOTS)
}

/// Names to payloads; see the module doc.
pub(crate) struct ArenaTable {
    arena: Arena,
    cur: Slots,
    /// The table being drained during an incremental migration.
    old: Option<Slots>,
    rehash_pos: usize,
}

impl Default for ArenaTable {
    fn default() -> Self {
        Self::new()
    }
}

impl ArenaTable {
    pub(crate) fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A table whose entries carry a 2-bit kind each (see the module doc),
    /// sized for `n` entries.
    pub(crate) fn with_kinds(n: usize) -> Self {
        let mut t = Self::with_capacity(n);
        t.arena.kinds = true;
        t
    }

    /// A table sized for `n` entries without migrations.
    pub(crate) fn with_capacity(n: usize) -> Self {
        let slots = slots_for(n);
        ArenaTable {
            arena: Arena::new(),
            cur: Slots::new(slots),
            old: None,
            rehash_pos: 0,
        }
    }

    /// Sizes an empty table for `n` entries, so filling it migrates
    /// nothing (a table with entries is left as it is).
    pub(crate) fn reserve_empty(&mut self, n: usize) {
        if self.len() == 0 && self.old.is_none() {
            let slots = slots_for(n);
            if slots > self.cur.cap() {
                self.cur = Slots::new(slots);
            }
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.cur.live + self.old.as_ref().map_or(0, |o| o.live)
    }

    #[inline]
    fn locate(&self, hash: u64, name: &[u8]) -> Option<(bool, usize)> {
        if let Some(i) = self.cur.find(&self.arena, hash, name) {
            return Some((false, i));
        }
        let old = self.old.as_ref()?;
        old.find(&self.arena, hash, name).map(|i| (true, i))
    }

    fn addr_at(&self, in_old: bool, i: usize) -> u32 {
        match (in_old, &self.old) {
            (true, Some(o)) => o.slots[i].addr,
            _ => self.cur.slots[i].addr,
        }
    }

    /// Prefetches the home slot of `hash` (first stage of a batched
    /// lookup).
    #[inline]
    pub(crate) fn prefetch_slot(&self, hash: u64) {
        let i = hash as usize & self.cur.mask;
        crate::prefetch::prefetch(&self.cur.slots[i]);
        if let Some(old) = &self.old {
            // Mid-migration a lookup may go on to the old array.
            crate::prefetch::prefetch(&old.slots[hash as usize & old.mask]);
        }
    }

    /// Prefetches the entry the home slot of `hash` points to, if its tag
    /// matches (second stage; the slot should be in cache by now).
    #[inline]
    pub(crate) fn prefetch_entry(&self, hash: u64) {
        let i = hash as usize & self.cur.mask;
        let mut slot = self.cur.slots[i];
        if slot.tag != tag_of(hash) {
            if let Some(old) = &self.old {
                slot = old.slots[hash as usize & old.mask];
            }
        }
        if slot.tag == tag_of(hash) {
            let (p, off) = split_addr(slot.addr);
            if let Some(page) = self.arena.pages.get(p) {
                // The name, then a small payload (a compact hash of a few
                // fields fits in four lines).
                let at = page.bytes().as_ptr().wrapping_add(off);
                for line in 0..4 {
                    crate::prefetch::prefetch(at.wrapping_add(line * 64));
                }
            }
        }
    }

    /// The payload stored under `name`.
    #[inline]
    pub(crate) fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.get_hashed(hash_name(name), name)
    }

    /// The payload stored under `name` and its kind.
    #[inline]
    pub(crate) fn get_kind(&self, name: &[u8]) -> Option<(&[u8], u8)> {
        let (in_old, i) = self.locate(hash_name(name), name)?;
        let (_, p, _, k) = self.arena.entry_kind(self.addr_at(in_old, i));
        Some((p, k))
    }

    /// [`ArenaTable::get`] with the name's [`hash_name`] already computed.
    #[inline]
    pub(crate) fn get_hashed(&self, hash: u64, name: &[u8]) -> Option<&[u8]> {
        let (in_old, i) = self.locate(hash, name)?;
        Some(self.arena.entry(self.addr_at(in_old, i)).1)
    }

    /// The payload under `name`, writable in place (its length is fixed).
    pub(crate) fn get_mut(&mut self, name: &[u8]) -> Option<&mut [u8]> {
        let hash = hash_name(name);
        let (in_old, i) = self.locate(hash, name)?;
        let addr = self.addr_at(in_old, i);
        Some(self.arena.payload_mut(addr))
    }

    /// Stores `payload` under `name`; true when the name is new.
    pub(crate) fn set(&mut self, name: &[u8], payload: &[u8]) -> Result<bool, Full> {
        self.set_parts(name, &[payload])
    }

    /// Stores the concatenation of `parts` under `name`; true when new.
    pub(crate) fn set_parts(&mut self, name: &[u8], parts: &[&[u8]]) -> Result<bool, Full> {
        self.set_kind(name, parts, 0)
    }

    /// [`ArenaTable::set_parts`] with the entry's kind (a table made
    /// [`ArenaTable::with_kinds`]; others store 0 whatever it says).
    pub(crate) fn set_kind(
        &mut self,
        name: &[u8],
        parts: &[&[u8]],
        kind: u8,
    ) -> Result<bool, Full> {
        let hash = hash_name(name);
        let plen: usize = parts.iter().map(|p| p.len()).sum();
        let new = match self.locate(hash, name) {
            Some((in_old, i)) => {
                let old_addr = self.addr_at(in_old, i);
                let (_, old_payload, _, old_kind) = self.arena.entry_kind(old_addr);
                if old_payload.len() == plen && (old_kind == kind || !self.arena.kinds) {
                    // Same size: overwrite in place, no dead bytes.
                    let out = self.arena.payload_mut(old_addr);
                    let mut k = 0;
                    for part in parts {
                        out[k..k + part.len()].copy_from_slice(part);
                        k += part.len();
                    }
                    return Ok(false);
                }
                if self.arena.rewrite_mapped(old_addr, name, parts, kind) {
                    return Ok(false);
                }
                let addr = self.arena.write_parts(name, parts, kind)?;
                match (in_old, &mut self.old) {
                    (true, Some(o)) => o.slots[i].addr = addr,
                    _ => self.cur.slots[i].addr = addr,
                }
                self.arena.free(old_addr);
                false
            }
            None => {
                if self.cur.over_loaded() {
                    self.grow();
                }
                let addr = self.arena.write_parts(name, parts, kind)?;
                self.cur.insert_new(hash, addr);
                true
            }
        };
        self.step();
        Ok(new)
    }

    /// Removes `name`; true when it was present.
    pub(crate) fn remove(&mut self, name: &[u8]) -> bool {
        let hash = hash_name(name);
        let Some((in_old, i)) = self.locate(hash, name) else {
            return false;
        };
        let addr = self.addr_at(in_old, i);
        match (in_old, &mut self.old) {
            (true, Some(o)) => o.remove_at(i),
            _ => self.cur.remove_at(i),
        }
        self.arena.free(addr);
        if self.old.is_none() && self.cur.cap() > MIN_SLOTS && self.cur.live * 8 < self.cur.cap() {
            self.start_migration(self.cur.live);
        }
        self.step();
        true
    }

    fn grow(&mut self) {
        if self.old.is_some() {
            // A migration is still running and the new array is full: rare
            // (only after a shrink followed by a burst of inserts). Finish it.
            self.finish_migration();
            if !self.cur.over_loaded() {
                return;
            }
        }
        self.start_migration(self.cur.live + 1);
    }

    fn start_migration(&mut self, live: usize) {
        let n = live.saturating_mul(2).next_power_of_two().max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.cur, Slots::new(n));
        self.old = Some(old);
        self.rehash_pos = 0;
    }

    fn finish_migration(&mut self) {
        while self.old.is_some() {
            self.migrate(usize::MAX, usize::MAX);
        }
    }

    /// Moves up to `moves` entries from the old array, visiting up to `visits`
    /// slots.
    fn migrate(&mut self, visits: usize, moves: usize) {
        let Some(old) = self.old.as_mut() else { return };
        let (mut visited, mut moved, mut fresh) = (0, 0, 0);
        while self.rehash_pos < old.cap() && visited < visits && moved < moves {
            let i = self.rehash_pos;
            if old.slots[i].tag >= 0x80 {
                let addr = old.slots[i].addr;
                let hash = hash_name(self.arena.entry(addr).0);
                // Starting a chunk of the new arrays (320 KiB, its pages
                // faulted in as entries land on them) is the expensive part
                // of a step; at most one
                // per step, so the first steps of a migration are not the
                // slowest calls. (Only the home slot's chunk is checked: an
                // insert probing past a chunk's end may start one more.)
                if !self.cur.slots.has_chunk(hash as usize & self.cur.mask) {
                    if fresh == 1 && visits != usize::MAX {
                        break;
                    }
                    fresh += 1;
                }
                old.remove_at(i);
                self.cur.insert_new(hash, addr);
                moved += 1;
            }
            self.rehash_pos += 1;
            visited += 1;
        }
        if self.rehash_pos >= old.cap() {
            let done = self.old.take();
            drop_in_background(done);
        }
    }

    /// Whether a migration or page compaction is pending (work that
    /// otherwise only writes to this table advance).
    pub(crate) fn has_pending_work(&self) -> bool {
        self.old.is_some() || !self.arena.compact_queue.is_empty()
    }

    /// Advances pending migration and compaction by a bounded amount
    /// (`moves` entries, a few pages) for a table few writes reach: lookups
    /// then probe one array instead of two.
    pub(crate) fn tidy(&mut self, moves: usize) {
        if self.old.is_some() {
            self.migrate(moves.saturating_mul(32), moves);
        }
        for _ in 0..4 {
            match self.arena.compact_queue.pop() {
                Some(p) => self.compact_page(p),
                None => break,
            }
        }
    }

    /// Bounded background work done by every write: a migration step and
    /// the compaction of at most one page.
    fn step(&mut self) {
        if self.old.is_some() {
            self.migrate(STEP_VISITS, STEP_MOVES);
        }
        if let Some(p) = self.arena.compact_queue.pop() {
            self.compact_page(p);
        }
    }

    /// Moves the live entries of page `p` to the tail and frees it.
    fn compact_page(&mut self, p: u32) {
        let page = &mut self.arena.pages[p as usize];
        page.queued = false;
        if page.buf.is_empty() || page.mapped.is_some() || self.arena.tail == Some(p) {
            return;
        }
        let buf = std::mem::take(&mut page.buf);
        let mut off = 0;
        while off < buf.len() {
            let (nl, pos) = get_varint(&buf, off);
            let (pl, pos) = get_varint(&buf, pos);
            let (pl, kind) = self.arena.split_len(pl);
            let end = pos + nl + pl;
            let Some(name) = buf.get(pos..pos + nl) else {
                break;
            };
            let payload = buf.get(pos + nl..end).unwrap_or(&[]);
            let addr = make_addr(p, off);
            let hash = hash_name(name);
            let slot = match self.cur.find_addr(hash, addr) {
                Some(i) => Some((false, i)),
                None => self
                    .old
                    .as_ref()
                    .and_then(|o| o.find_addr(hash, addr))
                    .map(|i| (true, i)),
            };
            if let Some((in_old, i)) = slot {
                // The write cannot fail for lack of pages: page `p` is freed
                // only after this loop, but its entries are fewer bytes than
                // the pages they move into, and each move frees its old copy.
                if let Ok(new_addr) = self.arena.write_parts(name, &[payload], kind) {
                    // The write counted the new copy; the old one goes with the page.
                    self.arena.live_bytes -= padded(end - off);
                    match (in_old, &mut self.old) {
                        (true, Some(o)) => o.slots[i].addr = new_addr,
                        _ => self.cur.slots[i].addr = new_addr,
                    }
                } else {
                    // Out of address space: put the page back untouched.
                    let page = &mut self.arena.pages[p as usize];
                    page.buf = buf;
                    return;
                }
            }
            off = padded(end);
        }
        let page = &mut self.arena.pages[p as usize];
        page.dead = 0;
        self.arena.free_pages.push(p);
    }

    /// Every entry as (name, payload), in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.iter_kind().map(|(n, p, _)| (n, p))
    }

    /// Every entry as (name, payload, kind), in slot order.
    pub(crate) fn iter_kind(&self) -> impl Iterator<Item = (&[u8], &[u8], u8)> + '_ {
        fn one<'a>(
            arena: &'a Arena,
            s: &'a Slots,
        ) -> impl Iterator<Item = (&'a [u8], &'a [u8], u8)> + 'a {
            s.slots.iter().filter(|s| s.tag >= 0x80).map(move |s| {
                let (n, p, _, k) = arena.entry_kind(s.addr);
                (n, p, k)
            })
        }
        let arena = &self.arena;
        one(arena, &self.cur).chain(self.old.iter().flat_map(move |o| one(arena, o)))
    }

    /// Calls `f` for each entry whose home bucket in `s` is `b`.
    fn emit_bucket<'a>(
        arena: &'a Arena,
        s: &Slots,
        b: usize,
        f: &mut impl FnMut(&'a [u8], &'a [u8], u8),
    ) {
        let mut i = b;
        loop {
            let t = s.slots[i].tag;
            if t == EMPTY {
                return;
            }
            if t >= 0x80 {
                let (name, payload, _, kind) = arena.entry_kind(s.slots[i].addr);
                if hash_name(name) as usize & s.mask == b {
                    f(name, payload, kind);
                }
            }
            i = (i + 1) & s.mask;
            if i == b {
                return;
            }
        }
    }

    /// One step of a SCAN-style iteration: calls `f` for the entries of the
    /// bucket(s) named by `cursor` and returns the next cursor (0 = done).
    pub(crate) fn scan<'a>(&'a self, cursor: u64, mut f: impl FnMut(&'a [u8], &'a [u8])) -> u64 {
        self.scan_kind(cursor, |n, p, _| f(n, p))
    }

    /// [`ArenaTable::scan`] with each entry's kind.
    pub(crate) fn scan_kind<'a>(
        &'a self,
        cursor: u64,
        mut f: impl FnMut(&'a [u8], &'a [u8], u8),
    ) -> u64 {
        let mut v = cursor;
        let arena = &self.arena;
        match &self.old {
            None => {
                let m0 = self.cur.mask as u64;
                Self::emit_bucket(arena, &self.cur, (v & m0) as usize, &mut f);
                v |= !m0;
                v = v.reverse_bits().wrapping_add(1).reverse_bits();
            }
            Some(old) => {
                let (small, big) = if old.cap() <= self.cur.cap() {
                    (old, &self.cur)
                } else {
                    (&self.cur, old)
                };
                let (m0, m1) = (small.mask as u64, big.mask as u64);
                Self::emit_bucket(arena, small, (v & m0) as usize, &mut f);
                loop {
                    Self::emit_bucket(arena, big, (v & m1) as usize, &mut f);
                    v |= !m1;
                    v = v.reverse_bits().wrapping_add(1).reverse_bits();
                    if v & (m0 ^ m1) == 0 {
                        break;
                    }
                }
            }
        }
        v
    }

    /// A uniformly random entry, with its kind.
    pub(crate) fn random_kind(&self, rng: &mut impl Rng) -> Option<(&[u8], &[u8], u8)> {
        let total = self.len();
        if total == 0 {
            return None;
        }
        let s = match &self.old {
            Some(o) if rng.gen_range(0..total) < o.live => o,
            _ => &self.cur,
        };
        if s.live == 0 {
            return self.iter_kind().next();
        }
        // Load is at least 1/16 outside migrations, so a few tries suffice;
        // fall back to a walk from a random slot to bound the work.
        for _ in 0..64 {
            let i = rng.gen_range(0..s.cap());
            if s.slots[i].tag >= 0x80 {
                let (n, p, _, k) = self.arena.entry_kind(s.slots[i].addr);
                return Some((n, p, k));
            }
        }
        let start = rng.gen_range(0..s.cap());
        (0..s.cap())
            .map(|k| (start + k) & s.mask)
            .find(|&i| s.slots[i].tag >= 0x80)
            .map(|i| {
                let (n, p, _, k) = self.arena.entry_kind(s.slots[i].addr);
                (n, p, k)
            })
    }

    /// Bytes held by the table: slot arrays and arena pages.
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.cur.bytes()
            + self.old.as_ref().map_or(0, Slots::bytes)
            + self.arena.bytes()
    }

    /// Bytes the entry for `name` and `payload_len` bytes of payload holds,
    /// with its share of the table's overhead (slot arrays, page slack, dead
    /// bytes awaiting compaction) spread in proportion to entry size.
    pub(crate) fn entry_bytes(&self, name_len: usize, payload_len: usize) -> usize {
        let own = padded(self.arena.entry_size(name_len, payload_len, 0));
        let live = self.arena.live_bytes.max(1);
        let total = self.memory_bytes().max(live);
        (own as u128 * total as u128 / live as u128) as usize
    }
}

/// Frees a large slot array off the calling thread: unmapping tens of
/// megabytes can take longer than the pause budget of one command.
fn drop_in_background(slots: Option<Slots>) {
    if let Some(s) = slots {
        if s.cap() >= 1 << 20 {
            let _ = std::thread::Builder::new()
                .name("hashkv-free".into())
                .spawn(move || drop(s));
        }
    }
}

#[cfg(test)]
mod tests;
