//! [`Arena`]: the pages of packed entries under an [`ArenaTable`](super::ArenaTable):
//! the entry layout (`[varint name_len][varint payload_len][name][payload]`
//! padded to 2 bytes), 32-bit entry addresses (page and 2-byte unit),
//! allocation, freeing and the queue of pages to compact, and the anonymous
//! mappings that hold very large entries. Finding entries by name is the
//! table's job; moving a page's live entries (which needs their slots) is
//! the table's too.

use super::Full;

const UNIT_SHIFT: u32 = 1; // entries are 2-byte aligned
const PAGE_UNIT_BITS: u32 = 14; // 16384 units of 2 bytes
const PAGE_BYTES: usize = (1 << PAGE_UNIT_BITS) << UNIT_SHIFT; // 32 KiB
const MAX_PAGES: usize = 1 << (32 - PAGE_UNIT_BITS); // 262,144 pages
/// Entries above this size get a page of their own.
const BIG_ENTRY: usize = PAGE_BYTES / 4;

fn put_varint(out: &mut [u8], mut v: usize) -> usize {
    let mut i = 0;
    loop {
        let b = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out[i] = b;
            return i + 1;
        }
        out[i] = b | 0x80;
        i += 1;
    }
}

fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Reads a varint of at most 5 bytes; entries are written by this module, so
/// a short read only happens on a bug, and yields 0 rather than a panic.
#[inline]
pub(super) fn get_varint(buf: &[u8], mut pos: usize) -> (usize, usize) {
    let mut v = 0usize;
    let mut shift = 0;
    while let Some(&b) = buf.get(pos) {
        v |= usize::from(b & 0x7F) << shift;
        pos += 1;
        if b & 0x80 == 0 || shift >= 28 {
            break;
        }
        shift += 7;
    }
    (v, pos)
}

#[inline]
pub(super) fn padded(len: usize) -> usize {
    (len + 1) & !1
}

#[cfg(test)]
pub(super) fn entry_size(name_len: usize, payload_len: usize) -> usize {
    varint_len(name_len) + varint_len(payload_len) + name_len + payload_len
}

pub(super) struct Page {
    pub(super) buf: Vec<u8>,
    /// An entry of [`MAPPED_ENTRY`] bytes or more lives in an anonymous
    /// mapping of its own instead of `buf`: freeing it returns the memory to
    /// the OS at once, where heap chunks of tens of KiB rewritten as a
    /// compact hash grows leave holes behind (measured: 25% more resident
    /// memory for 10,000 hashes of 1,000 fields grown 100 fields at a time).
    pub(super) mapped: Option<(memmap2::MmapMut, usize)>,
    pub(super) dead: usize,
    pub(super) queued: bool,
}

/// Entries at least this big get an anonymous mapping (see [`Page`]).
const MAPPED_ENTRY: usize = 32 * 1024;

impl Page {
    fn new(buf: Vec<u8>) -> Page {
        Page {
            buf,
            mapped: None,
            dead: 0,
            queued: false,
        }
    }

    #[inline]
    pub(super) fn bytes(&self) -> &[u8] {
        match &self.mapped {
            Some((m, len)) => &m[..*len],
            None => &self.buf,
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.mapped {
            Some((m, len)) => &mut m[..*len],
            None => &mut self.buf,
        }
    }

    fn len(&self) -> usize {
        self.mapped.as_ref().map_or(self.buf.len(), |(_, l)| *l)
    }

    fn capacity(&self) -> usize {
        // A mapping holds whole 4 KiB pages.
        self.mapped
            .as_ref()
            .map_or(self.buf.capacity(), |(_, l)| l.div_ceil(4096) * 4096)
    }
}

/// Pages of packed entries; see the module doc.
pub(super) struct Arena {
    /// Entries carry a 2-bit kind in their payload length.
    pub(super) kinds: bool,
    /// Padded bytes of live entries.
    pub(super) live_bytes: usize,
    pub(super) pages: Vec<Page>,
    pub(super) free_pages: Vec<u32>,
    pub(super) tail: Option<u32>,
    pub(super) compact_queue: Vec<u32>,
    /// An entry got a heap page of its own (more than [`BIG_ENTRY`] bytes,
    /// not mapped): tail pages grow by doubling from then on (see
    /// [`Arena::alloc`]).
    heap_big: bool,
}

#[inline]
pub(super) fn make_addr(page: u32, off: usize) -> u32 {
    (page << PAGE_UNIT_BITS) | (off >> UNIT_SHIFT) as u32
}

#[inline]
pub(super) fn split_addr(addr: u32) -> (usize, usize) {
    (
        (addr >> PAGE_UNIT_BITS) as usize,
        ((addr & ((1 << PAGE_UNIT_BITS) - 1)) as usize) << UNIT_SHIFT,
    )
}

impl Arena {
    pub(super) fn new() -> Self {
        Arena {
            kinds: false,
            live_bytes: 0,
            pages: Vec::new(),
            free_pages: Vec::new(),
            tail: None,
            compact_queue: Vec::new(),
            heap_big: false,
        }
    }

