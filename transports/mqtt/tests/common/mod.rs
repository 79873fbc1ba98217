//! Helpers for the bridge's integration tests: a real MQTT broker (rumqttd in process, or a
//! Mosquitto process when `VSCP_TEST_MOSQUITTO` names its binary), a blocking MQTT test
//! client built on our own codec, and the real server with the MQTT uplink. The websocket
//! clients, scratch directories and deadlines are vscp-testkit's (shared with the root crate's
//! tests).
//!
//! Everything listens on 127.0.0.1 with ports picked by the OS, every wait has a deadline,
//! and only processes started here are killed (by PID).
#![allow(dead_code)]

pub mod tls_proxy;

use bytes::{Bytes, BytesMut};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vscp_mqtt::codec::{
    Ack, Codec, ConnectOptions, Incoming, Message, OutPublish, SubscribeFilter,
};
use vscp_mqtt::codec::{Protocol, QoS};
use vscp_mqtt::BridgeStats;
use vscp_websocksrv::config::Config;
use vscp_websocksrv::ServerHandle;

pub use vscp_testkit::{
    connect as connect_ws, eventually, free_port, wait_listening, write_config, Client, ScratchDir,
    ADMIN_USERS_JSON as USERS_JSON,
};

// ---------------------------------------------------------------------------------------------
// Brokers

/// A broker the test can stop and start again on the same address.
pub enum Broker {
    /// rumqttd in this process. It cannot be stopped, so a TCP proxy in front of it is what
    /// "dies": stopping the proxy drops every connection through it and refuses new ones.
    Rumqttd {
        v4: Proxy,
        v5: SocketAddr,
        /// Direct address (bypassing the proxy), for observers that must not see the outage.
        direct: SocketAddr,
    },
    /// A Mosquitto process of its own (generated config, free port, persistence so that a
    /// restart keeps sessions as a real deployment's broker would).
    Mosquitto {
        bin: PathBuf,
        dir: ScratchDir,
        addr: SocketAddr,
        /// Its websocket listener (MQTT over websockets).
        ws: SocketAddr,
        child: Option<std::process::Child>,
    },
}

impl Broker {
    /// Mosquitto when `VSCP_TEST_MOSQUITTO` is set, else rumqttd.
    pub fn start(tag: &str) -> Broker {
        match std::env::var_os("VSCP_TEST_MOSQUITTO") {
            Some(bin) if !bin.is_empty() => Broker::mosquitto(PathBuf::from(bin), tag),
            _ => Broker::rumqttd(),
        }
    }

    fn rumqttd() -> Broker {
        let v4 = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let v5 = SocketAddr::from(([127, 0, 0, 1], free_port()));
        vscp_testkit::start_rumqttd(v4, Some(v5));
        Broker::Rumqttd {
            v4: Proxy::start(v4),
            v5,
            direct: v4,
        }
    }

