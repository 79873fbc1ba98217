//! `vscp-loadtest`: end-to-end load against a running vscp-websocksrv, over real sockets, from a
//! separate process. Scenarios: `storm` (connect storm), `idle` (idle hold with the server's
//! memory per session), `fanout` (publishers to subscribers, optionally side by side with
//! Mosquitto's websocket listener) and `ingest` (through the MQTT bridge to a broker).
//!
//! Clients run on glommio executors (`--threads`), a few KiB each, so one process holds tens of
//! thousands. Progress goes to stderr once a second; the summary goes to stdout, as JSON with
//! `--json`.

mod client;
mod fanout;
mod ingest;
mod mosquitto;
mod mqtt;
mod report;
mod rt;
mod storm;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use client::{Dialect, Login};
use serde_json::{json, Value};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "Load generator for vscp-websocksrv", version)]
struct Cli {
    /// Server address (host:port).
    #[arg(long, default_value = "127.0.0.1:8884", global = true)]
    addr: String,
    /// AES key (32 hex digits) used to log in; the default is the sample key in deploy/.
    #[arg(
        long,
        default_value = "2DBB079A38985AF00EBEEFE22F9FFA0E",
        global = true
    )]
    key: String,
    #[arg(long, default_value = "admin", global = true)]
    user: String,
    #[arg(long, default_value = "secret", global = true)]
    password: String,
    /// Generator executors (threads). The server and the generator share the machine.
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
    /// Spread client source addresses over 127.0.0.1..=127.0.0.N (loopback targets only).
    #[arg(long, default_value_t = 8, global = true)]
    sources: usize,
    /// Print one machine-readable JSON object instead of the human summary.
    #[arg(long, global = true)]
    json: bool,
    /// Also write the JSON summary to this file (the human one still goes to stdout).
    #[arg(long, global = true)]
    json_out: Option<std::path::PathBuf>,
    /// No progress lines on stderr.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Connect storm: N clients connect, log in and OPEN at a target rate, then close.
    Storm {
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
        /// Session starts per second (0 = as fast as --concurrency allows).
        #[arg(long, default_value_t = 5_000)]
        rate: u64,
        /// Logins in progress at once.
        #[arg(long, default_value_t = 1_000)]
        concurrency: usize,
        #[arg(long, default_value = "ws1")]
        dialect: String,
    },
    /// Idle hold: open N sessions, keep them, report the server's memory per session.
    Idle {
        #[arg(long, default_value_t = 19_000)]
        sessions: usize,
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        #[arg(long, default_value_t = 500)]
        concurrency: usize,
        /// The server's process id, to read its resident memory from /proc.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Seconds to hold the sessions after they are all open.
        #[arg(long, default_value_t = 10)]
        hold: u64,
        /// Seconds to let the server settle before its memory is read.
        #[arg(long, default_value_t = 3)]
        settle: u64,
        #[arg(long, default_value = "ws1")]
        dialect: String,
    },
    /// Fan-out: P publishers, S subscribers, aggregate rate R; optionally against Mosquitto too.
    Fanout {
        #[arg(long, default_value_t = 2)]
        publishers: usize,
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
        /// Aggregate publish rate in events/s; 0 = as fast as the sockets take it.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Seconds to publish for.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Dialect of the subscribers (publishers use ws1).
        #[arg(long, default_value = "ws1")]
        dialect: String,
        /// VSCP data bytes per event (the first 8 carry the send time).
        #[arg(long, default_value_t = 8)]
        data_len: usize,
        /// vscp, mosquitto, or both (same generator, sizes and counts; prints the ratio).
        #[arg(long, default_value = "vscp")]
        against: String,
        /// Use this running Mosquitto websocket listener instead of starting one.
        #[arg(long)]
        mosquitto_addr: Option<String>,
        /// After each run at --rate 0, run again at half the measured delivered event rate.
        #[arg(long)]
        half_rate: bool,
    },
    /// Ingest: clients publish through the server's MQTT bridge; a subscriber on the broker counts.
    Ingest {
        /// The broker the server's bridge publishes to (plain MQTT).
        #[arg(long, default_value = "127.0.0.1:1883")]
        broker: String,
        /// Topic filter for the measuring subscriber.
        #[arg(long, default_value = "vscp/#")]
        topic: String,
        #[arg(long, default_value_t = 10)]
        clients: usize,
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 8)]
        data_len: usize,
    },
}

