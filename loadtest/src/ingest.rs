//! Scenario (d) ingest: websocket clients publish events, one MQTT subscriber on a broker counts
//! what arrives (count, losses, end-to-end latency from the send time each event carries). Two
//! paths, run one after the other with the same clients, window and payload:
//!
//! * **server**: ws1 clients (logged in, channel not opened: the server sends them only their
//!   acks `+;EVENT`) publish to vscp-websocksrv, whose MQTT bridge publishes each event to the
//!   broker. The server must run with an `mqtt` block publishing to that broker in `json` or
//!   `string` format (loadtest/ingest.sh and loadtest/run-all.sh write such a configuration).
//! * **broker**: the same number of MQTT-over-websocket clients publish QoS 1 straight to the
//!   broker's websocket listener, each message the bytes the bridge produced for the server
//!   side's events (its first bridged payload is the template; the send time goes into
//!   `vscpData` per message).
//!
//! `--rate 0` publishes "as fast as acknowledged": each client keeps `--window` events
//! unacknowledged (ws1 `+;EVENT` or `-;...`, MQTT PUBACK) and sends the next as an ack frees a
//! slot. `--rate R` paces the clients at an aggregate R events/s instead.
//!
//! Per side the report has events sent, acked, negative acks, received at the subscriber, lost
//! (acked but not received), received/s, latency, the CPU seconds of server, broker and
//! generator during the side's run, and for the server side the server's own counters from its
//! metrics interface (accepted, published, dropped).

use crate::client::{
    open_session_with, sent_nanos, tcp_connect, ws1_event, ws_config, Clock, Dialect, Login,
    Sources, Ws,
};
use crate::metrics::Scrape;
use crate::mosquitto::Mosquitto;
use crate::mqtt::{Inflight, MqttClient};
use crate::report::{cpu_seconds, Latency, Live, Progress};
use crate::rt::{run_on_threads, within, StartLine};
use anyhow::{bail, Context, Result};
use futures::future::Either;
use futures::{FutureExt, SinkExt, StreamExt};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::Message;

/// After the clients stop, how long deliveries may keep arriving before the rest count as lost.
const DRAIN_IDLE: Duration = Duration::from_secs(3);
const DRAIN_MAX: Duration = Duration::from_secs(20);
/// How long a client waits for the acks of its last events before it closes.
const ACK_WAIT: Duration = Duration::from_secs(10);
/// Paced clients have no window of their own; MQTT packet ids bound what may be in flight.
const PACED_MAX_IN_FLIGHT: usize = u16::MAX as usize;
/// Websocket buffers of every client, both sides: one message per event, written when 8 KiB
/// have accumulated or when the client flushes (after each batch it may send).
const WS_BUFFER: usize = 8 * 1024;
/// The topic the direct (broker side) clients publish to and its subscriber listens on: apart
/// from the bridge's, so late bridged messages of the server side are never counted here.
const DIRECT_TOPIC: &str = "vscp-direct/loadtest";

#[derive(Clone)]
pub struct Params {
    pub addr: SocketAddr,
    pub login: Login,
    /// The plain MQTT listener of the broker the server's bridge publishes to; the subscriber
    /// connects there.
    pub broker: SocketAddr,
    /// That broker's websocket listener for the direct clients; `None`: the generator starts a
    /// Mosquitto of its own for the broker side.
    pub broker_ws: Option<SocketAddr>,
    /// The broker's process (for its CPU time); known anyway when the generator starts it.
    pub broker_pid: Option<u32>,
    /// Topic filter of the subscriber on the server side.
    pub topic: String,
    pub clients: usize,
    /// Aggregate events/s; 0 = as fast as acknowledged (windowed).
    pub rate: u64,
    pub window: usize,
    pub duration: Duration,
    pub data_len: usize,
    pub threads: usize,
    pub sources: usize,
    pub quiet: bool,
    pub server_pid: Option<u32>,
    /// The server's metrics interface, scraped before and after the server side.
    pub metrics: Option<SocketAddr>,
    pub server: bool,
    pub direct: bool,
    /// The bridge's QoS as configured (only reported).
    pub bridge_qos: Option<u8>,
}

