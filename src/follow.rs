//! Following a directory that another process (or nobody) writes:
//! [`crate::Db::open_read_only`] and [`crate::Db::catch_up`].
//!
//! A [`Follower`] owns a reader's view of the directory's log: the segment
//! it is reading and where, the segments it opened together with MANIFEST,
//! and the damage it found. It writes, creates, moves, cuts and locks
//! nothing. Loading takes MANIFEST and a handle on every file it lists
//! together (again if MANIFEST changed meanwhile, as `hashkv check` does),
//! loads the snapshot, then replays the segments through the same catch-up
//! that follows the writer afterwards.
//!
//! Catch-up applies every whole, checksummed frame after its position, in
//! order, one record at a time under the locks of its keys, so a reader's
//! state is always the writer's after some prefix of its log (a
//! transaction is one record). At the first frame that is not whole it
//! stops and tries again next time, unless a proof says the frame was
//! complete (docs/FORMAT.md): a sync mark past it, or a later segment
//! holding data. Then the frame is read once more, and if it is still bad
//! it is damage: reported by every later catch-up, while the reader keeps
//! serving its last good state. At a seal it moves to the next segment
//! (when MANIFEST lists none after it, a switch failed after sealing, and
//! the reader reads on past the seal, where a writer reopening the
//! directory appends); when that one is gone (snapshots dropped the log it
//! had not read yet) or MANIFEST no longer lists the segment it reads, it
//! loads the directory again into a fresh keyspace and swaps it in whole
//! (subscribers are told: [`crate::feed::RecvError::Reset`]).

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::dir::{self, Manifest};
use crate::error::{Error, Result};
use crate::feed::{Feed, LogPosition};
use crate::keyspace::{Effect, Keyspace};
use crate::log::tail::{SegmentTail, Stop};
use crate::options::Options;
use crate::recovery::RecoveryReport;

/// How often a reader that has caught up looks at MANIFEST.
const MANIFEST_EVERY: Duration = Duration::from_millis(100);
/// How long a frame that is there but not whole stays "not written yet"
/// before the reader looks for a proof that it is damage instead (a writer
/// copies a frame in microseconds)...
const PROOF_AFTER: Duration = Duration::from_millis(20);
/// ... and how long zeros do (the usual end of the log: looking past them
/// reads the rest of the segment, so not after every write).
const PROOF_AFTER_ZEROS: Duration = Duration::from_secs(1);
/// How often that look is repeated while the files change...
const PROOF_EVERY: Duration = Duration::from_secs(1);
/// ... and while they do not.
const PROOF_FORCE: Duration = Duration::from_secs(10);
/// How many times loading retries when MANIFEST changes under it.
const LOAD_TRIES: usize = 100;

/// What a reader has done and where it is ([`crate::Db::reader_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReaderStatus {
    /// The end of the last record applied.
    pub position: LogPosition,
    /// Records applied since the handle was opened (the replay at open
    /// and every catch-up).
    pub records: u64,
    /// Times the reader loaded the directory again from a newer snapshot
    /// because the log it had not read yet was dropped.
    pub reloads: u64,
    /// The snapshot the current state was loaded from, if any.
    pub snapshot: Option<String>,
    /// Damage found ahead of the position: the reader serves its last good
    /// state and reports this on every catch-up.
    pub damage: Option<String>,
    /// What the last catch-ups did beyond applying records (reloads,
    /// MANIFEST trouble), oldest first, at most 16.
    pub notes: Vec<String>,
}

/// What [`Follower::catch_up_with`] shows its visitor.
pub(crate) enum Visit<'a, 'e> {
    /// A record about to be applied: the keyspace holds the state before it.
    Before(&'a Effect<'e>),
    /// A record applied: the keyspace holds the state after it, and the
    /// record ends at this position.
    After(&'a Effect<'e>, LogPosition),
    /// The follower loaded the directory again from a newer snapshot: the
    /// changes cannot be followed one by one across this point.
    Reloaded,
}

/// A file's identity and state, to see whether it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileSig {
    len: u64,
    modified: Option<SystemTime>,
    ino: u64,
}

fn sig_of(path: &Path) -> Option<FileSig> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).ok()?;
    Some(FileSig {
        len: md.len(),
        modified: md.modified().ok(),
        ino: md.ino(),
    })
}

