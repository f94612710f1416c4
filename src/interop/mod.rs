//! Data in and out of hashkv in other programs' formats: [`Db::export`]
//! and [`Db::import`] in RESP (the command stream `redis-cli --pipe`
//! loads; `resp`) or JSON lines (`json`), and Redis's own RDB files
//! ([`Db::import_rdb`], [`Db::export_rdb`]; `rdb`). Library and `hashkv`
//! tool share these code paths.
//!
//! JSON lines: one object per key,
//! `{"key": K, "expire_at_ms": T, "fields": {F: V, ...}}` (plus
//! `"field_expire_at_ms": [[F, unix_ms], ...]` for a hash with field TTLs),
//! where `expire_at_ms` is the key's absolute expiry in Unix milliseconds
//! (as PEXPIRETIME says) or `null`, so two exports of the same data are the
//! same and a restore later keeps the original expiry. Import also accepts
//! `"ttl_ms"` in its place (time left when exported, applied relative to
//! the import). Keys, fields and values that are valid UTF-8 are JSON
//! strings (JSON's own escapes for quotes, backslashes and control
//! characters); any other byte string is written as `{"base64": "..."}`
//! (standard alphabet, padded), so every byte comes back. A field name that
//! is not UTF-8 cannot be an object key: such a hash is written with
//! `"fields"` as an array of `[F, V]` pairs instead; import accepts both.

pub(crate) mod json;
mod rdb;
pub use rdb::{RdbCompression, RdbExportOptions, RdbImport, RdbImportOptions, RdbVersion};
mod resp;

use std::io::{BufRead, Write};
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::admin::io;
use crate::command::Reply;
use crate::db::{Db, Staged};
use crate::error::{Error, Result};
use json::{json_bytes, parse_json_line, KeyExpiry};
pub(crate) use resp::resp_command;
use resp::RespReader;

/// Export and import formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// RESP2 commands (HSET in chunks of at most 1,000 pairs per hash, then
    /// PEXPIREAT), as `redis-cli --pipe` reads them.
    Resp,
    /// One JSON object per key per line (see the module docs).
    Json,
}

/// Counts of an export or import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transfer {
    /// Keys written (export) or commands / lines applied (import).
    pub items: u64,
    /// Fields written or set.
    pub fields: u64,
    /// Commands that failed on import (their error replies).
    pub errors: Vec<String>,
}

/// Pairs per HSET in a RESP export (and per staged HSET of a JSON
/// import).
const CHUNK: usize = 1000;

fn int(r: &Reply) -> i64 {
    match r {
        Reply::Integer(n) => *n,
        _ => -2,
    }
}

/// Most bytes one JSON line may have on import (a line is parsed whole,
/// and its parsed form takes several times its size).
pub(crate) const MAX_JSON_LINE: usize = 64 << 20;
/// Most bytes one RESP argument may have (Redis's `proto-max-bulk-len`).
pub(crate) const MAX_BULK: usize = 512 << 20;
/// Most arguments one RESP command may have.
pub(crate) const MAX_ARGS: usize = 1 << 24;

impl Db {
    /// Calls `f(key)` for every key, one shard's key names at a time.
    fn each_key(&self, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        for i in 0..crate::keyspace::SHARDS {
            let names: Vec<Vec<u8>> = self
                .keyspace()
                .shard_at(i)
                .read()
                .key_names()
                .map(<[u8]>::to_vec)
                .collect();
            for k in names {
                f(&k)?;
            }
        }
        Ok(())
    }

