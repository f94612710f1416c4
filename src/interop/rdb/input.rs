//! Reading an RDB file's primitives ([`Input`]): bytes, lengths in their
//! four forms, strings in their raw, integer and LZF forms, each checked
//! against the bytes the file has left before anything is allocated for
//! it, with the byte offset kept for error messages and (in a checking
//! pass) the CRC-64 of everything read.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::{crc64, lzf_decompress_into};
use crate::admin::io;
use crate::error::Result;

/// Largest string read (Redis's `proto-max-bulk-len` default).
const MAX_STRING: u64 = 512 << 20;
/// LZF output is at most this many times its input (a 3-byte reference
/// expands to at most 264 bytes).
const LZF_MAX_RATIO: u64 = 132;

/// Damage: the byte offset in the file and what was expected there.
pub(super) struct Bad(pub(super) u64, pub(super) String);

pub(super) type Parse<T> = std::result::Result<T, Bad>;

/// The file, read forwards, with its offset, the bytes it has left, and
/// (in the checking pass) the CRC-64 of everything read.
pub(super) struct Input {
    pub(super) r: BufReader<File>,
    /// An LZF string's compressed bytes (reused).
    lzf: Vec<u8>,
    pub(super) offset: u64,
    pub(super) size: u64,
    pub(super) crc: Option<u64>,
}

impl Input {
    pub(super) fn open(path: &Path) -> Result<Input> {
        let f = File::open(path).map_err(|e| io("opening RDB file", path, e))?;
        let size = f
            .metadata()
            .map_err(|e| io("reading RDB file", path, e))?
            .len();
        Ok(Input {
            r: BufReader::with_capacity(1 << 20, f),
            lzf: Vec::new(),
            offset: 0,
            size,
            crc: None,
        })
    }

    pub(super) fn left(&self) -> u64 {
        self.size.saturating_sub(self.offset)
    }

    pub(super) fn fail<T>(&self, what: impl Into<String>) -> Parse<T> {
        Err(Bad(self.offset, what.into()))
    }

    /// Reads `n` bytes into `out` (replacing its contents).
    pub(super) fn read_into(&mut self, n: u64, out: &mut Vec<u8>, what: &str) -> Parse<()> {
        if n > self.left() {
            return self.fail(format!(
                "{what}: {n} bytes declared, the file has {} left",
                self.left()
            ));
        }
        out.clear();
        out.resize(n as usize, 0);
        if let Err(e) = self.r.read_exact(out) {
            return self.fail(format!("{what}: read failed: {e}"));
        }
        if let Some(c) = &mut self.crc {
            *c = crc64(*c, out);
        }
        self.offset += n;
        Ok(())
    }

    pub(super) fn array<const N: usize>(&mut self, what: &str) -> Parse<[u8; N]> {
        if (N as u64) > self.left() {
            return self.fail(format!("{what}: the file ends here"));
        }
        let mut b = [0u8; N];
        if let Err(e) = self.r.read_exact(&mut b) {
            return self.fail(format!("{what}: read failed: {e}"));
        }
        if let Some(c) = &mut self.crc {
            *c = crc64(*c, &b);
        }
        self.offset += N as u64;
        Ok(b)
    }

    pub(super) fn byte(&mut self, what: &str) -> Parse<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Skips `n` bytes (checked against the file).
    pub(super) fn skip(&mut self, n: u64, what: &str, scratch: &mut Vec<u8>) -> Parse<()> {
        let mut left = n;
        while left > 0 {
            let step = left.min(1 << 20);
            self.read_into(step, scratch, what)?;
            left -= step;
        }
        Ok(())
    }

    /// An RDB length; `Err(special)` for a string's special form
    /// (`11xxxxxx`).
    pub(super) fn length(&mut self, what: &str) -> Parse<std::result::Result<u64, u8>> {
        let at = self.offset;
        let b = self.byte(what)?;
        Ok(match b >> 6 {
            0 => Ok(u64::from(b & 0x3F)),
            1 => Ok((u64::from(b & 0x3F) << 8) | u64::from(self.byte(what)?)),
            3 => Err(b & 0x3F),
            _ => match b {
                0x80 => Ok(u64::from(u32::from_be_bytes(self.array(what)?))),
                0x81 => Ok(u64::from_be_bytes(self.array(what)?)),
                _ => return Err(Bad(at, format!("{what}: unknown length encoding {b:#04x}"))),
            },
        })
    }

    /// A plain length (not a string's special form).
    pub(super) fn len(&mut self, what: &str) -> Parse<u64> {
        let at = self.offset;
        self.length(what)?.map_err(|_| {
            Bad(
                at,
                format!("{what}: a string encoding where a length belongs"),
            )
        })
    }

    /// An RDB string into `out`: raw, integer or LZF.
    pub(super) fn string_into(&mut self, out: &mut Vec<u8>, what: &str) -> Parse<()> {
        let at = self.offset;
        match self.length(what)? {
            Ok(n) => {
                if n > MAX_STRING {
                    return Err(Bad(
                        at,
                        format!("{what}: {n} bytes, more than {MAX_STRING}"),
                    ));
                }
                self.read_into(n, out, what)
            }
            Err(k @ 0..=2) => {
                let v = match k {
                    0 => i64::from(self.byte(what)? as i8),
                    1 => i64::from(i16::from_le_bytes(self.array(what)?)),
                    _ => i64::from(i32::from_le_bytes(self.array(what)?)),
                };
                out.clear();
                crate::numeric::push_i64(out, v);
                Ok(())
            }
            Err(3) => {
                let clen = self.len(what)?;
                let ulen = self.len(what)?;
                if clen > self.left()
                    || ulen > MAX_STRING
                    || ulen > clen.saturating_mul(LZF_MAX_RATIO) + 64
                {
                    return Err(Bad(
                        at,
                        format!("{what}: LZF string of {clen} bytes cannot hold {ulen}"),
                    ));
                }
                let mut z = std::mem::take(&mut self.lzf);
                self.read_into(clen, &mut z, what)?;
                let ok = lzf_decompress_into(&z, ulen as usize, out);
                self.lzf = z;
                if ok {
                    Ok(())
                } else {
                    Err(Bad(at, format!("{what}: damaged LZF data")))
                }
            }
            Err(k) => Err(Bad(
                at,
                format!("{what}: unknown string encoding {:#04x}", 0xC0 | k),
            )),
        }
    }

    pub(super) fn skip_string(&mut self, scratch: &mut Vec<u8>, what: &str) -> Parse<()> {
        self.string_into(scratch, what)
    }
}
