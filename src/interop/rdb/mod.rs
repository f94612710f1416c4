//! Redis RDB files, both ways: [`Db::export_rdb`] writes a file Redis 7.0+
//! loads (`export`), [`Db::import_rdb`] reads the files Redis 2.x to 8.x
//! write (`import`: the file read by `input`, the old hash layouts in
//! `blobs`, other types skipped by `skip`). Layouts follow
//! Redis's `rdb.c`, `listpack.c`, `ziplist.c` and `zipmap.c`; docs/FORMAT.md
//! ("Redis RDB files") says what is written and what is read.

mod blobs;
mod export;
mod import;
mod input;
mod skip;
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
/// initial value 0, no final xor. Eight tables, for eight bytes a step
/// ("slicing by 8"): table `k` advances a byte's contribution by `k` more
/// bytes.
fn crc64_tables() -> &'static [[u64; 256]; 8] {
    static TABLES: std::sync::OnceLock<[[u64; 256]; 8]> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let mut t = [[0u64; 256]; 8];
        for (i, slot) in t[0].iter_mut().enumerate() {
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
        for k in 1..8 {
            for i in 0..256 {
                let prev = t[k - 1][i];
                t[k][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            }
        }
        t
    })
}

/// Continues the CRC-64 `crc` over `bytes`.
pub(crate) fn crc64(mut crc: u64, bytes: &[u8]) -> u64 {
    let t = crc64_tables();
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let x = crc ^ u64::from_le_bytes(c.try_into().expect("8 bytes"));
        crc = t[7][(x & 0xFF) as usize]
            ^ t[6][((x >> 8) & 0xFF) as usize]
            ^ t[5][((x >> 16) & 0xFF) as usize]
            ^ t[4][((x >> 24) & 0xFF) as usize]
            ^ t[3][((x >> 32) & 0xFF) as usize]
            ^ t[2][((x >> 40) & 0xFF) as usize]
            ^ t[1][((x >> 48) & 0xFF) as usize]
            ^ t[0][(x >> 56) as usize];
    }
    for &b in chunks.remainder() {
        crc = t[0][((crc ^ u64::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

/// LZF decompression of `input` into exactly `len` bytes, or `None` when
/// it is not valid LZF of that length (a reference before the start, a run
/// past the end, or a different length). Allocates `len` bytes: callers
/// bound it first.
#[cfg(test)]
pub(crate) fn lzf_decompress(input: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    lzf_decompress_into(input, len, &mut out).then_some(out)
}

/// [`lzf_decompress`] into `out` (replacing its contents; reused across
/// calls); false when `input` is not LZF of exactly `len` bytes.
pub(crate) fn lzf_decompress_into(input: &[u8], len: usize, out: &mut Vec<u8>) -> bool {
    out.clear();
    out.reserve(len);
    let mut ip = 0;
    while ip < input.len() {
        let c = usize::from(input[ip]);
        ip += 1;
        if c < 32 {
            let Some(run) = input.get(ip..ip + c + 1) else {
                return false;
            };
            if out.len() + run.len() > len {
                return false;
            }
            out.extend_from_slice(run);
            ip += c + 1;
        } else {
            let mut l = c >> 5;
            if l == 7 {
                let Some(&x) = input.get(ip) else {
                    return false;
                };
                l += usize::from(x);
                ip += 1;
            }
            let Some(&x) = input.get(ip) else {
                return false;
            };
            let off = ((c & 0x1F) << 8) + usize::from(x) + 1;
            ip += 1;
            let n = l + 2;
            let Some(from) = out.len().checked_sub(off) else {
                return false;
            };
            if out.len() + n > len {
                return false;
            }
            if off >= n {
                out.extend_from_within(from..from + n);
            } else {
                // The copy overlaps what it writes: byte by byte.
                for i in 0..n {
                    let b = out[from + i];
                    out.push(b);
                }
            }
        }
    }
    out.len() == len
}

#[cfg(test)]
mod tests {
    use super::crc64;

    /// The definition, one bit at a time.
    fn crc64_bitwise(bytes: &[u8]) -> u64 {
        let mut crc = 0u64;
        for &b in bytes {
            crc ^= u64::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x95ac_9329_ac4b_c9b5
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    proptest::proptest! {
        /// Eight bytes a step gives the bitwise CRC, however the input is
        /// split across calls.
        #[test]
        fn sliced_crc64_is_the_bitwise_one(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100),
            cut in 0usize..100,
        ) {
            let cut = cut.min(data.len());
            let split = crc64(crc64(0, &data[..cut]), &data[cut..]);
            proptest::prop_assert_eq!(split, crc64_bitwise(&data));
        }
    }
}