    fn new_page(&mut self, capacity: usize) -> Result<u32, Full> {
        self.install(Page::new(Vec::with_capacity(capacity)))
    }

    fn install(&mut self, page: Page) -> Result<u32, Full> {
        if let Some(i) = self.free_pages.pop() {
            self.pages[i as usize] = page;
            return Ok(i);
        }
        // Bound the page index: it must fit the address's page bits.
        if self.pages.len() >= MAX_PAGES {
            return Err(Full);
        }
        self.pages.push(page);
        Ok((self.pages.len() - 1) as u32)
    }

    /// Reserves `size` bytes (padded) and returns the address and the bytes.
    fn alloc(&mut self, size: usize) -> Result<(u32, &mut [u8]), Full> {
        let size = padded(size);
        self.live_bytes += size;
        if size > BIG_ENTRY {
            let mut page = Page::new(Vec::new());
            // Falls back to the heap if mappings run out (vm.max_map_count).
            // A quarter more address space than needed: a big compact hash
            // rewritten a little larger stays in its mapping (untouched
            // pages cost no memory).
            let mapped = if size >= MAPPED_ENTRY {
                memmap2::MmapMut::map_anon(size + size / 4)
                    .ok()
                    .map(|mut m| {
                        populate_write(&mut m[..size]);
                        m
                    })
            } else {
                None
            };
            match mapped {
                Some(m) => page.mapped = Some((m, size)),
                None => {
                    page.buf.resize(size, 0);
                    self.heap_big = true;
                }
            }
            let p = self.install(page)?;
            return Ok((make_addr(p, 0), self.pages[p as usize].bytes_mut()));
        }
        let tail = match self.tail {
            Some(t) if self.pages[t as usize].buf.len() + size <= PAGE_BYTES => t,
            old => {
                // The first page grows with the table (below); once a page
                // is full, the next is allocated whole. Growing every page
                // by doubling copied it eight times and left the smaller
                // buffers behind as heap holes the following whole pages
                // do not fit in (measured: 1.5 MB of free heap, 4% of the
                // resident memory of 200,000 profiles). Fresh heap pages of
                // a whole page's unfilled end become resident as entries
                // fill them. A table whose big entries have heap pages of
                // their own keeps doubling: those entries leave holes of
                // 8-32 KiB behind when rewritten, which the doubling
                // buffers fill and whole pages would not (measured:
                // 2,000,000 object ids in growing compact hashes took 34-35
                // bytes a field with whole pages, 27-29 without).
                let capacity = if old.is_some() && !self.heap_big {
                    PAGE_BYTES
                } else {
                    0
                };
                let t = self.new_page(capacity)?;
                self.tail = Some(t);
                if let Some(o) = old {
                    self.maybe_queue(o);
                }
                t
            }
        };
        let buf = &mut self.pages[tail as usize].buf;
        let off = buf.len();
        let need = off + size;
        if need > buf.capacity() {
            // Grow the first page (and, see above, any page of a table
            // with heap pages of its own) geometrically up to the page
            // size, so small tables use little memory.
            let target = (buf.capacity() * 2).max(need).clamp(64, PAGE_BYTES);
            buf.reserve_exact(target - off);
        }
        buf.resize(need, 0);
        Ok((make_addr(tail, off), &mut buf[off..need]))
    }

    /// The entry at `addr`: (name, payload, padded size).
    #[inline]
    pub(super) fn entry(&self, addr: u32) -> (&[u8], &[u8], usize) {
        let (n, p, size, _) = self.entry_kind(addr);
        (n, p, size)
    }

    /// [`Arena::entry`] and the entry's kind (0 in a table without kinds).
    #[inline(always)]
    pub(super) fn entry_kind(&self, addr: u32) -> (&[u8], &[u8], usize, u8) {
        let (p, off) = split_addr(addr);
        let buf = self.pages.get(p).map_or(&[][..], Page::bytes);
        let (nl, pos) = get_varint(buf, off);
        let (pl, pos) = get_varint(buf, pos);
        let (pl, kind) = self.split_len(pl);
        let name = buf.get(pos..pos + nl).unwrap_or(&[]);
        let payload = buf.get(pos + nl..pos + nl + pl).unwrap_or(&[]);
        (name, payload, padded(pos + nl + pl - off), kind)
    }

    /// The stored payload-length value of `plen` bytes of kind `kind`.
    #[inline]
    fn stored_len(&self, plen: usize, kind: u8) -> usize {
        if self.kinds {
            (plen << 2) | usize::from(kind & 3)
        } else {
            plen
        }
    }

    /// A stored payload-length value as (length, kind).
    #[inline(always)]
    pub(super) fn split_len(&self, stored: usize) -> (usize, u8) {
        if self.kinds {
            (stored >> 2, (stored & 3) as u8)
        } else {
            (stored, 0)
        }
    }

