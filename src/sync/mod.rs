//! Continuous sync of a hashkv directory into Redis, Valkey or Redis
//! Cluster ([`Sync`]; the `hashkv sync` command), for applications that
//! outgrow one machine. Behind the `sync` cargo feature.
//!
//! Sync opens the directory read-only (beside the live application), copies
//! every hash to the target, then follows the log and sends each change as
//! the application makes it, in log order. The reader it follows with
//! applies the log in step with it (`follow(None)`, one record at a time
//! under `Db::follow_with`), so sync sees the data right before and right
//! after every change: what makes each change safe to send twice
//! (`translate`), so delivering at least once ends as delivering once.
//!
//! The log position the target has acknowledged is saved in a state file
//! (`state`); a restart loads the directory up to that position and goes
//! on from there. When a snapshot dropped that part of the log, sync copies
//! everything again and deletes the target's hashes that hashkv no longer
//! holds. The target side (connections, pipelines, a cluster's slots) is
//! `target`.

mod state;
mod target;
mod translate;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::db::Db;
use crate::error::Error;
use crate::feed::LogPosition;
use crate::options::{Now, Options};

use state::State;
use target::{SendError, Target};
use translate::{Translated, Translator, Unit};

/// Records applied and translated per step of following.
const STEP: u64 = 4096;
/// Commands sent in one pipeline at most.
const PIPELINE_COMMANDS: usize = 4096;
/// Connections a full copy sends through at once.
const COPY_CONNECTIONS: usize = 2;
/// How often the state file is written while changes flow (and at exit).
const SAVE_EVERY: Duration = Duration::from_millis(500);

/// Why sync stopped with an error. Each names what failed and, where a
/// change is concerned, its key and log position; the position the target
/// acknowledged is saved before it is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Reading the directory failed.
    #[error("{0}")]
    Db(#[from] Error),
    /// The target could not be reached or refused the connection (a wrong
    /// password, an unreachable host after retries).
    #[error("{0}")]
    Connect(String),
    /// The target refused a command for good (out of memory, a key of
    /// another type, no permission...).
    #[error("{target} refused key {key} (log position {position}): {message}")]
    Refused {
        /// The target, without its password.
        target: String,
        /// The key, as redis-cli shows it.
        key: String,
        /// The change's log position (where its record ends).
        position: LogPosition,
        /// The server's error.
        message: String,
    },
    /// A field TTL must be sent to a target that has none.
    #[error(
        "key {key} (log position {position}) has field TTLs, and {target} ({server}) has none \
         (they need Redis 7.4+ or Valkey 9+); --drop-field-ttls syncs the fields without them"
    )]
    FieldTtls {
        /// The target, without its password.
        target: String,
        /// What the target is.
        server: String,
        /// The key, as redis-cli shows it.
        key: String,
        /// The change's log position.
        position: LogPosition,
    },
    /// Retrying did not help.
    #[error("{target}: gave up after {tries} tries at log position {position}: {message}")]
    GaveUp {
        /// The target, without its password.
        target: String,
        /// Tries made.
        tries: u32,
        /// The position the target acknowledged last.
        position: LogPosition,
        /// The last error.
        message: String,
    },
    /// The state file could not be read or written, or belongs to another
    /// sync.
    #[error("sync state {path}: {why}")]
    State {
        /// The state file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// What sync is doing, for progress bars and status lines
/// ([`SyncBuilder::on_event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Connected to the target.
    Connected {
        /// The target, without its password.
        target: String,
        /// What it is (`Redis 7.0.15`).
        server: String,
        /// Whether it has field TTLs.
        field_ttls: bool,
    },
    /// Going on from a saved position.
    Resuming {
        /// The position.
        position: LogPosition,
    },
    /// A full copy starts.
    CopyStarted {
        /// Keys to copy (about: expired ones are skipped).
        keys: u64,
        /// Why a full copy (a first sync, or the saved position is gone).
        why: String,
    },
    /// Keys copied so far.
    Copied {
        /// Keys sent.
        keys: u64,
        /// Keys to copy.
        total: u64,
    },
    /// The full copy is done.
    CopyDone {
        /// Keys copied.
        keys: u64,
        /// Fields copied.
        fields: u64,
        /// Hashes deleted on the target because hashkv no longer holds
        /// them (after a lost position).
        deleted: u64,
        /// How long it took.
        elapsed: Duration,
    },
    /// The target acknowledged every change up to `position`.
    Acknowledged {
        /// The position.
        position: LogPosition,
        /// Changes acknowledged since sync started.
        changes: u64,
        /// How long the oldest change of this batch waited, from when sync
        /// read it.
        waited: Duration,
    },
    /// How far behind the log sync is (about every second while it runs).
    Lag {
        /// Records in the log not sent yet.
        changes: u64,
        /// Their bytes.
        bytes: u64,
        /// Since when sync has not had everything: 0 when caught up.
        behind: Duration,
    },
    /// Sending failed and is tried again.
    Retrying {
        /// The error.
        message: String,
        /// The try that failed (1 for the first).
        attempt: u32,
        /// The pause before the next.
        after: Duration,
    },
    /// Field TTLs are left out (`drop_field_ttls`), first met at this key.
    FieldTtlsDropped {
        /// The key, as redis-cli shows it.
        key: String,
    },
}

