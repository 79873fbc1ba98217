//! `vscp-loadtest`: end-to-end load against a running vscp-websocksrv, over real sockets.
//!
//! Scenario `fanout`: S subscribers log in and OPEN, P publishers send events at an aggregate
//! rate R for a duration; every event carries its send time (nanoseconds since the run started)
//! in its data bytes, so each subscriber measures end-to-end latency itself. Reported: events
//! sent, deliveries expected and received, losses, delivered events per second and latency
//! percentiles. `--json` prints the same as one JSON object.
//!
//! Clients are blocking tungstenite sockets on threads: simple and exact for tens to a few
//! hundred clients. Scenarios with tens of thousands of sessions need an async generator.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

#[derive(Parser, Debug)]
#[command(about = "Load generator for vscp-websocksrv")]
struct Cli {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:8884")]
    addr: String,
    /// AES key (32 hex digits) used to log in; the default is the sample key in deploy/.
    #[arg(long, default_value = "2DBB079A38985AF00EBEEFE22F9FFA0E")]
    key: String,
    #[arg(long, default_value = "admin")]
    user: String,
    #[arg(long, default_value = "secret")]
    password: String,
    /// Print a machine-readable JSON summary instead of the human one.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// P publishers, S subscribers, aggregate rate R events/s.
    Fanout {
        #[arg(long, default_value_t = 1)]
        publishers: usize,
        #[arg(long, default_value_t = 10)]
        subscribers: usize,
        /// Aggregate publish rate, events per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Seconds to publish for.
        #[arg(long, default_value_t = 5)]
        duration: u64,
        /// Dialect of the subscribers: ws1 or ws2.
        #[arg(long, default_value = "ws1")]
        dialect: String,
    },
}

struct Login {
    key: [u8; 16],
    user: String,
    password: String,
}

fn connect(addr: &str, path: &str, login: &Login) -> Result<WebSocket<TcpStream>> {
    let stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (mut ws, _) = tungstenite::client::client(format!("ws://{addr}{path}"), stream)
        .context("websocket upgrade")?;
    let greeting = read_text(&mut ws)?;
    let ws2 = path.ends_with("ws2");
    let sid = if ws2 {
        let v: serde_json::Value = serde_json::from_str(&greeting)?;
        v["args"][1].as_str().unwrap_or_default().to_string()
    } else {
        greeting
            .strip_prefix("+;AUTH0;")
            .unwrap_or_default()
            .to_string()
    };
    let iv = vscp_proto::auth::hex_decode_16(&sid).context("greeting carries no SID")?;
    let crypto =
        vscp_proto::auth::encrypt_credentials(&login.key, &iv, &login.user, &login.password);
    let (auth, open) = if ws2 {
        (
            format!(
                r#"{{"type":"CMD","command":"AUTH","args":{{"iv":"{sid}","crypto":"{crypto}"}}}}"#
            ),
            r#"{"type":"CMD","command":"OPEN","args":null}"#.to_string(),
        )
    } else {
        (format!("C;AUTH;{sid};{crypto}"), "C;OPEN".to_string())
    };
    for (cmd, ok) in [(auth, ["+;AUTH1", "\"+\""]), (open, ["+;OPEN", "\"+\""])] {
        ws.send(Message::text(cmd))?;
        let r = read_text(&mut ws)?;
        if !(r.starts_with(ok[0]) || r.contains(ok[1])) {
            bail!("login failed: {r}");
        }
    }
    Ok(ws)
}

fn read_text(ws: &mut WebSocket<TcpStream>) -> Result<String> {
    loop {
        match ws.read()? {
            Message::Text(t) => return Ok(t.to_string()),
            Message::Close(_) => bail!("closed by the server"),
            _ => continue,
        }
    }
}

/// The send time is the first 8 data bytes (big-endian nanoseconds since the run started).
fn sent_nanos(line: &str) -> Option<u64> {
    let data: Vec<u8> = if let Some(rest) = line.strip_prefix("E;") {
        rest.split(',')
            .skip(7)
            .take(8)
            .map(|b| u8::from_str_radix(b.trim_start_matches("0x"), 16).unwrap_or(0))
            .collect()
    } else {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        v["event"]["vscpData"]
            .as_array()?
            .iter()
            .take(8)
            .map(|x| x.as_u64().unwrap_or(0) as u8)
            .collect()
    };
    Some(u64::from_be_bytes(data.try_into().ok()?))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1e6
}