/// Which path a side measures.
#[derive(Clone)]
enum Target {
    Server,
    Broker {
        ws: SocketAddr,
        payload: Rc<Payload>,
    },
}

impl Target {
    fn side(&self) -> &'static str {
        match self {
            Target::Server => "server",
            Target::Broker { .. } => "broker",
        }
    }
}

/// What one side needs besides the common parameters (sent to every executor).
#[derive(Clone)]
struct Side {
    broker: bool,
    /// Broker side: the websocket listener and the payload template.
    ws: Option<SocketAddr>,
    payload: Option<Payload>,
    /// Where the subscriber connects and what it subscribes to.
    sub_addr: SocketAddr,
    topic: String,
    broker_pid: Option<u32>,
}

/// The bytes a direct client publishes: the bridge's payload around its `vscpData` (JSON) or
/// data fields (string format), with the send time and padding written in per message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    prefix: String,
    suffix: String,
    /// Data bytes as `0xAB` (string format) rather than decimal (JSON).
    hex: bool,
}

impl Payload {
    /// The bridge's JSON format (`"format": "json"`), as vscp-websocksrv wrote it for a ws1
    /// `E;0,20,3,0,,0,-,...` event from 127.0.0.1 (copied from a run); used when no bridged
    /// payload was seen (`--against broker`).
    pub fn bridge_json() -> Payload {
        Payload {
            prefix: "{\n\"vscpHead\": 0,\n\"vscpObId\":  2,\n\"vscpDateTime\": \"2026-12-05T21:11:25Z\",\n\"vscpTimeStamp\": 1870334985,\n\"vscpClass\": 20,\n\"vscpType\": 3,\n\"vscpGuid\": \"FF:FF:FF:FF:FF:FF:FF:FD:7F:00:00:01:00:00:00:00\",\n\"vscpData\": [".into(),
            suffix: "],\n\"vscpNote\": \"\"\n}".into(),
            hex: false,
        }
    }

    /// The template of a payload the bridge published: JSON (around `"vscpData": [...]`) or the
    /// string form `head,class,type,obid,datetime,timestamp,GUID,data...`.
    pub fn from_bridged(payload: &[u8]) -> Option<Payload> {
        let s = std::str::from_utf8(payload).ok()?;
        if s.trim_start().starts_with('{') {
            let key = s.find("\"vscpData\"")?;
            let open = key + s[key..].find('[')?;
            let close = open + s[open..].find(']')?;
            Some(Payload {
                prefix: s[..=open].to_string(),
                suffix: s[close..].to_string(),
                hex: false,
            })
        } else {
            let data_at = s.match_indices(',').nth(6)?.0 + 1;
            let first = s[data_at..].split(',').next().unwrap_or("").trim();
            Some(Payload {
                prefix: s[..data_at].to_string(),
                suffix: String::new(),
                hex: first.starts_with("0x") || first.starts_with("0X"),
            })
        }
    }

    /// Writes the payload for an event sent at `nanos` with `data_len` data bytes (the first 8
    /// the send time, big-endian, the rest zero), as the bridge renders it.
    pub fn render(&self, nanos: u64, data_len: usize, out: &mut Vec<u8>) {
        use std::io::Write;
        out.clear();
        out.extend_from_slice(self.prefix.as_bytes());
        let time = nanos.to_be_bytes();
        for i in 0..data_len.max(8) {
            let b = time.get(i).copied().unwrap_or(0);
            let sep = if i > 0 { "," } else { "" };
            let _ = if self.hex {
                write!(out, "{sep}0x{b:02X}")
            } else {
                write!(out, "{sep}{b}")
            };
        }
        out.extend_from_slice(self.suffix.as_bytes());
    }
}

