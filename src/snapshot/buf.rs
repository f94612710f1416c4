//! [`BigBuf`]: a growable byte buffer in anonymous memory mappings, for the
//! snapshot's megabyte-sized staging buffers.
//!
//! Why not a `Vec`: glibc's malloc serves big blocks with `mmap` and, each
//! time one is freed, raises its threshold for doing so up to that size
//! (to 32 MiB). A snapshot that allocates and frees megabyte buffers would
//! thus move every later allocation below that size — the engine's hash
//! buffers included — into the heap, where a long-running process keeps
//! the fragmented memory. Mapping these buffers directly leaves malloc's
//! threshold alone.

use memmap2::MmapMut;

/// Bytes mapped at least (smaller buffers stay in a `Vec`).
const MIN_MAP: usize = 64 << 10;

/// Where encoded entries go: a `Vec` or a [`BigBuf`].
pub(crate) trait Out {
    fn put(&mut self, b: &[u8]);
    fn byte(&mut self, b: u8) {
        self.put(&[b]);
    }
}

impl Out for Vec<u8> {
    #[inline]
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
    #[inline]
    fn byte(&mut self, b: u8) {
        self.push(b);
    }
}

/// A byte buffer whose storage is an anonymous mapping that doubles when
/// full and is unmapped when dropped.
#[derive(Default)]
pub(crate) struct BigBuf {
    map: Option<MmapMut>,
    len: usize,
}

impl BigBuf {
    /// A buffer with room for `n` bytes mapped up front (pages are only
    /// touched, and so resident, as they are written).
    pub(crate) fn with_capacity(n: usize) -> BigBuf {
        let mut b = BigBuf::default();
        b.grow(n);
        b
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        self.map.as_ref().map_or(&[], |m| &m[..self.len])
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    fn grow(&mut self, need: usize) {
        let cap = self.map.as_ref().map_or(0, |m| m.len());
        let new_cap = need.max(cap * 2).max(MIN_MAP).next_power_of_two();
        // An anonymous mapping cannot fail for lack of a file; if the
        // system is out of address space this aborts like a Vec would.
        let mut m = MmapMut::map_anon(new_cap).expect("mapping a snapshot buffer");
        if let Some(old) = &self.map {
            m[..self.len].copy_from_slice(&old[..self.len]);
        }
        self.map = Some(m);
    }
}

impl Out for BigBuf {
    #[inline]
    fn put(&mut self, b: &[u8]) {
        let end = self.len + b.len();
        if self.map.as_ref().is_none_or(|m| m.len() < end) {
            self.grow(end);
        }
        let m = self.map.as_mut().expect("grown above");
        m[self.len..end].copy_from_slice(b);
        self.len = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_keeps_bytes() {
        let mut b = BigBuf::default();
        let mut v = Vec::new();
        for i in 0..100_000u32 {
            let x = i.to_le_bytes();
            b.put(&x);
            v.put(&x);
            b.byte(i as u8);
            v.byte(i as u8);
        }
        assert_eq!(b.as_slice(), &v[..]);
        assert_eq!(b.len(), v.len());
        b.clear();
        assert!(b.as_slice().is_empty());
    }
}
