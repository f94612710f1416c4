//! Integrity of a data directory: [`check`] reads every file and lists
//! what is wrong without changing anything (safe beside a live writer),
//! and [`repair`] fixes what can be fixed after backing up what it
//! changes: a damaged or missing MANIFEST rebuilt from the files present,
//! a torn tail cut, damage salvaged.

use std::path::{Path, PathBuf};

use crate::db::Db;
use crate::dir::{self, Kind, Manifest, Unlisted};
use crate::error::{Error, Result};
use crate::log::reader;
use crate::options::{Options, RecoveryMode};
use crate::recovery::{Skipped, TornTail};

fn io(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

fn no_dir(dir: &Path) -> Error {
    io(
        "opening directory",
        dir,
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
    )
}

fn not_ours(dir: &Path) -> Error {
    io(
        "reading MANIFEST of",
        dir,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not a hashkv directory (no MANIFEST and no data files)",
        ),
    )
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Severity {
    /// Opening would fail (or, salvaging, lose data) because of it.
    Corrupt,
    /// Harmless or handled by the next open (a torn tail, a leftover file).
    Warning,
}

/// One thing [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// The file.
    pub file: String,
    /// Byte offset in it.
    pub offset: u64,
    /// What is wrong.
    pub what: String,
    /// How bad it is.
    pub severity: Severity,
}

/// One file [`check`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckedFile {
    /// The file.
    pub file: String,
    /// "snapshot" or "log".
    pub kind: &'static str,
    /// Its size.
    pub bytes: u64,
    /// Keys (snapshot) or records (log) that checked out.
    pub items: u64,
}

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Every file read, in MANIFEST order.
    pub files: Vec<CheckedFile>,
    /// Problems, in file order.
    pub findings: Vec<Finding>,
    /// Whether a writer had the directory open while it was checked (the
    /// newest segment's tail was then not judged).
    pub live: bool,
}

impl CheckReport {
    /// No corruption (warnings allowed).
    pub fn is_clean(&self) -> bool {
        self.findings
            .iter()
            .all(|f| f.severity == Severity::Warning)
    }

    /// The command that fixes the damage found, only where it will work:
    /// `hashkv repair` for MANIFEST trouble, `hashkv repair --salvage` for
    /// damaged log records, a restore from backup for a damaged snapshot.
    pub fn advice(&self, dir: &Path) -> Option<String> {
        let corrupt = |f: &&Finding| f.severity == Severity::Corrupt;
        let name = |f: &Finding| {
            Path::new(&f.file)
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(dir::parse_name)
        };
        let d = dir.display();
        let bad: Vec<&Finding> = self.findings.iter().filter(corrupt).collect();
        if bad.is_empty() {
            return None;
        }
        if bad
            .iter()
            .any(|f| f.file.ends_with(dir::MANIFEST) || f.what.contains("MANIFEST"))
        {
            return Some(format!(
                "run `hashkv repair {d}`: it rebuilds MANIFEST from the files present (the old one is backed up first)"
            ));
        }
        if bad
            .iter()
            .any(|f| matches!(name(f), Some((Kind::Snapshot, _))))
        {
            return Some(format!(
                "the snapshot is damaged and no repair can rebuild it: restore {d} from a backup (`hashkv restore FILE DIR`)"
            ));
        }
        Some(format!(
            "run `hashkv repair --salvage {d}`: it backs up the files, keeps every valid record and drops the damage"
        ))
    }
}