/// The timestamp in a bridged payload: JSON (`vscpData`) or the string form
/// (`head,class,type,obid,datetime,timestamp,GUID,data...`).
fn bridged_nanos(payload: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(payload).ok()?;
    if s.trim_start().starts_with('{') {
        sent_nanos(s)
    } else {
        sent_nanos(&format!("E;{s}"))
    }
}

pub fn run(p: Params) -> Result<Value> {
    let mut sides = Vec::new();
    let mut template: Option<Sample> = None;
    if p.server {
        let side = Side {
            broker: false,
            ws: None,
            payload: None,
            sub_addr: p.broker,
            topic: p.topic.clone(),
            broker_pid: p.broker_pid,
        };
        let (r, first) = run_side(&p, side)?;
        template = first;
        sides.push(r);
    }
    if p.direct {
        // Kept for the side's run; dropped (SIGTERM) at the end.
        let (ws, sub_addr, broker_pid, guard) = match p.broker_ws {
            Some(ws) => (ws, p.broker, p.broker_pid, None),
            None => {
                let m = Mosquitto::start()?;
                let ws = SocketAddr::from(([127, 0, 0, 1], m.ws_port));
                let tcp = SocketAddr::from(([127, 0, 0, 1], m.tcp_port));
                (ws, tcp, Some(m.pid()), Some(m))
            }
        };
        let payload = template
            .as_ref()
            .and_then(|(_, b)| Payload::from_bridged(b))
            .unwrap_or_else(Payload::bridge_json);
        let side = Side {
            broker: true,
            ws: Some(ws),
            payload: Some(payload),
            sub_addr,
            topic: DIRECT_TOPIC.into(),
            broker_pid,
        };
        let (mut r, _) = run_side(&p, side)?;
        r["broker_started_by_generator"] = json!(guard.is_some());
        drop(guard);
        sides.push(r);
    }
    let rate = |side: &str| {
        sides
            .iter()
            .find(|s| s["side"] == side)
            .and_then(|s| s["received_per_s"].as_f64())
    };
    let ratio = match (rate("server"), rate("broker")) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let mut out = json!({
        "scenario": "ingest",
        "against": match (p.server, p.direct) { (true, true) => "both", (true, false) => "server", _ => "broker" },
        "clients": p.clients,
        "target_rate": p.rate,
        "window": if p.rate == 0 { Some(p.window) } else { None },
        "duration_s": p.duration.as_secs_f64(),
        "data_len": p.data_len,
        "bridge_qos": p.bridge_qos,
        "broker": p.broker.to_string(),
        "broker_ws": p.broker_ws.map(|a| a.to_string()),
        "topic": p.topic,
        "sides": sides,
        "ratio_received_per_s_server_over_broker": ratio,
    });
    // One side: its figures at the top level too, as before there were two.
    if let [one] = out["sides"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let one = one.clone();
        for k in [
            "events_sent",
            "acked",
            "negative_acks",
            "received_at_subscriber",
            "lost",
            "unparsed",
            "received_per_s",
            "latency_ms",
        ] {
            out[k] = one[k].clone();
        }
        out["delivered_per_s"] = one["received_per_s"].clone();
    }
    Ok(out)
}

/// A payload the subscriber received: (topic, bytes).
type Sample = (String, Vec<u8>);

/// Coordination of one side's run across the executors.
#[derive(Default)]
struct Shared {
    line: StartLine,
    clients_done: AtomicU64,
    unexpected_acks: AtomicU64,
    go_nanos: AtomicU64,
    last_delivery_nanos: AtomicU64,
    stop: AtomicBool,
    errors: Mutex<Vec<String>>,
    /// The first payload the subscriber parsed (topic, bytes): the broker side's template.
    first: Mutex<Option<Sample>>,
}

