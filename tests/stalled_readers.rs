//! Fault test (issue 15): 1 % of the subscribers stall during a flood.
//!
//! The real binary runs as a process of its own, so that its memory can be read from
//! /proc/PID/status without the test's clients in it. 100 subscribers have their channel open;
//! one of them never reads (and has a small receive buffer, so its socket fills after a few
//! KiB instead of megabytes). One publisher sends a warm-up, then the flood. Checked:
//! - every other subscriber receives every event, in order;
//! - the stalled one's losses are counted (`vscp_events_dropped_total{reason="queue_full"}`),
//!   and every event is accounted for per subscriber: delivered, dropped or still queued;
//! - the events queued at the end are the stalled session's `max-out-queue`, no more
//!   (`vscp_outbox_events`);
//! - the server's resident memory grows during the flood by no more than the bounded queues
//!   allow (the events the outboxes and rings can hold, times their size), plus a fixed
//!   allowance for the allocator; an unbounded queue at the stalled session would have needed
//!   several times that.

mod common;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tungstenite::{Message, Utf8Bytes};

const BIN: &str = env!("CARGO_BIN_EXE_vscp-websocksrv");
const SUBSCRIBERS: usize = 100;
const STALLED: usize = 1;
const MAX_OUT: usize = 100;
const MAX_IN: usize = 128;
/// Events before the measurement starts (every buffer and allocator arena has grown by then,
/// and the stalled session's queue is full).
const WARMUP: usize = 500;
const FLOOD: usize = 5000;
const DATA_LEN: usize = 200;
/// Unacknowledged events the publisher keeps in flight.
const WINDOW: usize = 200;
/// Memory an event queued for a session can hold: the event with its data, and the wire text
/// cached in it for each dialect (ws1's is the longest: "0xNN," per data byte).
const EVENT_BYTES: u64 = (DATA_LEN * (1 + 5 + 4) + 512) as u64;
/// What the allocator may keep beyond the queues (arenas, freed but not returned memory).
const ALLOCATOR_SLACK: u64 = 4 << 20;
/// Everything must be over within this.
const BOUND: Duration = Duration::from_secs(120);

/// The server process; SIGTERM (then SIGKILL) by PID when dropped.
struct Server {
    child: Child,
}

impl Server {
    fn start(config: &std::path::Path) -> Server {
        let mut child = Command::new(BIN)
            .args(["--config", config.to_str().unwrap(), "--shards", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts");
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("server: {line}");
                }
            }
        });
        Server { child }
    }

    /// A field of /proc/PID/status, in bytes (`VmRSS`, `VmHWM`).
    fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("server process status");
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"));
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("a number of kB");
        kib * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(10));
    }
}

