//! Growth without stalls: one hash grown from 0 to N fields (default
//! 10,000,000) with one HSET per call, every call timed. Prints the maximum,
//! p99.9, p99 and mean single-call latency, and the worst calls' positions
//! (table migrations start at powers of two).
//!
//! To tell hashkv's stalls from the machine's, the writing thread's
//! involuntary context switches and page faults are sampled every 1,024
//! calls (`getrusage(RUSAGE_THREAD)`), and the worst calls are printed with
//! the counts of their window; the VM's steal time over the run is printed;
//! `HASHKV_GROWTH_CANARY=1` adds a thread that reports machine-wide stalls
//! overlapping the worst calls.
//!
//! The control: after each run, a fresh child process touches the same
//! memory without hashkv (32 KiB blocks filled a field at a time, a table
//! written at random), one step per field, each step paced to the run's
//! mean call time, so it runs as long as the run did and meets the
//! machine's own stalls (preemption, the hypervisor) as often. Its worst
//! step is what the machine alone gives; the run's worst call is compared
//! with it (goal: within 2x).
//!
//! Run: `cargo bench --bench growth [-- N] [--runs R]` (R runs, default
//! 1, each with its control; a summary line counts the runs whose worst
//! call is within 2x of its control's). With `HASHKV_CHART_DATA=DIR`
//! the run's latency over time (mean, p99 and maximum of each of 500 equal
//! slices of the calls) also goes to `DIR/growth.csv`
//! (docs/charts/regenerate.sh).
#![allow(missing_docs)]

#[path = "common/chart_data.rs"]
mod chart_data;

use std::time::Instant;

use hashkv::{Db, Options};

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and
    // then this runs as a quick smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let env_num = |name: &str| -> Option<u64> { std::env::var(name).ok()?.parse().ok() };
    if let Some(n) = env_num("HASHKV_GROWTH_CONTROL") {
        control(n as usize, env_num("HASHKV_GROWTH_PACE_NS").unwrap_or(0));
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(1);
    let n: usize = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--runs"))
        .find_map(|(_, a)| a.parse().ok())
        .unwrap_or(if full { 10_000_000 } else { 20_000 });
    let (mut within, mut within_calm) = (0, 0);
    for r in 0..runs {
        if runs > 1 {
            println!("run {} of {runs}", r + 1);
        }
        let (worst, calm, mean) = run(n);
        // The control in a fresh process, so it pays its page faults as the
        // run did, paced to the run's mean call so it lasts as long.
        let exe = std::env::current_exe().expect("the bench's path");
        let out = std::process::Command::new(exe)
            .env("HASHKV_GROWTH_CONTROL", n.to_string())
            .env("HASHKV_GROWTH_PACE_NS", (mean as u64).to_string())
            .output()
            .expect("the control process");
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        let line = |prefix: &str| -> Option<f64> {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
        };
        if let (Some(c), Some(c_calm)) = (
            line("control worst ns: "),
            line("control worst unpreempted ns: "),
        ) {
            let ratio = worst as f64 / c;
            let calm_ratio = calm as f64 / c_calm;
            within += usize::from(ratio <= 2.0);
            within_calm += usize::from(calm_ratio <= 2.0);
            println!(
                "worst call {:.1} us, control's worst step {:.1} us: {ratio:.2}x; \
                 in windows without a preemption: {:.1} us vs {:.1} us: {calm_ratio:.2}x",
                worst as f64 / 1e3,
                c / 1e3,
                calm as f64 / 1e3,
                c_calm / 1e3
            );
        }
    }
    if runs > 1 {
        println!(
            "runs whose worst call is within 2x of their control's: {within} of {runs}; \
             counting only calls whose {WINDOW}-call window has no involuntary context switch: \
             {within_calm} of {runs}"
        );
    }
}

