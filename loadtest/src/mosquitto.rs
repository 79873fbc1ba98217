//! Starts a real Mosquitto broker for the comparison runs: a websockets listener (what the
//! fan-out scenario's MQTT clients use, like browsers would) and a plain MQTT listener, both on
//! 127.0.0.1, from a config written to a temporary directory that is removed again on drop.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const INSTALL_HINT: &str = "apt-get install mosquitto";

/// How the broker is set up; `Default` is what the comparison runs use.
#[derive(Debug, Clone)]
pub struct MosquittoOptions {
    /// Websockets listener port; 0 picks a free one.
    pub ws_port: u16,
    /// Plain MQTT listener port; 0 picks a free one.
    pub tcp_port: u16,
    /// Pass the broker's errors and warnings through to our stderr. Otherwise they go to a
    /// file in the temporary directory and are only shown if the broker fails to start.
    pub log_to_stderr: bool,
    /// Messages Mosquitto holds per subscriber before it drops QoS 0 messages to it.
    pub max_queued_messages: u32,
}

impl Default for MosquittoOptions {
    fn default() -> Self {
        Self {
            ws_port: 0,
            tcp_port: 0,
            log_to_stderr: false,
            // vscp-websocksrv's default `max-out-queue`: both sides may then buffer the same
            // number of events for a slow subscriber before they start to drop.
            max_queued_messages: 32_000,
        }
    }
}

/// A running Mosquitto; terminated (SIGTERM) and its temporary directory removed on drop.
pub struct Mosquitto {
    child: Child,
    dir: PathBuf,
    pub ws_port: u16,
    pub tcp_port: u16,
}

impl Mosquitto {
    /// Starts Mosquitto with the default options on free ports and waits until both
    /// listeners accept connections.
    pub fn start() -> Result<Self> {
        Self::start_with(&MosquittoOptions::default())
    }