/// What a sync run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncReport {
    /// Keys copied by full copies.
    pub copied_keys: u64,
    /// Changes (log records) acknowledged by the target.
    pub changes: u64,
    /// Commands sent.
    pub commands: u64,
    /// Hashes deleted on the target after a lost position.
    pub deleted: u64,
    /// Full copies made (0 when resuming).
    pub full_copies: u64,
    /// The position the target acknowledged last (saved in the state
    /// file).
    pub position: LogPosition,
}

type EventFn = Box<dyn FnMut(&Event) + Send>;

/// Builds a [`Sync`]; see [`Sync::builder`].
pub struct SyncBuilder {
    dir: PathBuf,
    url: String,
    cluster: bool,
    state: Option<PathBuf>,
    pattern: Option<Vec<u8>>,
    drop_field_ttls: bool,
    retries: u32,
    poll: Duration,
    on_event: Option<EventFn>,
}

impl SyncBuilder {
    /// The target is a Redis Cluster (or Valkey Cluster): `url` names any
    /// node; each key goes to the master owning its slot.
    pub fn cluster(mut self, yes: bool) -> Self {
        self.cluster = yes;
        self
    }

    /// Saves the acknowledged position in `path` and resumes from it. Without
    /// a state file every run starts with a full copy.
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state = Some(path.into());
        self
    }

    /// Syncs only keys matching `pattern` (Redis's glob rules, as SCAN
    /// MATCH); the others never reach the target.
    pub fn matching(mut self, pattern: impl AsRef<[u8]>) -> Self {
        self.pattern = Some(pattern.as_ref().to_vec());
        self
    }

    /// Sends fields without their TTLs to a target that has none, instead
    /// of stopping with [`SyncError::FieldTtls`].
    pub fn drop_field_ttls(mut self, yes: bool) -> Self {
        self.drop_field_ttls = yes;
        self
    }

    /// Tries made before a failing target is given up (10 by default, with
    /// pauses doubling from 100 ms to 5 s).
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n.max(1);
        self
    }

    /// How often sync looks for new changes when it has caught up (1 ms by
    /// default).
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    /// Calls `f` with each [`Event`].
    pub fn on_event(mut self, f: impl FnMut(&Event) + Send + 'static) -> Self {
        self.on_event = Some(Box::new(f));
        self
    }

    /// The sync, checked: the URL parses and names a server.
    ///
    /// # Errors
    /// [`SyncError::Connect`] for a URL that is not `redis://...`.
    pub fn build(self) -> Result<Sync, SyncError> {
        if !self.url.starts_with("redis://") {
            return Err(SyncError::Connect(format!(
                "{}: the target must be a redis:// URL (redis://[user:password@]host:port[/db])",
                target::redact(&self.url)
            )));
        }
        redis::Client::open(self.url.as_str())
            .map_err(|e| SyncError::Connect(format!("{}: {e}", target::redact(&self.url))))?;
        Ok(Sync { b: self })
    }
}

