//! Power-cut simulation in the spirit of ALICE, CrashMonkey and redb's
//! durable-image tests: the writer runs over a fake disk (the
//! [`SegmentFile`] seam) that records what was written and what fsync made
//! durable. At every fsync, before it takes effect, crash images are built:
//! every page already durable is kept, and each page written since is
//! either written back or lost (its old contents, or zeros where the file
//! had none), chosen at random. Each image is then read as open reads it.
//!
//! Every image must open without a corruption report, to a state equal to
//! the state after some prefix of the history that includes every write
//! acknowledged as durable. The history includes batches of HSETs
//! ([`crate::db::WriteBatch`]): a crash may keep a prefix of a batch's
//! records, never a batch acknowledged as durable only in part.
//!
//! `HASHKV_POWERCUT_IMAGES` sets the number of images (default a few
//! hundred; the long run of docs/DURABILITY.md uses 20,000),
//! `HASHKV_POWERCUT_SEED` the seed.

use std::sync::Arc;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::file::{SegmentFile, SegmentSync};
use super::reader;
use super::record::SEGMENT_MAGIC;
use super::writer::LogWriter;
use crate::db::Db;
use crate::keyspace::Keyspace;
use crate::options::{FsyncPolicy, Options};

/// Writeback unit.
const PAGE: usize = 4096;

/// What the images are checked against: the state after each command.
#[derive(Default)]
struct Record {
    /// Crash images taken so far, each with the range of command counts
    /// whose states it may show (at least the acknowledged ones).
    images: Vec<(Vec<u8>, usize, usize)>,
}

struct Disk {
    /// The page cache: what a reader of the file sees now.
    cache: Vec<u8>,
    /// What survived the last fsync.
    durable: Vec<u8>,
    rng: SmallRng,
    /// Commands acknowledged as durable, and commands issued so far.
    acked: usize,
    issued: usize,
    per_sync: usize,
    out: Record,
}

impl Disk {
    /// Crash images of the disk as it is now.
    fn take_images(&mut self) {
        for _ in 0..self.per_sync {
            let mut img = self.durable.clone();
            img.resize(self.cache.len(), 0);
            let pages = self.cache.len().div_ceil(PAGE);
            for p in 0..pages {
                let r = p * PAGE..((p + 1) * PAGE).min(self.cache.len());
                if self.cache[r.clone()] != img[r.clone()] && self.rng.gen_bool(0.5) {
                    img[r.clone()].copy_from_slice(&self.cache[r]);
                }
            }
            self.out.images.push((img, self.acked, self.issued));
        }
    }
}

#[derive(Clone)]
struct FakeFile(Arc<Mutex<Disk>>);

impl SegmentFile for FakeFile {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.lock().cache.extend_from_slice(buf);
        Ok(())
    }
    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        self.0.lock().cache.truncate(len as usize);
        Ok(())
    }
}

impl SegmentSync for FakeFile {
    fn sync_data(&self) -> std::io::Result<()> {
        let mut d = self.0.lock();
        // The power may fail at any moment before this fsync completes.
        d.take_images();
        d.durable = d.cache.clone();
        Ok(())
    }
}

fn dump(db: &Db) -> Vec<String> {
    let Ok(crate::command::Reply::Array(keys)) = db.execute(&["KEYS", "*"]) else {
        panic!("KEYS failed")
    };
    let mut full: Vec<String> = keys
        .into_iter()
        .map(|k| {
            let crate::command::Reply::Bulk(k) = k else {
                panic!("KEYS gave {k:?}")
            };
            let mut pairs = db.hgetall(&k).unwrap();
            pairs.sort();
            format!("{k:?} {pairs:?}")
        })
        .collect();
    full.sort();
    full
}