/// One run: a hash grown to `n` fields. Returns the worst call, the worst
/// call of the windows in which the thread was never preempted, and the
/// mean call, in ns.
fn run(n: usize) -> (u64, u64, f64) {
    let steal_before = steal_ticks();
    // With HASHKV_GROWTH_CANARY set, a canary spins on the other core: the
    // gaps it sees between two clock reads are stalls of the whole machine,
    // not of hashkv. (It competes for the CPUs, so it is off by default.)
    let epoch = Instant::now();
    let epoch_mono = monotonic_ns();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let canary = std::env::var_os("HASHKV_GROWTH_CANARY").map(|_| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut gaps: Vec<(u64, u64)> = Vec::new();
            let mut prev = epoch.elapsed().as_nanos() as u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let now = epoch.elapsed().as_nanos() as u64;
                if now - prev > 100_000 && gaps.len() < 100_000 {
                    gaps.push((prev, now));
                }
                prev = now;
            }
            gaps
        })
    });
    let db = Db::in_memory(Options::default().active_expiry(false));
    let mut lat = Vec::with_capacity(n);
    let mut slow_at: Vec<(usize, u64)> = Vec::new();
    let mut windows: Vec<Usage> = Vec::with_capacity(n / WINDOW + 2);
    windows.push(usage());
    let mut field = String::with_capacity(16);
    let value = "0123456789abcdef";
    // Chart slices: the run's clock at the end of each.
    let slice = n.div_ceil(500).max(1);
    let mut slice_ends: Vec<f64> = Vec::with_capacity(n / slice + 1);
    let start = Instant::now();
    for i in 0..n {
        field.clear();
        field.push('f');
        field.push_str(&i.to_string());
        let t = Instant::now();
        db.hset("big", &[(field.as_str(), value)]).expect("hset");
        let took = t.elapsed().as_nanos() as u64;
        lat.push((took, i));
        if took > 100_000 {
            slow_at.push((i, t.duration_since(epoch).as_nanos() as u64));
        }
        if (i + 1) % WINDOW == 0 {
            windows.push(usage());
        }
        if (i + 1) % slice == 0 || i + 1 == n {
            slice_ends.push(start.elapsed().as_secs_f64());
        }
    }
    windows.push(usage());
    let steal = steal_ticks().saturating_sub(steal_before);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let gaps = canary
        .map(|c| c.join().unwrap_or_default())
        .unwrap_or_default();
    let total = start.elapsed();
    assert_eq!(db.hlen("big").unwrap() as usize, n);
    if chart_data::dir().is_some() {
        let rows: Vec<Vec<String>> = lat
            .chunks(slice)
            .zip(&slice_ends)
            .map(|(calls, &at)| {
                let mut ns: Vec<u64> = calls.iter().map(|c| c.0).collect();
                ns.sort_unstable();
                let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64;
                let p99 = ns[((ns.len() as f64 * 0.99) as usize).min(ns.len() - 1)];
                vec![
                    (calls[calls.len() - 1].1 + 1).to_string(),
                    format!("{at:.4}"),
                    format!("{:.3}", mean / 1e3),
                    format!("{:.3}", p99 as f64 / 1e3),
                    format!("{:.3}", ns[ns.len() - 1] as f64 / 1e3),
                ]
            })
            .collect();
        let mut notes = chart_data::machine_notes(&chart_data::command("growth"));
        notes.push(format!(
            "one hash grown to {n} fields, one HSET a call; each row is {slice} calls"
        ));
        chart_data::write(
            "growth",
            &notes,
            &["fields", "elapsed_s", "mean_us", "p99_us", "max_us"],
            &rows,
        );
    }
    let mut worst: Vec<(u64, usize)> = lat.clone();
    worst.sort_unstable_by(|a, b| b.cmp(a));
    let mut ns: Vec<u64> = lat.iter().map(|x| x.0).collect();
    ns.sort_unstable();
    let q = |p: f64| ns[((ns.len() as f64 * p) as usize).min(ns.len() - 1)];
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64;
    println!(
        "fields: {n}, total {:.2} s ({:.0} HSET/s)",
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64()
    );
    println!(
        "single HSET latency: max {:.1} us, p99.9 {:.2} us, p99 {:.2} us, mean {:.3} us",
        ns[ns.len() - 1] as f64 / 1e3,
        q(0.999) as f64 / 1e3,
        q(0.99) as f64 / 1e3,
        mean / 1e3
    );
    let top: Vec<String> = worst
        .iter()
        .take(5)
        .map(|(t, i)| {
            let (a, b) = (windows[i / WINDOW], windows[i / WINDOW + 1]);
            // The longest canary gap overlapping this call.
            let canary_gap = slow_at
                .iter()
                .find(|(f, _)| f == i)
                .map(|&(_, start)| {
                    gaps.iter()
                        .filter(|&&(g0, g1)| g0 < start + *t && g1 > start)
                        .map(|&(g0, g1)| g1 - g0)
                        .max()
                        .unwrap_or(0)
                })
                .unwrap_or(0);
            format!(
                "{:.0} us at field {i} (canary gap meanwhile {:.0} us; its {WINDOW}-call window: {} involuntary switches, {} minor / {} major faults)",
                *t as f64 / 1e3,
                canary_gap as f64 / 1e3,
                b.nivcsw - a.nivcsw,
                b.minflt - a.minflt,
                b.majflt - a.majflt
            )
        })
        .collect();
    println!("worst calls:\n  {}", top.join("\n  "));
    if std::env::var_os("HASHKV_GROWTH_TIMES").is_some() {
        for (f, start) in slow_at
            .iter()
            .filter(|(f, _)| worst.iter().take(3).any(|w| w.1 == *f))
        {
            println!(
                "slow call at field {f}: CLOCK_MONOTONIC {:.6} s",
                (epoch_mono + start) as f64 / 1e9
            );
        }
    }
    let (first, last) = (windows[0], windows[windows.len() - 1]);
    let spans = (windows.len() - 1).max(1) as f64;
    println!(
        "whole run: {} involuntary switches ({:.3} per window), {} minor faults ({:.1} per window), steal {} ticks",
        last.nivcsw - first.nivcsw,
        (last.nivcsw - first.nivcsw) as f64 / spans,
        last.minflt - first.minflt,
        (last.minflt - first.minflt) as f64 / spans,
        steal
    );
    let calm = lat
        .iter()
        .filter(|&&(_, i)| {
            let (a, b) = (windows[i / WINDOW], windows[i / WINDOW + 1]);
            b.nivcsw == a.nivcsw
        })
        .map(|&(t, _)| t)
        .max()
        .unwrap_or(0);
    (ns[ns.len() - 1], calm, total.as_nanos() as f64 / n as f64)
}