/// Copies a hashkv directory into Redis, Valkey or Redis Cluster and keeps
/// it in step with the application's changes.
///
/// ```no_run
/// use std::sync::atomic::AtomicBool;
/// let stop = AtomicBool::new(false); // set it from a signal handler
/// let mut sync = hashkv::sync::Sync::builder("data", "redis://127.0.0.1:7000")
///     .cluster(true)
///     .state_file("data.sync-state")
///     .build()?;
/// let report = sync.run(&stop)?;
/// println!("{} changes; the target has everything up to {}", report.changes, report.position);
/// # Ok::<(), hashkv::sync::SyncError>(())
/// ```
pub struct Sync {
    b: SyncBuilder,
}

/// Where a run stands.
struct Run<'a> {
    target: Target,
    report: SyncReport,
    pattern: Option<&'a [u8]>,
    drop_field_ttls: bool,
    warned_ttls: bool,
    retries: u32,
    state: Option<(&'a Path, State)>,
    saved_at: Instant,
    on_event: &'a mut Option<EventFn>,
    stop: Option<&'a AtomicBool>,
}

fn show_key(k: &[u8]) -> String {
    let mut s = Vec::new();
    crate::command::reply::push_repr(&mut s, k);
    String::from_utf8_lossy(&s).into_owned()
}

impl Sync {
    /// A sync of the directory `dir` into the target at `url`
    /// (`redis://[user:password@]host:port[/db]`).
    pub fn builder(dir: impl Into<PathBuf>, url: impl Into<String>) -> SyncBuilder {
        SyncBuilder {
            dir: dir.into(),
            url: url.into(),
            cluster: false,
            state: None,
            pattern: None,
            drop_field_ttls: false,
            retries: 10,
            poll: Duration::from_millis(1),
            on_event: None,
        }
    }

    /// Copies (or resumes), sends every change in the log as it is now,
    /// saves the position and returns.
    ///
    /// # Errors
    /// [`SyncError`]; the acknowledged position is saved first.
    pub fn run_once(&mut self) -> Result<SyncReport, SyncError> {
        self.run_inner(None)
    }

