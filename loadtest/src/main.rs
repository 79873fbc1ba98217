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
mod link;
mod metrics;
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
    /// The VSCP clients speak TLS (the server's `interface` is `wss://`), trusting the CA
    /// certificates in this PEM file; the server's certificate must name 127.0.0.1.
    #[arg(long, global = true)]
    tls_ca: Option<std::path::PathBuf>,
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
        /// What the server's clients speak: ws1 or ws2 (the subscribers; publishers use ws1),
        /// or tcp (the tcp/ip link interface at --tcp-addr: `send` publishers, `rcvloop`
        /// subscribers). A comma list (`ws1,tcp`) runs each in turn, side by side in one report.
        #[arg(long, default_value = "ws1")]
        dialect: String,
        /// The server's tcp/ip link interface (`tcpip-interface`), for `--dialect tcp`.
        #[arg(long, default_value = "127.0.0.1:9598")]
        tcp_addr: String,
        /// VSCP data bytes per event (the first 8 carry the send time).
        #[arg(long, default_value_t = 8)]
        data_len: usize,
        /// vscp, mosquitto, or both (same generator, sizes and counts; prints the ratio).
        #[arg(long, default_value = "vscp")]
        against: String,
        /// Use this running Mosquitto websocket listener instead of starting one.
        #[arg(long)]
        mosquitto_addr: Option<String>,
        /// The server's process id: its CPU time per delivery is reported (Mosquitto's too,
        /// when the generator started it).
        #[arg(long)]
        server_pid: Option<u32>,
        /// The server's metrics interface (host:port): its own count of socket writes
        /// (`vscp_socket_writes_total`, io_uring sends included) is reported per delivery.
        #[arg(long)]
        metrics: Option<String>,
        /// Search each target's maximum sustainable rate (starting at --rate, doubling, then
        /// bisecting; a step passes with at most 0.1 % lost, 95 % of the rate offered and p99
        /// under 100 ms), then run again at half of it for the latency figure.
        #[arg(long)]
        sweep: bool,
    },
    /// Ingest: clients publish through the server's MQTT bridge (and/or straight to the broker
    /// over websockets, QoS 1); a subscriber on the broker counts.
    Ingest {
        /// The broker the server's bridge publishes to (plain MQTT); the subscriber connects here.
        #[arg(long, default_value = "127.0.0.1:1883")]
        broker: String,
        /// That broker's websocket listener (path /mqtt), for the direct clients of `--against
        /// broker|both`. Without it the generator starts a Mosquitto of its own for that side.
        #[arg(long)]
        broker_ws: Option<String>,
        /// The broker's process id, for its CPU time (known when the generator starts it).
        #[arg(long)]
        broker_pid: Option<u32>,
        /// Topic filter for the measuring subscriber (server side).
        #[arg(long, default_value = "vscp/#")]
        topic: String,
        #[arg(long, default_value_t = 10)]
        clients: usize,
        /// Aggregate events/s; 0 = as fast as acknowledged (each client keeps --window events
        /// unacknowledged).
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Unacknowledged events per client with --rate 0.
        #[arg(long, default_value_t = 64)]
        window: usize,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 8)]
        data_len: usize,
        /// server (through the bridge), broker (QoS 1 straight to its websocket listener), or
        /// both (one after the other; prints the ratio).
        #[arg(long, default_value = "server")]
        against: String,
        /// The server's process id, for its CPU time.
        #[arg(long)]
        server_pid: Option<u32>,
        /// The server's metrics interface (host:port): accepted, published and dropped events
        /// are read from its /metrics before and after the server side.
        #[arg(long)]
        metrics: Option<String>,
        /// The QoS the server's bridge publishes at, as configured (only reported).
        #[arg(long)]
        bridge_qos: Option<u8>,
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
    if let Some(ca) = &cli.tls_ca {
        client::use_tls(ca)?;
    }
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
            tcp_addr,
            data_len,
            against,
            mosquitto_addr,
            server_pid,
            metrics,
            sweep,
        } => {
            check_fds(publishers + subscribers, nofile)?;
            let targets = dialect
                .split(',')
                .map(|d| match d.trim() {
                    "tcp" => Ok(fanout::Target::VscpTcp {
                        addr: resolve(tcp_addr)?,
                        login: login.clone(),
                    }),
                    d => Ok(fanout::Target::Vscp {
                        addr,
                        login: login.clone(),
                        dialect: Dialect::parse(d).map_err(|e| anyhow::anyhow!("{e} (or tcp)"))?,
                    }),
                })
                .collect::<Result<Vec<_>>>()?;
            let base = fanout::Params {
                target: targets[0].clone(),
                publishers: (*publishers).max(1),
                subscribers: *subscribers,
                rate: *rate,
                duration: Duration::from_secs(*duration),
                data_len: (*data_len).max(8),
                payload_len: 0,
                threads: cli.threads,
                sources: cli.sources,
                quiet: cli.quiet,
                target_pid: *server_pid,
                metrics: metrics.as_deref().map(resolve).transpose()?,
            };
            let (vscp, broker) = match against.as_str() {
                "vscp" => (true, false),
                "mosquitto" => (false, true),
                "both" => (true, true),
                other => bail!("--against must be vscp, mosquitto or both, not {other:?}"),
            };
            let targets = if vscp { targets } else { Vec::new() };
            run_fanouts(base, &targets, broker, mosquitto_addr.as_deref(), *sweep)?
        }
        Scenario::Ingest {
            broker,
            broker_ws,
            broker_pid,
            topic,
            clients,
            rate,
            window,
            duration,
            data_len,
            against,
            server_pid,
            metrics,
            bridge_qos,
        } => {
            check_fds(clients + 8, nofile)?;
            let (server, direct) = match against.as_str() {
                "server" => (true, false),
                "broker" => (false, true),
                "both" => (true, true),
                other => bail!("--against must be server, broker or both, not {other:?}"),
            };
            ingest::run(ingest::Params {
                addr,
                login,
                broker: resolve(broker)?,
                broker_ws: broker_ws.as_deref().map(resolve).transpose()?,
                broker_pid: *broker_pid,
                topic: topic.clone(),
                clients: (*clients).max(1),
                rate: *rate,
                window: (*window).max(1),
                duration: Duration::from_secs(*duration),
                data_len: (*data_len).max(8),
                threads: cli.threads,
                sources: cli.sources,
                quiet: cli.quiet,
                server_pid: *server_pid,
                metrics: metrics.as_deref().map(resolve).transpose()?,
                server,
                direct,
                bridge_qos: *bridge_qos,
            })?
        }
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
/// VSCP subscribers received. With `sweep`, each target's maximum sustainable rate is searched
/// and the target is run again at half of it; the ratio compares the sustainable maxima.
/// One fan-out per server target (dialect) in turn, then the broker's, with the same counts and
/// sizes; the ratios compare the first server target with the broker, and each further one with
/// the first (e.g. tcp/ip over ws1).
fn run_fanouts(
    base: fanout::Params,
    targets: &[fanout::Target],
    broker: bool,
    broker_addr: Option<&str>,
    sweep: bool,
) -> Result<Value> {
    let mut runs = Vec::new();
    let mut msg_bytes = 0u64;
    let mut best = Vec::new();
    for t in targets {
        let mut p = base.clone();
        p.target = t.clone();
        let r = run_target(p, sweep, &mut runs)?;
        if msg_bytes == 0 {
            msg_bytes = r["message_bytes"].as_u64().unwrap_or(0);
        }
        best.push(r);
    }
    let vscp = !targets.is_empty();
    if broker {
        // Kept alive for all of its runs; dropped (SIGTERM) at the end.
        let (addr, guard) = match broker_addr {
            Some(a) => (resolve(a)?, None),
            None => {
                let m = mosquitto::Mosquitto::start()?;
                (SocketAddr::from(([127, 0, 0, 1], m.ws_port)), Some(m))
            }
        };
        let mut p = base.clone();
        p.target_pid = guard.as_ref().map(|m| m.pid());
        p.metrics = None;
        p.target = fanout::Target::MqttWs {
            addr,
            path: "/mqtt".into(),
        };
        // Same bytes per delivered message as the VSCP subscribers got (or the ws1 event text's
        // size when the VSCP run was skipped).
        p.payload_len = if msg_bytes > 0 {
            msg_bytes as usize
        } else {
            110 + 5 * base.data_len
        };
        best.push(run_target(p, sweep, &mut runs)?);
    }
    let delivered = |r: &Value| Some(f(&r["delivered_per_s"])).filter(|&x| x > 0.0);
    // Deliveries per CPU-second of the server process: efficiency, whatever the rate.
    let per_cpu = |r: &Value| r["target_cpu_us_per_delivery"].as_f64().map(|c| 1e6 / c);
    let over = |a: &Value, b: &Value, m: &dyn Fn(&Value) -> Option<f64>| {
        m(a).zip(m(b)).map(|(x, y)| x / y)
    };
    let (first, broker_run) = (best.first(), best.last().filter(|_| vscp && broker));
    let (ratio, cpu_ratio) = match (first, broker_run) {
        (Some(a), Some(b)) => (over(a, b, &delivered), over(a, b, &per_cpu)),
        _ => (None, None),
    };
    // Every further server target against the first: `{"tcp": {...}}` for `--dialect ws1,tcp`.
    let mut versus_first = serde_json::Map::new();
    for r in best.iter().take(targets.len()).skip(1) {
        let a = first.expect("a first target");
        versus_first.insert(
            r["dialect"].as_str().unwrap_or("").to_string(),
            json!({
                "over": a["dialect"],
                "ratio_delivered": over(r, a, &delivered),
                "ratio_deliveries_per_cpu": over(r, a, &per_cpu),
                "ratio_delivered_over_mosquitto": broker_run.and_then(|b| over(r, b, &delivered)),
                "ratio_deliveries_per_cpu_over_mosquitto": broker_run.and_then(|b| over(r, b, &per_cpu)),
            }),
        );
    }
    Ok(json!({
        "scenario": "fanout",
        "sweep": sweep,
        "runs": runs,
        "best": best,
        "ratio_delivered_vscp_over_mosquitto": ratio,
        "ratio_deliveries_per_cpu_vscp_over_mosquitto": cpu_ratio,
        "dialects_versus_first": versus_first,
    }))
}