    /// Starts `mosquitto -c <tempdir>/mosquitto.conf` and waits (up to 10 s) until both
    /// listeners accept connections.
    ///
    /// The broker is sent SIGTERM if the thread that started it exits (so a killed generator
    /// leaves no broker behind): start it from the thread that outlives it, e.g. `main`.
    pub fn start_with(opts: &MosquittoOptions) -> Result<Self> {
        let binary = find_binary().with_context(|| {
            format!("mosquitto not found on PATH nor in /usr/sbin ({INSTALL_HINT})")
        })?;
        let (ws_port, tcp_port) = pick_ports(opts.ws_port, opts.tcp_port)?;
        let dir = make_temp_dir()?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, config_text(opts, ws_port, tcp_port))
            .with_context(|| format!("writing {}", conf.display()))?;
        let log_path = dir.join("mosquitto.log");
        let stderr = if opts.log_to_stderr {
            Stdio::inherit()
        } else {
            Stdio::from(
                File::create(&log_path)
                    .with_context(|| format!("creating {}", log_path.display()))?,
            )
        };
        let mut command = Command::new(&binary);
        command
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let describe = || format!("{} -c {}", binary.display(), conf.display());
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e).with_context(|| format!("starting {}", describe()));
            }
        };
        let mut broker = Mosquitto {
            child,
            dir,
            ws_port,
            tcp_port,
        };
        if let Err(e) = broker.wait_listening() {
            let log = if opts.log_to_stderr {
                "see its output above".to_string()
            } else {
                log_tail(&log_path)
            };
            let msg = format!("{} did not come up: {e:#}; broker log: {log}", describe());
            // Keep the directory: the config and log in it are what explains the failure.
            let dir = std::mem::take(&mut broker.dir);
            drop(broker);
            bail!("{msg} (config kept in {})", dir.display());
        }
        Ok(broker)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_listening(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        for port in [self.ws_port, self.tcp_port] {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            loop {
                if let Some(status) = self.child.try_wait()? {
                    bail!("it exited with {status}");
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!("nothing accepted on {addr} within {START_TIMEOUT:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM rather than Child::kill's SIGKILL: the broker closes its clients' sockets
            // cleanly, so connected generators see an orderly end.
            let pid = self.child.id() as libc::pid_t;
            // SAFETY: kill(2) on our own, not yet reaped child: the PID cannot have been reused.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() >= deadline {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The broker configuration. Only the settings that change QoS 0 fan-out throughput or
/// latency, or the run's hygiene, are set; everything else is Mosquitto's default.
fn config_text(opts: &MosquittoOptions, ws_port: u16, tcp_port: u16) -> String {
    format!(
        "\
# Written by vscp-loadtest; removed when the broker stops.

# Load-test clients carry no credentials; vscp-websocksrv's login is not compared here.
per_listener_settings false
allow_anonymous true
# In memory only: no disk writes competing with the broker, nothing left behind.
persistence false
# No periodic $SYS publishes; the server under comparison makes none either.
sys_interval 0
{user}
# Errors and warnings only: a notice per client connect and disconnect would be hundreds of
# lines per run, and logging them costs the broker time.
log_dest stderr
log_type error
log_type warning
connection_messages false
log_timestamp true

# Disable Nagle on client sockets (the default is off!): otherwise a small message written
# while an earlier one is unacknowledged waits for the ACK, up to the 40 ms delayed-ACK timer.
# vscp-websocksrv sets TCP_NODELAY on every session too. The websockets listener's sockets
# are set up by libwebsockets, which sets TCP_NODELAY itself.
set_tcp_nodelay true

# In Mosquitto 2.0 QoS 0 messages to an online subscriber are dropped once that subscriber
# has this many messages queued and unsent (the 1.x behaviour of never dropping is gone).
# The default of 1000 would make Mosquitto drop in bursts where vscp-websocksrv (per-session
# queue of max-out-queue = 32000 events) still delivers; set to the same depth.
max_queued_messages {max_queued}
# No byte limit on that queue, as on the server side (its queue limit counts events too).
max_queued_bytes 0
# QoS 1/2 only, left at its default 20. Never 0: with max_inflight_messages 0 (and
# max_inflight_bytes 0) Mosquitto skips the QoS 0 queue limit above entirely, and a slow
# subscriber could then make it buffer without bound.
max_inflight_messages 20
# No max_packet_size / message_size_limit: the default accepts every valid MQTT packet, the
# scenarios stay at or below 64 KiB payloads, and a limit would only add a check per message.

listener {ws_port} 127.0.0.1
protocol websockets
max_connections -1

listener {tcp_port} 127.0.0.1
protocol mqtt
max_connections -1
",
        max_queued = opts.max_queued_messages,
        // Run as root, Mosquitto switches to the `mosquitto` user, and the kernel clears the
        // parent-death signal on that credential change: a killed generator would then leave
        // its broker running. Staying root keeps it (the broker only listens on loopback).
        // SAFETY: geteuid cannot fail and has no side effects.
        user = if unsafe { libc::geteuid() } == 0 {
            "# Keep root: switching users would clear the parent-death signal.\nuser root\n"
        } else {
            ""
        },
    )
}

fn find_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    // /usr/sbin is often not on a non-root user's PATH, and that is where Debian installs it.
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("mosquitto"))
        .find(|p| p.is_file())
}

/// Ports for the two listeners: the requested ones, or free ones found by binding port 0.
/// Both probe sockets are held at once so the two picks differ; there is a short window
/// between releasing them and Mosquitto binding in which another process could take one,
/// which then shows as a start failure naming the port.
fn pick_ports(ws_port: u16, tcp_port: u16) -> Result<(u16, u16)> {
    let bind = |port: u16| -> Result<TcpListener> {
        TcpListener::bind(("127.0.0.1", port)).with_context(|| format!("127.0.0.1:{port} in use"))
    };
    let ws = bind(ws_port)?;
    let tcp = bind(tcp_port)?;
    Ok((ws.local_addr()?.port(), tcp.local_addr()?.port()))
}

fn make_temp_dir() -> Result<PathBuf> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vscp-loadtest-mosquitto-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    // A leftover from an earlier process with the same PID is stale.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The last lines of the broker's log, for a start failure.
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .is_err()
    {
        return "(none)".to_string();
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(10)..].join(" | ");
    if tail.is_empty() {
        "(empty)".to_string()
    } else {
        tail
    }
}