/// Runs a random workload under `policy` (with explicit syncs every few
/// commands under `No`), taking `per_sync` images at every fsync; checks
/// each image; returns how many were checked.
fn run(seed: u64, policy: FsyncPolicy, commands: usize, per_sync: usize) -> usize {
    let disk = Arc::new(Mutex::new(Disk {
        cache: SEGMENT_MAGIC.to_vec(),
        durable: SEGMENT_MAGIC.to_vec(),
        rng: SmallRng::seed_from_u64(seed ^ 0x9e37),
        acked: 0,
        issued: 0,
        per_sync,
        out: Record::default(),
    }));
    let file = FakeFile(disk.clone());
    let w = LogWriter::with_files(
        Box::new(file.clone()),
        Arc::new(file),
        SEGMENT_MAGIC.len() as u64,
        "fake/log-000001.aof".into(),
        policy,
    )
    .unwrap();
    let ks = Keyspace::default();
    ks.set_journal(w);
    let opts = Options::default().active_expiry(false);
    let db = Db::with_keyspace(ks, opts.clone());
    // The same commands one call at a time, in memory: the states a crash
    // in the middle of a batch may show (a prefix of its records).
    let shadow = Db::in_memory(opts.clone());
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut states = vec![dump(&db)];
    let mut next_sync = rng.gen_range(1..20);
    for i in 0..commands {
        let key = format!("k{}", rng.gen_range(0..12));
        let value = |rng: &mut SmallRng| -> String {
            let len = rng.gen_range(1..3000);
            (0..len)
                .map(|j| char::from(b'a' + (j % 26) as u8))
                .collect()
        };
        let step = states.len() - 1;
        match rng.gen_range(0..12) {
            10 | 11 => {
                // A batch of HSETs: one append, one wait.
                let mut batch = crate::db::WriteBatch::new();
                for _ in 0..rng.gen_range(1..9) {
                    let k = format!("k{}", rng.gen_range(0..12));
                    let pair = (format!("f{}", rng.gen_range(0..5)), value(&mut rng));
                    shadow.hset(&k, std::slice::from_ref(&pair)).unwrap();
                    states.push(dump(&shadow));
                    batch.hset(k, &[pair]);
                }
                disk.lock().issued = states.len() - 1;
                db.write_batch(&batch).unwrap();
                assert_eq!(states.last(), Some(&dump(&db)));
            }
            op => {
                disk.lock().issued = step + 1;
                let v = value(&mut rng);
                let f = format!("f{}", rng.gen_range(0..5));
                for d in [&db, &shadow] {
                    match op {
                        0..=5 => {
                            d.hset(&key, &[(f.as_str(), v.as_str())]).unwrap();
                        }
                        6 => {
                            d.hdel(&key, &["f0", "f1"]).unwrap();
                        }
                        7 => {
                            let _ = d.hincrby(&key, "n", 3);
                        }
                        8 => {
                            d.del(&[key.as_str()]).unwrap();
                        }
                        _ => {
                            d.hset(&key, &[("small", i.to_string())]).unwrap();
                        }
                    }
                }
                states.push(dump(&db));
            }
        }
        let done = states.len() - 1;
        match policy {
            FsyncPolicy::Always => disk.lock().acked = done,
            _ => {
                next_sync -= 1;
                if next_sync == 0 {
                    db.sync().unwrap();
                    disk.lock().acked = done;
                    next_sync = rng.gen_range(1..20);
                }
            }
        }
    }
    let images = std::mem::take(&mut disk.lock().out.images);
    for (n, (img, acked, issued)) in images.iter().enumerate() {
        let ks = Keyspace::default();
        let scan = reader::scan(img, true, false, |e| {
            let _ = ks.apply(&e, &opts);
        })
        .unwrap_or_else(|bad| {
            panic!(
                "seed {seed}, image {n}: reported as corruption at {}: {}",
                bad.offset, bad.reason
            )
        });
        assert!(scan.skipped.is_empty());
        let got = dump(&Db::with_keyspace(ks, opts.clone()));
        assert!(
            (*acked..=*issued).any(|k| states[k] == got),
            "seed {seed}, image {n} ({policy:?}): the state is no prefix of the history from {acked} acknowledged to {issued} issued commands"
        );
    }
    images.len()
}

#[test]
fn power_cut_images_keep_every_acknowledged_write_and_report_no_corruption() {
    let target: usize = std::env::var("HASHKV_POWERCUT_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let seed: u64 = std::env::var("HASHKV_POWERCUT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::random::<u64>() % 1_000_000);
    let mut checked = 0;
    let mut round = 0;
    while checked < target {
        let s = seed + round;
        checked += run(s, FsyncPolicy::Always, 60, 2);
        checked += run(s, FsyncPolicy::No, 120, 4);
        round += 1;
    }
    eprintln!(
        "{checked} power-cut images checked (seeds {seed}..{})",
        seed + round
    );
}