/// Whether a sweep step kept up: next to nothing lost, the rate actually offered, and latency
/// bounded (a queue that only grows would lose events in a longer run).
fn sustained(r: &Value, rate: u64) -> bool {
    f(&r["loss_ratio"]) <= 0.001
        && f(&r["sent_per_s"]) >= 0.95 * rate as f64
        && f(&r["latency_ms"]["p99"]) < 100.0
}

/// One run, or with `sweep` the search for the maximum sustainable rate followed by a run at
/// half of it. Returns the run the ratio is computed from (the best sustained step).
fn run_target(p: fanout::Params, sweep: bool, runs: &mut Vec<Value>) -> Result<Value> {
    if !sweep {
        let r = fanout::run(p)?;
        runs.push(r.clone());
        return Ok(r);
    }
    const STEPS: usize = 8;
    let mut rate = if p.rate > 0 { p.rate } else { 1000 };
    let (mut good, mut bad): (Option<(u64, Value)>, Option<u64>) = (None, None);
    for _ in 0..STEPS {
        let mut step = p.clone();
        step.rate = rate;
        let mut r = fanout::run(step)?;
        let ok = sustained(&r, rate);
        r["sweep_step"] = json!(if ok { "sustained" } else { "overloaded" });
        if !p.quiet {
            eprintln!(
                "[sweep {}] {} ev/s: {} ({:.0} deliveries/s, {:.3} % lost, p99 {:.3} ms)",
                p.target.name(),
                rate,
                r["sweep_step"].as_str().unwrap_or(""),
                f(&r["delivered_per_s"]),
                100.0 * f(&r["loss_ratio"]),
                f(&r["latency_ms"]["p99"])
            );
        }
        runs.push(r.clone());
        if ok {
            good = Some((rate, r));
        } else {
            bad = Some(rate);
        }
        let lo = good.as_ref().map_or(0, |g| g.0);
        rate = match bad {
            None => rate * 2,
            Some(hi) => (lo + hi) / 2,
        };
        // Stop when the bracket is within 10 %.
        if let Some(hi) = bad {
            if lo > 0 && (hi - lo) * 10 <= lo {
                break;
            }
        }
        if rate == 0 {
            break;
        }
    }
    let Some((max_rate, best)) = good else {
        bail!(
            "fan-out against {}: not even {} ev/s was sustained",
            p.target.name(),
            p.rate.max(1000)
        );
    };
    let mut half = p.clone();
    half.rate = (max_rate / 2).max(1);
    let mut r = fanout::run(half)?;
    r["sweep_step"] = json!("half of the maximum");
    runs.push(r);
    let mut best = best;
    best["max_sustained_rate"] = json!(max_rate);
    Ok(best)
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
                if r["subscribers_incomplete"].as_u64().unwrap_or(0) > 0 {
                    println!(
                        "  {} subscribers short (fewest deliveries: {})",
                        r["subscribers_incomplete"], r["min_per_subscriber"]
                    );
                }
                println!("  latency: {}", lat(&r["latency_ms"]));
                if let Some(c) = r["target_cpu_us_per_delivery"].as_f64() {
                    println!(
                        "  {} CPU: {:.2} s, {:.2} µs per delivery ({:.0} deliveries per CPU-second)",
                        r["target"].as_str().unwrap_or(""),
                        f(&r["target_cpu_s"]),
                        c,
                        1e6 / c
                    );
                }
                if let Some(w) = r["target_writes_per_delivery"].as_f64() {
                    println!(
                        "  {} writes: {} write-family system calls ({:.3} per delivery), {} io_uring_enter",
                        r["target"].as_str().unwrap_or(""),
                        r["target_write_calls"],
                        w,
                        r["target_io_uring_enters"]
                    );
                }
                if let Some(w) = r["target_socket_writes_per_delivery"].as_f64() {
                    println!(
                        "  {} socket writes (its vscp_socket_writes_total, io_uring sends included): {} ({:.3} per delivery)",
                        r["target"].as_str().unwrap_or(""),
                        r["target_socket_writes"],
                        w
                    );
                }
                if let Some(step) = r["sweep_step"].as_str() {
                    println!("  sweep step: {step}");
                }
            }
            if s["sweep"] == true {
                for b in s["best"].as_array().into_iter().flatten() {
                    println!(
                        "maximum sustained, {}: {} ev/s -> {:.0} deliveries/s (p99 {:.3} ms)",
                        b["target"].as_str().unwrap_or(""),
                        b["max_sustained_rate"],
                        f(&b["delivered_per_s"]),
                        f(&b["latency_ms"]["p99"])
                    );
                }
            }
            let first = s["best"][0]["dialect"].as_str().unwrap_or("");
            if let Some(x) = s["ratio_delivered_vscp_over_mosquitto"].as_f64() {
                println!("ratio delivered/s vscp-websocksrv ({first}) : mosquitto = {x:.2}");
            }
            if let Some(x) = s["ratio_deliveries_per_cpu_vscp_over_mosquitto"].as_f64() {
                println!(
                    "ratio deliveries per server CPU-second vscp-websocksrv ({first}) : mosquitto = {x:.2}"
                );
            }
            for (d, v) in s["dialects_versus_first"].as_object().into_iter().flatten() {
                let r = |k: &str| v[k].as_f64().map_or("—".into(), |x| format!("{x:.2}"));
                println!(
                    "{d} : {first}: delivered/s {}, deliveries per server CPU-second {}; {d} : mosquitto: {}, {}",
                    r("ratio_delivered"),
                    r("ratio_deliveries_per_cpu"),
                    r("ratio_delivered_over_mosquitto"),
                    r("ratio_deliveries_per_cpu_over_mosquitto"),
                );
            }
        }
        "ingest" => {
            println!(
                "ingest: {} clients, {} for {} s, {} data bytes per event",
                s["clients"],
                if s["target_rate"] == 0 {
                    format!("as fast as acknowledged (window {})", s["window"])
                } else {
                    format!("{} ev/s", s["target_rate"])
                },
                s["duration_s"],
                s["data_len"],
            );
            for r in s["sides"].as_array().into_iter().flatten() {
                println!(
                    "{}: {}",
                    r["side"].as_str().unwrap_or(""),
                    r["path"].as_str().unwrap_or("")
                );
                println!(
                    "  sent {} ({:.0}/s); acked {} ({} negative, {} unanswered); received at the subscriber {} ({} lost of the acked, {} unparsed); {:.0} received/s",
                    r["events_sent"],
                    f(&r["sent_per_s"]),
                    r["acked"],
                    r["negative_acks"],
                    r["unanswered"],
                    r["received_at_subscriber"],
                    r["lost"],
                    r["unparsed"],
                    f(&r["received_per_s"]),
                );
                println!("  end-to-end latency: {}", lat(&r["latency_ms"]));
                println!("  ack latency: {}", lat(&r["ack_latency_ms"]));
                let cpu = |k: &str| {
                    r["cpu_s"][k]
                        .as_f64()
                        .map_or("-".to_string(), |c| format!("{c:.2} s"))
                };
                println!(
                    "  CPU: server {}, broker {}, generator {}; payload {:.1} bytes on average",
                    cpu("server"),
                    cpu("broker"),
                    cpu("generator"),
                    f(&r["payload_bytes_mean"])
                );
                let m = &r["server_metrics"];
                if m.is_object() {
                    println!(
                        "  server metrics: accepted {}, published {}, dropped {} (uplink acked {}, publishers waiting at the end {})",
                        m["accepted"], m["published"], m["dropped"], m["uplink_acked"], m["publishers_waiting_at_end"]
                    );
                }
                for e in r["errors"].as_array().into_iter().flatten().take(5) {
                    println!("  error: {}", e.as_str().unwrap_or(""));
                }
            }
            if let Some(x) = s["ratio_received_per_s_server_over_broker"].as_f64() {
                println!("ratio received/s server : broker = {x:.2}");
            }
        }
        _ => println!("{s}"),
    }
}