    /// Copies (or resumes), then follows the application's changes until
    /// `stop` is set; then finishes the batch in flight, saves the position
    /// and returns.
    ///
    /// # Errors
    /// [`SyncError`]; the acknowledged position is saved first.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<SyncReport, SyncError> {
        self.run_inner(Some(stop))
    }

    fn run_inner(&mut self, stop: Option<&AtomicBool>) -> Result<SyncReport, SyncError> {
        let b = &mut self.b;
        let shown = target::redact(&b.url);
        let pattern_text = b
            .pattern
            .as_deref()
            .map_or("*".to_string(), |p| String::from_utf8_lossy(p).into_owned());
        let saved = match &b.state {
            Some(p) => State::read(p)?,
            None => None,
        };
        if let (Some(s), Some(p)) = (&saved, &b.state) {
            if s.target != shown || s.pattern != pattern_text {
                return Err(SyncError::State {
                    path: p.display().to_string(),
                    why: format!(
                        "it is the state of a sync to {} of keys {:?}, not to {shown} of keys {:?}; \
                         give another state file",
                        s.target, s.pattern, pattern_text
                    ),
                });
            }
        }
        let target = connect(&b.url, b.cluster, b.retries, &mut b.on_event, stop)?;
        let state = b.state.as_deref().map(|p| {
            (
                p,
                State {
                    version: 1,
                    dir: b.dir.display().to_string(),
                    target: shown.clone(),
                    pattern: pattern_text.clone(),
                    position: String::new(),
                },
            )
        });
        let mut run = Run {
            target,
            report: SyncReport::default(),
            pattern: b.pattern.as_deref(),
            drop_field_ttls: b.drop_field_ttls,
            warned_ttls: false,
            retries: b.retries,
            state,
            saved_at: Instant::now(),
            on_event: &mut b.on_event,
            stop,
        };
        let opts = Options::default().follow(None);
        let resume = match &saved {
            Some(s) => Some(s.position(b.state.as_deref().unwrap_or(Path::new("")))?),
            None => None,
        };
        let (db, copy) = match resume {
            Some(pos) => match Db::open_read_only_until(&b.dir, opts.clone(), Some(pos)) {
                Ok(db) => {
                    run.emit(Event::Resuming { position: pos });
                    (db, None)
                }
                Err(Error::PositionGone { why, .. }) => (
                    Db::open_read_only_until(&b.dir, opts, None)?,
                    Some((
                        true,
                        format!(
                            "the saved position {pos} is gone ({why}): copying everything again"
                        ),
                    )),
                ),
                Err(e) => return Err(e.into()),
            },
            None => (
                Db::open_read_only_until(&b.dir, opts, None)?,
                Some((false, "a first sync".to_string())),
            ),
        };
        run.report.position = db.log_position();
        if let Some((again, why)) = copy {
            run.full_copy(&db, again, why)?;
            run.save(true)?;
        }
        let followed = run.follow(&db, b.poll);
        // Whatever happened, the position acknowledged is saved.
        let saved = run.save(true);
        followed?;
        saved?;
        Ok(run.report)
    }
}

/// Connects, retrying what may pass.
fn connect(
    url: &str,
    cluster: bool,
    retries: u32,
    on_event: &mut Option<EventFn>,
    stop: Option<&AtomicBool>,
) -> Result<Target, SyncError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match Target::connect(url, cluster) {
            Ok(t) => {
                if let Some(f) = on_event {
                    f(&Event::Connected {
                        target: t.shown.clone(),
                        server: t.server.clone(),
                        field_ttls: t.field_ttls,
                    });
                }
                return Ok(t);
            }
            Err((true, message))
                if attempt < retries && !stop.is_some_and(|s| s.load(Ordering::SeqCst)) =>
            {
                let after = backoff(attempt);
                if let Some(f) = on_event {
                    f(&Event::Retrying {
                        message,
                        attempt,
                        after,
                    });
                }
                std::thread::sleep(after);
            }
            Err((_, message)) => return Err(SyncError::Connect(message)),
        }
    }
}

/// Sends `units` to `target`, retrying what may pass (on a new connection),
/// and returns the commands sent. `acked` is the position the target had
/// acknowledged before, for the messages.
fn send_with_retry(
    target: &mut Target,
    units: &[(&Unit, LogPosition)],
    retries: u32,
    acked: LogPosition,
    stopping: &dyn Fn() -> bool,
    emit: &mut dyn FnMut(Event),
) -> Result<u64, SyncError> {
    let refs: Vec<&Unit> = units.iter().map(|(u, _)| *u).collect();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match target.send(&refs) {
            Ok(()) => return Ok(refs.iter().map(|u| u.cmds.len() as u64).sum()),
            Err(SendError::Refused { unit, key, message }) => {
                return Err(SyncError::Refused {
                    target: target.shown.clone(),
                    key: show_key(&key),
                    position: units.get(unit).map_or(acked, |u| u.1),
                    message,
                });
            }
            Err(SendError::Retry(message)) => {
                if attempt >= retries || stopping() && attempt > 1 {
                    return Err(SyncError::GaveUp {
                        target: target.shown.clone(),
                        tries: attempt,
                        position: acked,
                        message,
                    });
                }
                let after = backoff(attempt);
                emit(Event::Retrying {
                    message,
                    attempt,
                    after,
                });
                std::thread::sleep(after);
                // A new connection: the old one may be half broken.
                if let Ok(t) = target.connect_again() {
                    *target = t;
                }
            }
        }
    }
}