impl Shared {
    fn error(&self, e: String) {
        self.errors.lock().unwrap().push(e);
    }
}

#[derive(Default)]
struct ThreadOut {
    latency: Latency,
    ack_latency: Latency,
    received: u64,
    received_bytes: u64,
    unparsed: u64,
}

fn run_side(p: &Params, side: Side) -> Result<(Value, Option<Sample>)> {
    let name = if side.broker { "broker" } else { "server" };
    // Progress: started = clients connected, done = acked, failed = negative acks.
    let live = Arc::new(Live::default());
    let shared = Arc::new(Shared::default());
    let clock = Clock(Instant::now());
    let progress = Progress::start(format!("ingest {name}"), live.clone(), p.quiet);
    let me = std::process::id();
    let cpu = |pid: Option<u32>| pid.and_then(cpu_seconds);
    let cpu_before = [cpu(p.server_pid), cpu(side.broker_pid), cpu(Some(me))];
    let metrics_before = match p.metrics.filter(|_| !side.broker) {
        // Settled too: the tail of an earlier run may not have been counted yet.
        Some(a) => Some(Scrape::fetch_settled(a).context("server metrics before the run")?),
        None => None,
    };
    let outs = {
        let (p, side, live, shared) = (p.clone(), side.clone(), live.clone(), shared.clone());
        run_on_threads(p.threads, move |t| {
            per_thread(
                t,
                p.clone(),
                side.clone(),
                live.clone(),
                shared.clone(),
                clock,
            )
        })
    };
    drop(progress);
    let outs = outs?;
    let cpu_after = [cpu(p.server_pid), cpu(side.broker_pid), cpu(Some(me))];
    let metrics = match (p.metrics.filter(|_| !side.broker), &metrics_before) {
        (Some(a), Some(before)) => {
            let after = Scrape::fetch_settled(a).context("server metrics after the run")?;
            Some(Scrape::run_json(before, &after))
        }
        _ => None,
    };
    let errors = shared.errors.lock().unwrap().clone();
    if shared.line.aborted() {
        bail!(
            "ingest ({name} side) could not start: {}",
            errors.first().map_or("clients failed", String::as_str)
        );
    }
    let mut t = ThreadOut::default();
    for o in &outs {
        t.latency.merge(&o.latency);
        t.ack_latency.merge(&o.ack_latency);
        t.received += o.received;
        t.received_bytes += o.received_bytes;
        t.unparsed += o.unparsed;
    }
    let sent = Live::get(&live.sent);
    let acked = Live::get(&live.done);
    let negative = Live::get(&live.failed);
    if t.received == 0 && acked > 0 {
        bail!(
            "{name} side: nothing arrived on {} (topic {}){}",
            side.sub_addr,
            side.topic,
            if side.broker {
                ""
            } else {
                ": is the server's mqtt block publishing to this broker?"
            }
        );
    }
    let go = shared.go_nanos.load(Ordering::Relaxed);
    let span = shared
        .last_delivery_nanos
        .load(Ordering::Relaxed)
        .saturating_sub(go) as f64
        / 1e9;
    let per_s = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let secs = p.duration.as_secs_f64();
    let cpu_used = |i: usize| match (cpu_before[i], cpu_after[i]) {
        // Clock ticks (1/100 s): two decimals are all there is.
        (Some(a), Some(b)) => Some(((b - a) * 100.0).round() / 100.0),
        _ => None,
    };
    let lost = acked.saturating_sub(t.received);
    let first = shared.first.lock().unwrap().clone();
    let r = json!({
        "side": name,
        "path": if side.broker {
            "MQTT over websocket, QoS 1 -> broker -> subscriber".to_string()
        } else {
            format!("ws1 -> vscp-websocksrv -> MQTT bridge{} -> broker -> subscriber",
                p.bridge_qos.map(|q| format!(" (QoS {q})")).unwrap_or_default())
        },
        "target": if side.broker { side.ws.map(|a| a.to_string()) } else { Some(p.addr.to_string()) },
        "subscriber": format!("{} {}", side.sub_addr, side.topic),
        "clients": p.clients,
        "events_sent": sent,
        "acked": acked,
        "negative_acks": negative,
        "unexpected_acks": shared.unexpected_acks.load(Ordering::Relaxed),
        "unanswered": sent.saturating_sub(acked + negative),
        "received_at_subscriber": t.received,
        "lost": lost,
        "loss_ratio": if acked > 0 { lost as f64 / acked as f64 } else { 0.0 },
        "unparsed": t.unparsed,
        "sent_per_s": sent as f64 / secs,
        "acked_per_s": acked as f64 / secs,
        "received_per_s": per_s(t.received, span),
        "receive_span_s": span,
        "payload_bytes_mean": if t.received > 0 { Some(t.received_bytes as f64 / t.received as f64) } else { None },
        "payload_example": first.as_ref().map(|f| String::from_utf8_lossy(&f.1).into_owned()),
        "payload_topic": first.as_ref().map(|f| f.0.clone()),
        "latency_ms": t.latency.json(),
        "ack_latency_ms": t.ack_latency.json(),
        "cpu_s": {
            "server": cpu_used(0),
            "broker": cpu_used(1),
            "generator": cpu_used(2),
        },
        "server_metrics": metrics,
        "errors": errors,
    });
    Ok((r, first))
}