/// The segment being read and the next one, as last looked at.
type Sigs = (Option<FileSig>, Option<FileSig>);

/// Where a reader stands still, since when, and what it last checked.
struct PendingAt {
    at: LogPosition,
    since: Instant,
    proof_checked: Option<(Instant, Sigs)>,
}

/// What to do after a catch-up stopped at a frame that is not whole.
enum Next {
    Wait,
    Again,
    MoveOn(SegmentTail),
    Reload,
    Damage(String),
}

/// A reader's view of a directory's log.
pub(crate) struct Follower {
    dir: PathBuf,
    tail: SegmentTail,
    /// Segments opened together with MANIFEST, after `tail`'s.
    queued: VecDeque<SegmentTail>,
    manifest_sig: Option<FileSig>,
    manifest_checked: Instant,
    pending: Option<PendingAt>,
    /// The position whose MANIFEST trouble or proof is being confirmed by
    /// one more read.
    confirm: Option<LogPosition>,
    damage: Option<(String, u64, String)>,
    records: u64,
    reloads: u64,
    snapshot: Option<String>,
    notes: VecDeque<String>,
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

fn corrupt(file: &Path, offset: u64, reason: String) -> Error {
    Error::Corrupt {
        file: file.display().to_string(),
        offset,
        reason,
    }
}

/// MANIFEST, then a handle on every file it lists, then MANIFEST again:
/// the files a reader opens belong to one state of the directory.
fn open_listed(dir: &Path) -> Result<(Manifest, Option<File>, Vec<SegmentTail>)> {
    let manifest = dir.join(dir::MANIFEST);
    let mut last_missing = None;
    for _ in 0..LOAD_TRIES {
        let before = std::fs::read(&manifest).ok();
        let Some(m) = dir::read_manifest(dir)? else {
            return Err(io(
                "opening read-only",
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no database here yet (no MANIFEST); a writer creates it with Db::open",
                ),
            ));
        };
        let mut missing = None;
        let snap = match &m.snapshot {
            Some(name) => match File::open(dir.join(name)) {
                Ok(f) => Some(f),
                Err(_) => {
                    missing = Some(name.clone());
                    None
                }
            },
            None => None,
        };
        let mut segs = Vec::with_capacity(m.segments.len());
        for name in &m.segments {
            let path = dir.join(name);
            match File::open(&path) {
                Ok(f) => segs.push(SegmentTail::new(
                    dir::segment_number(name).unwrap_or(0),
                    path,
                    f,
                )),
                Err(_) => missing = Some(name.clone()),
            }
        }
        if missing.is_none() && std::fs::read(&manifest).ok() == before {
            return Ok((m, snap, segs));
        }
        last_missing = missing;
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(match last_missing {
        Some(name) => corrupt(
            &manifest,
            0,
            format!("lists {name}, which is missing; `hashkv repair {}` rebuilds MANIFEST from the files present", dir.display()),
        ),
        None => io(
            "opening read-only",
            dir,
            std::io::Error::other("MANIFEST kept changing while the listed files were opened"),
        ),
    })
}

impl Follower {
    /// Loads the directory into `ks` (a fresh, read-only keyspace): the
    /// snapshot MANIFEST names, then every whole frame of its segments.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for damage (a bad snapshot, MANIFEST, or a frame
    /// proven complete but bad), [`Error::Io`] for a missing database.
    pub(crate) fn load(
        dir: &Path,
        ks: &Keyspace,
        opts: &Options,
    ) -> Result<(Follower, RecoveryReport)> {
        Follower::load_until(dir, ks, opts, None)
    }

