//! Scenario (c) fan-out: P publishers send at an aggregate rate R (0 = as fast as the sockets
//! take it) for D seconds to S subscribers. Every message carries its send time, so each
//! subscriber measures end-to-end latency itself; deliveries, losses and delivered messages per
//! second are counted. The same scenario runs against vscp-websocksrv's websockets (ws1
//! publishers, ws1 or ws2 subscribers), its tcp/ip link interface (`send` publishers, `rcvloop`
//! subscribers) and an MQTT broker's websocket listener (QoS 0, one topic), with the same
//! generator, message size and client counts.

use crate::client::{
    open_session, sent_nanos, tcp_connect, ws1_event, ws2_type, Clock, Dialect, Login, Sources,
};
use crate::link::{open_link, push_send, read_line, LinkReader, LinkWriter};
use crate::mqtt::MqttClient;
use crate::report::{cpu_seconds, Latency, Live, Progress, SyscallCount};
use crate::rt::{run_on_threads, StartLine};
use anyhow::{bail, Result};
use futures::io::AsyncWriteExt;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::Message;

/// The MQTT topic of the broker runs.
const TOPIC: &str = "vscp/loadtest";
/// Events a publisher writes before flushing when it is behind schedule or unthrottled.
const BURST: u64 = 64;
/// After publishing stops, how long deliveries may keep arriving before the rest count as lost.
const DRAIN_IDLE: Duration = Duration::from_secs(2);
const DRAIN_MAX: Duration = Duration::from_secs(15);
/// How long a publisher waits for the acks of its last events before it closes.
const ACK_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub enum Target {
    Vscp {
        addr: SocketAddr,
        login: Login,
        dialect: Dialect,
    },
    /// The server's VSCP tcp/ip link interface (publishers `send`, subscribers `rcvloop`).
    VscpTcp { addr: SocketAddr, login: Login },
    /// MQTT over websockets at `ws://addr{path}`.
    MqttWs { addr: SocketAddr, path: String },
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Vscp { .. } | Target::VscpTcp { .. } => "vscp-websocksrv",
            Target::MqttWs { .. } => "mosquitto",
        }
    }
    /// What the subscribers speak (`ws1`, `ws2`, `tcp`, `mqtt-ws`).
    pub fn dialect(&self) -> &'static str {
        match self {
            Target::Vscp { dialect, .. } => dialect.name(),
            Target::VscpTcp { .. } => "tcp",
            Target::MqttWs { .. } => "mqtt-ws",
        }
    }
    fn addr(&self) -> SocketAddr {
        match self {
            Target::Vscp { addr, .. }
            | Target::VscpTcp { addr, .. }
            | Target::MqttWs { addr, .. } => *addr,
        }
    }
}

#[derive(Clone)]
pub struct Params {
    pub target: Target,
    pub publishers: usize,
    pub subscribers: usize,
    /// Aggregate events per second; 0 = unthrottled.
    pub rate: u64,
    pub duration: Duration,
    /// VSCP data bytes per event (at least 8: the send time).
    pub data_len: usize,
    /// For the broker: payload bytes per message (the size the VSCP subscribers received).
    pub payload_len: usize,
    pub threads: usize,
    pub sources: usize,
    pub quiet: bool,
    /// The target's process, to report its CPU time per delivery (efficiency independent of
    /// how many cores it used).
    pub target_pid: Option<u32>,
    /// The target's metrics interface: its own count of socket writes (`vscp_socket_writes_total`,
    /// which includes sends submitted through io_uring, which the kernel count above misses).
    pub metrics: Option<std::net::SocketAddr>,
}

#[derive(Default)]
struct ThreadOut {
    latency: Latency,
    received: u64,
    received_bytes: u64,
    unparsed: u64,
    negative_acks: u64,
    errors: Vec<String>,
    /// Deliveries per subscriber, to tell one stuck subscriber from losses spread over all.
    per_subscriber: Vec<u64>,
}

#[derive(Default)]
struct Coord {
    stop: AtomicBool,
    publishing_done: AtomicU64,
    go_at: Mutex<Option<Instant>>,
    last_delivery_nanos: AtomicU64,
    first_msg_len: AtomicU64,
}

/// The server's `vscp_socket_writes_total`, summed over its cores.
fn socket_writes(addr: std::net::SocketAddr) -> Result<f64> {
    let scrape = crate::metrics::Scrape::fetch(addr)?;
    Ok(scrape.get(crate::metrics::SOCKET_WRITES).unwrap_or(0.0))
}