/// Verifies every checksum and record of the snapshot and log segments of
/// `dir` without changing anything, listing every problem with its file and
/// offset: a damaged or missing MANIFEST, listed files that are missing,
/// unlisted files and what the next open does with them. Compact hashes in
/// the snapshot get the deep check (the compact encoding's full validation:
/// canonical elements, unique fields). `progress(done, total)` is called
/// with bytes as files are read.
///
/// Safe beside a writer: log segments are read with `read(2)`, never
/// mapped (a writer cutting a segment cannot kill the check), the snapshot
/// is mapped from the handle taken with MANIFEST (snapshots are never
/// shortened), and when the directory is
/// open elsewhere the check runs again until two passes agree, so a file
/// the writer just replaced is not reported as missing and the tail being
/// written is not reported as torn.
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir()?;
/// let db = hashkv::Db::open(dir.path())?;
/// db.hset("user:1", &[("name", "Alice")])?;
/// db.close()?;
///
/// let report = hashkv::admin::check(dir.path(), &mut |_, _| {})?;
/// assert!(report.is_clean());
/// assert_eq!(report.advice(dir.path()), None);
/// for f in &report.files {
///     println!("{} {}: {} bytes", f.kind, f.file, f.bytes);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Io`] when `dir` is missing, is not a hashkv directory or a
/// file cannot be read.
pub fn check(dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<CheckReport> {
    if !dir.is_dir() {
        return Err(no_dir(dir));
    }
    let (_shared, live) = match dir::try_lock_shared(dir)? {
        Some(f) => (Some(f), false),
        None => (None, dir.join("LOCK").exists()),
    };
    if !live {
        return check_pass(dir, false, progress);
    }
    let mut last = check_pass(dir, true, progress)?;
    for _ in 0..8 {
        if last.is_clean() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let next = check_pass(dir, true, progress)?;
        if next.findings == last.findings {
            return Ok(next);
        }
        last = next;
    }
    Ok(last)
}

/// One pass of [`check`]; `live` when a writer has the directory open.
pub(crate) fn check_pass(
    dir: &Path,
    live: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<CheckReport> {
    let mut report = CheckReport {
        live,
        ..CheckReport::default()
    };
    let manifest_path = dir.join(dir::MANIFEST).display().to_string();
    // The listing comes first: beside a writer it is older than MANIFEST,
    // so a file the writer just made cannot look like a lost line.
    let listing = dir::list_files(dir)?;
    // MANIFEST and a handle on each file it lists, taken together: beside
    // a writer, again if MANIFEST changed meanwhile (a file then held open
    // can be removed by the writer without harm).
    let mut tries = 0;
    let (m, handles) = loop {
        let bytes = || std::fs::read(dir.join(dir::MANIFEST)).ok();
        let before = bytes();
        let m = match dir::read_manifest(dir) {
            Ok(Some(m)) => m,
            Ok(None) => return Err(not_ours(dir)),
            Err(Error::Corrupt {
                file,
                offset,
                reason,
            }) => {
                report.findings.push(Finding {
                    file,
                    offset,
                    what: reason,
                    severity: Severity::Corrupt,
                });
                return Ok(report);
            }
            Err(e) => return Err(e),
        };
        let handles: Vec<Option<std::fs::File>> = m
            .snapshot
            .iter()
            .chain(&m.segments)
            .map(|n| std::fs::File::open(dir.join(n)).ok())
            .collect();
        tries += 1;
        if !live || tries >= 100 || bytes() == before {
            break (m, handles);
        }
    };
    let mut handles = handles.into_iter();
    // The snapshot is mapped (snapshots are never changed once in place,
    // only removed, which leaves a mapping whole); segments are read, as a
    // writer may cut the one it closes.
    let snap_bytes = match &m.snapshot {
        Some(name) => Some(match handles.next().flatten() {
            Some(f) => Some(
                crate::snapshot::format::map_file(&f)
                    .map_err(|e| io("mapping", &dir.join(name), e))?,
            ),
            None => None,
        }),
        None => None,
    };
    let mut contents = Vec::with_capacity(m.segments.len());
    for (h, name) in handles.zip(&m.segments) {
        contents.push(match h {
            Some(mut f) => {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut f, &mut buf)
                    .map_err(|e| io("reading", &dir.join(name), e))?;
                Some(buf)
            }
            None => None,
        });
    }
    let segs = contents;
    let mut listed: Vec<(String, &'static str)> = Vec::new();
    if let Some(s) = &m.snapshot {
        listed.push((s.clone(), "snapshot"));
    }
    listed.extend(m.segments.iter().map(|s| (s.clone(), "log")));
    let size = |i: usize| {
        if m.snapshot.is_some() && i == 0 {
            snap_bytes
                .as_ref()
                .and_then(|b| b.as_ref())
                .map_or(0, |b| b.as_deref().map_or(0, <[u8]>::len) as u64)
        } else {
            let j = i - usize::from(m.snapshot.is_some());
            segs[j].as_ref().map_or(0, |b| b.len() as u64)
        }
    };
    let total: u64 = (0..listed.len()).map(size).sum();
    let mut done = 0;
    progress(0, total);
    let mut tail_allowed = vec![true; segs.len()];
    for i in (0..segs.len().saturating_sub(1)).rev() {
        tail_allowed[i] =
            tail_allowed[i + 1] && !segs[i + 1].as_deref().is_some_and(reader::holds_data);
    }
    let mut seg_index = 0;
    for (index, (name, kind)) in listed.iter().enumerate() {
        let path = dir.join(name);
        let file = path.display().to_string();
        let missing = |report: &mut CheckReport| {
            report.findings.push(Finding {
                file: manifest_path.clone(),
                offset: 0,
                what: format!("MANIFEST lists {name}, which is missing"),
                severity: Severity::Corrupt,
            })
        };
        let bytes = size(index);
        let mut items = 0;
        if *kind == "snapshot" {
            let Some(Some(map)) = snap_bytes.as_ref() else {
                missing(&mut report);
                continue;
            };
            let buf: &[u8] = map.as_deref().unwrap_or(&[]);
            let deep = std::sync::Mutex::new(Vec::new());
            let res = crate::snapshot::format::read(buf, &Options::default(), |e| {
                if let crate::snapshot::format::EntryHash::Compact(buf) = e.hash {
                    if let Err(err) = crate::hash::compact::validate(buf) {
                        deep.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
                            "compact hash of key {:?}: {err}",
                            String::from_utf8_lossy(e.key)
                        ));
                    }
                }
                Ok(())
            });
            match res {
                Ok(loaded) => items = loaded.keys,
                Err(bad) => report.findings.push(Finding {
                    file: file.clone(),
                    offset: bad.offset,
                    what: bad.reason,
                    severity: Severity::Corrupt,
                }),
            }
            for what in deep.into_inner().unwrap_or_else(|p| p.into_inner()) {
                report.findings.push(Finding {
                    file: file.clone(),
                    offset: 0,
                    what,
                    severity: Severity::Corrupt,
                });
            }
        } else {
            let i = seg_index;
            seg_index += 1;
            let Some(buf) = segs[i].as_deref() else {
                missing(&mut report);
                continue;
            };
            let newest = i + 1 == segs.len();
            match reader::scan(buf, tail_allowed[i], true, |_| {}) {
                Ok(scan) => {
                    items = scan.records;
                    for (start, end, reason) in scan.skipped {
                        report.findings.push(Finding {
                            file: file.clone(),
                            offset: start,
                            what: format!("{reason} ({} bytes unreadable)", end - start),
                            severity: Severity::Corrupt,
                        });
                    }
                    if scan.torn_header && !(live && newest) {
                        report.findings.push(Finding {
                            file: file.clone(),
                            offset: 0,
                            what: "segment shorter than its header (a crash while creating it; the next open writes the header again)".into(),
                            severity: Severity::Warning,
                        });
                    } else if scan.torn_bytes > 0 && !(live && newest) {
                        report.findings.push(Finding {
                            file: file.clone(),
                            offset: scan.valid_end,
                            what: format!(
                                "torn tail of {} bytes (written after the last fsync the log vouches for; the next open or `hashkv repair` saves it to lost+found and cuts it)",
                                scan.torn_bytes
                            ),
                            severity: Severity::Warning,
                        });
                    }
                }
                Err(bad) => report.findings.push(Finding {
                    file: file.clone(),
                    offset: bad.offset,
                    what: bad.reason,
                    severity: Severity::Corrupt,
                }),
            }
        }
        report.files.push(CheckedFile {
            file,
            kind,
            bytes,
            items,
        });
        done += bytes;
        progress(done, total);
    }
    for (name, verdict) in dir::classify(dir, &m, &listing) {
        let (what, severity) = match verdict {
            Unlisted::Remove(why) => (
                format!("not listed in MANIFEST: {why}; the next open removes it"),
                Severity::Warning,
            ),
            Unlisted::MoveAside(why) => (
                format!("not listed in MANIFEST: {why}; the next open moves it to lost+found"),
                Severity::Warning,
            ),
            Unlisted::Refuse(why) => (why, Severity::Corrupt),
        };
        // A writer's snapshot makes and removes files as we look.
        if live && severity == Severity::Warning {
            continue;
        }
        report.findings.push(Finding {
            file: dir.join(&name).display().to_string(),
            offset: 0,
            what,
            severity,
        });
    }
    Ok(report)
}