    /// [`Follower::load`], replaying the log only up to `until` (where a
    /// record ends) when given: the state is then the writer's right after
    /// that record.
    ///
    /// # Errors
    /// As [`Follower::load`], and [`Error::PositionGone`] when the log no
    /// longer holds `until` (a snapshot dropped its segment) or it is not
    /// where a record ends.
    pub(crate) fn load_until(
        dir: &Path,
        ks: &Keyspace,
        opts: &Options,
        until: Option<LogPosition>,
    ) -> Result<(Follower, RecoveryReport)> {
        let (m, snap, segs) = open_listed(dir)?;
        if let (Some(u), Some(first)) = (until, segs.first()) {
            if u.segment < first.number() {
                return Err(Error::PositionGone {
                    requested: u,
                    why: format!(
                        "segment {} is no longer in {} (a snapshot dropped it)",
                        dir::segment_name(u.segment),
                        dir.display()
                    ),
                });
            }
        }
        let mut report = RecoveryReport::default();
        if let (Some(name), Some(file)) = (&m.snapshot, snap) {
            let path = dir.join(name);
            let map = crate::snapshot::format::map_file(&file)
                .map_err(|e| io("mapping snapshot", &path, e))?;
            let loaded = crate::snapshot::format::read_presized(
                map.as_deref().unwrap_or(&[]),
                opts,
                |keys| ks.reserve_keys(keys),
                |batch| ks.load_batch(batch),
            )
            .map_err(|b| corrupt(&path, b.offset, b.reason))?;
            report.snapshot = Some(path.display().to_string());
            report.snapshot_keys = loaded.keys;
        }
        let mut segs: VecDeque<SegmentTail> = segs.into();
        let Some(tail) = segs.pop_front() else {
            return Err(corrupt(
                &dir.join(dir::MANIFEST),
                0,
                "no segments listed".into(),
            ));
        };
        report.segments = m.segments.len();
        let mut f = Follower {
            dir: dir.to_path_buf(),
            tail,
            queued: segs,
            manifest_sig: sig_of(&dir.join(dir::MANIFEST)),
            manifest_checked: Instant::now(),
            pending: None,
            confirm: None,
            damage: None,
            records: 0,
            reloads: 0,
            snapshot: m.snapshot.clone(),
            notes: VecDeque::new(),
        };
        f.catch_up_with(ks, opts, None, until, u64::MAX, &mut |_| {})?;
        if let Some(u) = until {
            if f.position() != u {
                return Err(Error::PositionGone {
                    requested: u,
                    why: format!(
                        "the log reads to {} and does not end a record there",
                        f.position()
                    ),
                });
            }
        }
        report.records = f.records;
        ks.rebuild_encodings(opts);
        Ok((f, report))
    }

    /// The end of the last record applied.
    pub(crate) fn position(&self) -> LogPosition {
        LogPosition::new(self.tail.number(), self.tail.offset())
    }

    /// Bytes of whole records in the log past the position (what the next
    /// catch-up would apply), looking ahead without applying anything.
    pub(crate) fn lag_bytes(&self) -> Result<u64> {
        self.lag().map(|(bytes, _)| bytes)
    }

    /// Bytes and records of whole records in the log past the position.
    pub(crate) fn lag(&self) -> Result<(u64, u64)> {
        let mut tail = self
            .tail
            .try_clone()
            .map_err(|e| io("reading", self.tail.path(), e))?;
        let mut bytes = 0u64;
        let mut records = 0u64;
        loop {
            let from = tail.offset();
            let stop = tail.advance(None, u64::MAX, |_, _, _, _| records += 1);
            bytes += tail.offset() - from;
            match stop {
                Ok(Stop::Sealed) => {
                    let n = tail.number() + 1;
                    let path = self.dir.join(dir::segment_name(n));
                    match File::open(&path) {
                        Ok(f) => tail = SegmentTail::new(n, path, f),
                        Err(_) => break,
                    }
                }
                _ => break,
            }
        }
        Ok((bytes, records))
    }

    pub(crate) fn status(&self) -> ReaderStatus {
        ReaderStatus {
            position: self.position(),
            records: self.records,
            reloads: self.reloads,
            snapshot: self.snapshot.clone(),
            damage: self
                .damage
                .as_ref()
                .map(|(f, o, r)| format!("{f}: corrupt at byte {o}: {r}")),
            notes: self.notes.iter().cloned().collect(),
        }
    }

    fn note(&mut self, line: String) {
        if self.notes.len() >= 16 {
            self.notes.pop_front();
        }
        self.notes.push_back(line);
    }

    fn damage_error(&self) -> Option<Error> {
        self.damage
            .as_ref()
            .map(|(f, o, r)| corrupt(Path::new(f), *o, r.clone()))
    }

    /// Applies every whole record appended since the last call (pushing
    /// each to `feed`); returns how many.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for damage ahead (the state stays the last good
    /// one), or what a reload met.
    pub(crate) fn catch_up(
        &mut self,
        ks: &Keyspace,
        opts: &Options,
        feed: Option<&Feed>,
    ) -> Result<u64> {
        self.catch_up_with(ks, opts, feed, None, u64::MAX, &mut |_| {})
    }

