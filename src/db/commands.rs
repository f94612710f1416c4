//! The typed command methods of [`Db`] (`hset`, `hget`, `hincrby`,
//! `pexpire`, ...) and [`Db::execute`]: each builds a [`Command`] and
//! converts its [`Reply`], so a typed call and the same words through
//! `execute` answer alike. Opening, closing, snapshots and following are
//! the parent module's.

use super::{Db, SWEEP_BUDGET};
use crate::command::{convert, Command, Reply};
use crate::error::Result;
use crate::hash::compact::Elem;
use crate::options::Now;

impl Db {
    /// Runs one command given as its words, like a line sent to Redis, and
    /// returns Redis's reply.
    ///
    /// # Errors
    /// [`Error::Command`](crate::Error::Command) with Redis's exact error text.
    ///
    /// # Examples
    /// ```
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// db.execute(&["HSET", "user:1", "name", "Alice"])?;
    /// let reply = db.execute(&["HGET", "user:1", "name"])?;
    /// assert_eq!(reply, hashkv::Reply::Bulk(b"Alice".to_vec()));
    /// let err = db.execute(&["HINCRBY", "user:1", "name", "1"]).unwrap_err();
    /// assert_eq!(err.to_string(), "ERR hash value is not an integer");
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn execute<A: AsRef<[u8]>>(&self, argv: &[A]) -> Result<Reply> {
        let words: Vec<&[u8]> = argv.iter().map(AsRef::as_ref).collect();
        let cmd = Command::parse_for(&words, self.is_read_only())?;
        self.run(cmd)
    }

    fn int(&self, cmd: Command<'_>) -> Result<i64> {
        convert::int(self.run(cmd)?)
    }

    fn bulk(&self, cmd: Command<'_>) -> Result<Option<Vec<u8>>> {
        convert::bulk(self.run(cmd)?)
    }

    fn bulks(&self, cmd: Command<'_>) -> Result<Vec<Vec<u8>>> {
        convert::bulks(self.run(cmd)?)
    }