/// What [`repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// Where the files it changed were copied first (None if nothing
    /// needed changing).
    pub backup: Option<PathBuf>,
    /// How MANIFEST was rebuilt (empty when it was sound): what was chosen
    /// and why, one line each.
    pub manifest: Vec<String>,
    /// The torn tail it cut.
    pub torn_tail: Option<TornTail>,
    /// Damaged ranges it dropped (salvage).
    pub skipped: Vec<Skipped>,
    /// Whether the log was rewritten from what was recovered (salvage).
    pub rewritten: bool,
    /// Everything else the open after the repair reported.
    pub notes: Vec<String>,
}

/// A new, empty backup directory `dir/backup-<unix seconds>[-n]`.
fn backup_dir(dir: &Path) -> Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut backup = dir.join(format!("backup-{stamp}"));
    let mut i = 1;
    while backup.exists() {
        backup = dir.join(format!("backup-{stamp}-{i}"));
        i += 1;
    }
    std::fs::create_dir_all(&backup).map_err(|e| io("creating backup directory", &backup, e))?;
    Ok(backup)
}

/// Copies `files` of `dir` (those present) into `backup`, fsyncing each
/// copy, the backup directory and `dir`, so the copies are durable before
/// any original changes.
fn back_up(dir: &Path, backup: &Path, files: &[String]) -> Result<()> {
    for f in files {
        let from = dir.join(f);
        if from.is_file() {
            let to = backup.join(f);
            std::fs::copy(&from, &to).map_err(|e| io("backing up", &from, e))?;
            std::fs::File::open(&to)
                .and_then(|c| c.sync_all())
                .map_err(|e| io("syncing backup", &to, e))?;
        }
    }
    dir::fsync_dir(backup)?;
    dir::fsync_dir(dir)
}