/// What a full copy hands a connection: units, or RESP written ahead.
enum CopyBatch {
    Units(Vec<Unit>),
    Packed(target::Packed),
}

/// [`send_with_retry`] for RESP written ahead (a full copy at `position`).
fn send_packed_with_retry(
    target: &mut Target,
    p: &target::Packed,
    retries: u32,
    position: LogPosition,
) -> Result<u64, SyncError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match target.send_packed(p) {
            Ok(()) => return Ok(p.count as u64),
            Err(SendError::Refused { key, message, .. }) => {
                return Err(SyncError::Refused {
                    target: target.shown.clone(),
                    key: show_key(&key),
                    position,
                    message,
                })
            }
            Err(SendError::Retry(message)) => {
                if attempt >= retries {
                    return Err(SyncError::GaveUp {
                        target: target.shown.clone(),
                        tries: attempt,
                        position,
                        message,
                    });
                }
                std::thread::sleep(backoff(attempt));
                if let Ok(t) = target.connect_again() {
                    *target = t;
                }
            }
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64 << attempt.min(6).saturating_sub(1)).min(Duration::from_secs(5))
}

impl Run<'_> {
    fn emit(&mut self, e: Event) {
        if let Some(f) = self.on_event.as_mut() {
            f(&e);
        }
    }

    fn stopping(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// Writes the state file (when there is one): when `now`, or when the
    /// last write is old enough.
    fn save(&mut self, now: bool) -> Result<(), SyncError> {
        if !now && self.saved_at.elapsed() < SAVE_EVERY {
            return Ok(());
        }
        if let Some((path, s)) = self.state.as_mut() {
            s.position = self.report.position.to_string();
            s.write(path)?;
        }
        self.saved_at = Instant::now();
        Ok(())
    }

    /// Drops or refuses the field TTL commands of `unit` when the target
    /// has no field TTLs.
    fn fit_field_ttls(&mut self, unit: &mut Unit, position: LogPosition) -> Result<(), SyncError> {
        if self.target.field_ttls {
            return Ok(());
        }
        let is_ttl = |w: &Vec<Vec<u8>>| {
            matches!(
                w.first().map(Vec::as_slice),
                Some(b"HPEXPIREAT" | b"HPERSIST")
            )
        };
        let Some(w) = unit.cmds.iter().find(|w| is_ttl(w)) else {
            return Ok(());
        };
        let key = translate::key_of(w).to_vec();
        self.refuse_or_drop_field_ttls(&key, position)?;
        unit.cmds.retain(|w| !is_ttl(w));
        Ok(())
    }

    /// Sends `units` (each with the position it belongs to), retrying what
    /// may pass.
    fn send(&mut self, units: &[(&Unit, LogPosition)]) -> Result<(), SyncError> {
        let stop = self.stop;
        let on_event = &mut *self.on_event;
        let n = send_with_retry(
            &mut self.target,
            units,
            self.retries,
            self.report.position,
            &|| stop.is_some_and(|s| s.load(Ordering::SeqCst)),
            &mut |e| {
                if let Some(f) = on_event.as_mut() {
                    f(&e);
                }
            },
        )?;
        self.report.commands += n;
        Ok(())
    }

    /// Copies every live key of `db` (matching the pattern); `again` when
    /// the target already holds an older copy (hashes hashkv no longer
    /// holds are deleted after).
    fn full_copy(&mut self, db: &Db, again: bool, why: String) -> Result<(), SyncError> {
        let started = Instant::now();
        let total = db.dbsize()?.max(0) as u64;
        self.emit(Event::CopyStarted { keys: total, why });
        self.report.full_copies += 1;
        // A replacement checks the key's type first unless the target is
        // empty (no key can be in the way).
        let guard = again || self.dbsize_with_retry()? > 0;
        let position = db.log_position();
        let (keys, fields) = self.copy_keys(db, guard, position)?;
        let mut deleted = 0u64;
        if again {
            deleted = self.delete_stale(db)?;
        }
        self.report.copied_keys += keys;
        self.report.deleted += deleted;
        self.report.position = position;
        self.emit(Event::CopyDone {
            keys,
            fields,
            deleted,
            elapsed: started.elapsed(),
        });
        Ok(())
    }

    /// Sends every live key of `db` as a replacement, from this thread
    /// through [`COPY_CONNECTIONS`] connections (each key's commands on one
    /// of them, in order), so the target always has a pipeline to work on
    /// while the next is built. Into a single server the commands are
    /// written as RESP directly. Returns the keys and fields sent.
    fn copy_keys(
        &mut self,
        db: &Db,
        guard: bool,
        position: LogPosition,
    ) -> Result<(u64, u64), SyncError> {
        let total = db.dbsize()?.max(0) as u64;
        let mut conns = Vec::with_capacity(COPY_CONNECTIONS);
        for _ in 0..COPY_CONNECTIONS {
            conns.push(
                self.target
                    .connect_again()
                    .map_err(|(_, m)| SyncError::Connect(m))?,
            );
        }
        let packed = !self.target.is_cluster();
        let retries = self.retries;
        let acked = self.report.position;
        let (mut keys, mut fields) = (0u64, 0u64);
        let sent = std::thread::scope(|scope| -> Result<u64, SyncError> {
            let mut workers = Vec::new();
            for mut t in conns {
                let (tx, rx) = std::sync::mpsc::sync_channel::<CopyBatch>(2);
                let h = scope.spawn(move || -> Result<u64, SyncError> {
                    let mut n = 0;
                    for batch in rx {
                        n += match batch {
                            CopyBatch::Units(batch) => {
                                let units: Vec<(&Unit, LogPosition)> =
                                    batch.iter().map(|u| (u, position)).collect();
                                send_with_retry(
                                    &mut t,
                                    &units,
                                    retries,
                                    acked,
                                    &|| false,
                                    &mut |_| {},
                                )?
                            }
                            CopyBatch::Packed(p) => {
                                send_packed_with_retry(&mut t, &p, retries, position)?
                            }
                        };
                    }
                    Ok(n)
                });
                workers.push((Some(tx), h));
            }
            let mut next = 0usize;
            let mut units: Vec<Unit> = Vec::new();
            let mut resp = target::Packed::default();
            let mut batch_cmds = 0usize;
            let mut failed = false;
            let mut contents: Vec<(Vec<u8>, translate::Content)> = Vec::new();
            let field_ttls = self.target.field_ttls;
            let mut ttl_key: Option<Vec<u8>> = None;
            let pattern = self.pattern;
            'shards: for i in 0..crate::keyspace::SHARDS {
                contents.clear();
                {
                    let now = Now::lazy(&*db.options().clock);
                    let shard = db.keyspace().shard_at(i).read();
                    shard.for_each_live(&now, |key, h, ttl| {
                        if !pattern.is_none_or(|p| crate::command::glob::matches(p, key)) {
                            return;
                        }
                        if packed {
                            // Written straight from the hash, handed to a
                            // connection every pipeline's worth.
                            let c =
                                translate::copy_resp(key, &h, ttl, guard, field_ttls, &mut resp);
                            if c.fields > 0 {
                                fields += c.fields;
                                keys += 1;
                                if c.had_field_ttls && !field_ttls && ttl_key.is_none() {
                                    ttl_key = Some(key.to_vec());
                                }
                            }
                            if resp.count >= PIPELINE_COMMANDS && !failed {
                                let tx = workers[next % workers.len()].0.as_ref();
                                next += 1;
                                let batch = CopyBatch::Packed(std::mem::take(&mut resp));
                                failed = tx.is_none_or(|tx| tx.send(batch).is_err());
                            }
                            return;
                        }
                        let c = translate::Content::of(&h, ttl);
                        if !c.pairs.is_empty() {
                            contents.push((key.to_vec(), c));
                        }
                    });
                }
                if failed {
                    break 'shards;
                }
                if let Some(k) = ttl_key.take() {
                    // A key with field TTLs met a target without them.
                    self.refuse_or_drop_field_ttls(&k, position)?;
                }
                for (key, mut c) in contents.drain(..) {
                    if !c.field_ttls.is_empty() && !self.target.field_ttls {
                        self.refuse_or_drop_field_ttls(&key, position)?;
                        c.field_ttls.clear();
                    }
                    fields += c.pairs.len() as u64;
                    keys += 1;
                    let mut cmds = Vec::new();
                    translate::replace_cmds(&key, Some(&c), guard, &mut cmds);
                    batch_cmds += cmds.len();
                    units.push(Unit {
                        cmds,
                        atomic: false,
                    });
                }
                if packed {
                    batch_cmds = resp.count;
                }
                if batch_cmds >= PIPELINE_COMMANDS {
                    let batch = if packed {
                        CopyBatch::Packed(std::mem::take(&mut resp))
                    } else {
                        CopyBatch::Units(std::mem::take(&mut units))
                    };
                    let tx = workers[next % workers.len()].0.as_ref();
                    next += 1;
                    if tx.is_none_or(|tx| tx.send(batch).is_err()) {
                        failed = true;
                        break 'shards;
                    }
                    batch_cmds = 0;
                    self.emit(Event::Copied { keys, total });
                }
            }
            if !failed && batch_cmds > 0 {
                let batch = if packed {
                    CopyBatch::Packed(resp)
                } else {
                    CopyBatch::Units(units)
                };
                if let Some(tx) = workers[next % workers.len()].0.as_ref() {
                    let _ = tx.send(batch);
                }
            }
            for w in &mut workers {
                w.0.take(); // no more batches: the worker ends
            }
            let mut sent = 0;
            let mut first_err = None;
            for (_, h) in workers {
                match h.join() {
                    Ok(Ok(n)) => sent += n,
                    Ok(Err(e)) => {
                        first_err.get_or_insert(e);
                    }
                    Err(_) => {
                        first_err.get_or_insert(SyncError::Connect(
                            "a copy connection's thread failed".into(),
                        ));
                    }
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(sent),
            }
        })?;
        self.report.commands += sent;
        self.emit(Event::Copied { keys, total });
        Ok((keys, fields))
    }

    /// A key with field TTLs meets a target without them: the error, or
    /// (with `drop_field_ttls`) a warning the first time.
    fn refuse_or_drop_field_ttls(
        &mut self,
        key: &[u8],
        position: LogPosition,
    ) -> Result<(), SyncError> {
        let key = show_key(key);
        if !self.drop_field_ttls {
            return Err(SyncError::FieldTtls {
                target: self.target.shown.clone(),
                server: self.target.server.clone(),
                key,
                position,
            });
        }
        if !self.warned_ttls {
            self.warned_ttls = true;
            self.emit(Event::FieldTtlsDropped { key });
        }
        Ok(())
    }

    fn dbsize_with_retry(&mut self) -> Result<u64, SyncError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.target.dbsize() {
                Ok(n) => return Ok(n),
                Err(SendError::Retry(m) | SendError::Refused { message: m, .. }) => {
                    if attempt >= self.retries {
                        return Err(SyncError::GaveUp {
                            target: self.target.shown.clone(),
                            tries: attempt,
                            position: self.report.position,
                            message: m,
                        });
                    }
                    std::thread::sleep(backoff(attempt));
                }
            }
        }
    }

    /// Deletes the target's hashes (matching the pattern) that `db` does
    /// not hold.
    fn delete_stale(&mut self, db: &Db) -> Result<u64, SyncError> {
        let pattern = self.pattern.unwrap_or(b"*").to_vec();
        let position = db.log_position();
        let mut stale: Vec<Vec<u8>> = Vec::new();
        let scanned = self.target.scan_hashes(&pattern, |_, keys| {
            for k in keys {
                let held = matches!(
                    db.execute(&[b"EXISTS".as_slice(), &k]),
                    Ok(crate::Reply::Integer(n)) if n > 0
                );
                if !held {
                    stale.push(k);
                }
            }
            Ok(())
        });
        if let Err(SendError::Retry(m) | SendError::Refused { message: m, .. }) = scanned {
            return Err(SyncError::GaveUp {
                target: self.target.shown.clone(),
                tries: 1,
                position: self.report.position,
                message: format!("scanning for hashes hashkv no longer holds: {m}"),
            });
        }
        let n = stale.len() as u64;
        for chunk in stale.chunks(PIPELINE_COMMANDS) {
            let units: Vec<Unit> = chunk
                .iter()
                .map(|k| Unit {
                    cmds: vec![vec![b"DEL".to_vec(), k.clone()]],
                    atomic: false,
                })
                .collect();
            let refs: Vec<(&Unit, LogPosition)> = units.iter().map(|u| (u, position)).collect();
            self.send(&refs)?;
        }
        Ok(n)
    }

    /// Follows the log record by record, sending each change, until caught
    /// up (`run_once`) or stopped.
    fn follow(&mut self, db: &Db, poll: Duration) -> Result<(), SyncError> {
        let pattern = self.pattern;
        let mut translator = Translator::new(pattern);
        let mut pending: Vec<Translated> = Vec::new();
        let mut behind_since: Option<Instant> = None;
        let mut lag_at = Instant::now();
        loop {
            let read_at = Instant::now();
            let got = db.follow_with(STEP, &mut |v| translator.visit(v, db, &mut pending))?;
            if translator.reloaded {
                translator.reloaded = false;
                pending.clear();
                let why = format!(
                    "the log after {} was dropped by a snapshot before sync read it: copying everything again",
                    self.report.position
                );
                self.full_copy(db, true, why)?;
                self.save(true)?;
                continue;
            }
            if !pending.is_empty() {
                self.send_pending(&mut pending, read_at)?;
                self.save(false)?;
            }
            if got < STEP {
                behind_since = None;
                if self.stop.is_none() {
                    return Ok(());
                }
            } else if behind_since.is_none() {
                behind_since = Some(read_at);
            }
            if self.stopping() {
                return Ok(());
            }
            if lag_at.elapsed() >= Duration::from_secs(1) {
                lag_at = Instant::now();
                let (bytes, changes) = db.reader_lag()?.unwrap_or((0, 0));
                let behind = behind_since.map_or(Duration::ZERO, |t| t.elapsed());
                self.emit(Event::Lag {
                    changes,
                    bytes,
                    behind,
                });
            }
            if got == 0 {
                std::thread::sleep(poll);
            }
        }
    }

    /// Sends what the records in `pending` became, in pipelines.
    fn send_pending(
        &mut self,
        pending: &mut Vec<Translated>,
        read_at: Instant,
    ) -> Result<(), SyncError> {
        for t in pending.iter_mut() {
            for u in &mut t.units {
                self.fit_field_ttls(u, t.end)?;
            }
        }
        let mut start = 0;
        while start < pending.len() {
            // Records up to a pipeline's worth of commands.
            let mut end = start;
            let mut cmds = 0usize;
            while end < pending.len() && (end == start || cmds < PIPELINE_COMMANDS) {
                cmds += pending[end]
                    .units
                    .iter()
                    .map(|u| u.cmds.len())
                    .sum::<usize>();
                end += 1;
            }
            let units: Vec<(&Unit, LogPosition)> = pending[start..end]
                .iter()
                .flat_map(|t| t.units.iter().map(move |u| (u, t.end)))
                .collect();
            self.send(&units)?;
            self.report.changes += (end - start) as u64;
            self.report.position = pending[end - 1].end;
            start = end;
        }
        pending.clear();
        let e = Event::Acknowledged {
            position: self.report.position,
            changes: self.report.changes,
            waited: read_at.elapsed(),
        };
        self.emit(e);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