    /// `HSET key field value [field value ...]`: sets fields, returns how
    /// many were new.
    ///
    /// # Errors
    /// [`Error::Command`](crate::Error::Command) only if the hash outgrows hashkv's limits.
    ///
    /// # Examples
    /// ```
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// assert_eq!(db.hset("user:1", &[("name", "Alice"), ("age", "25")])?, 2);
    /// assert_eq!(db.hset("user:1", &[("age", "26")])?, 0);
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn hset<K, F, V>(&self, key: K, pairs: &[(F, V)]) -> Result<i64>
    where
        K: AsRef<[u8]>,
        F: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let pairs = pairs
            .iter()
            .map(|(f, v)| (f.as_ref(), v.as_ref()))
            .collect();
        self.int(Command::HSet {
            key: key.as_ref(),
            pairs,
            ok_reply: false,
        })
    }

    /// `HSETNX key field value`: sets the field only if it is absent.
    ///
    /// # Errors
    /// [`Error::Command`](crate::Error::Command) only if the hash outgrows hashkv's limits.
    pub fn hsetnx(
        &self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<bool> {
        Ok(self.int(Command::HSetNx {
            key: key.as_ref(),
            field: field.as_ref(),
            value: value.as_ref(),
        })? == 1)
    }

    /// `HGET key field`.
    ///
    /// # Errors
    /// None in practice; the signature leaves room for I/O-backed reads.
    pub fn hget(&self, key: impl AsRef<[u8]>, field: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        // The hottest read: straight to the keyspace, no command value or
        // reply in between (same semantics as `Command::HGet`).
        let now = Now::lazy(&*self.shared.opts.clock);
        let field = field.as_ref();
        Ok(self
            .shared
            .ks
            .read_fields(key.as_ref(), &[field], &now, |h| {
                h.and_then(|h| h.get(field)).map(Elem::to_bytes)
            }))
    }

    /// `HPEXPIRE key milliseconds FIELDS n field...`: one code per field
    /// (-2 no such field, 0 condition not met, 1 set, 2 deleted because the
    /// time is not in the future). For NX/XX/GT/LT or seconds, use
    /// [`Db::execute`] with `HEXPIRE` and friends.
    ///
    /// # Errors
    /// Redis's errors for a negative or too large time, or a failed log
    /// write.
    pub fn hpexpire<F: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        ms: i64,
        fields: &[F],
    ) -> Result<Vec<i64>> {
        let mut argv = fields_argv("HPEXPIRE", key.as_ref(), fields);
        argv.insert(2, ms.to_string().into_bytes());
        self.ints(&argv)
    }

    /// `HPTTL key FIELDS n field...`: per field the milliseconds left, -1
    /// without a TTL, -2 when missing.
    ///
    /// # Errors
    /// None in practice.
    pub fn hpttl<F: AsRef<[u8]>>(&self, key: impl AsRef<[u8]>, fields: &[F]) -> Result<Vec<i64>> {
        self.ints(&fields_argv("HPTTL", key.as_ref(), fields))
    }

    /// `HPERSIST key FIELDS n field...`: per field 1 when a TTL was
    /// removed, -1 without one, -2 when missing.
    ///
    /// # Errors
    /// A failed log write.
    pub fn hpersist<F: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        fields: &[F],
    ) -> Result<Vec<i64>> {
        self.ints(&fields_argv("HPERSIST", key.as_ref(), fields))
    }

    /// `HGETDEL key FIELDS n field...`: the values (None if missing), each
    /// field removed; the key goes with its last field.
    ///
    /// # Errors
    /// A failed log write.
    pub fn hgetdel<F: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        fields: &[F],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        convert::optional_bulks(self.execute(&fields_argv("HGETDEL", key.as_ref(), fields))?)
    }

    /// `HSETEX key PX ms FIELDS n field value...`: sets the pairs, each
    /// expiring `ms` milliseconds from now. For FNX/FXX, KEEPTTL and the
    /// other time forms, use [`Db::execute`] with `HSETEX`.
    ///
    /// # Errors
    /// Redis's errors for a bad time, or a failed log write.
    pub fn hsetex_px<K, F, V>(&self, key: K, ms: i64, pairs: &[(F, V)]) -> Result<()>
    where
        K: AsRef<[u8]>,
        F: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let ms = ms.to_string();
        let n = pairs.len().to_string();
        let mut argv: Vec<&[u8]> = vec![
            b"HSETEX",
            key.as_ref(),
            b"PX",
            ms.as_bytes(),
            b"FIELDS",
            n.as_bytes(),
        ];
        for (f, v) in pairs {
            argv.push(f.as_ref());
            argv.push(v.as_ref());
        }
        self.execute(&argv).map(|_| ())
    }

    /// Each live field of `key` with a TTL and its expiry (Unix ms).
    pub(crate) fn field_expiries(&self, key: &[u8]) -> Vec<(Vec<u8>, i64)> {
        let now = Now::lazy(&*self.shared.opts.clock);
        self.shared.ks.read(key, &now, |h| {
            let mut out = Vec::new();
            if let Some(h) = h {
                let t = h.now();
                h.for_each_with_ttl(|f, _, at| {
                    if at != 0 && !crate::hash::is_expired(at, t) {
                        out.push((f.to_bytes(), at));
                    }
                });
            }
            out
        })
    }

    fn ints<A: AsRef<[u8]>>(&self, argv: &[A]) -> Result<Vec<i64>> {
        match self.execute(argv)? {
            Reply::Array(items) => items
                .into_iter()
                .map(|r| match r {
                    Reply::Integer(n) => Ok(n),
                    other => Err(convert::unexpected(&other)),
                })
                .collect(),
            other => Err(convert::unexpected(&other)),
        }
    }

    /// `HMGET key field [field ...]`: one `Option` per field, in order.
    ///
    /// # Errors
    /// None in practice.
    pub fn hmget<F: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        fields: &[F],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let fields = fields.iter().map(AsRef::as_ref).collect();
        convert::optional_bulks(self.run(Command::HMGet {
            key: key.as_ref(),
            fields,
        })?)
    }

    /// `HGETALL key` as (field, value) pairs.
    ///
    /// # Errors
    /// None in practice.
    pub fn hgetall(&self, key: impl AsRef<[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        // Straight to the keyspace, pairs built once (same semantics as
        // `Command::HGetAll`).
        let now = Now::lazy(&*self.shared.opts.clock);
        Ok(self.shared.ks.read(key.as_ref(), &now, |h| {
            h.map(|h| h.to_pairs()).unwrap_or_default()
        }))
    }

    /// `HKEYS key`.
    ///
    /// # Errors
    /// None in practice.
    pub fn hkeys(&self, key: impl AsRef<[u8]>) -> Result<Vec<Vec<u8>>> {
        self.bulks(Command::HGetAll {
            key: key.as_ref(),
            keys: true,
            values: false,
        })
    }

    /// `HVALS key`.
    ///
    /// # Errors
    /// None in practice.
    pub fn hvals(&self, key: impl AsRef<[u8]>) -> Result<Vec<Vec<u8>>> {
        self.bulks(Command::HGetAll {
            key: key.as_ref(),
            keys: false,
            values: true,
        })
    }

    /// `HDEL key field [field ...]`: returns how many fields were removed.
    ///
    /// # Errors
    /// None in practice.
    pub fn hdel<F: AsRef<[u8]>>(&self, key: impl AsRef<[u8]>, fields: &[F]) -> Result<i64> {
        let fields = fields.iter().map(AsRef::as_ref).collect();
        self.int(Command::HDel {
            key: key.as_ref(),
            fields,
        })
    }

    /// `HEXISTS key field`.
    ///
    /// # Errors
    /// None in practice.
    pub fn hexists(&self, key: impl AsRef<[u8]>, field: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.int(Command::HExists {
            key: key.as_ref(),
            field: field.as_ref(),
        })? == 1)
    }

    /// `HLEN key`.
    ///
    /// # Errors
    /// None in practice.
    pub fn hlen(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        self.int(Command::HLen { key: key.as_ref() })
    }

    /// `HSTRLEN key field`.
    ///
    /// # Errors
    /// None in practice.
    pub fn hstrlen(&self, key: impl AsRef<[u8]>, field: impl AsRef<[u8]>) -> Result<i64> {
        self.int(Command::HStrLen {
            key: key.as_ref(),
            field: field.as_ref(),
        })
    }

    /// Increments the integer in `field` of the hash at `key` by `delta`,
    /// like `HINCRBY`. A missing key or field counts as 0. Returns the new
    /// value.
    ///
    /// # Errors
    /// [`Error::Command`](crate::Error::Command) if the field is not an integer
    /// (`ERR hash value is not an integer`) or the result would overflow
    /// (`ERR increment or decrement would overflow`).
    ///
    /// # Examples
    /// ```
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// assert_eq!(db.hincrby("user:1", "visits", 5)?, 5);
    /// assert_eq!(db.hincrby("user:1", "visits", -2)?, 3);
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn hincrby(
        &self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        delta: i64,
    ) -> Result<i64> {
        self.int(Command::HIncrBy {
            key: key.as_ref(),
            field: field.as_ref(),
            delta,
        })
    }

    /// `HINCRBYFLOAT key field delta`, computed and printed exactly as Redis
    /// does on x86-64. Returns the stored text.
    ///
    /// # Errors
    /// [`Error::Command`](crate::Error::Command) with Redis's float errors.
    ///
    /// # Examples
    /// ```
    /// let db = hashkv::Db::in_memory(hashkv::Options::default());
    /// db.hset("h", &[("x", "10.5")])?;
    /// assert_eq!(db.hincrbyfloat("h", "x", "0.1")?, b"10.6");
    /// # Ok::<(), hashkv::Error>(())
    /// ```
    pub fn hincrbyfloat(
        &self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        delta: impl AsRef<[u8]>,
    ) -> Result<Vec<u8>> {
        self.bulk(Command::HIncrByFloat {
            key: key.as_ref(),
            field: field.as_ref(),
            delta: delta.as_ref(),
        })
        .map(Option::unwrap_or_default)
    }

    /// `DEL key [key ...]`: returns how many keys were removed.
    ///
    /// # Errors
    /// None in practice.
    pub fn del<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<i64> {
        self.int(Command::Del {
            keys: keys.iter().map(AsRef::as_ref).collect(),
        })
    }

    /// `EXISTS key [key ...]`: counts arguments naming an existing key.
    ///
    /// # Errors
    /// None in practice.
    pub fn exists<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<i64> {
        self.int(Command::Exists {
            keys: keys.iter().map(AsRef::as_ref).collect(),
        })
    }

    /// `PEXPIRE key ms`: true when the TTL was set (or the key deleted
    /// because the time is not in the future).
    ///
    /// # Errors
    /// [`Error::Command`](crate::Error::Command) on overflow of the absolute time.
    pub fn pexpire(&self, key: impl AsRef<[u8]>, ms: i64) -> Result<bool> {
        Ok(self
            .execute(&[
                b"PEXPIRE".as_slice(),
                key.as_ref(),
                ms.to_string().as_bytes(),
            ])?
            .as_integer()
            == Some(1))
    }

    /// `PTTL key`: -2 missing, -1 no TTL, else remaining milliseconds.
    ///
    /// # Errors
    /// None in practice.
    pub fn pttl(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        self.int(Command::Ttl {
            key: key.as_ref(),
            kind: crate::command::TtlKind::Millis,
        })
    }

    /// `PERSIST key`.
    ///
    /// # Errors
    /// None in practice.
    pub fn persist(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.int(Command::Persist { key: key.as_ref() })? == 1)
    }

    /// `DBSIZE`.
    ///
    /// # Errors
    /// None in practice.
    pub fn dbsize(&self) -> Result<i64> {
        self.int(Command::DbSize)
    }

    /// `OBJECT ENCODING key`: `listpack`, `hashtable`, or `None`.
    ///
    /// # Errors
    /// None in practice.
    pub fn object_encoding(&self, key: impl AsRef<[u8]>) -> Result<Option<String>> {
        Ok(self
            .bulk(Command::ObjectEncoding { key: key.as_ref() })?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// `MEMORY USAGE key`: bytes held for the key, or `None` if missing.
    ///
    /// # Errors
    /// None in practice.
    pub fn memory_usage(&self, key: impl AsRef<[u8]>) -> Result<Option<i64>> {
        match self.run(Command::MemoryUsage { key: key.as_ref() })? {
            Reply::Integer(n) => Ok(Some(n)),
            _ => Ok(None),
        }
    }

    /// Runs one active-expiry pass now (the background thread does this
    /// every 100 ms when active expiry is on). Returns keys deleted.
    ///
    /// # Errors
    /// An error from logging a deletion; the key then stays (invisible).
    pub fn expire_cycle(&self) -> Result<usize> {
        self.shared
            .ks
            .sweep(self.shared.opts.clock.now_ms(), SWEEP_BUDGET)
    }
}

/// `CMD key FIELDS n field...` as owned words.
fn fields_argv<F: AsRef<[u8]>>(cmd: &str, key: &[u8], fields: &[F]) -> Vec<Vec<u8>> {
    let mut argv = vec![
        cmd.as_bytes().to_vec(),
        key.to_vec(),
        b"FIELDS".to_vec(),
        fields.len().to_string().into_bytes(),
    ];
    argv.extend(fields.iter().map(|f| f.as_ref().to_vec()));
    argv
}