/// A MANIFEST for the files present: the newest snapshot that reads clean
/// with every segment from its number to the newest, or, with no such
/// snapshot, the segments from `log-000001` on. Returns it with one line
/// per choice made.
pub(crate) fn rebuild_manifest(dir: &Path) -> Result<(Manifest, Vec<String>)> {
    let entries = std::fs::read_dir(dir).map_err(|e| io("listing", dir, e))?;
    let mut snaps = Vec::new();
    let mut segs = std::collections::BTreeSet::new();
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        match dir::parse_name(&name) {
            Some((Kind::Snapshot, n)) => snaps.push(n),
            Some((Kind::Segment, n)) => {
                segs.insert(n);
            }
            _ => {}
        }
    }
    snaps.sort_unstable_by(|a, b| b.cmp(a));
    let Some(&newest) = segs.iter().next_back() else {
        return Err(Error::Corrupt {
            file: dir.display().to_string(),
            offset: 0,
            reason: "no log segment to rebuild MANIFEST from; restore the directory from a backup"
                .into(),
        });
    };
    let mut why = Vec::new();
    let run_from = |from: u64| -> std::result::Result<Vec<String>, u64> {
        (from..=newest)
            .map(|k| {
                if segs.contains(&k) {
                    Ok(dir::segment_name(k))
                } else {
                    Err(k)
                }
            })
            .collect()
    };
    for &s in &snaps {
        let name = dir::snapshot_name(s);
        let list = match run_from(s) {
            Ok(list) => list,
            Err(gap) => {
                why.push(format!(
                    "passed over {name}: {} is missing, so the log after it is not whole",
                    dir::segment_name(gap)
                ));
                continue;
            }
        };
        match crate::snapshot::format::read_file(&dir.join(&name), &Options::default(), |_| Ok(()))
        {
            Ok(loaded) => {
                why.push(format!(
                    "chose {name} ({} keys, reads clean), the newest snapshot with every segment after it: {} to {}",
                    loaded.keys,
                    list[0],
                    list[list.len() - 1]
                ));
                return Ok((Manifest::new(Some(name), list), why));
            }
            Err(e) => why.push(format!("passed over {name}: {e}")),
        }
    }
    match run_from(1) {
        Ok(list) => {
            why.push(format!(
                "chose no snapshot and the whole log: {} to {}",
                list[0],
                list[list.len() - 1]
            ));
            Ok((Manifest::new(None, list), why))
        }
        Err(gap) => Err(Error::Corrupt {
            file: dir.display().to_string(),
            offset: 0,
            reason: format!(
                "no complete state to rebuild MANIFEST from ({}; and {} is missing, so the log alone does not reach back to the start); restore the directory from a backup",
                if why.is_empty() { "no snapshot".to_owned() } else { why.join("; ") },
                dir::segment_name(gap)
            ),
        }),
    }
}

