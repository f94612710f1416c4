//! RESP2, as `redis-cli --pipe` reads it: writing commands for export and
//! reading them back on import (arrays of bulk strings, every length
//! bounded, every error naming its byte).

use std::io::{BufRead, Read, Write};

use super::{MAX_ARGS, MAX_BULK};

/// Writes `argv` as one RESP2 array of bulk strings.
pub(crate) fn resp_command(out: &mut dyn Write, argv: &[&[u8]]) -> std::io::Result<()> {
    write!(out, "*{}\r\n", argv.len())?;
    for a in argv {
        write!(out, "${}\r\n", a.len())?;
        out.write_all(a)?;
        out.write_all(b"\r\n")?;
    }
    Ok(())
}

/// Reads RESP2 arrays of bulk strings, the format of `redis-cli --pipe`.
pub(crate) struct RespReader<'a> {
    pub(crate) input: &'a mut dyn BufRead,
    pub(crate) offset: u64,
}

impl RespReader<'_> {
    /// The number on the next line, which must start with `prefix` and be
    /// at most `max`; `None` at a clean end of input.
    fn number(&mut self, prefix: u8, max: usize) -> std::result::Result<Option<usize>, String> {
        let at = self.offset;
        // The commonest case: the whole line is in the reader's buffer and
        // well formed (`prefix`, up to 19 digits, `\r\n`): read in place.
        {
            let buf = self
                .input
                .fill_buf()
                .map_err(|e| format!("reading at byte {at}: {e}"))?;
            if buf.first() == Some(&prefix) {
                let digits = buf[1..]
                    .iter()
                    .take(20)
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if (1..=19).contains(&digits) && buf.get(1 + digits..3 + digits) == Some(b"\r\n") {
                    let v = buf[1..1 + digits]
                        .iter()
                        .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
                    if let Some(v) = usize::try_from(v).ok().filter(|&v| v <= max) {
                        let n = 3 + digits;
                        self.input.consume(n);
                        self.offset += n as u64;
                        return Ok(Some(v));
                    }
                }
            }
        }
        let mut l = [0u8; 64];
        let mut n = 0;
        // The whole line is in the reader's buffer.
        {
            let buf = self
                .input
                .fill_buf()
                .map_err(|e| format!("reading at byte {at}: {e}"))?;
            if let Some(i) = buf.iter().take(l.len()).position(|&b| b == b'\n') {
                n = i + 1;
                l[..n].copy_from_slice(&buf[..n]);
                self.input.consume(n);
                self.offset += n as u64;
            }
        }
        // Otherwise byte by byte (a line across the buffer's end).
        while n == 0 || l[n - 1] != b'\n' {
            let buf = self
                .input
                .fill_buf()
                .map_err(|e| format!("reading at byte {at}: {e}"))?;
            let Some(&b) = buf.first() else {
                if n == 0 {
                    return Ok(None);
                }
                return Err(format!("byte {at}: expected a line ending in \\r\\n"));
            };
            self.input.consume(1);
            self.offset += 1;
            if n == l.len() {
                return Err(format!("byte {at}: expected a line ending in \\r\\n"));
            }
            l[n] = b;
            n += 1;
        }
        let l = &l[..n];
        if !l.ends_with(b"\r\n") {
            return Err(format!("byte {at}: expected a line ending in \\r\\n"));
        }
        let l = &l[..n - 2];
        if l.first() != Some(&prefix) {
            return Err(format!(
                "byte {at}: expected '{}' , found {:?}",
                prefix as char,
                String::from_utf8_lossy(l)
            ));
        }
        let v: usize = std::str::from_utf8(&l[1..])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&v| v <= max)
            .ok_or_else(|| format!("byte {at}: bad length {:?}", String::from_utf8_lossy(l)))?;
        Ok(Some(v))
    }

    /// The next command, its arguments back to back in `args` with their
    /// ends in `ends` (both cleared first); false at a clean end of input.
    pub(crate) fn next_into(
        &mut self,
        args: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> std::result::Result<bool, String> {
        args.clear();
        ends.clear();
        let Some(n) = self.number(b'*', MAX_ARGS)? else {
            return Ok(false);
        };
        for _ in 0..n {
            let at = self.offset;
            let len = self
                .number(b'$', MAX_BULK)?
                .ok_or_else(|| format!("byte {at}: input ends inside a command"))?;
            // Read as it arrives: memory grows with the bytes present, not
            // with the length a damaged header claims.
            let start = args.len();
            let buffered = self
                .input
                .fill_buf()
                .map_err(|e| format!("reading at byte {at}: {e}"))?;
            let got = if buffered.len() >= len + 2 {
                // Already in the reader's buffer: one copy.
                args.extend_from_slice(&buffered[..len + 2]);
                self.input.consume(len + 2);
                len + 2
            } else {
                args.reserve((len + 2).min(1 << 20));
                std::io::Read::take(&mut self.input, len as u64 + 2)
                    .read_to_end(args)
                    .map_err(|e| format!("reading at byte {at}: {e}"))?
            };
            self.offset += got as u64;
            if got != len + 2 || !args.ends_with(b"\r\n") {
                return Err(format!("byte {at}: bulk string of {len} bytes cut short"));
            }
            args.truncate(start + len);
            ends.push(args.len());
        }
        Ok(true)
    }
}
