//! [`Session`]: one client's state, as a Redis connection has it: its
//! MULTI queue and its WATCHed keys. `hashkv shell` runs one.
//!
//! MULTI/EXEC/DISCARD/WATCH/UNWATCH follow Redis 7.0.15 (checked against
//! the real server by `tests/transactions_redis.rs`): commands after MULTI
//! are checked for a known name and argument count and answer `QUEUED`; a
//! failed check answers its error and makes EXEC answer `EXECABORT`; EXEC
//! runs the queue atomically (the keys of every queued command locked
//! together, every key for KEYS, SCAN, DBSIZE and FLUSHDB), returns one
//! reply per command with run-time errors as [`Reply::Error`] elements,
//! and logs the queue's changes as one record. EXEC answers the null
//! reply ([`Reply::Nil`], `(nil)`) when a watched key was changed after
//! WATCH, by anyone, or expired since.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::command::{Command, KeySet, Reply};
use crate::db::Db;
use crate::error::{CommandError, Error, Result};
use crate::keyspace::watch::Watch;
use crate::keyspace::Lookup;
use crate::options::Now;
use crate::transaction::{begin, end, run_in};

/// One client's state over a [`Db`]: MULTI/EXEC/DISCARD/WATCH/UNWATCH work
/// here as on a Redis connection. Made by [`Db::session`].
///
/// # Examples
/// ```
/// use hashkv::Reply;
/// let db = hashkv::Db::in_memory(hashkv::Options::default());
/// let mut s = db.session();
/// s.execute(&["MULTI"])?;
/// assert_eq!(s.execute(&["HINCRBY", "acct:1", "balance", "-30"])?, Reply::Status("QUEUED".into()));
/// s.execute(&["HINCRBY", "acct:2", "balance", "30"])?;
/// let r = s.execute(&["EXEC"])?;
/// assert_eq!(r, Reply::Array(vec![Reply::Integer(-30), Reply::Integer(30)]));
/// # Ok::<(), hashkv::Error>(())
/// ```
pub struct Session {
    db: Db,
    /// The queue after MULTI (None outside MULTI).
    queue: Option<Vec<Vec<Vec<u8>>>>,
    /// A queued command failed its checks: EXEC aborts.
    aborted: bool,
    watches: Vec<Arc<Watch>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("in_multi", &self.queue.is_some())
            .field("queued", &self.queue.as_ref().map_or(0, Vec::len))
            .field("watched", &self.watches.len())
            .finish()
    }
}

impl Db {
    /// A new session (one client's MULTI queue and WATCHed keys) over this
    /// database.
    pub fn session(&self) -> Session {
        Session {
            db: self.clone(),
            queue: None,
            aborted: false,
            watches: Vec::new(),
        }
    }
}

fn err(text: &str) -> Error {
    Error::Command(CommandError::err(text))
}

impl Session {
    /// The database this session runs on.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Whether the session is between MULTI and EXEC/DISCARD.
    pub fn in_multi(&self) -> bool {
        self.queue.is_some()
    }

    /// Runs one command as a Redis connection would: MULTI, EXEC, DISCARD,
    /// WATCH and UNWATCH act on the session; inside MULTI other commands
    /// are queued; otherwise as [`Db::execute`].
    ///
    /// # Errors
    /// Redis's error for the command ([`Error::Command`]), or a log error.
    pub fn execute<A: AsRef<[u8]>>(&mut self, argv: &[A]) -> Result<Reply> {
        let words: Vec<&[u8]> = argv.iter().map(AsRef::as_ref).collect();
        let Some(first) = words.first() else {
            return Err(err("empty command"));
        };
        let name = String::from_utf8_lossy(first).to_ascii_lowercase();
        let n = words.len();
        // The session's own commands: their argument counts first (inside
        // MULTI a wrong count aborts the transaction, as any other).
        let own_arity = match name.as_str() {
            "multi" | "exec" | "discard" | "unwatch" | "reset" => Some(n == 1),
            "watch" => Some(n >= 2),
            _ => None,
        };
        if own_arity == Some(false) {
            if name == "exec" {
                // Redis refuses EXEC itself by discarding the transaction
                // and the WATCHed keys, in MULTI or not.
                self.queue = None;
                self.aborted = false;
                self.unwatch();
                return Err(Error::Command(CommandError::new(
                    "EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command",
                )));
            }
            self.aborted |= self.queue.is_some();
            return Err(Error::Command(CommandError::wrong_arity(&name)));
        }
        match name.as_str() {
            "multi" => {
                if self.queue.is_some() {
                    return Err(err("MULTI calls can not be nested"));
                }
                self.queue = Some(Vec::new());
                Ok(Reply::ok())
            }
            "exec" => self.exec(),
            "discard" => {
                if self.queue.take().is_none() {
                    return Err(err("DISCARD without MULTI"));
                }
                self.aborted = false;
                self.unwatch();
                Ok(Reply::ok())
            }
            "watch" => {
                if self.queue.is_some() {
                    return Err(err("WATCH inside MULTI is not allowed"));
                }
                self.watch(&words[1..]);
                Ok(Reply::ok())
            }
            // RESET runs at once, in MULTI too: the connection's state
            // goes back to a new one's (no MULTI, no WATCH).
            "reset" => {
                self.queue = None;
                self.aborted = false;
                self.unwatch();
                Ok(Reply::Status("RESET".into()))
            }
            "unwatch" if self.queue.is_none() => {
                self.unwatch();
                Ok(Reply::ok())
            }
            _ => match &mut self.queue {
                Some(q) => {
                    if name != "unwatch" {
                        if let Err(e) = Command::lookup(&words) {
                            self.aborted = true;
                            return Err(e.into());
                        }
                        // A replica refuses a write before queueing it
                        // (and EXEC then aborts), as Redis does.
                        if self.db.is_read_only() && crate::command::is_write_name(&name) {
                            self.aborted = true;
                            return Err(Error::ReadOnly);
                        }
                    }
                    q.push(words.iter().map(|w| w.to_vec()).collect());
                    Ok(Reply::Status("QUEUED".into()))
                }
                None => self.db.execute(&words),
            },
        }
    }