pub fn run(p: Params) -> Result<Value> {
    let live = Arc::new(Live::default());
    let line = Arc::new(StartLine::default());
    let coord = Arc::new(Coord::default());
    let clock = Clock(Instant::now());
    let label = format!("fanout {} {}", p.target.name(), p.target.dialect());
    let progress = Progress::start(label, live.clone(), p.quiet);
    let syscalls = p.target_pid.and_then(SyscallCount::start);
    let cpu_before = p.target_pid.and_then(cpu_seconds);
    let writes_before = p.metrics.map(socket_writes).transpose()?;
    let outs = {
        let (p, live, line, coord) = (p.clone(), live.clone(), line.clone(), coord.clone());
        run_on_threads(p.threads, move |me| {
            per_thread(
                me,
                p.clone(),
                live.clone(),
                line.clone(),
                coord.clone(),
                clock,
            )
        })?
    };
    let cpu_used = match (cpu_before, p.target_pid.and_then(cpu_seconds)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let syscalls = syscalls.and_then(SyscallCount::finish);
    let socket_writes = match (writes_before, p.metrics) {
        (Some(before), Some(addr)) => Some(socket_writes(addr)? - before),
        _ => None,
    };
    drop(progress);
    if line.aborted() {
        let errs: Vec<String> = outs.iter().flat_map(|o| o.errors.clone()).collect();
        bail!(
            "fan-out against {} could not start: {}",
            p.target.name(),
            errs.first()
                .cloned()
                .unwrap_or_else(|| "clients failed".into())
        );
    }
    let mut t = ThreadOut::default();
    for o in &outs {
        t.latency.merge(&o.latency);
        t.received += o.received;
        t.received_bytes += o.received_bytes;
        t.unparsed += o.unparsed;
        t.negative_acks += o.negative_acks;
        t.errors.extend(o.errors.iter().cloned());
        t.per_subscriber.extend(o.per_subscriber.iter().copied());
    }
    let sent = Live::get(&live.sent);
    let expected = sent * p.subscribers as u64;
    let go = coord.go_at.lock().unwrap().unwrap_or(clock.0);
    let go_nanos = (go - clock.0).as_nanos() as u64;
    let last = coord.last_delivery_nanos.load(Ordering::Relaxed);
    let span = (last.saturating_sub(go_nanos)) as f64 / 1e9;
    let delivered_per_s = if span > 0.0 {
        t.received as f64 / span
    } else {
        0.0
    };
    Ok(json!({
        "scenario": "fanout",
        "target": p.target.name(),
        "dialect": p.target.dialect(),
        "publishers": p.publishers,
        "subscribers": p.subscribers,
        "target_rate": p.rate,
        "duration_s": p.duration.as_secs_f64(),
        "threads": p.threads,
        "events_sent": sent,
        "sent_per_s": sent as f64 / p.duration.as_secs_f64(),
        "deliveries_expected": expected,
        "deliveries_received": t.received,
        "lost": expected.saturating_sub(t.received),
        "loss_ratio": if expected > 0 { expected.saturating_sub(t.received) as f64 / expected as f64 } else { 0.0 },
        "delivered_per_s": delivered_per_s,
        "message_bytes": coord.first_msg_len.load(Ordering::Relaxed),
        "received_bytes": t.received_bytes,
        "unparsed": t.unparsed,
        "negative_acks": t.negative_acks,
        "errors": t.errors.len(),
        "subscribers_incomplete": t.per_subscriber.iter().filter(|&&n| n < sent).count(),
        "min_per_subscriber": t.per_subscriber.iter().min().copied().unwrap_or(0),
        "latency_ms": t.latency.json(),
        "target_cpu_s": cpu_used,
        "target_cpu_us_per_delivery": cpu_used.filter(|_| t.received > 0).map(|c| c * 1e6 / t.received as f64),
        "target_write_calls": syscalls.map(|s| s.0),
        "target_io_uring_enters": syscalls.map(|s| s.1),
        "target_writes_per_delivery": syscalls.filter(|_| t.received > 0).map(|s| s.0 as f64 / t.received as f64),
        "target_socket_writes": socket_writes,
        "target_socket_writes_per_delivery": socket_writes.filter(|_| t.received > 0).map(|w| w / t.received as f64),
    }))
}

enum Sub {
    Vscp(crate::client::Ws),
    Link(LinkReader, LinkWriter),
    Mqtt(MqttClient),
}

async fn connect_client(
    target: &Target,
    sources: &Sources,
    subscriber: bool,
    id: usize,
) -> Result<(Sub, RawFd)> {
    let stream = tcp_connect(sources.pick(), target.addr()).await?;
    let fd = stream.as_raw_fd();
    let host = target.addr().to_string();
    Ok(match target {
        Target::Vscp { login, dialect, .. } => {
            let d = if subscriber { *dialect } else { Dialect::Ws1 };
            (
                Sub::Vscp(open_session(stream, &host, d, login, 16 * 1024, subscriber).await?),
                fd,
            )
        }
        Target::VscpTcp { login, .. } => {
            let (r, w) = open_link(stream, login, subscriber).await?;
            (Sub::Link(r, w), fd)
        }
        Target::MqttWs { path, .. } => {
            let kind = if subscriber { "sub" } else { "pub" };
            let mut c =
                MqttClient::connect_ws(stream, &host, path, &format!("lt-{kind}-{id}")).await?;
            if subscriber {
                c.subscribe(TOPIC).await?;
            }
            (Sub::Mqtt(c), fd)
        }
    })
}

async fn per_thread(
    me: usize,
    p: Params,
    live: Arc<Live>,
    line: Arc<StartLine>,
    coord: Arc<Coord>,
    clock: Clock,
) -> Result<ThreadOut> {
    let threads = p.threads.max(1);
    let out = Rc::new(RefCell::new(ThreadOut::default()));
    let fds: Rc<RefCell<Vec<RawFd>>> = Rc::default();
    let sources = Rc::new(Sources::new(&p.target.addr(), p.sources));
    let total_clients = p.subscribers + p.publishers;
    let mut tasks = Vec::new();
    // Subscribers first (their index space is 0..S), then publishers (S..S+P).
    for k in (me..total_clients).step_by(threads) {
        let subscriber = k < p.subscribers;
        let (p, live, line, coord, out, fds, sources) = (
            p.clone(),
            live.clone(),
            line.clone(),
            coord.clone(),
            out.clone(),
            fds.clone(),
            sources.clone(),
        );
        tasks.push(glommio::spawn_local(async move {
            let (client, fd) = match connect_client(&p.target, &sources, subscriber, k).await {
                Ok(c) => c,
                Err(e) => {
                    out.borrow_mut().errors.push(format!("{e:#}"));
                    line.abort();
                    return;
                }
            };
            fds.borrow_mut().push(fd);
            line.arrive();
            if !line.wait().await {
                return;
            }
            if subscriber {
                subscribe_loop(client, &coord, &live, &out, clock).await;
            } else {
                let r = publish_loop(client, &p, &coord, &live, &out, clock).await;
                if let Err(e) = r {
                    out.borrow_mut().errors.push(format!("publisher: {e:#}"));
                }
                coord.publishing_done.fetch_add(1, Ordering::AcqRel);
            }
        }));
    }
    // The stopper: once thread 0 calls the end, shut every socket of this thread down so the
    // readers see end-of-stream wherever they are waiting.
    let stopper = {
        let (coord, fds) = (coord.clone(), fds.clone());
        glommio::spawn_local(async move {
            while !coord.stop.load(Ordering::Acquire) {
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
            for fd in fds.borrow().iter() {
                // SAFETY: shutdown(2) on a descriptor this thread's clients still own (they are
                // closed only after their tasks end, which this wakes them up to do).
                unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) };
            }
        })
    };
    if me == 0 {
        coordinate(&p, &line, &coord, &live, clock).await;
    }
    for t in tasks {
        t.await;
    }
    // If the run aborted before the stop was called, nobody else will call it.
    coord.stop.store(true, Ordering::Release);
    stopper.await;
    Ok(Rc::try_unwrap(out)
        .map_err(|_| anyhow::anyhow!("client tasks still running"))?
        .into_inner())
}