    /// [`Follower::catch_up`] stopping at `until` (a record's end) and
    /// after `budget` records, showing `visit` each record before and after
    /// it is applied, and each reload.
    ///
    /// # Errors
    /// As [`Follower::catch_up`].
    pub(crate) fn catch_up_with(
        &mut self,
        ks: &Keyspace,
        opts: &Options,
        feed: Option<&Feed>,
        until: Option<LogPosition>,
        budget: u64,
        visit: &mut dyn FnMut(Visit<'_, '_>),
    ) -> Result<u64> {
        if self.damage.is_some() {
            // A repair may have replaced the damaged log: start again from
            // what MANIFEST lists then.
            if self.manifest_dropped_us()? {
                let n = self.reload(ks, opts, feed)?;
                visit(Visit::Reloaded);
                return Ok(n);
            }
            return Err(self.damage_error().expect("checked above"));
        }
        let mut applied = 0u64;
        loop {
            let n = self.tail.number();
            if until.is_some_and(|u| self.position() >= u) || applied >= budget {
                break;
            }
            let limit = until.filter(|u| u.segment == n).map(|u| u.offset);
            let left = budget - applied;
            let stop = self.tail.advance(limit, left, |e, payload, start, end| {
                visit(Visit::Before(&e));
                ks.apply_followed(&e, opts);
                if let Some(feed) = feed {
                    feed.publish(n, start, end, payload);
                }
                visit(Visit::After(&e, LogPosition::new(n, end)));
                applied += 1;
            });
            match stop {
                Err(bad) => {
                    self.records += applied;
                    self.damage = Some((
                        self.tail.path().display().to_string(),
                        bad.offset,
                        bad.reason,
                    ));
                    return Err(self.damage_error().expect("set above"));
                }
                Ok(Stop::Sealed) if until.is_some_and(|u| u.segment == n) => break,
                Ok(Stop::Sealed) => match self.next_segment()? {
                    Some(t) => {
                        self.tail = t;
                        self.pending = None;
                    }
                    // MANIFEST lists nothing after the sealed segment: a
                    // switch failed after its seal (MANIFEST put back, the
                    // new segment removed). A writer opening the directory
                    // next appends after the seal, and replay reads past
                    // it: so does the reader. (Loading again would find
                    // the same seal, again and again.)
                    None if self.listed_last()? => self.tail.read_past_seal(),
                    None => {
                        self.records += applied;
                        let n = self.reload(ks, opts, feed)?;
                        visit(Visit::Reloaded);
                        return Ok(applied + n);
                    }
                },
                // A version-1 segment read whole goes on in the next one
                // opened with MANIFEST (version-1 segments have no seals).
                Ok(Stop::Pending { .. })
                    if self.tail.version() == 1
                        && self.queued.front().is_some_and(|t| t.number() == n + 1) =>
                {
                    if let Some(t) = self.queued.pop_front() {
                        self.tail = t;
                        self.pending = None;
                    }
                }
                Ok(Stop::Pending { bad }) => match self.on_pending(bad)? {
                    Next::Wait => break,
                    Next::Again => {}
                    Next::MoveOn(t) => {
                        self.tail = t;
                        self.pending = None;
                    }
                    Next::Reload => {
                        self.records += applied;
                        let n = self.reload(ks, opts, feed)?;
                        visit(Visit::Reloaded);
                        return Ok(applied + n);
                    }
                    Next::Damage(reason) => {
                        self.records += applied;
                        self.damage = Some((
                            self.tail.path().display().to_string(),
                            self.tail.offset(),
                            reason,
                        ));
                        return Err(self.damage_error().expect("set above"));
                    }
                },
                Ok(Stop::Limit | Stop::Budget) => break,
            }
        }
        self.records += applied;
        Ok(applied)
    }