    fn watch(&mut self, keys: &[&[u8]]) {
        let ks = self.db.keyspace();
        let now = Now::lazy(&*self.db.options().clock);
        for k in keys {
            if self.watches.iter().any(|w| w.key == *k) {
                continue;
            }
            let expired = matches!(ks.shard(k).read().lookup(k, &now), Lookup::Expired);
            self.watches.push(ks.watches.add(k, expired));
        }
    }

    fn unwatch(&mut self) {
        let ws = std::mem::take(&mut self.watches);
        self.db.keyspace().watches.remove(&ws);
    }

    fn exec(&mut self) -> Result<Reply> {
        let Some(queue) = self.queue.take() else {
            return Err(err("EXEC without MULTI"));
        };
        if std::mem::take(&mut self.aborted) {
            self.unwatch();
            return Err(Error::Command(CommandError::new(
                "EXECABORT Transaction discarded because of previous errors.",
            )));
        }
        let db = self.db.clone();
        let ks = db.keyspace();
        let opts = db.options();
        // The keys of every queued command (a command that does not parse
        // fails when it runs and touches nothing).
        let words: Vec<Vec<&[u8]>> = queue
            .iter()
            .map(|argv| argv.iter().map(Vec::as_slice).collect())
            .collect();
        // Each queued command parsed once: for its keys now, to run later
        // (UNWATCH is the session's; a parse error is that command's reply).
        let parsed: Vec<Option<std::result::Result<Command<'_>, CommandError>>> = words
            .iter()
            .map(|w| (!w[0].eq_ignore_ascii_case(b"unwatch")).then(|| Command::parse(w)))
            .collect();
        let mut all = false;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for p in parsed.iter().flatten() {
            match p.as_ref().map(Command::keys) {
                Ok(KeySet::All) => all = true,
                Ok(KeySet::Keys(ks)) => keys.extend(ks.into_iter().map(<[u8]>::to_vec)),
                Err(_) => {}
            }
        }
        keys.extend(self.watches.iter().map(|w| w.key.clone()));
        keys.sort();
        keys.dedup();
        let names: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let mut g = if all {
            ks.lock_all()
        } else {
            ks.lock_many(&names)
        };
        // WATCH: touched since, or expired since (a key already expired
        // when watched does not count).
        let now = Now::lazy(&*opts.clock);
        let dirty = self.watches.iter().any(|w| {
            w.dirty.load(Ordering::SeqCst)
                || (!w.expired_at_watch.load(Ordering::SeqCst)
                    && matches!(g.shard(&w.key).lookup(&w.key, &now), Lookup::Expired))
        });
        self.unwatch();
        if dirty {
            return Ok(Reply::Nil);
        }
        // The queue runs directly on the locked shards; its changes are
        // logged as one record at the end.
        let locked = begin(&db, g);
        let mut replies = Vec::with_capacity(queue.len());
        for p in parsed {
            let reply = match p {
                None => Ok(Reply::ok()),
                Some(Ok(cmd)) => run_in(&db, &locked, cmd),
                Some(Err(e)) => Err(e.into()),
            };
            replies.push(match reply {
                Ok(r) => r,
                Err(Error::Command(e)) => Reply::Error(e.message().to_owned()),
                Err(e) => return Err(e),
            });
        }
        let ticket = end(&db, ks, locked)?;
        ks.sync(ticket)?;
        Ok(Reply::Array(replies))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.unwatch();
    }
}