async fn per_thread(
    me: usize,
    p: Params,
    side: Side,
    live: Arc<Live>,
    shared: Arc<Shared>,
    clock: Clock,
) -> Result<ThreadOut> {
    let threads = p.threads.max(1);
    let out = Rc::new(RefCell::new(ThreadOut::default()));
    let target = match (&side.ws, &side.payload) {
        (Some(ws), Some(payload)) if side.broker => Target::Broker {
            ws: *ws,
            payload: Rc::new(payload.clone()),
        },
        _ => Target::Server,
    };
    let dest = match &target {
        Target::Server => p.addr,
        Target::Broker { ws, .. } => *ws,
    };
    let sources = Rc::new(Sources::new(&dest, p.sources));
    let mut tasks = Vec::new();
    for k in (me..p.clients.max(1)).step_by(threads) {
        let (p, live, shared, out, sources, target) = (
            p.clone(),
            live.clone(),
            shared.clone(),
            out.clone(),
            sources.clone(),
            target.clone(),
        );
        tasks.push(glommio::spawn_local(async move {
            let mut conn = match connect(&target, &p, &sources, k).await {
                Ok(c) => c,
                Err(e) => {
                    shared.error(format!("{} client {k}: {e:#}", target.side()));
                    shared.line.abort();
                    return;
                }
            };
            Live::add(&live.started, 1);
            shared.line.arrive();
            if shared.line.wait().await {
                if let Err(e) = publish(&mut conn, &p, &live, &shared, &out, clock).await {
                    shared.error(format!("{} client {k}: {e:#}", target.side()));
                }
                conn.close().await;
            }
            shared.clients_done.fetch_add(1, Ordering::AcqRel);
        }));
    }
    if me == 0 {
        coordinate(&p, &side, live, shared, &out, clock).await;
    }
    for t in tasks {
        t.await;
    }
    Ok(Rc::try_unwrap(out)
        .map_err(|_| anyhow::anyhow!("client tasks still running"))?
        .into_inner())
}

