//! [`MappedSegment`]: the open log segment written through a shared memory
//! mapping of space reserved ahead with `posix_fallocate`.
//!
//! An append is a `memcpy` into the page cache, so it survives a process
//! crash exactly like a `write(2)` would, without the system call. Space is
//! reserved in windows of [`WINDOW`] bytes: `posix_fallocate` allocates the
//! blocks first, so a full disk shows up as an error from the append that
//! needed the space (nothing written, the command fails) and never as a
//! `SIGBUS` on a store into a sparse page. The bytes past the last record
//! are zeros; the reader treats trailing zeros as the end of the log, and a
//! clean close cuts them off.
//!
//! `fdatasync` on the file makes the mapped writes durable (Linux writes
//! back dirty shared-mapping pages on `fsync`), so the writer's fsync
//! policies work unchanged through a second handle on the same file.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use memmap2::{MmapOptions, MmapRaw};

use super::file::SegmentFile;

/// Bytes reserved and mapped at a time.
pub(crate) const WINDOW: u64 = 16 << 20;
/// Mapping offsets are aligned to this (a multiple of every page size
/// Linux uses: 4 KiB, 16 KiB, 64 KiB).
const ALIGN: u64 = 64 << 10;
/// How far ahead of the end the next cache line is prefetched.
const PREFETCH_DISTANCE: usize = 512;
/// Pages are made writable ahead of the end in steps of this many bytes,
/// by a helper thread, so appends do not take the page faults.
const PREFAULT_STEP: u64 = 1 << 20;
/// The helper is asked for the next step when the end gets this close to
/// what is already prefaulted.
const PREFAULT_AHEAD: u64 = 2 << 20;
/// `MADV_POPULATE_WRITE` (Linux 5.14): fault pages in writable without
/// touching them. Older kernels answer EINVAL and the appends fault as usual.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// A mapped window of the segment, shared with the prefault helper so it is
/// never unmapped while the helper works on it.
struct Window {
    map: Arc<MmapRaw>,
    /// File offset of the mapping's first byte.
    start: u64,
}

impl Window {
    fn end(&self) -> u64 {
        self.start + self.map.len() as u64
    }
}

/// A request to the prefault helper: this byte range of this mapping.
type Prefault = (Arc<MmapRaw>, usize, usize);

/// The open segment, appended to through a mapping.
pub(crate) struct MappedSegment {
    file: File,
    win: Option<Window>,
    /// End of the data (next append goes here).
    pos: u64,
    /// Bytes of the file known to be allocated (its length).
    reserved: u64,
    /// File offset up to which the helper has been asked to prefault.
    prefaulted: u64,
    helper: Option<(Sender<Prefault>, JoinHandle<()>)>,
}

fn fallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(off), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    // SAFETY: a plain system call on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), off, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Starts the prefault helper; `None` if no thread can be started (appends
/// then take their page faults themselves).
fn start_helper() -> Option<(Sender<Prefault>, JoinHandle<()>)> {
    let (tx, rx) = channel::<Prefault>();
    let handle = std::thread::Builder::new()
        .name("hashkv-log-prefault".into())
        .spawn(move || {
            for (map, off, len) in rx {
                // SAFETY: the range lies inside the mapping, which `map`
                // keeps alive; MADV_POPULATE_WRITE only faults pages in and
                // never changes their contents. Failure is harmless.
                unsafe {
                    libc::madvise(map.as_mut_ptr().add(off).cast(), len, MADV_POPULATE_WRITE);
                }
            }
        })
        .ok()?;
    Some((tx, handle))
}

impl MappedSegment {
    /// Appends to `file` (opened read-write) from `pos`, the end of its last
    /// whole record; bytes past `pos` are zeros or will be overwritten.
    pub(crate) fn new(file: File, pos: u64) -> io::Result<Self> {
        let reserved = file.metadata()?.len();
        Ok(MappedSegment {
            file,
            win: None,
            pos,
            reserved,
            prefaulted: 0,
            helper: start_helper(),
        })
    }

    /// The mapped window covering `n` more bytes at `pos`, reserving and
    /// mapping a new one when the current one is too small.
    fn window_for(&mut self, n: usize) -> io::Result<&Window> {
        let end = self
            .pos
            .checked_add(n as u64)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
        let covered = self
            .win
            .as_ref()
            .is_some_and(|w| self.pos >= w.start && end <= w.end());
        if !covered {
            let start = self.pos / ALIGN * ALIGN;
            let want = (end - start).max(WINDOW).div_ceil(ALIGN) * ALIGN;
            let want_end = start + want;
            if want_end > self.reserved {
                self.reserve(end, want_end)?;
            }
            // The window never reaches past what is allocated.
            let map_end = want_end.min(self.reserved);
            let len = usize::try_from(map_end - start)
                .map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
            self.win = None;
            let map = MmapOptions::new()
                .offset(start)
                .len(len)
                .map_raw(&self.file)?;
            self.win = Some(Window {
                map: Arc::new(map),
                start,
            });
            self.prefaulted = start;
        }
        Ok(self.win.as_ref().expect("mapped above"))
    }