/// CLOCK_MONOTONIC in ns (to line slow calls up with `perf record -k
/// CLOCK_MONOTONIC` samples).
fn monotonic_ns() -> u64 {
    // SAFETY: clock_gettime fills the struct it is given.
    #[allow(unsafe_code)]
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        ts
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Calls per `getrusage` sample.
const WINDOW: usize = 1024;

#[derive(Clone, Copy, Default)]
struct Usage {
    nivcsw: i64,
    minflt: i64,
    majflt: i64,
}

fn usage() -> Usage {
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid start.
    #[allow(unsafe_code)]
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    };
    Usage {
        nivcsw: ru.ru_nivcsw,
        minflt: ru.ru_minflt,
        majflt: ru.ru_majflt,
    }
}

/// The machine's total steal time (the hypervisor running someone else on
/// our virtual CPUs), in clock ticks, from /proc/stat.
fn steal_ticks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let cpu = s.lines().next()?.split_whitespace().nth(8)?.parse().ok();
            cpu
        })
        .unwrap_or(0)
}

/// The same amount of memory touched without hashkv: 32 KiB blocks filled
/// 28 bytes at a time plus a 64 MiB table written at random, every step
/// timed, each step lasting at least `pace_ns` (spinning after its work),
/// so that the whole takes as long as the run it is compared with. What
/// this machine's page faults and stalls alone cost, to compare the
/// maximum above against.
fn control(n: usize, pace_ns: u64) {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut table = vec![0u32; 1 << 24];
    let mut worst = 0u64;
    let mut x: u64 = 88_172_645_463_325_252;
    let pace = std::time::Duration::from_nanos(pace_ns);
    // The worst step of each window of calls, and whether the thread was
    // preempted in it.
    let (mut window_worst, mut calm) = (0u64, 0u64);
    let mut before = usage();
    let start = Instant::now();
    for i in 0..n {
        if i % WINDOW == 0 && i > 0 {
            let now = usage();
            if now.nivcsw == before.nivcsw {
                calm = calm.max(window_worst);
            }
            (before, window_worst) = (now, 0);
        }
        let t = Instant::now();
        if blocks.last().is_none_or(|b| b.len() + 28 > 32_768) {
            blocks.push(Vec::with_capacity(32_768));
        }
        if let Some(b) = blocks.last_mut() {
            b.extend_from_slice(&[i as u8; 28]);
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        table[(x as usize) & ((1 << 24) - 1)] = i as u32;
        while t.elapsed() < pace {
            std::hint::spin_loop();
        }
        let took = t.elapsed().as_nanos() as u64;
        worst = worst.max(took);
        window_worst = window_worst.max(took);
    }
    if usage().nivcsw == before.nivcsw {
        calm = calm.max(window_worst);
    }
    println!(
        "control (same memory touched, no hashkv, fresh process, steps paced to {pace_ns} ns, {:.2} s): max {:.1} us",
        start.elapsed().as_secs_f64(),
        worst as f64 / 1e3
    );
    println!("control worst ns: {worst}");
    println!("control worst unpreempted ns: {calm}");
}
