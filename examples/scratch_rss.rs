use hashkv::{Db, FsyncPolicy, Options};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}
fn phase(db: &Db, name: &str, write: bool, snap: bool) {
    let stop = Arc::new(AtomicBool::new(false));
    let base = rss();
    let mon = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss());
                std::thread::sleep(Duration::from_millis(1));
            }
            peak
        })
    };
    let w = write.then(|| {
        let db = db.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let due = start + Duration::from_nanos(i * 10_000);
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
                let id = (i * 7919) % 1_000_000;
                db.hset(
                    format!("object:{}", id / 1000),
                    &[(id.to_string(), "x".repeat(40))],
                )
                .unwrap();
                i += 1;
            }
            i
        })
    });
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_secs(3) {
        if snap {
            db.snapshot().unwrap();
            n += 1;
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let writes = w.map(|w| w.join().unwrap()).unwrap_or(0);
    println!(
        "{name}: base {base} MB, peak {} MB, end {} MB ({n} snapshots, {writes} writes)",
        mon.join().unwrap(),
        rss()
    );
}
fn main() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options::default()
        .active_expiry(false)
        .no_auto_snapshots()
        .fsync(FsyncPolicy::No)
        .hash_max_listpack_entries(1024);
    let db = Db::open_with(dir.path(), o).unwrap();
    for b in 0..1000u64 {
        let pairs: Vec<(String, String)> = (0..1000)
            .map(|i| ((b * 1000 + i).to_string(), format!("{:040}", i)))
            .collect();
        db.hset(format!("object:{b}"), &pairs).unwrap();
    }
    let which = std::env::args().nth(1).unwrap_or_default();
    if which.contains('s') {
        phase(&db, "snapshots only", false, true);
    }
    if which.contains('w') {
        phase(&db, "writer only", true, false);
    }
    if which.contains('b') {
        phase(&db, "both", true, true);
    }
}
