//! Scenarios (a) connect storm and (b) idle hold: N clients connect, upgrade, log in and OPEN,
//! started at a target rate. The storm closes each session once it is open and reports the
//! achieved login rate and the connect-to-OPEN latency; the idle hold keeps every session,
//! measures the server's resident memory per session, then checks the sessions still answer.

use crate::client::{open_session, read_text, tcp_connect, ws2_type, Dialect, Login, Sources, Ws};
use crate::report::{rss_bytes, Latency, Live, Progress};
use crate::rt::{run_on_threads, within};
use anyhow::Result;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::Message;

/// How long one client may take from connect to its OPEN reply before it counts as failed.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Params {
    pub addr: SocketAddr,
    pub login: Login,
    pub dialect: Dialect,
    pub clients: usize,
    /// Target session starts per second over all threads; 0 = as fast as `concurrency` allows.
    pub rate: u64,
    /// Sessions being opened at once, over all threads.
    pub concurrency: usize,
    pub threads: usize,
    pub sources: usize,
    /// Idle hold: keep the sessions, measure this server process, hold this long.
    pub hold: Option<Hold>,
    pub quiet: bool,
}

#[derive(Clone)]
pub struct Hold {
    pub server_pid: Option<u32>,
    pub seconds: u64,
    /// Time for the server to settle before its memory is read.
    pub settle: Duration,
}

/// What every executor adds up; merged at the end.
#[derive(Default)]
struct ThreadOut {
    latency: Latency,
    errors: BTreeMap<String, u64>,
    alive: u64,
    probed: u64,
}

/// Shared between executors: the measurement taken once all sessions are open.
#[derive(Default)]
struct Coord {
    measured: AtomicBool,
    rss_before: AtomicU64,
    rss_after: AtomicU64,
    open_at_measure: AtomicU64,
    first_start: Mutex<Option<Instant>>,
    last_done: Mutex<Option<Instant>>,
}

pub fn run(p: Params) -> Result<Value> {
    let live = Arc::new(Live::default());
    let coord = Arc::new(Coord::default());
    if let Some(pid) = p.hold.as_ref().and_then(|h| h.server_pid) {
        coord
            .rss_before
            .store(rss_bytes(pid).unwrap_or(0), Ordering::Relaxed);
    }
    let label = if p.hold.is_some() { "idle" } else { "storm" };
    let progress = Progress::start(label.into(), live.clone(), p.quiet);
    let t0 = Instant::now();
    let outs = {
        let (p, live, coord) = (p.clone(), live.clone(), coord.clone());
        run_on_threads(p.threads, move |me| {
            per_thread(me, p.clone(), live.clone(), coord.clone(), t0)
        })?
    };
    drop(progress);
    let mut total = ThreadOut::default();
    for o in &outs {
        total.latency.merge(&o.latency);
        for (k, v) in &o.errors {
            *total.errors.entry(k.clone()).or_default() += v;
        }
        total.alive += o.alive;
        total.probed += o.probed;
    }
    let opened = total.latency.count();
    let span = match (
        *coord.first_start.lock().unwrap(),
        *coord.last_done.lock().unwrap(),
    ) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let mut out = json!({
        "scenario": label,
        "dialect": p.dialect.name(),
        "clients": p.clients,
        "target_rate": p.rate,
        "concurrency": p.concurrency,
        "threads": p.threads,
        "opened": opened,
        "failed": Live::get(&live.failed),
        "errors": total.errors,
        "logins_per_s": if span > 0.0 { opened as f64 / span } else { 0.0 },
        "open_latency_ms": total.latency.json(),
    });
    if let Some(h) = &p.hold {
        let before = coord.rss_before.load(Ordering::Relaxed);
        let after = coord.rss_after.load(Ordering::Relaxed);
        let n = coord.open_at_measure.load(Ordering::Relaxed);
        out["hold_s"] = json!(h.seconds);
        out["server_pid"] = json!(h.server_pid);
        out["server_rss_before_bytes"] = json!(before);
        out["server_rss_after_bytes"] = json!(after);
        out["sessions_at_measure"] = json!(n);
        out["server_bytes_per_session"] = if n > 0 && after > 0 {
            json!((after.saturating_sub(before)) as f64 / n as f64)
        } else {
            Value::Null
        };
        out["probed"] = json!(total.probed);
        out["alive_after_hold"] = json!(total.alive);
    }
    Ok(out)
}