    /// Allocates the file up to `want_end`, or as far as the disk allows
    /// but at least to `need_end` (the end of the append being made): on a
    /// nearly full disk the reservation shrinks, halving the extra each
    /// time, so writes go on while there is room for them.
    fn reserve(&mut self, need_end: u64, want_end: u64) -> io::Result<()> {
        let floor = need_end.max(self.reserved);
        let mut target = want_end;
        loop {
            if target <= self.reserved {
                return Ok(());
            }
            match fallocate(&self.file, self.reserved, target - self.reserved) {
                Ok(()) => {
                    self.reserved = target;
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && target > floor => {
                    // Half the extra, in whole pages, never below what the
                    // append needs, and always less than the last try.
                    let half = (floor + (target - floor) / 2).div_ceil(4096) * 4096;
                    target = if half < target {
                        half.max(floor)
                    } else {
                        floor
                    };
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Asks the CPU for the cache lines a few records ahead, and the helper
    /// for the pages a few steps ahead, so appends neither wait for memory
    /// nor take page faults.
    #[inline]
    fn prepare_ahead(&mut self) {
        let Some(w) = &self.win else { return };
        let at = (self.pos - w.start) as usize;
        #[cfg(target_arch = "x86_64")]
        if at + PREFETCH_DISTANCE < w.map.len() {
            // SAFETY: the address is inside the mapping; a prefetch reads
            // nothing architecturally and cannot fault.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>(w.map.as_ptr().add(at + PREFETCH_DISTANCE).cast());
            }
        }
        if self.pos + PREFAULT_AHEAD > self.prefaulted && self.prefaulted < w.end() {
            let from = self.prefaulted.max(self.pos / ALIGN * ALIGN);
            let to = (from + PREFAULT_STEP).min(w.end());
            self.prefaulted = to;
            if let Some((tx, _)) = &self.helper {
                let off = (from - w.start) as usize;
                let _ = tx.send((w.map.clone(), off, (to - from) as usize));
            }
        }
    }
}

impl SegmentFile for MappedSegment {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let pos = self.pos;
        let w = self.window_for(buf.len())?;
        let at = (pos - w.start) as usize;
        // SAFETY: `window_for` made `at..at + buf.len()` part of the mapping,
        // whose blocks are allocated; only this writer stores to it.
        unsafe {
            std::ptr::copy_nonoverlapping(buf.as_ptr(), w.map.as_mut_ptr().add(at), buf.len());
        }
        self.pos += buf.len() as u64;
        self.prepare_ahead();
        Ok(())
    }

    fn reserve(&mut self, n: usize) -> io::Result<()> {
        // A window covering the `n` bytes, its blocks allocated: the copy
        // into it is a `memcpy` that cannot fail.
        self.window_for(n).map(drop)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        // Appends are all or nothing here, so this only ever undoes whole
        // records: zero them so the reader sees the end of the log.
        if len < self.pos {
            if let Some(w) = &self.win {
                let lo = len.max(w.start);
                if lo < self.pos {
                    // SAFETY: `lo..pos` lies inside the mapping (pos never
                    // passes its end), and only this writer stores to it.
                    unsafe {
                        std::ptr::write_bytes(
                            w.map.as_mut_ptr().add((lo - w.start) as usize),
                            0,
                            (self.pos - lo) as usize,
                        );
                    }
                }
            }
            self.pos = len;
        }
        Ok(())
    }
}

impl Drop for MappedSegment {
    fn drop(&mut self) {
        // Cut the reserved zeros off on a clean close; if this fails (or the
        // process dies first) the reader skips them anyway.
        // Stop the helper first: it must not touch pages being cut off.
        if let Some((tx, handle)) = self.helper.take() {
            drop(tx);
            let _ = handle.join();
        }
        self.win = None;
        if self.reserved > self.pos {
            let _ = self.file.set_len(self.pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_cross_windows_and_close_trims_the_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        std::fs::write(&path, b"HDR").unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut seg = MappedSegment::new(file, 3).unwrap();
        let mut expect = b"HDR".to_vec();
        // Enough records to need a second window, plus one bigger than one.
        let rec: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8 + 1).collect();
        for _ in 0..(WINDOW as usize / rec.len() + 10) {
            seg.write_all(&rec).unwrap();
            expect.extend_from_slice(&rec);
        }
        let big = vec![7u8; WINDOW as usize + 5];
        seg.write_all(&big).unwrap();
        expect.extend_from_slice(&big);
        // Undoing an append zeroes it.
        seg.write_all(b"undone").unwrap();
        seg.set_len(expect.len() as u64).unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk.len() > expect.len(), "space is reserved ahead");
        assert_eq!(&on_disk[..expect.len()], &expect[..]);
        assert!(on_disk[expect.len()..].iter().all(|&b| b == 0));
        drop(seg);
        assert_eq!(std::fs::read(&path).unwrap(), expect);
    }
}