/// Repairs `dir`: rebuilds a damaged or missing MANIFEST from the files
/// present, cuts a torn tail and, with `salvage`, rewrites the log keeping
/// every valid record. Every file it will change is first copied to
/// `dir/backup-<unix seconds>/` and the copies fsynced. Without `salvage`,
/// damage inside the log is an error that says to use it.
///
/// # Examples
/// ```
/// use hashkv::{admin, Db, Options};
/// let dir = tempfile::tempdir()?;
/// let db = Db::open(dir.path())?;
/// db.hset("user:1", &[("name", "Alice")])?;
/// db.close()?;
/// std::fs::remove_file(dir.path().join("MANIFEST"))?;
///
/// assert!(!admin::check(dir.path(), &mut |_, _| {})?.is_clean());
/// let report = admin::repair(dir.path(), false, &Options::default())?;
/// assert!(report.backup.is_some());
/// assert!(!report.manifest.is_empty()); // how MANIFEST was rebuilt
/// let db = Db::open(dir.path())?;
/// assert_eq!(db.hget("user:1", "name")?.as_deref(), Some(&b"Alice"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Corrupt`] for damage that needs `salvage`, a damaged snapshot
/// (which repair cannot rebuild) or a directory with no complete state,
/// [`Error::Locked`] when the directory is open, [`Error::Io`] otherwise.
pub fn repair(dir: &Path, salvage: bool, opts: &Options) -> Result<RepairReport> {
    if !dir.is_dir() {
        return Err(no_dir(dir));
    }
    // Nothing may change the directory while we look at it.
    let lock = dir::lock(dir)?;
    let mut report = RepairReport::default();
    let sound = match dir::read_manifest(dir) {
        Ok(Some(m)) => {
            let missing: Vec<&String> = m
                .snapshot
                .iter()
                .chain(&m.segments)
                .filter(|n| !dir.join(n).is_file())
                .collect();
            if let (Some(name), false) = (missing.first(), salvage) {
                return Err(Error::Corrupt {
                    file: dir.join(dir::MANIFEST).display().to_string(),
                    offset: 0,
                    reason: format!(
                        "lists {name}, which is missing: restore it from a backup, or run `hashkv repair --salvage {}` to rebuild MANIFEST from the files left (losing what {name} held)",
                        dir.display()
                    ),
                });
            }
            missing.is_empty() && crate::recovery::vet(dir, &m).is_ok()
        }
        Ok(None) => return Err(not_ours(dir)),
        Err(Error::Corrupt { .. }) => false,
        Err(e) => return Err(e),
    };
    if !sound {
        let (m, why) = rebuild_manifest(dir)?;
        let backup = backup_dir(dir)?;
        back_up(dir, &backup, &[dir::MANIFEST.to_owned()])?;
        // Files the new MANIFEST does not cover go to the backup too, not
        // to the next open's clean-up.
        let entries = std::fs::read_dir(dir).map_err(|e| io("listing", dir, e))?;
        for e in entries.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let listed = m.snapshot.as_deref() == Some(name.as_str()) || m.segments.contains(&name);
            if dir::parse_name(&name).is_some() && !listed {
                let to = backup.join(&name);
                std::fs::rename(dir.join(&name), &to)
                    .map_err(|e| io("moving to the backup", &dir.join(&name), e))?;
                report.manifest.push(format!(
                    "moved {name} (not in the new MANIFEST) to {}",
                    to.display()
                ));
            }
        }
        dir::fsync_dir(&backup)?;
        dir::write_manifest(dir, &m)?;
        report.manifest.splice(0..0, why);
        report.backup = Some(backup);
    }
    let found = check_pass(dir, false, &mut |_, _| {})?;
    let m = dir::read_manifest(dir)?.ok_or_else(|| not_ours(dir))?;
    if let Some(f) = found.findings.iter().find(|f| {
        f.severity == Severity::Corrupt
            && m.snapshot
                .as_ref()
                .is_some_and(|s| f.file.ends_with(s.as_str()))
    }) {
        return Err(Error::Corrupt {
            file: f.file.clone(),
            offset: f.offset,
            reason: format!(
                "{}; repair cannot rebuild a damaged snapshot: restore the directory from a backup",
                f.what
            ),
        });
    }
    if let (false, Some(f)) = (
        salvage,
        found
            .findings
            .iter()
            .find(|f| f.severity == Severity::Corrupt),
    ) {
        return Err(Error::Corrupt {
            file: f.file.clone(),
            offset: f.offset,
            reason: format!(
                "{}; run `hashkv repair --salvage {}` to keep every valid record and drop the damage",
                f.what,
                dir.display()
            ),
        });
    }
    if found.findings.is_empty() && report.backup.is_none() {
        return Ok(report);
    }
    let backup = match &report.backup {
        Some(b) => b.clone(),
        None => backup_dir(dir)?,
    };
    let mut files = vec![dir::MANIFEST.to_owned()];
    files.extend(m.snapshot.iter().cloned());
    files.extend(m.segments.iter().cloned());
    back_up(dir, &backup, &files)?;
    report.backup = Some(backup);
    drop(lock);
    let mode = if salvage {
        RecoveryMode::Salvage
    } else {
        RecoveryMode::Strict
    };
    let db = Db::open_with(
        dir,
        opts.clone()
            .recovery(mode)
            .active_expiry(false)
            .no_auto_snapshots(),
    )?;
    let r = db.recovery_report().clone();
    report.torn_tail = r.torn_tail.clone();
    report.skipped = r.skipped.clone();
    report.rewritten = r.rewritten;
    report.notes = r
        .removed
        .iter()
        .chain(&r.moved_aside)
        .chain(&r.notes)
        .cloned()
        .collect();
    db.close()?;
    Ok(report)
}