    fn mosquitto(bin: PathBuf, tag: &str) -> Broker {
        let dir = ScratchDir::new(&format!("mosquitto-{tag}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let ws = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut conf = format!(
            "per_listener_settings false\nallow_anonymous true\npersistence true\npersistence_location {}/\nlog_dest file {}/mosquitto.log\nmax_queued_messages 10000\nlistener {} 127.0.0.1\nlistener {} 127.0.0.1\nprotocol websockets\n",
            dir.dir.display(),
            dir.dir.display(),
            addr.port(),
            ws.port(),
        );
        // Started by root (a CI container), Mosquitto drops to the user `mosquitto`, which
        // cannot write the scratch directory: no log, and no persistence file, so a stop would
        // lose what a real deployment's broker keeps. Without root the option does nothing.
        if is_root() {
            conf.push_str("user root\n");
        }
        std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
        let mut b = Broker::Mosquitto {
            bin,
            dir,
            addr,
            ws,
            child: None,
        };
        b.restart();
        b
    }

    /// Where clients (and the bridge) connect for `protocol`.
    pub fn addr(&self, protocol: Protocol) -> SocketAddr {
        match (self, protocol) {
            (Broker::Rumqttd { v4, .. }, Protocol::V311) => v4.public,
            (Broker::Rumqttd { v5, .. }, Protocol::V5) => *v5,
            (Broker::Mosquitto { addr, .. }, _) => *addr,
        }
    }

    /// Where an observer connects that should keep its session across [`Broker::stop`]:
    /// rumqttd's own port (it never stops), or Mosquitto's (its persistence keeps sessions).
    pub fn observer_addr(&self) -> SocketAddr {
        match self {
            Broker::Rumqttd { direct, .. } => *direct,
            Broker::Mosquitto { addr, .. } => *addr,
        }
    }

    /// Mosquitto's websocket listener; rumqttd is started without one.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        match self {
            Broker::Rumqttd { .. } => None,
            Broker::Mosquitto { ws, .. } => Some(*ws),
        }
    }

    pub fn is_mosquitto(&self) -> bool {
        matches!(self, Broker::Mosquitto { .. })
    }

    /// Stops the broker: every connection drops, nothing is accepted until [`Broker::restart`].
    /// Mosquitto gets SIGTERM (it saves its persistence file on the way out).
    pub fn stop(&mut self) {
        match self {
            Broker::Rumqttd { v4, .. } => v4.stop(),
            Broker::Mosquitto { child, .. } => {
                if let Some(mut c) = child.take() {
                    vscp_testkit::terminate(&mut c, Duration::from_secs(10));
                }
            }
        }
    }

    /// Kills the broker outright: Mosquitto gets SIGKILL, so it saves nothing (its in-memory
    /// sessions and queued messages are gone, as after a power loss). rumqttd cannot be
    /// killed; its proxy stops as for [`Broker::stop`].
    pub fn kill(&mut self) {
        match self {
            Broker::Rumqttd { v4, .. } => v4.stop(),
            Broker::Mosquitto { child, .. } => {
                if let Some(mut c) = child.take() {
                    // Child::kill is kill(SIGKILL) on this child's PID.
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }

    /// Starts the broker again on the same address.
    pub fn restart(&mut self) {
        match self {
            Broker::Rumqttd { v4, .. } => v4.restart(),
            Broker::Mosquitto {
                bin,
                dir,
                addr,
                child,
                ..
            } => {
                let c = std::process::Command::new(&*bin)
                    .arg("-c")
                    .arg(dir.join("mosquitto.conf"))
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
                *child = Some(c);
                wait_listening(*addr);
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // The scratch directory goes when the fields are dropped, after the process.
        self.kill();
    }
}

/// Whether this process runs as root (its /proc entry belongs to uid 0).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A TCP forwarder that can be stopped (dropping every connection) and restarted on the
/// same port.
pub struct Proxy {
    pub public: SocketAddr,
    upstream: SocketAddr,
    /// What holds back the bytes the broker sends (`Proxy::slow`, `Proxy::gated`).
    throttle: Throttle,
    running: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        Proxy::start_throttled(upstream, Throttle::None)
    }

    /// A proxy that forwards what the broker sends 4 bytes (one PUBACK) at a time, waiting
    /// `pace` before each: PUBACKs come at most one per `pace`.
    pub fn slow(upstream: SocketAddr, pace: Duration) -> Proxy {
        Proxy::start_throttled(upstream, Throttle::Pace(pace))
    }

    /// A proxy that holds what the broker sends while `hold` is set (PUBACKs included).
    pub fn gated(upstream: SocketAddr, hold: Arc<AtomicBool>) -> Proxy {
        Proxy::start_throttled(upstream, Throttle::Gate(hold))
    }

    fn start_throttled(upstream: SocketAddr, throttle: Throttle) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let public = listener.local_addr().unwrap();
        let mut p = Proxy {
            public,
            upstream,
            throttle,
            running: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
            acceptor: None,
        };
        p.run(listener);
        p
    }

    fn run(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        self.running.store(true, Ordering::SeqCst);
        let running = self.running.clone();
        let conns = self.conns.clone();
        let upstream = self.upstream;
        let throttle = self.throttle.clone();
        self.acceptor = Some(std::thread::spawn(move || {
            while running.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((down, _)) => {
                        let _ = down.set_nonblocking(false);
                        let Ok(up) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        let _ = down.set_nodelay(true);
                        let _ = up.set_nodelay(true);
                        let mut list = conns.lock().unwrap();
                        list.push(down.try_clone().unwrap());
                        list.push(up.try_clone().unwrap());
                        drop(list);
                        for (mut from, mut to, throttle) in [
                            (
                                down.try_clone().unwrap(),
                                up.try_clone().unwrap(),
                                Throttle::None,
                            ),
                            (up, down, throttle.clone()),
                        ] {
                            std::thread::spawn(move || {
                                match throttle {
                                    Throttle::None => {
                                        let _ = std::io::copy(&mut from, &mut to);
                                    }
                                    t => copy_throttled(&mut from, &mut to, &t),
                                }
                                let _ = to.shutdown(Shutdown::Both);
                                let _ = from.shutdown(Shutdown::Both);
                            });
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }

    /// Drops every connection through the proxy and refuses new ones until [`Proxy::restart`].
    pub fn stop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    pub fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.public) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("cannot re-bind {}: {e}", self.public),
            }
        };
        self.run(listener);
    }
}

#[derive(Clone)]
enum Throttle {
    None,
    Pace(Duration),
    Gate(Arc<AtomicBool>),
}

fn copy_throttled(from: &mut TcpStream, to: &mut TcpStream, throttle: &Throttle) {
    let mut chunk = [0u8; 4];
    loop {
        match from.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                match throttle {
                    Throttle::None => {}
                    Throttle::Pace(p) => std::thread::sleep(*p),
                    Throttle::Gate(hold) => {
                        while hold.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
                if to.write_all(&chunk[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A blocking MQTT client for the tests (our codec over a std socket).

pub struct MqttClient {
    stream: TcpStream,
    codec: Codec,
    buf: BytesMut,
    next_pkid: u16,
    /// Messages read while waiting for something else.
    queued: Vec<Message>,
}

impl MqttClient {
    pub fn connect(
        addr: SocketAddr,
        client_id: &str,
        protocol: Protocol,
        clean: bool,
    ) -> std::io::Result<MqttClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        let mut c = MqttClient {
            stream,
            codec: Codec::new(protocol, 1 << 20),
            buf: BytesMut::new(),
            next_pkid: 0,
            queued: Vec::new(),
        };
        let mut out = BytesMut::new();
        c.codec
            .encode_connect(
                &ConnectOptions {
                    client_id: client_id.into(),
                    clean_session: clean,
                    keepalive_secs: 60,
                    user: String::new(),
                    password: String::new(),
                    will: None,
                    receive_maximum: 100,
                },
                &mut out,
            )
            .unwrap();
        c.stream.write_all(&out)?;
        match c.wait_for(
            |p| matches!(p, Incoming::ConnAck { .. }),
            Duration::from_secs(5),
        )? {
            Incoming::ConnAck { result: Ok(()), .. } => Ok(c),
            other => Err(std::io::Error::other(format!("not accepted: {other:?}"))),
        }
    }

    fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
        self.next_pkid
    }

    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> std::io::Result<()> {
        let pkid = self.pkid();
        let mut out = BytesMut::new();
        self.codec
            .encode_subscribe(
                pkid,
                &[SubscribeFilter {
                    filter: filter.into(),
                    qos,
                    v5_options: 0,
                }],
                &mut out,
            )
            .unwrap();
        self.stream.write_all(&out)?;
        match self.wait_for(
            |p| matches!(p, Incoming::SubAck { .. }),
            Duration::from_secs(5),
        )? {
            Incoming::SubAck { failures: 0, .. } => Ok(()),
            other => Err(std::io::Error::other(format!(
                "subscribe refused: {other:?}"
            ))),
        }
    }

    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS) -> std::io::Result<()> {
        let pkid = if qos == QoS::AtMostOnce {
            0
        } else {
            self.pkid()
        };
        let payload = Bytes::copy_from_slice(payload);
        let mut out = BytesMut::new();
        self.codec
            .encode_publish(
                &OutPublish {
                    topic,
                    payload: &payload,
                    qos,
                    retain: false,
                    dup: false,
                    pkid,
                    user_properties: &[],
                },
                &mut out,
            )
            .unwrap();
        self.stream.write_all(&out)?;
        if qos == QoS::AtLeastOnce {
            self.wait_for(
                |p| matches!(p, Incoming::PubAck { pkid: id } if *id == pkid),
                Duration::from_secs(5),
            )?;
        } else if qos == QoS::ExactlyOnce {
            self.wait_for(
                |p| matches!(p, Incoming::PubRec { pkid: id } if *id == pkid),
                Duration::from_secs(5),
            )?;
            let mut rel = BytesMut::new();
            self.codec.encode_ack(Ack::PubRel, pkid, &mut rel).unwrap();
            self.stream.write_all(&rel)?;
            self.wait_for(
                |p| matches!(p, Incoming::PubComp { pkid: id } if *id == pkid),
                Duration::from_secs(5),
            )?;
        }
        Ok(())
    }

    /// The next application message, or `None` after `wait`.
    pub fn recv(&mut self, wait: Duration) -> std::io::Result<Option<Message>> {
        if !self.queued.is_empty() {
            return Ok(Some(self.queued.remove(0)));
        }
        match self.wait_for(|p| matches!(p, Incoming::Publish(_)), wait) {
            Ok(Incoming::Publish(m)) => Ok(Some(m)),
            Ok(_) => unreachable!("wait_for returns what the predicate accepts"),
            Err(e) if e.kind() == ErrorKind::TimedOut => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads until a packet satisfies `want`; publishes on the way are acknowledged and
    /// queued for [`MqttClient::recv`].
    fn wait_for(
        &mut self,
        want: impl Fn(&Incoming) -> bool,
        wait: Duration,
    ) -> std::io::Result<Incoming> {
        let deadline = Instant::now() + wait;
        loop {
            while let Some(p) = self
                .codec
                .decode(&mut self.buf)
                .map_err(|e| std::io::Error::other(e.to_string()))?
            {
                if let Incoming::Publish(m) = &p {
                    let mut out = BytesMut::new();
                    match m.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => self
                            .codec
                            .encode_ack(Ack::PubAck, m.pkid, &mut out)
                            .unwrap(),
                        QoS::ExactlyOnce => self
                            .codec
                            .encode_ack(Ack::PubRec, m.pkid, &mut out)
                            .unwrap(),
                    }
                    self.stream.write_all(&out)?;
                }
                if want(&p) {
                    return Ok(p);
                }
                if let Incoming::Publish(m) = p {
                    self.queued.push(m);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::new(ErrorKind::TimedOut, "timed out"));
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut tmp = [0u8; 8192];
            match self.stream.read(&mut tmp) {
                Ok(0) => return Err(std::io::Error::new(ErrorKind::ConnectionAborted, "closed")),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    return Err(std::io::Error::new(ErrorKind::TimedOut, "timed out"))
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A subscriber on its own thread that reconnects (persistent session, fixed client id)
/// whenever its connection drops, collecting every message it gets.
pub struct Collector {
    pub messages: Arc<Mutex<Vec<Message>>>,
    pub connects: Arc<Mutex<u32>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    pub fn start(addr: SocketAddr, client_id: &str, filter: &str) -> Collector {
        let messages = Arc::new(Mutex::new(Vec::new()));
        let connects = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, n, s) = (messages.clone(), connects.clone(), stop.clone());
        let (id, f) = (client_id.to_string(), filter.to_string());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok(mut c) = MqttClient::connect(addr, &id, Protocol::V311, false) else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                if c.subscribe(&f, QoS::AtLeastOnce).is_err() {
                    continue;
                }
                *n.lock().unwrap() += 1;
                while !s.load(Ordering::SeqCst) {
                    match c.recv(Duration::from_millis(100)) {
                        Ok(Some(msg)) => m.lock().unwrap().push(msg),
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
            }
        });
        let c = Collector {
            messages,
            connects,
            stop,
            thread: Some(thread),
        };
        assert!(
            eventually(Duration::from_secs(10), || *c.connects.lock().unwrap() >= 1),
            "collector subscribed"
        );
        c
    }

    pub fn count(&self) -> usize {
        self.messages.lock().unwrap().len()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server with the MQTT uplink

pub struct Node {
    pub srv: ServerHandle,
    pub stats: Arc<BridgeStats>,
    _dir: ScratchDir,
}

impl Node {
    /// Starts a server (two shards) whose driver config carries `mqtt`; `extra` keys are
    /// merged into the config.
    pub fn start(tag: &str, mqtt: serde_json::Value, extra: serde_json::Value) -> Node {
        let dir = ScratchDir::with_key_and_users(tag, USERS_JSON);
        let base = serde_json::json!({
            "interface": "127.0.0.1:0",
            "key-file": "vscp.key",
            "path-users": "users.json",
            "metrics-interface": "",
            "logging": {"console-enable-log": false},
            "mqtt": mqtt,
        });
        let path = dir.join("websocksrv.json");
        write_config(&path, base, extra);
        let (mut cfg, _warnings) = Config::load(&path).expect("test config loads");
        cfg.shards = Some(2);
        let block = cfg.mqtt.clone().expect("mqtt block");
        let (uplink, warnings) =
            vscp_websocksrv::mqtt::MqttUplink::new(&block, &cfg).expect("mqtt block is valid");
        assert!(warnings.is_empty(), "{warnings:?}");
        let stats = uplink.stats();
        let users = vscp_proto::UserDb::from_json(USERS_JSON).expect("test users load");
        let srv = vscp_websocksrv::start_with_uplink(&cfg, users, Some(Box::new(uplink)))
            .expect("server starts");
        Node {
            srv,
            stats,
            _dir: dir,
        }
    }

    /// Waits until the bridge is connected to the broker (and has subscribed: the SUBSCRIBE
    /// goes out right after CONNACK, so a short settle follows).
    pub fn wait_connected(&self) {
        assert!(
            eventually(Duration::from_secs(15), || self.stats.snapshot().connected
                == 1),
            "bridge connected: {:?}",
            self.stats.snapshot()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    pub fn addr(&self) -> SocketAddr {
        self.srv.local_addr()
    }
}

// ---------------------------------------------------------------------------------------------
// Mosquitto's own command-line clients, as fully independent MQTT clients in Mosquitto mode

/// `name` on PATH. In Mosquitto mode the clients are required (mosquitto-clients).
fn mosquitto_tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("VSCP_TEST_MOSQUITTO is set but {name} is not on PATH (apt-get install mosquitto-clients)")
        })
}

fn version_flag(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::V311 => "mqttv311",
        Protocol::V5 => "mqttv5",
    }
}

/// `mosquitto_sub` printing `topic hexpayload` per message.
pub struct ToolSub {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl ToolSub {
    /// `None` unless the broker is Mosquitto. Returns once the subscription is live (a probe
    /// published on `probe_topic`, which `filter` must match, has come through).
    pub fn start(
        broker: &Broker,
        protocol: Protocol,
        filter: &str,
        probe_topic: &str,
    ) -> Option<ToolSub> {
        if !broker.is_mosquitto() {
            return None;
        }
        let addr = broker.addr(protocol);
        let mut child = std::process::Command::new(mosquitto_tool("mosquitto_sub"))
            .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .args([
                "-V",
                version_flag(protocol),
                "-q",
                "1",
                "-t",
                filter,
                "-F",
                "%t %x",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto_sub starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let sub = ToolSub { child, lines };
        let mut probe = MqttClient::connect(addr, "probe", protocol, true).expect("probe client");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "mosquitto_sub never subscribed");
            probe
                .publish(probe_topic, b"probe", QoS::AtMostOnce)
                .unwrap();
            if let Ok(line) = sub.lines.recv_timeout(Duration::from_millis(100)) {
                if line.starts_with(probe_topic) {
                    break;
                }
            }
        }
        Some(sub)
    }

    /// The next (topic, payload) that is not a probe.
    pub fn next(&self, wait: Duration) -> Option<(String, Vec<u8>)> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            let (topic, hexed) = line.split_once(' ').unwrap_or((&line, ""));
            let payload: Vec<u8> = hexed
                .as_bytes()
                .chunks(2)
                .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
                .collect();
            if payload != b"probe" {
                return Some((topic.to_string(), payload));
            }
        }
    }
}

impl Drop for ToolSub {
    fn drop(&mut self) {
        // Child::kill is kill(SIGKILL) on this child's PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes `payload` with `mosquitto_pub` (QoS 1, payload on stdin so binary is exact).
pub fn tool_publish(broker: &Broker, protocol: Protocol, topic: &str, payload: &[u8]) {
    let addr = broker.addr(protocol);
    let mut child = std::process::Command::new(mosquitto_tool("mosquitto_pub"))
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-V", version_flag(protocol), "-q", "1", "-t", topic, "-s"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mosquitto_pub starts");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(payload)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "mosquitto_pub failed: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mosquitto_pub hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