fn resolve(s: &str) -> Result<SocketAddr> {
    s.to_socket_addrs()
        .with_context(|| format!("cannot resolve {s}"))?
        .next()
        .with_context(|| format!("{s}: no address"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let key = vscp_proto::auth::hex_decode_16(&cli.key).context("--key must be 32 hex digits")?;
    let login = Login {
        key,
        user: cli.user.clone(),
        password: cli.password.clone(),
    };
    let nofile = rt::raise_nofile();
    let addr = resolve(&cli.addr)?;
    let summary = match &cli.scenario {
        Scenario::Storm {
            clients,
            rate,
            concurrency,
            dialect,
        } => {
            check_fds(*clients, nofile)?;
            storm::run(storm::Params {
                addr,
                login,
                dialect: Dialect::parse(dialect)?,
                clients: *clients,
                rate: *rate,
                concurrency: *concurrency,
                threads: cli.threads,
                sources: cli.sources,
                hold: None,
                quiet: cli.quiet,
            })?
        }
        Scenario::Idle {
            sessions,
            rate,
            concurrency,
            server_pid,
            hold,
            settle,
            dialect,
        } => {
            check_fds(*sessions, nofile)?;
            storm::run(storm::Params {
                addr,
                login,
                dialect: Dialect::parse(dialect)?,
                clients: *sessions,
                rate: *rate,
                concurrency: *concurrency,
                threads: cli.threads,
                sources: cli.sources,
                hold: Some(storm::Hold {
                    server_pid: *server_pid,
                    seconds: *hold,
                    settle: Duration::from_secs(*settle),
                }),
                quiet: cli.quiet,
            })?
        }
        Scenario::Fanout {
            publishers,
            subscribers,
            rate,
            duration,
            dialect,
            data_len,
            against,
            mosquitto_addr,
            half_rate,
        } => {
            check_fds(publishers + subscribers, nofile)?;
            let base = fanout::Params {
                target: fanout::Target::Vscp {
                    addr,
                    login,
                    dialect: Dialect::parse(dialect)?,
                },
                publishers: (*publishers).max(1),
                subscribers: *subscribers,
                rate: *rate,
                duration: Duration::from_secs(*duration),
                data_len: (*data_len).max(8),
                payload_len: 0,
                threads: cli.threads,
                sources: cli.sources,
                quiet: cli.quiet,
            };
            let (vscp, broker) = match against.as_str() {
                "vscp" => (true, false),
                "mosquitto" => (false, true),
                "both" => (true, true),
                other => bail!("--against must be vscp, mosquitto or both, not {other:?}"),
            };
            run_fanouts(base, vscp, broker, mosquitto_addr.as_deref(), *half_rate)?
        }
        Scenario::Ingest {
            broker,
            topic,
            clients,
            rate,
            duration,
            data_len,
        } => ingest::run(ingest::Params {
            addr,
            login,
            broker: resolve(broker)?,
            topic: topic.clone(),
            clients: *clients,
            rate: *rate,
            duration: Duration::from_secs(*duration),
            data_len: (*data_len).max(8),
            quiet: cli.quiet,
        })?,
    };
    if let Some(path) = &cli.json_out {
        std::fs::write(path, format!("{summary}\n"))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if cli.json {
        println!("{summary}");
    } else {
        print_human(&summary);
    }
    Ok(())
}

/// Each client is a descriptor; better a clear error now than EMFILE half way through.
fn check_fds(clients: usize, nofile: u64) -> Result<()> {
    if clients as u64 + 64 > nofile {
        bail!(
            "{clients} clients need more than this process's open-file limit ({nofile}); \
             lower the count or raise the hard limit (ulimit -Hn)"
        );
    }
    Ok(())
}

/// The fan-out runs in order: vscp-websocksrv, then the broker with the same message size the
/// VSCP subscribers received; with `half_rate`, each target again at half its delivered rate.
fn run_fanouts(
    base: fanout::Params,
    vscp: bool,
    broker: bool,
    broker_addr: Option<&str>,
    half_rate: bool,
) -> Result<Value> {
    let mut runs = Vec::new();
    let mut msg_bytes = 0u64;
    let run_pair = |p: fanout::Params, runs: &mut Vec<Value>| -> Result<Value> {
        let max = fanout::run(p.clone())?;
        runs.push(max.clone());
        if half_rate && p.rate == 0 {
            let events_per_s =
                max["delivered_per_s"].as_f64().unwrap_or(0.0) / p.subscribers.max(1) as f64;
            let half = ((events_per_s / 2.0) as u64).max(1);
            let mut again = p.clone();
            again.rate = half;
            let r = fanout::run(again)?;
            runs.push(r);
        }
        Ok(max)
    };
    let mut vscp_max = None;
    if vscp {
        let r = run_pair(base.clone(), &mut runs)?;
        msg_bytes = r["message_bytes"].as_u64().unwrap_or(0);
        vscp_max = Some(r);
    }
    let mut broker_max = None;
    if broker {
        // Keep the broker alive for both of its runs; dropped (SIGTERM) at the end.
        let (addr, _guard) = match broker_addr {
            Some(a) => (resolve(a)?, None),
            None => {
                let m = mosquitto::Mosquitto::start()?;
                (SocketAddr::from(([127, 0, 0, 1], m.ws_port)), Some(m))
            }
        };
        let mut p = base.clone();
        p.target = fanout::Target::MqttWs {
            addr,
            path: "/mqtt".into(),
        };
        // Same bytes on the wire per delivery as the VSCP subscribers got (or the ws1 event
        // text's size when the VSCP run was skipped).
        p.payload_len = if msg_bytes > 0 {
            msg_bytes as usize
        } else {
            110 + 5 * base.data_len
        };
        broker_max = Some(run_pair(p, &mut runs)?);
    }
    let ratio = match (&vscp_max, &broker_max) {
        (Some(a), Some(b)) => {
            let (x, y) = (
                a["delivered_per_s"].as_f64().unwrap_or(0.0),
                b["delivered_per_s"].as_f64().unwrap_or(0.0),
            );
            (y > 0.0).then(|| x / y)
        }
        _ => None,
    };
    Ok(json!({
        "scenario": "fanout",
        "runs": runs,
        "ratio_delivered_vscp_over_mosquitto": ratio,
    }))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn lat(v: &Value) -> String {
    format!(
        "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3} ms",
        f(&v["p50"]),
        f(&v["p90"]),
        f(&v["p99"]),
        f(&v["p999"]),
        f(&v["max"])
    )
}

fn print_human(s: &Value) {
    match s["scenario"].as_str().unwrap_or("") {
        "storm" | "idle" => {
            println!(
                "{}: {} {} clients (target {} /s, {} at once): {} open, {} failed {}",
                s["scenario"].as_str().unwrap_or(""),
                s["clients"],
                s["dialect"].as_str().unwrap_or(""),
                s["target_rate"],
                s["concurrency"],
                s["opened"],
                s["failed"],
                if s["errors"].as_object().is_some_and(|o| !o.is_empty()) {
                    s["errors"].to_string()
                } else {
                    String::new()
                }
            );
            println!("  logins/s {:.0}", f(&s["logins_per_s"]));
            println!("  connect->OPEN latency: {}", lat(&s["open_latency_ms"]));
            if s["scenario"] == "idle" {
                let per = s["server_bytes_per_session"].as_f64();
                println!(
                    "  server RSS {:.1} MiB -> {:.1} MiB with {} sessions: {}",
                    f(&s["server_rss_before_bytes"]) / 1048576.0,
                    f(&s["server_rss_after_bytes"]) / 1048576.0,
                    s["sessions_at_measure"],
                    per.map(|b| format!("{:.0} bytes ({:.2} KiB) per session", b, b / 1024.0))
                        .unwrap_or_else(|| "no --server-pid, not measured".into())
                );
                println!(
                    "  after {} s: {} of {} sessions answered NOOP",
                    s["hold_s"], s["alive_after_hold"], s["probed"]
                );
            }
        }
        "fanout" => {
            for r in s["runs"].as_array().into_iter().flatten() {
                println!(
                    "fanout {} ({}): {} publishers -> {} subscribers, rate {} for {} s, {} B/msg",
                    r["target"].as_str().unwrap_or(""),
                    r["dialect"].as_str().unwrap_or(""),
                    r["publishers"],
                    r["subscribers"],
                    if r["target_rate"] == 0 {
                        "max".to_string()
                    } else {
                        format!("{} ev/s", r["target_rate"])
                    },
                    r["duration_s"],
                    r["message_bytes"],
                );
                println!(
                    "  sent {} ({:.0}/s); delivered {} of {} ({} lost, {:.2} %); {:.0} deliveries/s",
                    r["events_sent"],
                    f(&r["sent_per_s"]),
                    r["deliveries_received"],
                    r["deliveries_expected"],
                    r["lost"],
                    100.0 * f(&r["loss_ratio"]),
                    f(&r["delivered_per_s"])
                );
                println!("  latency: {}", lat(&r["latency_ms"]));
            }
            if let Some(x) = s["ratio_delivered_vscp_over_mosquitto"].as_f64() {
                println!("ratio delivered/s vscp-websocksrv : mosquitto = {x:.2}");
            }
        }
        "ingest" => {
            println!(
                "ingest: {} clients, rate {} ev/s for {} s via the bridge to {} ({})",
                s["clients"],
                s["target_rate"],
                s["duration_s"],
                s["broker"].as_str().unwrap_or(""),
                s["topic"].as_str().unwrap_or("")
            );
            println!(
                "  sent {}; received at the subscriber {} ({} lost, {} unparsed); {:.0}/s",
                s["events_sent"],
                s["received_at_subscriber"],
                s["lost"],
                s["unparsed"],
                f(&s["delivered_per_s"])
            );
            println!("  latency: {}", lat(&s["latency_ms"]));
        }
        _ => println!("{s}"),
    }
}
