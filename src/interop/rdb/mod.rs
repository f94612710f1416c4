//! Redis RDB files, both ways: [`Db::export_rdb`] writes a file Redis 7.0+
//! loads (`export`), [`Db::import_rdb`] reads the files Redis 2.x to 8.x
//! write (`import`, with the old hash layouts in `blobs`). Layouts follow
//! Redis's `rdb.c`, `listpack.c`, `ziplist.c` and `zipmap.c`; docs/FORMAT.md
//! ("Redis RDB files") says what is written and what is read.

mod blobs;
mod export;
mod import;
pub use export::{RdbCompression, RdbExportOptions, RdbVersion};
pub use import::{RdbImport, RdbImportOptions};

/// Object types and opcodes (Redis's `rdb.h`).
const TYPE_HASH: u8 = 4;
const TYPE_HASH_LISTPACK: u8 = 16;
const OP_AUX: u8 = 0xFA;
const OP_RESIZEDB: u8 = 0xFB;
const OP_EXPIRETIME_MS: u8 = 0xFC;
const OP_SELECTDB: u8 = 0xFE;
const OP_EOF: u8 = 0xFF;

/// CRC-64/REDIS ("Jones"): reflected polynomial 0x95ac9329ac4bc9b5,
/// initial value 0, no final xor.
fn crc64_table() -> &'static [u64; 256] {
    static TABLE: std::sync::OnceLock<[u64; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u64; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ 0x95ac_9329_ac4b_c9b5
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    })
}

pub(crate) fn crc64(mut crc: u64, bytes: &[u8]) -> u64 {
    let t = crc64_table();
    for &b in bytes {
        crc = t[((crc ^ u64::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

/// LZF decompression of `input` into exactly `len` bytes, or `None` when
/// it is not valid LZF of that length (a reference before the start, a run
/// past the end, or a different length). Allocates `len` bytes: callers
/// bound it first.
pub(crate) fn lzf_decompress(input: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(len);
    let mut ip = 0;
    while ip < input.len() {
        let c = usize::from(input[ip]);
        ip += 1;
        if c < 32 {
            let run = input.get(ip..ip + c + 1)?;
            if out.len() + run.len() > len {
                return None;
            }
            out.extend_from_slice(run);
            ip += c + 1;
        } else {
            let mut l = c >> 5;
            if l == 7 {
                l += usize::from(*input.get(ip)?);
                ip += 1;
            }
            let off = ((c & 0x1F) << 8) + usize::from(*input.get(ip)?) + 1;
            ip += 1;
            let from = out.len().checked_sub(off)?;
            if out.len() + l + 2 > len {
                return None;
            }
            for i in 0..l + 2 {
                let b = out[from + i];
                out.push(b);
            }
        }
    }
    (out.len() == len).then_some(out)
}