    /// The segment after the sealed one: opened with MANIFEST at load, or
    /// by name and confirmed by MANIFEST. `None` when it is gone or is not
    /// the continuation of this log (the caller reloads).
    fn next_segment(&mut self) -> Result<Option<SegmentTail>> {
        let n = self.tail.number() + 1;
        while self.queued.front().is_some_and(|t| t.number() < n) {
            self.queued.pop_front();
        }
        if self.queued.front().is_some_and(|t| t.number() == n) {
            return Ok(self.queued.pop_front());
        }
        let name = dir::segment_name(n);
        let path = self.dir.join(&name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("opening", &path, e)),
        };
        // Opened first, then confirmed: MANIFEST lists it after the sealed
        // one, or after the snapshot that replaced it.
        let m = dir::read_manifest(&self.dir)?;
        let ok = m.is_some_and(|m| {
            m.segments.contains(&name)
                && (m.segments.contains(&dir::segment_name(n - 1))
                    || m.snapshot.as_deref() == Some(dir::snapshot_name(n).as_str()))
        });
        Ok(ok.then(|| SegmentTail::new(n, path, file)))
    }

    /// Whether MANIFEST lists the segment being read as the last one.
    fn listed_last(&self) -> Result<bool> {
        let n = self.tail.number();
        Ok(dir::read_manifest(&self.dir)?
            .is_some_and(|m| m.segments.last().and_then(|s| dir::segment_number(s)) == Some(n)))
    }

    /// Whether MANIFEST changed and no longer lists the segment being read.
    fn manifest_dropped_us(&mut self) -> Result<bool> {
        let path = self.dir.join(dir::MANIFEST);
        let sig = sig_of(&path);
        if sig == self.manifest_sig {
            return Ok(false);
        }
        self.manifest_sig = sig;
        let name = dir::segment_name(self.tail.number());
        Ok(dir::read_manifest(&self.dir)?.is_some_and(|m| !m.segments.contains(&name)))
    }