async fn per_thread(
    me: usize,
    p: Params,
    live: Arc<Live>,
    coord: Arc<Coord>,
    t0: Instant,
) -> Result<ThreadOut> {
    let threads = p.threads.max(1);
    let out = Rc::new(RefCell::new(ThreadOut::default()));
    let held: Rc<RefCell<Vec<Ws>>> = Rc::default();
    let in_flight = Rc::new(std::cell::Cell::new(0usize));
    let cap = (p.concurrency / threads).max(1);
    let sources = Rc::new(Sources::new(&p.addr, p.sources));
    let host = p.addr.to_string();
    let mut tasks = Vec::new();
    for k in (me..p.clients).step_by(threads) {
        if p.rate > 0 {
            let due = t0 + Duration::from_secs_f64(k as f64 / p.rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                glommio::timer::sleep(wait).await;
            }
        }
        while in_flight.get() >= cap {
            glommio::timer::sleep(Duration::from_micros(200)).await;
        }
        in_flight.set(in_flight.get() + 1);
        let (out, held, in_flight, live, coord, sources, host, p2) = (
            out.clone(),
            held.clone(),
            in_flight.clone(),
            live.clone(),
            coord.clone(),
            sources.clone(),
            host.clone(),
            p.clone(),
        );
        tasks.push(glommio::spawn_local(async move {
            let start = Instant::now();
            coord.first_start.lock().unwrap().get_or_insert(start);
            Live::add(&live.started, 1);
            let opened = within(OPEN_TIMEOUT, async {
                let stream = tcp_connect(sources.pick(), p2.addr).await?;
                // Held sessions keep this chunk for their life; storm sessions close at once.
                let chunk = if p2.hold.is_some() { 256 } else { 4096 };
                open_session(stream, &host, p2.dialect, &p2.login, chunk, true).await
            })
            .await;
            in_flight.set(in_flight.get() - 1);
            match opened {
                Ok(mut ws) => {
                    let done = Instant::now();
                    out.borrow_mut().latency.record(done - start);
                    {
                        let mut last = coord.last_done.lock().unwrap();
                        if last.is_none_or(|l| l < done) {
                            *last = Some(done);
                        }
                    }
                    Live::add(&live.done, 1);
                    if p2.hold.is_some() {
                        held.borrow_mut().push(ws);
                    } else {
                        close_politely(&mut ws).await;
                    }
                }
                Err(e) => {
                    Live::add(&live.failed, 1);
                    let key = classify(&e.to_string());
                    *out.borrow_mut().errors.entry(key).or_default() += 1;
                }
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    if let Some(h) = &p.hold {
        // Thread 0 takes the measurement once every thread's sessions are open (or failed).
        if me == 0 {
            while Live::get(&live.done) + Live::get(&live.failed) < p.clients as u64 {
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
            glommio::timer::sleep(h.settle).await;
            if let Some(pid) = h.server_pid {
                coord
                    .rss_after
                    .store(rss_bytes(pid).unwrap_or(0), Ordering::Relaxed);
            }
            coord
                .open_at_measure
                .store(Live::get(&live.done), Ordering::Relaxed);
            if !p.quiet {
                eprintln!(
                    "[idle] {} sessions open; holding {} s",
                    Live::get(&live.done),
                    h.seconds
                );
            }
            coord.measured.store(true, Ordering::Release);
        }
        while !coord.measured.load(Ordering::Acquire) {
            glommio::timer::sleep(Duration::from_millis(50)).await;
        }
        glommio::timer::sleep(Duration::from_secs(h.seconds)).await;
        // Every held session must still answer a NOOP after the hold.
        let sessions = std::mem::take(&mut *held.borrow_mut());
        let mut probes = Vec::new();
        for mut ws in sessions {
            let dialect = p.dialect;
            probes.push(glommio::spawn_local(async move {
                let noop = match dialect {
                    Dialect::Ws1 => "C;NOOP".to_string(),
                    Dialect::Ws2 => r#"{"type":"CMD","command":"NOOP","args":null}"#.to_string(),
                };
                let ok = within(Duration::from_secs(20), async {
                    ws.send(Message::text(noop)).await?;
                    read_text(&mut ws).await
                })
                .await
                .is_ok_and(|r| r.starts_with("+;NOOP") || ws2_type(&r) == Some("+"));
                close_politely(&mut ws).await;
                ok
            }));
        }
        for t in probes {
            let ok = t.await;
            let mut o = out.borrow_mut();
            o.probed += 1;
            o.alive += ok as u64;
        }
    }
    Ok(Rc::try_unwrap(out)
        .map_err(|_| anyhow::anyhow!("session tasks still running"))?
        .into_inner())
}

/// Sends a close frame and waits briefly for the server's, so the server sees a clean close
/// rather than a reset.
async fn close_politely(ws: &mut Ws) {
    let _ = ws.close(None).await;
    let _ = glommio::timer::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = futures::StreamExt::next(ws).await {}
        Ok(())
    })
    .await;
}

/// Folds error texts into a few buckets for the summary (addresses and numbers vary).
fn classify(e: &str) -> String {
    let e = e.to_ascii_lowercase();
    for (needle, key) in [
        ("auth refused", "auth refused"),
        ("open refused", "open refused"),
        ("timeout", "timeout"),
        ("timed out", "timeout"),
        ("refused", "connection refused"),
        ("reset", "connection reset"),
        ("too many open files", "too many open files"),
        ("address not available", "no local port"),
        ("503", "server full (503)"),
        ("closed", "closed by server"),
    ] {
        if e.contains(needle) {
            return key.into();
        }
    }
    e.chars().take(60).collect()
}
