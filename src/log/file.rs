//! The file seam under the log writer: [`SegmentFile`] (writes and cuts
//! back the open segment) and [`SegmentSync`] (makes it durable), with
//! their implementations for a plain [`File`]. The writer holds them as
//! trait objects so tests can inject ENOSPC and EIO; the mapped segment
//! (`super::mapped`) is the one the writer uses.

use std::fs::File;
use std::io::Write;

/// The file operations the writer needs: the seam where tests inject
/// ENOSPC and EIO.
pub(crate) trait SegmentFile: Send {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()>;
    fn set_len(&mut self, len: u64) -> std::io::Result<()>;
    /// Makes room for `n` more bytes, so that a `write_all` of at most
    /// that many cannot fail for want of space (a batch reserves its
    /// records whole before it changes anything). Files that cannot
    /// reserve answer `Ok` and may still fail the write.
    fn reserve(&mut self, n: usize) -> std::io::Result<()> {
        let _ = n;
        Ok(())
    }
}

/// Makes what was written durable; separate from [`SegmentFile`] so the
/// fsync runs without the append lock.
pub(crate) trait SegmentSync: Send + Sync {
    fn sync_data(&self) -> std::io::Result<()>;
}

impl SegmentFile for File {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        Write::write_all(self, buf)
    }
    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        File::set_len(self, len)
    }
}

impl SegmentSync for File {
    fn sync_data(&self) -> std::io::Result<()> {
        File::sync_data(self)
    }
}