    /// Writes every live key to `out` in `format`; `progress(done, total)`
    /// counts keys.
    ///
    /// # Examples
    /// ```
    /// use hashkv::interop::Format;
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// db.hset("user:1", &[("name", "Alice")])?;
    /// let mut out = Vec::new();
    /// let t = db.export(Format::Json, &mut out, &mut |_, _| {})?;
    /// assert_eq!(t.items, 1);
    /// assert_eq!(
    ///     String::from_utf8(out)?,
    ///     "{\"expire_at_ms\":null,\"fields\":{\"name\":\"Alice\"},\"key\":\"user:1\"}\n"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`] when `out` fails.
    pub fn export(
        &self,
        format: Format,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Transfer> {
        let total = self.dbsize()?.max(0) as u64;
        let mut t = Transfer::default();
        let werr = |e: std::io::Error| io("writing export", Path::new("<output>"), e);
        progress(0, total);
        self.each_key(|key| {
            let pairs = self.hgetall(key)?;
            if pairs.is_empty() {
                return Ok(()); // expired or deleted meanwhile
            }
            match format {
                Format::Resp => {
                    for chunk in pairs.chunks(CHUNK) {
                        let mut argv: Vec<&[u8]> = vec![b"HSET", key];
                        for (f, v) in chunk {
                            argv.push(f);
                            argv.push(v);
                        }
                        resp_command(out, &argv).map_err(werr)?;
                    }
                    // Field TTLs as Redis's AOF rewrite writes them.
                    for (f, at) in self.field_expiries(key) {
                        let at = at.to_string();
                        resp_command(
                            out,
                            &[b"HPEXPIREAT", key, at.as_bytes(), b"FIELDS", b"1", &f],
                        )
                        .map_err(werr)?;
                    }
                    let at = int(&self.execute(&[b"PEXPIRETIME".as_slice(), key])?);
                    if at >= 0 {
                        let at = at.to_string();
                        resp_command(out, &[b"PEXPIREAT", key, at.as_bytes()]).map_err(werr)?;
                    }
                }
                Format::Json => {
                    let at = int(&self.execute(&[b"PEXPIRETIME".as_slice(), key])?);
                    let text_fields = pairs.iter().all(|(f, _)| std::str::from_utf8(f).is_ok());
                    // Sorted by field, so two exports of the same data are the
                    // same bytes (an object's keys are sorted; the pair form and
                    // the field TTLs follow).
                    let mut sorted: Vec<&(Vec<u8>, Vec<u8>)> = pairs.iter().collect();
                    sorted.sort_unstable();
                    let fields = if text_fields {
                        let mut m = Map::new();
                        for (f, v) in &sorted {
                            m.insert(String::from_utf8_lossy(f).into_owned(), json_bytes(v));
                        }
                        Value::Object(m)
                    } else {
                        Value::Array(
                            sorted
                                .iter()
                                .map(|(f, v)| Value::Array(vec![json_bytes(f), json_bytes(v)]))
                                .collect(),
                        )
                    };
                    let mut line = json!({
                        "key": json_bytes(key),
                        "expire_at_ms": if at >= 0 { Value::from(at) } else { Value::Null },
                        "fields": fields,
                    });
                    let mut expiries = self.field_expiries(key);
                    expiries.sort_unstable();
                    if !expiries.is_empty() {
                        line["field_expire_at_ms"] = Value::Array(
                            expiries
                                .iter()
                                .map(|(f, at)| Value::Array(vec![json_bytes(f), Value::from(*at)]))
                                .collect(),
                        );
                    }
                    serde_json::to_writer(&mut *out, &line)
                        .map_err(|e| werr(std::io::Error::other(e)))?;
                    out.write_all(b"\n").map_err(werr)?;
                }
            }
            t.items += 1;
            t.fields += pairs.len() as u64;
            progress(t.items, total);
            Ok(())
        })?;
        out.flush().map_err(werr)?;
        Ok(t)
    }

    /// Reads `format` from `input` and applies it: RESP commands run as
    /// they are (any command hashkv knows); JSON lines set each key's
    /// fields (HSET, merging into an existing hash) and TTL. A command that
    /// fails is counted in [`Transfer::errors`] and the import goes on.
    /// Runs of `HSET`/`HMSET` commands, and JSON lines' fields, go in as
    /// [`Db::load`] loads: batches of about 1,000 fields, each logged as one
    /// record, a new key's compact hash built straight from its pairs; any
    /// other command runs after the batch before it, so the order holds;
    /// input that cannot be parsed stops it with an error naming the byte
    /// offset or line (the commands before it stay applied).
    /// `progress(bytes, 0)` reports bytes read. A database on a directory
    /// takes a snapshot at the end, so the next open loads it instead of
    /// replaying the import's log.
    ///
    /// # Examples
    /// ```
    /// use hashkv::interop::Format;
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// // What `redis-cli --pipe` reads; a command that fails is counted.
    /// let resp = "*4\r\n$4\r\nHSET\r\n$6\r\nuser:1\r\n$4\r\nname\r\n$5\r\nAlice\r\n\
    ///             *2\r\n$4\r\nLPOP\r\n$6\r\nuser:1\r\n";
    /// let t = db.import(Format::Resp, &mut resp.as_bytes(), &mut |_, _| {})?;
    /// assert_eq!(t.errors.len(), 1);
    /// assert_eq!(db.hget("user:1", "name")?.as_deref(), Some(&b"Alice"[..]));
    ///
    /// let json = r#"{"key": "user:2", "expire_at_ms": null, "fields": {"name": "Bob"}}"#;
    /// db.import(Format::Json, &mut json.as_bytes(), &mut |_, _| {})?;
    /// assert_eq!(db.hget("user:2", "name")?.as_deref(), Some(&b"Bob"[..]));
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`] for unreadable or malformed input, or a failed write to
    /// the log.
    pub fn import(
        &self,
        format: Format,
        input: &mut dyn BufRead,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Transfer> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let mut t = Transfer::default();
        // Runs of HSETs (and JSON lines' fields) go in as `Db::load`'s
        // batches; any other command runs after the batch before it.
        let mut staged = Staged::default();
        // One snapshot at the end instead of the rules' snapshots of a
        // growing keyspace along the way.
        let hold = self.hold_auto_snapshots();
        let bad = |what: String| {
            io(
                "importing",
                Path::new("<input>"),
                std::io::Error::new(std::io::ErrorKind::InvalidData, what),
            )
        };
        let run = |t: &mut Transfer, argv: &[&[u8]]| -> Result<()> {
            match self.execute(argv) {
                Ok(_) => {}
                Err(Error::Command(e)) => {
                    if t.errors.len() < 100 {
                        t.errors.push(format!(
                            "command {} ({}): {e}",
                            t.items + 1,
                            String::from_utf8_lossy(argv.first().map_or(&[][..], |a| a))
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
            t.items += 1;
            Ok(())
        };
        let body = (|| -> Result<()> {
            match format {
                Format::Resp => {
                    let mut r = RespReader { input, offset: 0 };
                    let (mut args, mut ends) = (Vec::new(), Vec::new());
                    while r.next_into(&mut args, &mut ends).map_err(bad)? {
                        if ends.is_empty() {
                            continue;
                        }
                        let mut start = 0;
                        let argv: Vec<&[u8]> = ends
                            .iter()
                            .map(|&end| {
                                let a = &args[start..end];
                                start = end;
                                a
                            })
                            .collect();
                        let hset = argv[0].eq_ignore_ascii_case(b"HSET")
                            || argv[0].eq_ignore_ascii_case(b"HMSET");
                        if hset {
                            t.fields += (argv.len().saturating_sub(2) / 2) as u64;
                        }
                        if hset && argv.len() >= 4 && argv.len().is_multiple_of(2) {
                            // Loaded in batches (HMSET's reply aside, the same
                            // change as HSET's).
                            t.items += 1;
                            staged.key(argv[1], t.items);
                            for p in argv[2..].chunks_exact(2) {
                                staged.pair(p[0], p[1]);
                            }
                            if staged.full() {
                                self.load_staged(&mut staged, &mut t, "command")?;
                            }
                        } else {
                            self.load_staged(&mut staged, &mut t, "command")?;
                            run(&mut t, &argv)?;
                        }
                        progress(r.offset, 0);
                    }
                }
                Format::Json => {
                    let mut line = String::new();
                    let mut n = 0u64;
                    let mut read = 0u64;
                    loop {
                        line.clear();
                        let got = std::io::Read::take(&mut *input, MAX_JSON_LINE as u64 + 1)
                            .read_line(&mut line)
                            .map_err(|e| io("reading", Path::new("<input>"), e))?;
                        if got == 0 {
                            break;
                        }
                        n += 1;
                        if got > MAX_JSON_LINE {
                            return Err(bad(format!(
                            "line {n}: longer than {} MiB, the limit for one JSON line (split the hash over several lines)",
                            MAX_JSON_LINE >> 20
                        )));
                        }
                        read += got as u64;
                        if line.trim().is_empty() {
                            continue;
                        }
                        let (key, ttl, pairs, expiries) =
                            parse_json_line(&line).map_err(|e| bad(format!("line {n}: {e}")))?;
                        for chunk in pairs.chunks(CHUNK) {
                            t.items += 1;
                            staged.key(&key, t.items);
                            for (f, v) in chunk {
                                staged.pair(f, v);
                            }
                            if staged.full() {
                                self.load_staged(&mut staged, &mut t, "command")?;
                            }
                        }
                        t.fields += pairs.len() as u64;
                        if ttl.is_some() || !expiries.is_empty() {
                            self.load_staged(&mut staged, &mut t, "command")?;
                        }
                        for (f, at) in expiries {
                            let at = at.to_string();
                            run(
                                &mut t,
                                &[b"HPEXPIREAT", &key, at.as_bytes(), b"FIELDS", b"1", &f],
                            )?;
                        }
                        match ttl {
                            Some(KeyExpiry::At(ms)) => {
                                run(&mut t, &[b"PEXPIREAT", &key, ms.to_string().as_bytes()])?;
                            }
                            Some(KeyExpiry::In(ms)) => {
                                run(&mut t, &[b"PEXPIRE", &key, ms.to_string().as_bytes()])?;
                            }
                            None => {}
                        }
                        progress(read, 0);
                    }
                }
            }
            Ok(())
        })();
        // What was staged before an error is applied too, as the commands
        // before it are.
        let flushed = self.load_staged(&mut staged, &mut t, "command");
        body?;
        flushed?;
        drop(hold);
        if self.path().is_some() && t.items > 0 {
            // The next open loads this instead of replaying the import.
            self.snapshot()?;
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;

    fn db() -> Db {
        Db::in_memory(Options::default().active_expiry(false))
    }

    /// RESP lines and bulk strings that straddle the reader's buffer read
    /// the same as whole ones, for every buffer size; damage is named by
    /// its byte.
    #[test]
    fn resp_import_reads_across_any_buffer_boundary() {
        let src = db();
        src.hset("k1", &[("f", "v"), ("long", &"x".repeat(300))])
            .unwrap();
        src.hset(
            b"k\r\n2".as_slice(),
            &[(b"\n".as_slice(), b"\r".as_slice())],
        )
        .unwrap();
        let mut resp = Vec::new();
        src.export(Format::Resp, &mut resp, &mut |_, _| {}).unwrap();
        for cap in [1, 2, 3, 7, 64, 65, 333, 1 << 16] {
            let dst = db();
            let mut input = std::io::BufReader::with_capacity(cap, &resp[..]);
            let t = dst
                .import(Format::Resp, &mut input, &mut |_, _| {})
                .unwrap();
            assert_eq!(t.items, 2, "buffer {cap}");
            assert_eq!(dst.hgetall("k1").unwrap(), src.hgetall("k1").unwrap());
            assert_eq!(
                dst.hget(b"k\r\n2".as_slice(), b"\n".as_slice()).unwrap(),
                Some(b"\r".to_vec())
            );
        }
        let mut cut = resp.clone();
        cut.truncate(resp.len() - 3);
        let err = db()
            .import(
                Format::Resp,
                &mut std::io::BufReader::with_capacity(5, &cut[..]),
                &mut |_, _| {},
            )
            .unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
        let err = db()
            .import(Format::Resp, &mut &b"*1\r\n$x\r\n"[..], &mut |_, _| {})
            .unwrap_err();
        assert!(err.to_string().contains("byte 4: bad length"), "{err}");
    }

    #[test]
    fn export_then_import_round_trips_binary_data_in_both_formats() {
        let src = db();
        src.hset("plain", &[("name", "Alice"), ("age", "25")])
            .unwrap();
        src.hset(
            b"k\xff\x00".as_slice(),
            &[(b"f\xfe".as_slice(), b"\x00\x01v".as_slice())],
        )
        .unwrap();
        let big: Vec<(String, String)> = (0..2500)
            .map(|i| (format!("f{i}"), format!("v{i}")))
            .collect();
        src.hset("big", &big).unwrap();
        src.execute(&["PEXPIREAT", "plain", "4000000000000"])
            .unwrap();
        for format in [Format::Resp, Format::Json] {
            let mut out = Vec::new();
            let t = src.export(format, &mut out, &mut |_, _| {}).unwrap();
            assert_eq!((t.items, t.fields), (3, 2503));
            let dst = db();
            let mut input = &out[..];
            let t = dst.import(format, &mut input, &mut |_, _| {}).unwrap();
            assert!(t.errors.is_empty(), "{:?}", t.errors);
            assert_eq!(t.fields, 2503);
            for key in [b"plain".as_slice(), b"k\xff\x00", b"big"] {
                let mut a = src.hgetall(key).unwrap();
                let mut b = dst.hgetall(key).unwrap();
                a.sort();
                b.sort();
                assert_eq!(a, b, "{format:?}");
            }
            // The key's expiry comes back as the same absolute time.
            let at = int(&dst.execute(&["PEXPIRETIME", "plain"]).unwrap());
            assert_eq!(at, 4_000_000_000_000, "{format:?}: expiry kept exactly");
            assert_eq!(int(&dst.execute(&["PTTL", "big"]).unwrap()), -1);
        }
    }

    /// Two JSON exports of the same data, an hour apart, are the same, and
    /// a restore later keeps the original expiry; files with the older
    /// relative `ttl_ms` still import.
    #[test]
    fn json_export_writes_absolute_key_expiry_and_import_takes_both_forms() {
        let clock = crate::options::ManualClock::new(1_700_000_000_000);
        let src = Db::in_memory(Options::default().active_expiry(false).clock(clock.clone()));
        src.hset("k", &[("f", "v")]).unwrap();
        src.execute(&["PEXPIRE", "k", "7200000"]).unwrap();
        let export = |db: &Db| {
            let mut out = Vec::new();
            db.export(Format::Json, &mut out, &mut |_, _| {}).unwrap();
            String::from_utf8(out).unwrap()
        };
        let first = export(&src);
        clock.advance(3_600_000);
        assert_eq!(export(&src), first, "an hour later, the same export");
        assert!(first.contains(r#""expire_at_ms":1700007200000"#), "{first}");
        let dst = Db::in_memory(Options::default().active_expiry(false).clock(clock.clone()));
        dst.import(Format::Json, &mut first.as_bytes(), &mut |_, _| {})
            .unwrap();
        assert_eq!(
            int(&dst.execute(&["PEXPIRETIME", "k"]).unwrap()),
            1_700_007_200_000
        );
        let legacy = r#"{"key":"old","ttl_ms":5000,"fields":{"f":"v"}}"#;
        dst.import(Format::Json, &mut legacy.as_bytes(), &mut |_, _| {})
            .unwrap();
        assert_eq!(int(&dst.execute(&["PTTL", "old"]).unwrap()), 5000);
        let both = r#"{"key":"x","ttl_ms":5,"expire_at_ms":5,"fields":{"f":"v"}}"#;
        let err = dst
            .import(Format::Json, &mut both.as_bytes(), &mut |_, _| {})
            .unwrap_err();
        assert!(err.to_string().contains("both"), "{err}");
    }

    #[test]
    fn resp_export_is_chunked_and_json_escapes_non_utf8() {
        let src = db();
        let big: Vec<(String, String)> = (0..2500).map(|i| (format!("f{i}"), "v".into())).collect();
        src.hset("big", &big).unwrap();
        src.hset(b"\xff".as_slice(), &[("f", "v")]).unwrap();
        let mut out = Vec::new();
        src.export(Format::Resp, &mut out, &mut |_, _| {}).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert_eq!(text.matches("*2002\r\n$4\r\nHSET").count(), 2);
        assert_eq!(text.matches("*1002\r\n$4\r\nHSET").count(), 1);
        let mut out = Vec::new();
        src.export(Format::Json, &mut out, &mut |_, _| {}).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(r#"{"expire_at_ms":null,"fields":{"f":"v"},"key":{"base64":"/w=="}}"#),
            "{text}"
        );
    }

    /// HSETs load in batches, other commands run between them in their
    /// order, a refused HSET is counted, and the HSETs staged before a
    /// parse error are applied as the commands before it are; the same
    /// stream run command by command leaves the same data.
    #[test]
    fn resp_import_keeps_command_order_around_batches() {
        let mut out = Vec::new();
        let cmds: Vec<Vec<Vec<u8>>> = vec![
            vec![b"HSET".into(), b"a".into(), b"f".into(), b"1".into()],
            vec![
                b"HMSET".into(),
                b"b".into(),
                b"f".into(),
                b"1".into(),
                b"g".into(),
                b"2".into(),
            ],
            vec![b"DEL".into(), b"a".into()],
            vec![b"HSET".into(), b"a".into(), b"g".into(), b"2".into()],
            vec![b"HSET".into(), b"b".into(), b"f".into(), b"3".into()],
            vec![b"HSET".into(), b"c".into(), b"f".into()],
            vec![b"HINCRBY".into(), b"b".into(), b"f".into(), b"10".into()],
            vec![b"HSET".into(), b"d".into(), b"f".into(), b"4".into()],
        ];
        for c in &cmds {
            let argv: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
            resp_command(&mut out, &argv).unwrap();
        }
        let single = db();
        for c in &cmds {
            let argv: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
            let _ = single.execute(&argv);
        }
        let d = db();
        let t = d
            .import(Format::Resp, &mut &out[..], &mut |_, _| {})
            .unwrap();
        assert_eq!(t.items, cmds.len() as u64);
        assert_eq!(t.errors.len(), 1, "{:?}", t.errors);
        for k in ["a", "b", "c", "d"] {
            assert_eq!(d.hgetall(k).unwrap(), single.hgetall(k).unwrap(), "{k}");
        }
        assert_eq!(d.hget("b", "f").unwrap().as_deref(), Some(&b"13"[..]));
        // Damage after two HSETs: they are applied, the error names the byte.
        let d = db();
        let mut bad = Vec::new();
        resp_command(&mut bad, &[b"HSET", b"x", b"f", b"1"]).unwrap();
        resp_command(&mut bad, &[b"HSET", b"y", b"f", b"2"]).unwrap();
        let at = bad.len();
        bad.extend_from_slice(b"*x\r\n");
        let err = d
            .import(Format::Resp, &mut &bad[..], &mut |_, _| {})
            .unwrap_err();
        assert!(err.to_string().contains(&format!("byte {at}")), "{err}");
        assert_eq!(d.hget("x", "f").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(d.hget("y", "f").unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn malformed_input_is_an_error_naming_where() {
        let d = db();
        for (input, want) in [
            (&b"*1\r\n$4\r\nPI"[..], "cut short"),
            (b"*x\r\n", "bad length"),
            (b"HSET a b c\r\n", "expected '*'"),
            (b"*1\r\n$999999999999\r\n", "bad length"),
        ] {
            let mut r = input;
            let err = d.import(Format::Resp, &mut r, &mut |_, _| {}).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
        let mut r = &b"{\"key\":\"a\",\"fields\":{}}\n"[..];
        let err = d.import(Format::Json, &mut r, &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        // A line past the limit stops the import with its number, without
        // reading (or parsing) the whole line.
        let mut long = b"{\"key\":\"ok\",\"fields\":{\"f\":\"v\"}}\n".to_vec();
        long.extend(std::iter::repeat_n(b' ', MAX_JSON_LINE + 10));
        long.push(b'\n');
        let mut r = &long[..];
        let err = d.import(Format::Json, &mut r, &mut |_, _| {}).unwrap_err();
        assert!(
            err.to_string().contains("line 2: longer than 64 MiB"),
            "{err}"
        );
        // A command error is counted, the import goes on.
        let mut out = Vec::new();
        resp_command(&mut out, &[b"HSET", b"a", b"f"]).unwrap();
        resp_command(&mut out, &[b"HSET", b"a", b"f", b"v"]).unwrap();
        let mut r = &out[..];
        let t = d.import(Format::Resp, &mut r, &mut |_, _| {}).unwrap();
        assert_eq!(t.errors.len(), 1);
        assert!(
            t.errors[0].contains("wrong number of arguments"),
            "{:?}",
            t.errors
        );
        assert_eq!(d.hget("a", "f").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