/// The sum of every series of `name` whose labels contain `label` (empty: all).
fn metric(addr: SocketAddr, name: &str, label: &str) -> f64 {
    let mut s = TcpStream::connect(addr).expect("metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("metrics answer");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn event_text(seq: usize) -> String {
    let mut s = format!("E;0,20,3,0,,{seq},-");
    for i in 0..DATA_LEN {
        s.push_str(&format!(",{}", (seq + i) as u8));
    }
    s
}

/// The sequence number (the timestamp) of a delivered event.
fn seq_of(dialect: &str, m: &str) -> u64 {
    if dialect == "ws1" {
        m.split(',').nth(5).and_then(|t| t.parse().ok())
    } else {
        let v: serde_json::Value = serde_json::from_str(m).expect("ws2 event is JSON");
        v["event"]["vscpTimeStamp"].as_u64()
    }
    .unwrap_or_else(|| panic!("not a flood event: {m:.80}"))
}

/// Sends events `from..from+n` with at most [`WINDOW`] unacknowledged.
fn publish(p: &mut Client, from: usize, n: usize) {
    let (mut sent, mut acked) = (0, 0);
    let t0 = Instant::now();
    while acked < n {
        while sent < n && sent - acked < WINDOW {
            p.ws.write(Message::Text(Utf8Bytes::from(event_text(from + sent))))
                .expect("publish");
            sent += 1;
        }
        p.ws.flush().expect("flush");
        let target = if sent == n { n } else { sent - WINDOW / 2 };
        while acked < target {
            assert!(t0.elapsed() < BOUND, "publisher: {acked} of {n} acked");
            if let Some(m) = p.try_recv_text(Duration::from_secs(5)) {
                assert_eq!(m, "+;EVENT", "publisher");
                acked += 1;
            }
        }
    }
}

/// A subscriber whose receive buffer holds a few KiB, so that when it stops reading its
/// socket fills at once and the server's queue for it is what overflows.
fn stalled_subscriber(addr: SocketAddr) -> Client {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap();
    let mut c = client_on_stream(sock.into(), addr, "/ws1");
    c.login_open("user", "secret");
    c
}

#[test]
fn one_percent_stalled_readers_cost_bounded_memory_and_hold_nobody_back() {
    let fx = Fixture::new("stalled");
    let (port, mport) = (free_port(), free_port());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    let path = fx.join("stalled.json");
    let cfg = json!({
        "interface": addr.to_string(),
        "tcpip-interface": "",
        "metrics-interface": maddr.to_string(),
        "key-file": "vscp.key",
        "path-users": "users.json",
        "max-clients": 1000,
        "max-out-queue": MAX_OUT,
        "max-in-queue": MAX_IN,
        "logging": {"console-enable-log": true, "console-log-level": "warn"}
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let srv = Server::start(&path);
    wait_listening(addr);

    let mut stalled: Vec<Client> = (0..STALLED).map(|_| stalled_subscriber(addr)).collect();
    // One in three reads ws2: both encodings are made and cached.
    let mut readers: Vec<Client> = (0..SUBSCRIBERS - STALLED)
        .map(|i| {
            let mut c = connect(addr, if i % 3 == 2 { "/ws2" } else { "/ws1" });
            c.login_open("user", "secret");
            c
        })
        .collect();
    let mut publisher = connect(addr, "/ws1");
    publisher.login_open("admin", "secret");
    let total = WARMUP + FLOOD;
    assert!(
        (FLOOD as u64 * EVENT_BYTES) > 2 * (ALLOCATOR_SLACK + budget_without_slack()),
        "the flood is large enough that an unbounded queue would not fit the budget"
    );

    let warm = AtomicBool::new(false);
    let baseline = AtomicU64::new(0);
    let stop_sampling = AtomicBool::new(false);
    let (peak_rss, samples) = std::thread::scope(|sc| {
        let handles: Vec<_> = readers
            .iter_mut()
            .map(|c| {
                sc.spawn(move || {
                    let mut next = 1u64;
                    let t0 = Instant::now();
                    while next <= total as u64 {
                        assert!(t0.elapsed() < BOUND, "reader: at {next} of {total}");
                        let Some(m) = c.try_recv_text(Duration::from_secs(5)) else {
                            continue;
                        };
                        let seq = seq_of(c.dialect, &m);
                        assert_eq!(seq, next, "{} reader: order", c.dialect);
                        next += 1;
                    }
                })
            })
            .collect();
        let sampler = sc.spawn(|| {
            let (mut peak, mut n) = (0, 0u32);
            while !stop_sampling.load(Ordering::Relaxed) {
                if warm.load(Ordering::Relaxed) {
                    peak = peak.max(srv.status_bytes("VmRSS"));
                    n += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (peak, n)
        });
        publish(&mut publisher, 1, WARMUP);
        // Let the warm-up reach every reader before the baseline is taken.
        assert!(eventually(BOUND, || metric(
            maddr,
            "vscp_outbox_events",
            ""
        ) <= MAX_OUT as f64 * STALLED as f64));
        baseline.store(srv.status_bytes("VmRSS"), Ordering::Relaxed);
        warm.store(true, Ordering::Relaxed);
        publish(&mut publisher, WARMUP + 1, FLOOD);
        for h in handles {
            h.join().expect("a reader failed");
        }
        stop_sampling.store(true, Ordering::Relaxed);
        sampler.join().unwrap()
    });
    let baseline = baseline.into_inner();
    let growth = peak_rss.saturating_sub(baseline);
    let budget = budget_without_slack() + ALLOCATOR_SLACK;

    // Quiet now: the readers have everything; only the stalled session holds events.
    let queued = metric(maddr, "vscp_outbox_events", "");
    let delivered = metric(maddr, "vscp_events_delivered_total", "");
    let dropped = metric(maddr, "vscp_events_dropped_total", "reason=\"queue_full\"");
    let received = metric(maddr, "vscp_events_received_total", "");
    eprintln!(
        "stalled readers: {SUBSCRIBERS} subscribers ({STALLED} stalled), {total} events of \
         {DATA_LEN} data bytes; server RSS {} KiB after the warm-up, peak {} KiB over {samples} \
         samples (+{} KiB; budget {} KiB: {MAX_OUT} x {STALLED} stalled + rings and batches, \
         x {EVENT_BYTES} B, + {} KiB allocator); VmHWM {} KiB; delivered {delivered}, \
         dropped (queue_full) {dropped}, still queued {queued}",
        baseline / 1024,
        peak_rss / 1024,
        growth / 1024,
        budget / 1024,
        ALLOCATOR_SLACK / 1024,
        srv.status_bytes("VmHWM") / 1024,
    );
    assert_eq!(received, total as f64, "every event was accepted");
    assert!(dropped > 0.0, "the stalled subscriber's losses are counted");
    assert_eq!(
        queued,
        (MAX_OUT * STALLED) as f64,
        "the stalled session's queue is full, nobody else's holds anything"
    );
    // Per subscriber each event is delivered (its socket took it), dropped (counted) or still
    // queued, except at most one write batch of the stalled session: taken from its queue but
    // waiting for its socket, it counts as delivered when the socket takes it.
    let accounted = delivered + dropped + queued;
    let expected = (total * SUBSCRIBERS) as f64;
    assert!(
        accounted <= expected && accounted >= expected - 64.0 * STALLED as f64,
        "delivered + dropped + queued = {accounted}, expected {expected}"
    );
    assert!(
        growth <= budget,
        "server RSS grew by {growth} B during the flood, over the {budget} B the bounded \
         queues allow"
    );
    // The stalled one is still connected and served once it reads: its queue, then new events.
    stalled[0].assert_noop_next_after_events();
    drop((stalled, readers, publisher));
    drop(srv);
}

/// The events the bounded queues can hold during the flood, times their size: the stalled
/// sessions' outboxes, the rings between the two shards (both ways), and one batch in each
/// reader's hands.
fn budget_without_slack() -> u64 {
    let events = MAX_OUT * STALLED + 2 * MAX_IN + 256;
    events as u64 * EVENT_BYTES
}

trait Drain {
    fn assert_noop_next_after_events(&mut self);
}

impl Drain for Client {
    /// Reads what was queued for it, then a NOOP's reply.
    fn assert_noop_next_after_events(&mut self) {
        self.send("C;NOOP");
        let m = self.recv_until(|m| !m.starts_with("E;"));
        assert_eq!(m, "+;NOOP");
    }
}