    /// Decides what a stop at a frame that is not whole means.
    fn on_pending(&mut self, bad: Option<String>) -> Result<Next> {
        let now = Instant::now();
        let at = self.position();
        if self.pending.as_ref().is_none_or(|p| p.at != at) {
            self.pending = Some(PendingAt {
                at,
                since: now,
                proof_checked: None,
            });
            if self.confirm.is_some_and(|c| c != at) {
                self.confirm = None;
            }
        }
        let confirming = self.confirm == Some(at);
        // MANIFEST: the segment left the log without a seal read here (a
        // repair, or a seal written just after the read), or a version-1
        // segment ended and the next one is listed.
        if confirming || now.duration_since(self.manifest_checked) >= MANIFEST_EVERY {
            self.manifest_checked = now;
            let path = self.dir.join(dir::MANIFEST);
            let sig = sig_of(&path);
            if confirming || sig != self.manifest_sig || self.tail.version() == 1 {
                self.manifest_sig = sig;
                match dir::read_manifest(&self.dir) {
                    Ok(Some(m)) => {
                        let n = self.tail.number();
                        if !m.segments.contains(&dir::segment_name(n)) {
                            if confirming {
                                return Ok(Next::Reload);
                            }
                            self.confirm = Some(at);
                            return Ok(Next::Again);
                        }
                        if self.tail.version() == 1
                            && m.segments.contains(&dir::segment_name(n + 1))
                        {
                            if let Some(t) = self.next_segment()? {
                                return Ok(Next::MoveOn(t));
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        // Reported, and followed again once MANIFEST is whole.
                        self.manifest_sig = None;
                        self.note(format!("MANIFEST cannot be read: {e}"));
                        return Err(e);
                    }
                }
            }
        }
        // A proof that the frame here was complete makes it damage.
        let p = self.pending.as_mut().expect("set above");
        let after = if bad.is_some() {
            PROOF_AFTER
        } else {
            PROOF_AFTER_ZEROS
        };
        if !confirming && now.duration_since(p.since) < after {
            return Ok(Next::Wait);
        }
        let next_path = self.dir.join(dir::segment_name(self.tail.number() + 1));
        let sigs = (sig_of(self.tail.path()), sig_of(&next_path));
        let due = match p.proof_checked {
            None => true,
            Some((t, s)) => {
                let since = now.duration_since(t);
                (since >= PROOF_EVERY && s != sigs) || since >= PROOF_FORCE
            }
        };
        if !(due || confirming) {
            return Ok(Next::Wait);
        }
        p.proof_checked = Some((now, sigs));
        let proof = match self
            .tail
            .vouched_past()
            .map_err(|e| io("reading", self.tail.path(), e))?
        {
            Some(why) => Some(why),
            None => next_holds_data(&next_path).then(|| {
                format!(
                    "{} holds data, and the writer moves on only after sealing this one",
                    next_path.display()
                )
            }),
        };
        let Some(why) = proof else {
            self.confirm = None;
            return Ok(Next::Wait);
        };
        if !confirming {
            // Read once more: a frame the proof vouches for is whole by now
            // unless it is damaged.
            self.confirm = Some(at);
            return Ok(Next::Again);
        }
        let what = bad.unwrap_or_else(|| "no frame (zeros)".to_owned());
        Ok(Next::Damage(format!("{what}; {why}")))
    }

    /// Loads the directory again into a fresh keyspace and swaps it in.
    fn reload(&mut self, ks: &Keyspace, opts: &Options, feed: Option<&Feed>) -> Result<u64> {
        let fresh = Keyspace::default();
        fresh.set_shapes(opts.shapes);
        fresh.set_read_only();
        let (next, report) = match Follower::load(&self.dir, &fresh, opts) {
            Ok(x) => x,
            Err(e) => {
                self.note(format!("reloading failed, serving the state before: {e}"));
                return Err(e);
            }
        };
        // Every watched key may have changed.
        ks.watches.touch_all();
        drop(ks.replace_contents(fresh));
        let from = self.position();
        let records = next.records;
        let (old_records, reloads, notes) = (
            self.records,
            self.reloads + 1,
            std::mem::take(&mut self.notes),
        );
        *self = next;
        self.records += old_records;
        self.reloads = reloads;
        self.notes = notes;
        self.note(format!(
            "reloaded from {} at {} (the log after {from} was dropped before it was read)",
            report.snapshot.as_deref().unwrap_or("the log alone"),
            self.position()
        ));
        if let Some(feed) = feed {
            feed.publish_reset();
        }
        Ok(records)
    }
}

/// Whether the segment at `path` holds anything past its header.
fn next_holds_data(path: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(f) = File::open(path) else {
        return false;
    };
    let mut buf = vec![0u8; 64 << 10];
    let n = f.read_at(&mut buf, 0).unwrap_or(0);
    crate::log::reader::holds_data(&buf[..n])
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use crate::log::record::{self, MARK_SEAL};
    use crate::{Db, Options};

    fn manual() -> Options {
        Options::default().follow(None).no_auto_snapshots()
    }

    /// The last segment MANIFEST lists ends with a seal and nothing follows
    /// it: what a switch leaves when it fails after sealing (MANIFEST is
    /// put back, the new segment removed, the writer stops). A reader
    /// waits there instead of loading the directory again and again (which,
    /// done by recursion, would overflow its stack), and reads on past the
    /// seal once a writer reopening the directory appends after it.
    #[test]
    fn a_seal_with_no_segment_after_it_is_waited_at_then_read_past() {
        let dir = tempfile::tempdir().unwrap();
        let seg = {
            let w = Db::open_with(dir.path(), manual()).unwrap();
            w.hset("before", &[("f", "1")]).unwrap();
            w.close().unwrap();
            let m = crate::dir::read_manifest(dir.path()).unwrap().unwrap();
            dir.path().join(m.segments.last().unwrap())
        };
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        let at = f.metadata().unwrap().len();
        f.write_all_at(&record::mark(MARK_SEAL, at), at).unwrap();
        drop(f);
        let r = Db::open_read_only_with(dir.path(), manual()).unwrap();
        assert_eq!(r.hget("before", "f").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(r.catch_up().unwrap(), 0);
        assert_eq!(r.reader_status().unwrap().reloads, 0);
        let w = Db::open_with(dir.path(), manual()).unwrap();
        w.hset("after", &[("f", "2")]).unwrap();
        assert_eq!(r.catch_up().unwrap(), 1);
        assert_eq!(r.hget("after", "f").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(r.log_position(), w.log_position());
        // A switch after that is followed as usual.
        w.snapshot().unwrap();
        w.hset("later", &[("f", "3")]).unwrap();
        r.catch_up().unwrap();
        assert_eq!(r.hget("later", "f").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(r.log_position(), w.log_position());
    }

    fn frame(key: &str, value: &[u8]) -> Vec<u8> {
        let e = crate::keyspace::Effect::HSet {
            key: key.as_bytes(),
            pairs: vec![(b"f", value)],
        };
        let mut buf = Vec::new();
        let n = record::encode(&e, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    /// A version-1 directory of two segments: the reader's open replays
    /// both, as a writer's open does (it once stopped after the first
    /// until a catch-up 100 ms later).
    #[test]
    fn a_version_1_directory_of_two_segments_opens_whole() {
        let dir = tempfile::tempdir().unwrap();
        for (n, key) in [(1, "k1"), (2, "k2")] {
            let mut seg = record::SEGMENT_MAGIC_V1.to_vec();
            seg.extend(frame(key, b"1"));
            std::fs::write(dir.path().join(crate::dir::segment_name(n)), seg).unwrap();
        }
        std::fs::write(
            dir.path().join("MANIFEST"),
            "hashkv-manifest 1\nsegment log-000001.aof\nsegment log-000002.aof\n",
        )
        .unwrap();
        let r = Db::open_read_only_with(dir.path(), manual()).unwrap();
        assert_eq!(r.hget("k1", "f").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(r.hget("k2", "f").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(r.log_position().segment, 2);
    }

    /// A record cut short whose copied part holds the bytes of a sync mark
    /// (a value that contains a log, say) is not vouched for by them: the
    /// reader waits for the rest instead of reporting damage.
    #[test]
    fn mark_shaped_bytes_in_a_record_cut_short_are_no_proof() {
        let dir = tempfile::tempdir().unwrap();
        {
            let w = Db::open_with(dir.path(), manual()).unwrap();
            w.hset("a", &[("f", "1")]).unwrap();
            w.close().unwrap();
        }
        let r = Db::open_read_only_with(dir.path(), manual()).unwrap();
        let seg = dir.path().join(crate::dir::segment_name(1));
        let mut bytes = std::fs::read(&seg).unwrap();
        let b = bytes.len();
        let mut value = vec![b'x'; 64];
        value.extend_from_slice(&record::mark(record::MARK_SYNCED, (b + 40) as u64));
        value.extend(vec![b'y'; 200]);
        let whole = frame("big", &value);
        bytes.extend_from_slice(&whole[..150]);
        std::fs::write(&seg, &bytes).unwrap();
        for _ in 0..3 {
            assert_eq!(r.catch_up().unwrap(), 0);
            std::thread::sleep(std::time::Duration::from_millis(30));
        }
        assert!(r.reader_status().unwrap().damage.is_none());
        // The rest arrives: the record is read.
        bytes.extend_from_slice(&whole[150..]);
        std::fs::write(&seg, &bytes).unwrap();
        assert_eq!(r.catch_up().unwrap(), 1);
        assert_eq!(r.hget("big", "f").unwrap(), Some(value));
    }

    /// `subscribe_from` reads on past a seal a reopened writer appended
    /// after (MANIFEST lists the sealed segment last), from a position
    /// before the seal and from one after it.
    #[test]
    fn subscribe_from_reads_past_a_seal_a_writer_appended_after() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let p0 = {
            let w = Db::open_with(dir.path(), manual()).unwrap();
            w.hset("before", &[("f", "1")]).unwrap();
            let p0 = w.log_position();
            w.close().unwrap();
            p0
        };
        let seg = dir.path().join(crate::dir::segment_name(1));
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        let at = f.metadata().unwrap().len();
        f.write_all_at(&record::mark(record::MARK_SEAL, at), at)
            .unwrap();
        drop(f);
        let w = Db::open_with(dir.path(), manual()).unwrap();
        w.hset("after", &[("f", "2")]).unwrap();
        let p1 = w.log_position();
        w.hset("after2", &[("f", "3")]).unwrap();
        let wait = std::time::Duration::from_secs(5);
        let mut s = w.subscribe_from(p0).unwrap();
        assert_eq!(
            s.recv_timeout(wait).unwrap().to_cli_line(),
            "hset after f 2"
        );
        assert_eq!(
            s.recv_timeout(wait).unwrap().to_cli_line(),
            "hset after2 f 3"
        );
        let mut s = w.subscribe_from(p1).unwrap();
        assert_eq!(
            s.recv_timeout(wait).unwrap().to_cli_line(),
            "hset after2 f 3"
        );
    }
}