    /// Bytes an entry takes before padding.
    pub(super) fn entry_size(&self, name_len: usize, plen: usize, kind: u8) -> usize {
        varint_len(name_len) + varint_len(self.stored_len(plen, kind)) + name_len + plen
    }

    pub(super) fn payload_mut(&mut self, addr: u32) -> &mut [u8] {
        let kinds = self.kinds;
        let (p, off) = split_addr(addr);
        let buf = self.pages[p].bytes_mut();
        let (nl, pos) = get_varint(buf, off);
        let (pl, pos) = get_varint(buf, pos);
        let pl = if kinds { pl >> 2 } else { pl };
        &mut buf[pos + nl..pos + nl + pl]
    }

    /// Writes an entry whose payload is the concatenation of `parts`.
    pub(super) fn write_parts(
        &mut self,
        name: &[u8],
        parts: &[&[u8]],
        kind: u8,
    ) -> Result<u32, Full> {
        let plen: usize = parts.iter().map(|p| p.len()).sum();
        let size = self.entry_size(name.len(), plen, kind);
        let stored = self.stored_len(plen, kind);
        let (addr, out) = self.alloc(size)?;
        put_entry(out, name, parts, stored);
        Ok(addr)
    }

    /// Rewrites the entry at `addr` in place when it has a mapping of its
    /// own with room for the new size (and would not leave most of it
    /// unused): no new mapping, no unmapping, no page faults. False when
    /// the caller must write a new entry.
    pub(super) fn rewrite_mapped(
        &mut self,
        addr: u32,
        name: &[u8],
        parts: &[&[u8]],
        kind: u8,
    ) -> bool {
        let (p, off) = split_addr(addr);
        let plen: usize = parts.iter().map(|p| p.len()).sum();
        let size = padded(self.entry_size(name.len(), plen, kind));
        let stored = self.stored_len(plen, kind);
        let Some(page) = self.pages.get_mut(p) else {
            return false;
        };
        let Some((m, len)) = page.mapped.as_mut() else {
            return false;
        };
        if off != 0 || size > m.len() || size < m.len() / 2 {
            return false;
        }
        put_entry(&mut m[..size], name, parts, stored);
        self.live_bytes = self.live_bytes - *len + size;
        *len = size;
        true
    }

    /// Marks the entry at `addr` dead.
    pub(super) fn free(&mut self, addr: u32) {
        let (_, _, size) = self.entry(addr);
        self.live_bytes -= size;
        let (p, _) = split_addr(addr);
        let page = &mut self.pages[p];
        page.dead += size;
        if page.dead >= page.len() {
            if self.tail == Some(p as u32) {
                // The tail page is empty again: reuse it from the start.
                page.buf.clear();
                page.dead = 0;
            } else {
                self.release(p as u32);
            }
        } else {
            self.maybe_queue(p as u32);
        }
    }

    fn maybe_queue(&mut self, p: u32) {
        if self.tail == Some(p) {
            return;
        }
        let page = &mut self.pages[p as usize];
        if !page.queued && page.dead > 0 && page.dead * 2 >= page.len() {
            page.queued = true;
            self.compact_queue.push(p);
        }
    }

    fn release(&mut self, p: u32) {
        let page = &mut self.pages[p as usize];
        page.buf = Vec::new();
        page.mapped = None;
        page.dead = 0;
        // A queued page is skipped when popped (its buffer is empty).
        self.free_pages.push(p);
    }

    pub(super) fn bytes(&self) -> usize {
        self.pages.iter().map(Page::capacity).sum::<usize>()
            + self.pages.capacity() * std::mem::size_of::<Page>()
    }
}

/// Writes the entry `[name length][payload length][name][parts...]` at the
/// start of `out` (`stored`: the payload length as stored, with its kind in
/// a table that has kinds).
fn put_entry(out: &mut [u8], name: &[u8], parts: &[&[u8]], stored: usize) {
    let mut i = put_varint(out, name.len());
    i += put_varint(&mut out[i..], stored);
    out[i..i + name.len()].copy_from_slice(name);
    i += name.len();
    for part in parts {
        out[i..i + part.len()].copy_from_slice(part);
        i += part.len();
    }
}

/// Faults `bytes` (fresh anonymous memory about to be written whole) in
/// with one `MADV_POPULATE_WRITE` call (Linux 5.14+) instead of a page fault
/// per page; older kernels refuse it and the pages fault in as usual.
#[allow(unsafe_code)]
fn populate_write(bytes: &mut [u8]) {
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    // SAFETY: the range is memory this process owns and keeps mapped; the
    // advice only faults its pages in, leaving their contents (zeros).
    unsafe {
        libc::madvise(bytes.as_mut_ptr().cast(), bytes.len(), MADV_POPULATE_WRITE);
    }
}