/// Thread 0: connects the subscriber, opens the start line once every client is connected,
/// and after the clients are done waits for the deliveries to stop arriving.
async fn coordinate(
    p: &Params,
    side: &Side,
    live: Arc<Live>,
    shared: Arc<Shared>,
    out: &Rc<RefCell<ThreadOut>>,
    clock: Clock,
) {
    let sub = async {
        let stream = tcp_connect(None, side.sub_addr).await?;
        let fd = stream.as_raw_fd();
        let mut sub = MqttClient::connect_tcp(stream, "vscp-loadtest-ingest")
            .await
            .with_context(|| format!("MQTT subscriber on {}", side.sub_addr))?;
        sub.subscribe(&side.topic).await?;
        anyhow::Ok((sub, fd))
    };
    let (mut sub, sub_fd) = match within(Duration::from_secs(10), sub).await {
        Ok(s) => s,
        Err(e) => {
            shared.error(format!("subscriber: {e:#}"));
            shared.line.abort();
            return;
        }
    };
    let receiver = {
        let (out, shared, live) = (out.clone(), shared.clone(), live.clone());
        glommio::spawn_local(async move {
            while let Ok(Some((topic, payload))) = sub.next_publish().await {
                let mut o = out.borrow_mut();
                match bridged_nanos(&payload) {
                    Some(s) => {
                        let now = clock.now_nanos();
                        o.latency.record_micros(now.saturating_sub(s) / 1000);
                        o.received += 1;
                        o.received_bytes += payload.len() as u64;
                        shared.last_delivery_nanos.fetch_max(now, Ordering::Relaxed);
                        Live::add(&live.received, 1);
                        if o.received == 1 {
                            *shared.first.lock().unwrap() = Some((topic, payload.to_vec()));
                        }
                    }
                    None => o.unparsed += 1,
                }
                if shared.stop.load(Ordering::Acquire) {
                    break;
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while shared.line.ready() < p.clients.max(1) && !shared.line.aborted() {
        if Instant::now() > deadline {
            shared.error("clients not connected within 60 s".into());
            shared.line.abort();
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    if !shared.line.aborted() {
        // Give the subscription and the bridge's connection a moment before the first event.
        glommio::timer::sleep(Duration::from_millis(300)).await;
        shared.go_nanos.store(clock.now_nanos(), Ordering::Relaxed);
        shared.line.open();
        while shared.clients_done.load(Ordering::Acquire) < p.clients.max(1) as u64 {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        live.drain(|| Live::get(&live.done), DRAIN_IDLE, DRAIN_MAX)
            .await;
    }
    shared.stop.store(true, Ordering::Release);
    // SAFETY: the subscriber's socket is still open (owned by the receiver task); shutting it
    // down wakes the receiver so it ends.
    unsafe { libc::shutdown(sub_fd, libc::SHUT_RDWR) };
    receiver.await;
}

/// One publishing client and what it has in flight (send times, for the ack latency).
enum Conn {
    Ws1 {
        ws: Box<Ws>,
        in_flight: VecDeque<u64>,
    },
    Mqtt {
        client: Box<MqttClient>,
        in_flight: Inflight<u64>,
        payload: Rc<Payload>,
        buf: Vec<u8>,
    },
}

enum Ack {
    /// Accepted; the send time of the event it answers (ws1 acks come in order).
    Positive(Option<u64>),
    Negative,
    /// A PUBACK for no packet in flight.
    Unexpected,
    /// Anything else the connection delivered.
    Other,
    Closed,
}

async fn connect(target: &Target, p: &Params, sources: &Sources, k: usize) -> Result<Conn> {
    Ok(match target {
        Target::Server => {
            let s = tcp_connect(sources.pick(), p.addr).await?;
            let config = ws_config(WS_BUFFER).write_buffer_size(WS_BUFFER);
            let ws = open_session_with(
                s,
                &p.addr.to_string(),
                Dialect::Ws1,
                &p.login,
                config,
                false,
            )
            .await
            .context("websocket client")?;
            Conn::Ws1 {
                ws: Box::new(ws),
                in_flight: VecDeque::new(),
            }
        }
        Target::Broker { ws, payload } => {
            let s = tcp_connect(sources.pick(), *ws).await?;
            let c = MqttClient::connect_ws(s, &ws.to_string(), "/mqtt", &format!("lt-ingest-{k}"))
                .await?;
            Conn::Mqtt {
                client: Box::new(c),
                in_flight: Inflight::new(if p.rate == 0 {
                    p.window
                } else {
                    PACED_MAX_IN_FLIGHT
                }),
                payload: payload.clone(),
                buf: Vec::new(),
            }
        }
    })
}

impl Conn {
    fn in_flight(&self) -> usize {
        match self {
            Conn::Ws1 { in_flight, .. } => in_flight.len(),
            Conn::Mqtt { in_flight, .. } => in_flight.len(),
        }
    }

    /// Queues one event sent at `now` (written at the latest by `flush`).
    async fn send(&mut self, now: u64, data_len: usize) -> Result<()> {
        match self {
            Conn::Ws1 { ws, in_flight } => {
                ws.feed(Message::text(ws1_event(now, data_len))).await?;
                in_flight.push_back(now);
            }
            Conn::Mqtt {
                client,
                in_flight,
                payload,
                buf,
            } => {
                let pkid = in_flight
                    .take(now)
                    .context("no MQTT packet id free (window full)")?;
                payload.render(now, data_len, buf);
                client.publish_qos1(DIRECT_TOPIC, buf, pkid).await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        match self {
            Conn::Ws1 { ws, .. } => ws.flush().await?,
            Conn::Mqtt { client, .. } => client.flush().await?,
        }
        Ok(())
    }

    /// The next answer from the far side. Cancel-safe.
    async fn next_ack(&mut self) -> Result<Ack> {
        match self {
            Conn::Ws1 { ws, in_flight } => Ok(match ws.next().await {
                Some(Ok(Message::Text(t))) if t.starts_with("+;EVENT") => {
                    Ack::Positive(in_flight.pop_front())
                }
                Some(Ok(Message::Text(t))) if t.starts_with("-;") => {
                    in_flight.pop_front();
                    Ack::Negative
                }
                Some(Ok(Message::Close(_))) | None => Ack::Closed,
                Some(Ok(_)) => Ack::Other,
                Some(Err(e)) => return Err(e).context("websocket read"),
            }),
            Conn::Mqtt {
                client, in_flight, ..
            } => Ok(match client.next_puback().await? {
                Some(pkid) => match in_flight.ack(pkid) {
                    Some(sent) => Ack::Positive(Some(sent)),
                    None => Ack::Unexpected,
                },
                None => Ack::Closed,
            }),
        }
    }

    /// Ends the connection politely (errors ignored: the run is over).
    async fn close(self) {
        match self {
            Conn::Ws1 { mut ws, .. } => {
                let _ = async_tungstenite::WebSocketStream::close(&mut *ws, None).await;
            }
            Conn::Mqtt { client, .. } => {
                let _ = client.disconnect().await;
            }
        }
    }
}

/// Counts one answer; an error when the far side closed the connection.
fn record(
    ack: Ack,
    live: &Live,
    shared: &Shared,
    out: &RefCell<ThreadOut>,
    clock: Clock,
) -> Result<()> {
    match ack {
        Ack::Positive(sent) => {
            Live::add(&live.done, 1);
            if let Some(s) = sent {
                let us = clock.now_nanos().saturating_sub(s) / 1000;
                out.borrow_mut().ack_latency.record_micros(us);
            }
        }
        Ack::Negative => Live::add(&live.failed, 1),
        Ack::Unexpected => {
            shared.unexpected_acks.fetch_add(1, Ordering::Relaxed);
        }
        Ack::Other => {}
        Ack::Closed => bail!("connection closed by the far side"),
    }
    Ok(())
}

/// Publishes for the run's duration, windowed (`rate` 0) or paced, then waits for the acks of
/// the last events (closing with acks unread would reset the connection, and the far side may
/// then drop events it had not handled yet).
async fn publish(
    conn: &mut Conn,
    p: &Params,
    live: &Live,
    shared: &Shared,
    out: &RefCell<ThreadOut>,
    clock: Clock,
) -> Result<()> {
    let window = if p.rate == 0 {
        p.window.max(1)
    } else {
        PACED_MAX_IN_FLIGHT
    };
    let per_client = p.rate as f64 / p.clients.max(1) as f64;
    let start = Instant::now();
    let mut deadline = pin!(glommio::timer::sleep(p.duration));
    let mut sent = 0u64;
    while start.elapsed() < p.duration {
        let due = if p.rate == 0 {
            u64::MAX
        } else {
            (start.elapsed().as_secs_f64() * per_client) as u64
        };
        let mut n = 0;
        while sent < due && conn.in_flight() < window {
            conn.send(clock.now_nanos(), p.data_len).await?;
            sent += 1;
            n += 1;
        }
        if n > 0 {
            Live::add(&live.sent, n);
            conn.flush().await?;
        }
        // Wait for an answer, the end (windowed), or the next pacing tick.
        let ack = if p.rate == 0 {
            match futures::future::select(pin!(conn.next_ack()), deadline.as_mut()).await {
                Either::Left((a, _)) => a?,
                Either::Right(_) => break,
            }
        } else {
            let tick = glommio::timer::sleep(Duration::from_millis(1));
            match futures::future::select(pin!(conn.next_ack()), pin!(tick)).await {
                Either::Left((a, _)) => a?,
                Either::Right(_) => continue,
            }
        };
        record(ack, live, shared, out, clock)?;
        // Take every answer already there before sending again, so the next write carries a
        // batch instead of one event.
        for _ in 0..window {
            match conn.next_ack().now_or_never() {
                Some(a) => record(a?, live, shared, out, clock)?,
                None => break,
            }
        }
    }
    let rest = async {
        while conn.in_flight() > 0 {
            record(conn.next_ack().await?, live, shared, out, clock)?;
        }
        anyhow::Ok(())
    };
    within(ACK_WAIT, rest)
        .await
        .context("waiting for the last acks")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_template_round_trips_the_send_time() {
        let bridged = Payload::bridge_json();
        let mut buf = Vec::new();
        bridged.render(0x0102_0304_0506_0708, 12, &mut buf);
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(
            text.contains("\"vscpData\": [1,2,3,4,5,6,7,8,0,0,0,0],"),
            "{text}"
        );
        assert_eq!(bridged_nanos(&buf), Some(0x0102_0304_0506_0708));
        // A template taken from a payload renders that payload again.
        let again = Payload::from_bridged(&buf).unwrap();
        assert_eq!(again, bridged);
        let mut buf2 = Vec::new();
        again.render(0x0102_0304_0506_0708, 12, &mut buf2);
        assert_eq!(buf, buf2);
    }

    #[test]
    fn string_template_keeps_hex_or_decimal() {
        let hex = b"0,20,3,0,2026-01-01T00:00:00Z,0,FF:FF:FF:FF:FF:FF:FF:FE:00:00:00:00:00:00:00:01,0x00,0x00,0x00,0x00,0x00,0x00,0x01,0x02";
        let t = Payload::from_bridged(hex).unwrap();
        assert!(t.hex);
        let mut buf = Vec::new();
        t.render(0x0102, 8, &mut buf);
        assert_eq!(&buf[..], &hex[..]);
        assert_eq!(bridged_nanos(&buf), Some(0x0102));
        let dec = b"0,20,3,0,,0,-,0,0,0,0,0,0,1,2";
        let t = Payload::from_bridged(dec).unwrap();
        assert!(!t.hex);
        t.render(0x0102, 8, &mut buf);
        assert_eq!(&buf[..], &dec[..]);
        assert_eq!(Payload::from_bridged(b"not,a,payload"), None);
        assert_eq!(Payload::from_bridged(b"{\"vscpClass\":1}"), None);
    }
}
