//! Measurements: latency histograms merged across executors, live counters for the progress
//! line, and the percentiles every scenario reports.

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Latencies in microseconds, 3 significant digits, up to a minute.
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Latency {
    pub fn record(&mut self, d: Duration) {
        self.record_micros(d.as_micros() as u64);
    }
    pub fn record_micros(&mut self, us: u64) {
        // Saturate instead of failing: a minute-long latency is already a lost run.
        self.0.saturating_record(us.max(1));
    }
    pub fn merge(&mut self, other: &Latency) {
        let _ = self.0.add(&other.0);
    }
    pub fn count(&self) -> u64 {
        self.0.len()
    }
    fn ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.value_at_quantile(q) as f64 / 1000.0
    }
    /// `{"p50":..,"p90":..,"p99":..,"p999":..,"max":..}` in milliseconds.
    pub fn json(&self) -> Value {
        json!({
            "p50": self.ms(0.5), "p90": self.ms(0.9), "p99": self.ms(0.99),
            "p999": self.ms(0.999), "max": if self.0.is_empty() { 0.0 } else { self.0.max() as f64 / 1000.0 },
        })
    }
}

/// Counters the executors bump and the progress thread reads.
#[derive(Default)]
pub struct Live {
    pub started: AtomicU64,
    pub done: AtomicU64,
    pub failed: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

impl Live {
    /// After publishing: waits until `expected()` deliveries have arrived, or none arrived for
    /// `idle`, or `max` has passed; what is still missing then counts as lost.
    pub async fn drain(&self, expected: impl Fn() -> u64, idle: Duration, max: Duration) {
        let start = Instant::now();
        let mut last_count = Live::get(&self.received);
        let mut last_change = start;
        while Live::get(&self.received) < expected() && start.elapsed() < max {
            glommio::timer::sleep(Duration::from_millis(20)).await;
            let now = Live::get(&self.received);
            if now != last_count {
                (last_count, last_change) = (now, Instant::now());
            } else if last_change.elapsed() > idle {
                break;
            }
        }
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Prints one progress line per second to stderr until dropped, so a long run shows it is
/// alive; stdout stays clean for the summary (and for `--json`).
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn start(label: String, live: Arc<Live>, quiet: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = (!quiet).then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let mut last = (0, 0, 0);
                while !stop.load(Ordering::Acquire) {
                    for _ in 0..10 {
                        std::thread::sleep(Duration::from_millis(100));
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                    }
                    let now = (
                        Live::get(&live.done),
                        Live::get(&live.sent),
                        Live::get(&live.received),
                    );
                    eprintln!(
                        "[{label} {:>5.1}s] started {} done {} (+{}/s) failed {} | sent {} (+{}/s) received {} (+{}/s)",
                        t0.elapsed().as_secs_f64(),
                        Live::get(&live.started),
                        now.0,
                        now.0 - last.0,
                        Live::get(&live.failed),
                        now.1,
                        now.1 - last.1,
                        now.2,
                        now.2 - last.2,
                    );
                    last = now;
                }
            })
        });
        Progress { stop, thread }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Resident set size of a process in bytes, from /proc/PID/status.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time (user + system) a process has used so far, in seconds, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; the fields after it start past ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (utime, stime): (u64, u64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) as f64 / hz)
}

/// The write-family system calls a process makes while it runs, counted by the kernel
/// (`perf stat` on its tracepoints), so that writes per delivery compares servers that batch
/// differently on equal terms. `None` when perf is missing or not permitted.
pub struct SyscallCount {
    child: std::process::Child,
}

/// The tracepoints counted: every call that can put bytes on a socket, and io_uring_enter
/// (which may submit sends too; reported apart).
const WRITE_CALLS: [&str; 5] = ["sendto", "sendmsg", "sendmmsg", "write", "writev"];

impl SyscallCount {
    pub fn start(pid: u32) -> Option<SyscallCount> {
        let mut events: Vec<String> = WRITE_CALLS
            .iter()
            .map(|c| format!("syscalls:sys_enter_{c}"))
            .collect();
        events.push("syscalls:sys_enter_io_uring_enter".into());
        let child = std::process::Command::new("perf")
            .args([
                "stat",
                "-x",
                ",",
                "-e",
                &events.join(","),
                "-p",
                &pid.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        // perf needs a moment to attach before the counted run starts.
        std::thread::sleep(std::time::Duration::from_millis(300));
        Some(SyscallCount { child })
    }

    /// Stops counting: (write-family calls, io_uring_enter calls).
    pub fn finish(self) -> Option<(u64, u64)> {
        // SAFETY: kill has no memory preconditions; perf prints its counts on SIGINT.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let out = self.child.wait_with_output().ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let (mut writes, mut uring, mut seen) = (0u64, 0u64, 0);
        for line in text.lines() {
            let f: Vec<&str> = line.split(',').collect();
            let (Some(n), Some(ev)) = (f.first(), f.get(2)) else {
                continue;
            };
            let Ok(n) = n.trim().parse::<u64>() else {
                continue;
            };
            seen += 1;
            match ev.trim().strip_prefix("syscalls:sys_enter_") {
                Some("io_uring_enter") => uring += n,
                Some(_) => writes += n,
                None => seen -= 1,
            }
        }
        (seen > 0).then_some((writes, uring))
    }
}