/// Thread 0: opens the start line when every client is connected, then calls the end once
/// publishing is over and deliveries have stopped arriving.
async fn coordinate(p: &Params, line: &StartLine, coord: &Coord, live: &Live, clock: Clock) {
    let total = p.subscribers + p.publishers;
    let deadline = Instant::now() + Duration::from_secs(120);
    while line.ready() < total && !line.aborted() {
        if Instant::now() > deadline {
            line.abort();
            break;
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    if line.aborted() {
        coord.stop.store(true, Ordering::Release);
        return;
    }
    // Let the last subscriptions settle on the server before the first event.
    glommio::timer::sleep(Duration::from_millis(200)).await;
    *coord.go_at.lock().unwrap() = Some(Instant::now());
    let _ = clock;
    line.open();
    while coord.publishing_done.load(Ordering::Acquire) < p.publishers as u64 {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    live.drain(
        || Live::get(&live.sent) * p.subscribers as u64,
        DRAIN_IDLE,
        DRAIN_MAX,
    )
    .await;
    coord.stop.store(true, Ordering::Release);
}

async fn subscribe_loop(
    client: Sub,
    coord: &Coord,
    live: &Live,
    out: &RefCell<ThreadOut>,
    clock: Clock,
) {
    let mine = Cell::new(0u64);
    let record = |sent: Option<u64>, len: usize| {
        let now = clock.now_nanos();
        let mut o = out.borrow_mut();
        match sent {
            Some(s) => {
                mine.set(mine.get() + 1);
                o.received += 1;
                o.received_bytes += len as u64;
                o.latency.record_micros(now.saturating_sub(s) / 1000);
                Live::add(&live.received, 1);
                coord.last_delivery_nanos.fetch_max(now, Ordering::Relaxed);
                let _ = coord.first_msg_len.compare_exchange(
                    0,
                    len as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            None => o.unparsed += 1,
        }
    };
    match client {
        Sub::Vscp(mut ws) => {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    if t.starts_with("E;") || ws2_type(&t) == Some("EVENT") {
                        record(sent_nanos(&t), t.len());
                    }
                }
            }
        }
        Sub::Link(mut r, _w) => {
            let mut line = String::new();
            while let Ok(true) = read_line(&mut r, &mut line).await {
                // `+OK` alone is the receive loop's keep-alive; every other line is an event.
                if !line.starts_with("+OK") && !line.starts_with("-OK") {
                    record(sent_nanos(&line), line.len() + 2);
                }
            }
        }
        Sub::Mqtt(mut c) => {
            while let Ok(Some((_topic, payload))) = c.next_publish().await {
                let sent = payload
                    .get(..8)
                    .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
                record(sent, payload.len());
            }
        }
    }
    out.borrow_mut().per_subscriber.push(mine.get());
}

async fn publish_loop(
    client: Sub,
    p: &Params,
    coord: &Coord,
    live: &Live,
    out: &RefCell<ThreadOut>,
    clock: Clock,
) -> Result<()> {
    let per_publisher = p.rate as f64 / p.publishers.max(1) as f64;
    let start = Instant::now();
    let end = start + p.duration;
    let sent = Cell::new(0u64);
    // How many this publisher should have sent by now (unthrottled: always one burst more).
    let due = || -> u64 {
        if p.rate == 0 {
            sent.get() + BURST
        } else {
            (start.elapsed().as_secs_f64() * per_publisher) as u64
        }
    };
    match client {
        Sub::Vscp(ws) => {
            let (mut tx, rx) = ws.split();
            let sending = Cell::new(true);
            let acks = count_acks(WsAcks(rx), &sending, &sent, out);
            let send = async {
                let r = async {
                    while Instant::now() < end {
                        let n = (due().saturating_sub(sent.get())).min(BURST);
                        for _ in 0..n {
                            tx.feed(Message::text(ws1_event(clock.now_nanos(), p.data_len)))
                                .await?;
                            count_sent(&sent, live);
                        }
                        tx.flush().await?;
                        pace(n, &sent, &due, p.rate, per_publisher).await;
                    }
                    anyhow::Ok(())
                }
                .await;
                sending.set(false);
                r
            };
            let _ = coord;
            let (sent_ok, acks_ok) = futures::future::join(send, acks).await;
            sent_ok?;
            if !acks_ok {
                bail!("the server closed the publisher");
            }
            Ok(())
        }
        Sub::Link(r, mut w) => {
            let sending = Cell::new(true);
            let acks = count_acks(LinkAcks(r, String::new()), &sending, &sent, out);
            let send = async {
                let r = async {
                    // One write per burst, as the websocket publishers flush once per burst.
                    let mut buf = Vec::with_capacity(BURST as usize * (24 + 5 * p.data_len));
                    while Instant::now() < end {
                        let n = (due().saturating_sub(sent.get())).min(BURST);
                        buf.clear();
                        for _ in 0..n {
                            push_send(&mut buf, clock.now_nanos(), p.data_len);
                            count_sent(&sent, live);
                        }
                        if !buf.is_empty() {
                            w.write_all(&buf).await?;
                            w.flush().await?;
                        }
                        pace(n, &sent, &due, p.rate, per_publisher).await;
                    }
                    anyhow::Ok(())
                }
                .await;
                sending.set(false);
                r
            };
            let (sent_ok, acks_ok) = futures::future::join(send, acks).await;
            sent_ok?;
            if !acks_ok {
                bail!("the server closed the publisher");
            }
            Ok(())
        }
        Sub::Mqtt(mut c) => {
            let mut payload = vec![0u8; p.payload_len.max(8)];
            while Instant::now() < end {
                let n = (due().saturating_sub(sent.get())).min(BURST);
                for _ in 0..n {
                    payload[..8].copy_from_slice(&clock.now_nanos().to_be_bytes());
                    c.publish(TOPIC, &payload).await?;
                    count_sent(&sent, live);
                }
                c.flush().await?;
                pace(n, &sent, &due, p.rate, per_publisher).await;
            }
            Ok(())
        }
    }
}

/// Sleep until roughly the next event is due, at most a millisecond (timer resolution and
/// fairness to the other clients on this executor).
/// One more event handed to the connection.
fn count_sent(sent: &Cell<u64>, live: &Live) {
    sent.set(sent.get() + 1);
    Live::add(&live.sent, 1);
}

/// After a burst of `n` events: waits for the next one to be due (paced), or lets the other
/// tasks run when nothing was due.
async fn pace(n: u64, sent: &Cell<u64>, due: &impl Fn() -> u64, rate: u64, per_publisher: f64) {
    if rate > 0 && sent.get() >= due() {
        glommio::timer::sleep(next_gap(per_publisher)).await;
    } else if n == 0 {
        glommio::executor().yield_task_queue_now().await;
    }
}

/// What a publisher's connection said next, as far as acknowledgements go.
enum Said {
    Ack,
    Nack,
    Other,
    Closed,
}

/// A publisher's read side, in either protocol.
trait Acks {
    async fn said(&mut self) -> Said;
}

struct WsAcks(async_tungstenite::WebSocketReceiver<crate::client::Io>);

impl Acks for WsAcks {
    async fn said(&mut self) -> Said {
        match self.0.next().await {
            Some(Ok(Message::Text(t))) if t.starts_with("-;") => Said::Nack,
            Some(Ok(Message::Text(t))) if t.starts_with("+;EVENT") => Said::Ack,
            Some(Ok(_)) => Said::Other,
            // Closed by the server (an error while still sending).
            Some(Err(_)) | None => Said::Closed,
        }
    }
}

/// The tcp/ip link: every `send` is answered with `+OK - Success.` or a `-OK` line.
struct LinkAcks(LinkReader, String);

impl Acks for LinkAcks {
    async fn said(&mut self) -> Said {
        match read_line(&mut self.0, &mut self.1).await {
            Ok(true) if self.1.starts_with("-OK") => Said::Nack,
            Ok(true) if self.1.starts_with("+OK") => Said::Ack,
            Ok(true) => Said::Other,
            Ok(false) | Err(_) => Said::Closed,
        }
    }
}

/// The server acknowledges every event; the acks are read concurrently so the socket never
/// backs up (negative ones counted), and once publishing is over until every event has its
/// answer: closing with acks unread makes the kernel reset the connection, and the server may
/// then drop events it had not handled yet. False when the server closed the connection while
/// the publisher was still sending.
async fn count_acks(
    mut from: impl Acks,
    sending: &Cell<bool>,
    sent: &Cell<u64>,
    out: &RefCell<ThreadOut>,
) -> bool {
    let mut acked = 0u64;
    let mut finished_at: Option<Instant> = None;
    loop {
        if !sending.get() {
            if acked >= sent.get() {
                return true;
            }
            if finished_at.get_or_insert_with(Instant::now).elapsed() > ACK_WAIT {
                return true;
            }
        }
        let next =
            glommio::timer::timeout(Duration::from_millis(50), async { Ok(from.said().await) });
        match next.await {
            Ok(Said::Ack) => acked += 1,
            Ok(Said::Nack) => {
                out.borrow_mut().negative_acks += 1;
                acked += 1;
            }
            Ok(Said::Other) | Err(_) => {}
            Ok(Said::Closed) => return !sending.get(),
        }
    }
}

fn next_gap(per_second: f64) -> Duration {
    let gap = if per_second > 0.0 {
        1.0 / per_second
    } else {
        0.001
    };
    Duration::from_secs_f64(gap.min(0.001))
}