fn fanout(
    cli: &Cli,
    login: Arc<Login>,
    p: usize,
    s: usize,
    rate: u64,
    secs: u64,
    dialect: &str,
) -> Result<serde_json::Value> {
    let path = if dialect == "ws2" { "/ws2" } else { "/ws1" };
    let start = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(s + p + 1));
    let mut subs = Vec::new();
    for _ in 0..s {
        let mut ws = connect(&cli.addr, path, &login)?;
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))?;
        let (lat, rx, done, ready) = (
            latencies.clone(),
            received.clone(),
            done.clone(),
            ready.clone(),
        );
        subs.push(std::thread::spawn(move || {
            ready.wait();
            let mut mine = Vec::new();
            while !done.load(Ordering::Acquire) {
                match ws.read() {
                    Ok(Message::Text(t)) => {
                        if let Some(sent) = sent_nanos(&t) {
                            let now = start.elapsed().as_nanos() as u64;
                            mine.push(now.saturating_sub(sent));
                            rx.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            lat.lock().map(|mut l| l.extend(mine)).ok();
        }));
    }
    let sent = Arc::new(AtomicU64::new(0));
    let mut pubs = Vec::new();
    let per_pub = (rate / p as u64).max(1);
    for _ in 0..p {
        let mut ws = connect(&cli.addr, "/ws1", &login)?;
        let (sent, ready) = (sent.clone(), ready.clone());
        pubs.push(std::thread::spawn(move || -> Result<()> {
            ready.wait();
            let interval = Duration::from_nanos(1_000_000_000 / per_pub);
            let t0 = Instant::now();
            let mut n = 0u64;
            let mut acks_due = 0u64;
            while t0.elapsed() < Duration::from_secs(secs) {
                let due = t0 + interval * n as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    // Ahead of schedule: flush what is buffered before sleeping, so a low rate
                    // is not measured with our own batching delay in it.
                    ws.flush()?;
                    std::thread::sleep(wait);
                }
                let ns = start.elapsed().as_nanos() as u64;
                let data: Vec<String> = ns
                    .to_be_bytes()
                    .iter()
                    .map(|b| format!("0x{b:02X}"))
                    .collect();
                ws.write(Message::text(format!("E;0,20,3,0,,0,-,{}", data.join(","))))?;
                n += 1;
                acks_due += 1;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            ws.flush()?;
            // Collect the acks so the publisher's socket never backs up.
            while acks_due > 0 {
                let r = read_text(&mut ws)?;
                if r.starts_with("+;EVENT") || r.starts_with('-') {
                    acks_due -= 1;
                }
            }
            Ok(())
        }));
    }
    let progress = std::thread::spawn({
        let (sent, received, done) = (sent.clone(), received.clone(), done.clone());
        move || {
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_secs(1));
                eprintln!(
                    "  t={:>4.1}s sent={} delivered={}",
                    start.elapsed().as_secs_f64(),
                    sent.load(Ordering::Relaxed),
                    received.load(Ordering::Relaxed)
                );
            }
        }
    });
    ready.wait();
    let t_pub = Instant::now();
    for h in pubs {
        h.join()
            .map_err(|_| anyhow::anyhow!("publisher panicked"))??;
    }
    let expected = sent.load(Ordering::Relaxed) * s as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = t_pub.elapsed().as_secs_f64();
    done.store(true, Ordering::Release);
    for h in subs {
        let _ = h.join();
    }
    let _ = progress.join();
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_unstable();
    let got = received.load(Ordering::Relaxed);
    Ok(serde_json::json!({
        "scenario": "fanout",
        "publishers": p, "subscribers": s, "target_rate": rate, "duration_s": secs, "dialect": dialect,
        "events_sent": sent.load(Ordering::Relaxed),
        "deliveries_expected": expected,
        "deliveries_received": got,
        "lost": expected.saturating_sub(got),
        "delivered_per_s": got as f64 / elapsed,
        "latency_ms": {"p50": percentile(&lat, 0.5), "p90": percentile(&lat, 0.9), "p99": percentile(&lat, 0.99), "max": percentile(&lat, 1.0)},
    }))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let key = vscp_proto::auth::hex_decode_16(&cli.key).context("--key must be 32 hex digits")?;
    let login = Arc::new(Login {
        key,
        user: cli.user.clone(),
        password: cli.password.clone(),
    });
    let summary = match &cli.scenario {
        Scenario::Fanout {
            publishers,
            subscribers,
            rate,
            duration,
            dialect,
        } => fanout(
            &cli,
            login,
            (*publishers).max(1),
            *subscribers,
            *rate,
            *duration,
            dialect,
        )?,
    };
    if cli.json {
        println!("{summary}");
    } else {
        println!(
            "fanout: {} publishers -> {} subscribers ({}), target {} ev/s for {} s\n  sent {} events, {} of {} deliveries received, {} lost\n  delivered {:.0} events/s\n  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
            summary["publishers"], summary["subscribers"], summary["dialect"].as_str().unwrap_or(""),
            summary["target_rate"], summary["duration_s"], summary["events_sent"],
            summary["deliveries_received"], summary["deliveries_expected"], summary["lost"],
            summary["delivered_per_s"].as_f64().unwrap_or(0.0),
            summary["latency_ms"]["p50"].as_f64().unwrap_or(0.0), summary["latency_ms"]["p90"].as_f64().unwrap_or(0.0),
            summary["latency_ms"]["p99"].as_f64().unwrap_or(0.0), summary["latency_ms"]["max"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(())
}
