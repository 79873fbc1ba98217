//! Scenario (d) ingest: websocket clients publish events to vscp-websocksrv, whose MQTT bridge
//! publishes them to a broker; one MQTT subscriber on that broker measures what arrives (count,
//! losses, end-to-end latency from the send time each event carries).
//!
//! The server must run with an `mqtt` block publishing to the broker given here in `json` or
//! `string` format (loadtest/run-all.sh writes such a configuration).

use crate::client::{open_session, sent_nanos, tcp_connect, ws1_event, Clock, Dialect, Login};
use crate::mqtt::MqttClient;
use crate::report::{Latency, Live, Progress};
use crate::rt::run_on_threads;
use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::Message;

const DRAIN_IDLE: Duration = Duration::from_secs(3);
const DRAIN_MAX: Duration = Duration::from_secs(20);

#[derive(Clone)]
pub struct Params {
    pub addr: SocketAddr,
    pub login: Login,
    pub broker: SocketAddr,
    pub topic: String,
    pub clients: usize,
    pub rate: u64,
    pub duration: Duration,
    pub data_len: usize,
    pub quiet: bool,
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
    let live = Arc::new(Live::default());
    let progress = Progress::start("ingest".into(), live.clone(), p.quiet);
    let clock = Clock(Instant::now());
    let out = {
        let (p, live) = (p.clone(), live.clone());
        run_on_threads(1, move |_| run_inner(p.clone(), live.clone(), clock))?
    };
    drop(progress);
    let (latency, received, unparsed, span) = out.into_iter().next().expect("one thread");
    let sent = Live::get(&live.sent);
    Ok(json!({
        "scenario": "ingest",
        "clients": p.clients,
        "target_rate": p.rate,
        "duration_s": p.duration.as_secs_f64(),
        "broker": p.broker.to_string(),
        "topic": p.topic,
        "events_sent": sent,
        "received_at_subscriber": received,
        "lost": sent.saturating_sub(received),
        "unparsed": unparsed,
        "delivered_per_s": if span > 0.0 { received as f64 / span } else { 0.0 },
        "latency_ms": latency.json(),
    }))
}

async fn run_inner(p: Params, live: Arc<Live>, clock: Clock) -> Result<(Latency, u64, u64, f64)> {
    let stream = tcp_connect(None, p.broker)
        .await
        .with_context(|| format!("broker {}", p.broker))?;
    let sub_fd = stream.as_raw_fd();
    let mut sub = MqttClient::connect_tcp(stream, "vscp-loadtest-ingest")
        .await
        .with_context(|| format!("MQTT subscriber on {}", p.broker))?;
    sub.subscribe(&p.topic).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (live, stop) = (live.clone(), stop.clone());
        glommio::spawn_local(async move {
            let mut lat = Latency::default();
            let (mut received, mut unparsed, mut last) = (0u64, 0u64, 0u64);
            while let Ok(Some((_t, payload))) = sub.next_publish().await {
                match bridged_nanos(&payload) {
                    Some(s) => {
                        let now = clock.now_nanos();
                        lat.record_micros(now.saturating_sub(s) / 1000);
                        received += 1;
                        last = now;
                        Live::add(&live.received, 1);
                    }
                    None => unparsed += 1,
                }
                if stop.load(Ordering::Acquire) {
                    break;
                }
            }
            (lat, received, unparsed, last)
        })
    };
    let mut clients = Vec::new();
    for _ in 0..p.clients.max(1) {
        let s = tcp_connect(None, p.addr).await?;
        let ws = open_session(s, &p.addr.to_string(), Dialect::Ws1, &p.login, 4096, false)
            .await
            .context("websocket client")?;
        clients.push(ws);
    }
    // Give the subscription and the bridge's connection a moment before the first event.
    glommio::timer::sleep(Duration::from_millis(300)).await;
    let go = clock.now_nanos();
    let per_client = p.rate as f64 / clients.len() as f64;
    let mut tasks = Vec::new();
    for ws in clients {
        let (live, p) = (live.clone(), p.clone());
        tasks.push(glommio::spawn_local(async move {
            let (mut tx, mut rx) = ws.split();
            let acks = glommio::spawn_local(async move {
                let mut negative = 0u64;
                while let Some(Ok(m)) = rx.next().await {
                    if let Message::Text(t) = m {
                        negative += t.starts_with("-;") as u64;
                    }
                }
                negative
            });
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < p.duration {
                let due = (start.elapsed().as_secs_f64() * per_client) as u64;
                while sent < due {
                    tx.feed(Message::text(ws1_event(clock.now_nanos(), p.data_len)))
                        .await?;
                    sent += 1;
                    Live::add(&live.sent, 1);
                }
                tx.flush().await?;
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            let _ = tx.close(None).await;
            drop(acks);
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await?;
    }
    live.drain(|| Live::get(&live.sent), DRAIN_IDLE, DRAIN_MAX)
        .await;
    stop.store(true, Ordering::Release);
    // SAFETY: the subscriber's socket is still open (owned by the receiver task); shutting it
    // down wakes the receiver so it can return its counts.
    unsafe { libc::shutdown(sub_fd, libc::SHUT_RDWR) };
    let (lat, received, unparsed, last) = receiver.await;
    if received == 0 && Live::get(&live.sent) > 0 {
        bail!(
            "nothing arrived on {} (topic {}): is the server's mqtt block publishing to this broker?",
            p.broker,
            p.topic
        );
    }
    let span = last.saturating_sub(go) as f64 / 1e9;
    Ok((lat, received, unparsed, span))
}
