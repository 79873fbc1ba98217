//! The bridge (sans-IO): sessions' events → publish entries, broker messages → events for
//! the sessions, on top of the MQTT [`Client`].
//!
//! Publish path (mqtt.md §4): every event from the sessions is encoded once per publish entry
//! in the entry's format, its topic rendered, and handed to the client with the entry's QoS
//! and retain flag.
//!
//! Subscribe path (mqtt.md §6.2, REC): the format is the one of the first subscription whose
//! filter matches the topic (REF picks effectively the first subscription); `auto` detects
//! it; topic defaults apply when `bUseTopicForEventDefaults` is set (REF computes them on a
//! copy it then drops); unset date/timestamp are stamped; the `mqtt.filter` applies (REF never
//! applies it); echoes of our own publishes and duplicates are dropped ([`crate::dedup`]).
//! A payload that cannot be decoded is counted, logged once per burst and dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use vscp_proto::number::read_u16;
use vscp_proto::{DateTime, Event, Guid};
use vscp_transport::confirm::Confirm;

use crate::client::{Client, ClientConfig, ClientEvent, ClientStats, Publication};
use crate::codec::{ConnectOptions, Message, SubscribeFilter, WillMessage};
use crate::codec::{Protocol, QoS};
use crate::config::{MqttConfig, PublishEntry};
use crate::dedup::{self, event_key, Dedup, Seen};
use crate::error::{ConfigError, ConnectionError};
use crate::payload::SubscribeFormat;
use crate::payload::{self, PayloadError};
use crate::stats::BridgeStats;
use crate::template::{EventVars, StaticVars, Template};
use crate::topic;

/// Largest packet accepted from the broker. A VSCP event is at most a few KiB in any format;
/// the limit keeps a stray huge retained message from costing memory (it is skipped).
pub const MAX_PACKET_BYTES: usize = 256 * 1024;
/// A burst of malformed payloads (or oversized packets) ends after this much quiet; only the
/// first of a burst is logged.
pub const BURST_QUIET: Duration = Duration::from_secs(10);
/// MQTT 5 subscription option "no local": the broker does not send our own publishes back.
const NO_LOCAL: u8 = 0x04;

/// Who the bridge speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The driver's `guid` (`ifguid`, and `guid` in subscribe topics).
    pub interface_guid: Guid,
    /// The server's GUID (`srvguid`); vscpd's GUID in REF. Standalone: the interface GUID.
    pub server_guid: Guid,
}

/// Logs the first occurrence of a burst and counts the rest.
#[derive(Debug)]
struct BurstLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl BurstLog {
    /// `Some(n)` when this occurrence starts a new burst (`n` were suppressed since the last
    /// logged one); `None` while inside a burst.
    fn hit(&mut self, now: Instant) -> Option<u64> {
        let new_burst = match self.last {
            None => true,
            Some(at) => now.saturating_duration_since(at) >= BURST_QUIET,
        };
        self.last = Some(now);
        if new_burst {
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// How a publish entry's topic is made.
#[derive(Debug)]
struct Route {
    entry: PublishEntry,
    /// `None`: `bescape-pub-topics` is false, the template source is used literally.
    template: Option<Template>,
}

/// The MQTT bridge state machine.
#[derive(Debug)]
pub struct Bridge {
    client: Client,
    routes: Vec<Route>,
    subscriptions: Vec<(String, SubscribeFormat)>,
    vars: StaticVars,
    measurement_block: bool,
    topic_defaults: bool,
    filter: vscp_proto::Filter,
    dedup: Dedup,
    inbox: VecDeque<Event>,
    stats: Arc<BridgeStats>,
    synced: ClientStats,
    malformed_log: BurstLog,
    topic_log: BurstLog,
    consecutive_failures: u64,
    wait_when_connected: bool,
    host: String,
    port: u16,
}

impl Bridge {
    /// Builds the bridge. `random` fills `{{rnd}}` in the client id (16 hex digits). Fails
    /// when a rendered subscribe or will topic is not valid MQTT (naming the key).
    pub fn new(
        cfg: MqttConfig,
        identity: Identity,
        random: u64,
        now: Instant,
        stats: Arc<BridgeStats>,
    ) -> Result<Bridge, ConfigError> {
        let client_id = cfg.client_id.replace("{{rnd}}", &format!("{random:016X}"));
        let mut user_escapes = cfg.user_escapes.clone();
        // vscpd adds these for its drivers (mqtt.md §4.1); `driver-name` is left to
        // user-escapes because a standalone server has no driver entry name.
        if !user_escapes.iter().any(|(k, _)| k == "driver-level") {
            user_escapes.push(("driver-level".into(), "level2".into()));
        }
        let vars = StaticVars {
            ifguid: identity.interface_guid,
            srvguid: identity.server_guid,
            clientid: client_id.clone(),
            user: cfg.user.clone(),
            host: cfg.host.clone(),
            user_escapes,
        };

        let mut subscriptions = Vec::new();
        let mut filters = Vec::new();
        for (i, s) in cfg.subscribe.iter().enumerate() {
            let filter = s.topic.render_to_string(&vars);
            topic::check_filter(&filter).map_err(|r| {
                let key = format!("subscribe[{i}].topic");
                cfg.origin.err(&key, format!("{filter:?}: {r}"))
            })?;
            let v5_options = match cfg.protocol {
                Protocol::V5 => s.v5_options | NO_LOCAL,
                Protocol::V311 => 0,
            };
            filters.push(SubscribeFilter {
                filter: filter.clone(),
                qos: s.qos,
                v5_options,
            });
            subscriptions.push((filter, s.format));
        }

        let will = match &cfg.will {
            None => None,
            Some(w) => {
                // REC: render the will and its clean-up identically (mqtt.md §7); REF leaves
                // the topic empty when escaping is off, we use it literally.
                let topic = if cfg.escape_pub_topics {
                    w.topic.render_to_string(&vars)
                } else {
                    w.topic.source().to_owned()
                };
                topic::check_topic(&topic)
                    .map_err(|r| cfg.origin.err("will.topic", format!("{topic:?}: {r}")))?;
                Some(WillMessage {
                    topic,
                    payload: Bytes::from(w.payload.clone().into_bytes()),
                    qos: w.qos,
                    retain: w.retain,
                })
            }
        };
        let clear_will_topic = will.as_ref().filter(|w| w.retain).map(|w| w.topic.clone());

        let routes = cfg
            .publish
            .iter()
            .map(|e| Route {
                template: cfg.escape_pub_topics.then(|| e.topic.clone()),
                entry: e.clone(),
            })
            .collect();

        let client_cfg = ClientConfig {
            protocol: cfg.protocol,
            connect: ConnectOptions {
                client_id,
                clean_session: cfg.clean_session,
                keepalive_secs: u16::try_from(cfg.keepalive.as_secs()).unwrap_or(u16::MAX),
                user: cfg.user.clone(),
                password: cfg.password.clone(),
                will,
                receive_maximum: cfg.receive_maximum,
            },
            keepalive: cfg.keepalive,
            connection_timeout: cfg.connection_timeout,
            subscriptions: filters,
            clear_will_topic,
            send_maximum: cfg.send_maximum,
            max_pending: cfg.max_offline_events,
            wait_when_connected: cfg.backpressure,
            reconnect: cfg.reconnect,
            max_packet_bytes: MAX_PACKET_BYTES,
            user_properties: match cfg.protocol {
                Protocol::V5 => cfg.user_properties.clone(),
                Protocol::V311 => Vec::new(),
            },
        };
        Ok(Bridge {
            wait_when_connected: cfg.backpressure,
            client: Client::new(client_cfg, now),
            routes,
            subscriptions,
            vars,
            measurement_block: cfg.json_measurement_block,
            topic_defaults: cfg.topic_event_defaults,
            filter: cfg.filter,
            dedup: Dedup::new(dedup::DEFAULT_WINDOW, dedup::DEFAULT_CAPACITY),
            inbox: VecDeque::new(),
            stats,
            synced: ClientStats::default(),
            malformed_log: BurstLog {
                last: None,
                suppressed: 0,
            },
            topic_log: BurstLog {
                last: None,
                suppressed: 0,
            },
            consecutive_failures: 0,
            host: cfg.host,
            port: cfg.port,
        })
    }

    /// The broker's host name or address and port.
    pub fn broker(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// The client id in use (after `{{rnd}}`).
    pub fn client_id(&self) -> &str {
        &self.vars.clientid
    }

    /// The rendered subscription filters.
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> {
        self.subscriptions.iter().map(|(f, _)| f.as_str())
    }

    // ---- publish path ----

    /// An event accepted from a websocket client: publish it to every publish entry.
    /// `unix_us` stamps it if it arrives unstamped (the server normally did that already).
    /// `confirm`, when the session waits for the broker: held once per QoS 1/2 publish and
    /// released at its PUBACK/PUBCOMP, so it is confirmed when the broker has all of them (at
    /// once when there are none).
    pub fn handle_session_event(
        &mut self,
        ev: &Event,
        confirm: Option<&Confirm>,
        now: Instant,
        unix_us: u64,
    ) {
        BridgeStats::add(&self.stats.events_from_sessions, 1);
        let stamped;
        let ev = if ev.timestamp == 0 || ev.datetime.is_unset() {
            let mut e = ev.clone();
            stamp(&mut e, unix_us);
            stamped = e;
            &stamped
        } else {
            ev
        };
        // Without subscriptions nothing comes back to be told apart from our own events.
        let key = if self.subscriptions.is_empty() {
            0
        } else {
            let key = event_key(ev);
            self.dedup.published(key, now);
            key
        };
        for i in 0..self.routes.len() {
            let route = &self.routes[i];
            let format = route.entry.format;
            let topic = match &route.template {
                Some(t) => t.render_to_string(&EventVars::new(ev, format, &self.vars)),
                None => route.entry.topic.source().to_owned(),
            };
            if let Err(reason) = topic::check_topic(&topic) {
                BridgeStats::add(&self.stats.topic_errors, 1);
                if let Some(suppressed) = self.topic_log.hit(now) {
                    tracing::warn!(publish_entry = i, topic = %topic, reason, suppressed, "publish topic is not valid MQTT; event not published to this entry");
                }
                continue;
            }
            let mut payload = Vec::new();
            payload::encode(ev, format, self.measurement_block, &mut payload);
            let (qos, retain) = (route.entry.qos, route.entry.retain);
            BridgeStats::add(&self.stats.publications, 1);
            let confirm = match confirm {
                Some(c) if qos != QoS::AtMostOnce => {
                    c.hold();
                    Some(c.clone())
                }
                _ => None,
            };
            self.client.publish(
                Publication {
                    topic,
                    payload: Bytes::from(payload),
                    qos,
                    retain,
                    tag: key,
                    confirm,
                },
                now,
            );
        }
        if let Some(c) = confirm {
            c.release();
        }
        self.after_client(now, unix_us);
    }

    /// False while the broker is connected and the buffer cannot take one more event's
    /// publications (with `backpressure` on): the glue then stops taking events, the rings
    /// from the shards fill, and the publishing sessions wait instead of losing events.
    pub fn can_take_event(&self) -> bool {
        !self.wait_when_connected
            || !self.client.is_connected()
            || self.client.has_room(self.routes.len())
    }

    // ---- connection inputs (delegated to the client) ----

    /// True when the glue should open a connection now.
    pub fn poll_connect(&self, now: Instant) -> bool {
        self.client.poll_connect(now)
    }

    pub fn handle_connecting(&mut self, now: Instant) {
        tracing::debug!(host = %self.host, port = self.port, "connecting to the MQTT broker");
        self.client.handle_connecting(now);
    }

    pub fn handle_connected(&mut self, now: Instant, unix_us: u64) {
        self.client.handle_connected(now);
        self.after_client(now, unix_us);
    }

    pub fn handle_closed(&mut self, error: ConnectionError, now: Instant, unix_us: u64) {
        self.client.handle_closed(error, now);
        self.after_client(now, unix_us);
    }

    pub fn handle_read(&mut self, bytes: &[u8], now: Instant, unix_us: u64) {
        self.client.handle_read(bytes, now);
        self.after_client(now, unix_us);
    }

    pub fn handle_timeout(&mut self, now: Instant, unix_us: u64) {
        self.client.handle_timeout(now);
        self.after_client(now, unix_us);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }

    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.client.poll_transmit()
    }

    /// False when the glue should close its socket.
    pub fn wants_socket(&self) -> bool {
        self.client.wants_socket()
    }

    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// Nothing left to publish or to wait for: stopping now loses nothing.
    pub fn is_drained(&self) -> bool {
        self.client.is_drained()
    }

    /// Publications buffered or waiting for their acknowledgement.
    pub fn pending_total(&self) -> usize {
        self.client.pending_len() + self.client.inflight_len()
    }

    /// Stops: DISCONNECT when connected (write [`Bridge::poll_transmit`] before closing).
    pub fn shutdown(&mut self, now: Instant, unix_us: u64) {
        self.client.shutdown();
        self.after_client(now, unix_us);
    }

    // ---- subscribe path output ----

    /// The next event for the sessions.
    pub fn poll_event(&mut self) -> Option<Event> {
        let ev = self.inbox.pop_front()?;
        BridgeStats::add(&self.stats.events_to_sessions, 1);
        Some(ev)
    }

    fn after_client(&mut self, now: Instant, unix_us: u64) {
        while let Some(e) = self.client.poll_event() {
            match e {
                ClientEvent::Connected { session_present } => {
                    self.consecutive_failures = 0;
                    BridgeStats::set(&self.stats.connected, 1);
                    tracing::info!(
                        host = %self.host,
                        port = self.port,
                        client_id = %self.vars.clientid,
                        session_present,
                        "connected to the MQTT broker"
                    );
                }
                ClientEvent::Disconnected(error) => {
                    let was_connected = self
                        .stats
                        .connected
                        .swap(0, std::sync::atomic::Ordering::Relaxed)
                        == 1;
                    self.consecutive_failures += 1;
                    let n = self.consecutive_failures;
                    // Log the drop of a live connection and then only every power of two of
                    // failed attempts, so a long outage does not flood the log.
                    if was_connected || n.is_power_of_two() {
                        tracing::warn!(
                            host = %self.host,
                            port = self.port,
                            %error,
                            failed_attempts = n,
                            buffered = self.client.pending_len(),
                            "MQTT broker connection lost or refused; retrying with backoff"
                        );
                    }
                }
                ClientEvent::Message(m) => self.on_message(m, now, unix_us),
                ClientEvent::Sent { tag } if !self.subscriptions.is_empty() => {
                    self.dedup.published(tag, now)
                }
                ClientEvent::Sent { .. } => {}
                ClientEvent::SubscribeFailed { failures } => {
                    BridgeStats::add(&self.stats.subscribe_failures, failures as u64);
                    tracing::warn!(failures, "the broker refused subscription filters");
                }
                ClientEvent::Oversized { bytes } => {
                    BridgeStats::add(&self.stats.oversized, 1);
                    if let Some(suppressed) = self.malformed_log.hit(now) {
                        tracing::warn!(
                            bytes,
                            max = MAX_PACKET_BYTES,
                            suppressed,
                            "oversized MQTT packet skipped"
                        );
                    }
                }
            }
        }
        self.sync_stats();
    }

    fn sync_stats(&mut self) {
        let now = self.client.stats();
        let was = self.synced;
        let s = &self.stats;
        BridgeStats::add(&s.published, now.published - was.published);
        BridgeStats::add(&s.resent, now.resent - was.resent);
        BridgeStats::add(&s.acked, now.acked - was.acked);
        BridgeStats::add(
            &s.offline_dropped,
            now.dropped_overflow - was.dropped_overflow,
        );
        BridgeStats::add(
            &s.shutdown_dropped,
            now.dropped_shutdown - was.dropped_shutdown,
        );
        BridgeStats::add(&s.connects, now.connects - was.connects);
        BridgeStats::add(&s.disconnects, now.disconnects - was.disconnects);
        BridgeStats::add(&s.messages_received, now.received - was.received);
        BridgeStats::set(&s.offline_queued, self.client.pending_len() as u64);
        BridgeStats::set(&s.inflight, self.client.inflight_len() as u64);
        self.synced = now;
    }

    fn on_message(&mut self, m: Message, now: Instant, unix_us: u64) {
        let format = self
            .subscriptions
            .iter()
            .find(|(f, _)| topic::matches(&m.topic, f))
            .map_or(SubscribeFormat::Auto, |(_, fmt)| *fmt);
        let mut ev = match payload::decode(&m.payload, format) {
            Ok(ev) => ev,
            // Empty payloads are ignored (mqtt.md §6.2): they are how retained messages,
            // e.g. our own will, are cleared.
            Err(PayloadError::Empty) => return,
            Err(error) => {
                BridgeStats::add(&self.stats.malformed, 1);
                if let Some(suppressed) = self.malformed_log.hit(now) {
                    tracing::warn!(topic = %m.topic, %error, suppressed, "malformed MQTT payload dropped");
                }
                return;
            }
        };
        if self.topic_defaults {
            apply_topic_defaults(&mut ev, &m.topic);
        }
        stamp(&mut ev, unix_us);
        if !self.filter.matches(&ev) {
            BridgeStats::add(&self.stats.filtered, 1);
            return;
        }
        match self.dedup.check_incoming(event_key(&ev), now) {
            Some(Seen::Echo) => BridgeStats::add(&self.stats.echo_dropped, 1),
            Some(Seen::Duplicate) => BridgeStats::add(&self.stats.duplicate_dropped, 1),
            None => self.inbox.push_back(ev),
        }
    }
}

/// Fills an unset date and timestamp as the server does for client events.
fn stamp(ev: &mut Event, unix_us: u64) {
    if ev.datetime.is_unset() {
        ev.datetime = DateTime::from_unix_secs(unix_us / 1_000_000);
    }
    if ev.timestamp == 0 {
        // A wrapping 32-bit microsecond counter; 0 means "not set", so never produce it.
        ev.timestamp = (unix_us as u32).max(1);
    }
}

/// `bUseTopicForEventDefaults` (mqtt.md §6.2 step 5): for `<prefix>/<guid>/<class>/<type>/…`
/// fill an all-zero GUID, a zero class and a zero type from the topic levels.
fn apply_topic_defaults(ev: &mut Event, topic: &str) {
    let levels: Vec<&str> = topic.split('/').collect();
    if levels.len() < 4 {
        return;
    }
    if ev.guid.is_zero() {
        if let Ok(g) = Guid::parse(levels[1]) {
            ev.guid = g;
        }
    }
    if ev.class == 0 {
        if let Ok(c) = read_u16("class", levels[2]) {
            ev.class = c;
        }
    }
    if ev.vscp_type == 0 {
        if let Ok(t) = read_u16("type", levels[3]) {
            ev.vscp_type = t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;
    use crate::payload::PublishFormat;
    use bytes::BytesMut;
    use serde_json::json;
    use vscp_proto::testing::e2;

    const GUID: &str = "FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:01";
    const UNIX_US: u64 = 1_709_296_496_000_000; // 2024-03-01T12:34:56Z

    fn identity() -> Identity {
        let g = Guid::parse(GUID).unwrap();
        Identity {
            interface_guid: g,
            server_guid: g,
        }
    }

    fn bridge(v: serde_json::Value, now: Instant) -> (Bridge, Arc<BridgeStats>) {
        let (cfg, _) = MqttConfig::from_value(&v, "<test>", "mqtt").unwrap();
        let stats = Arc::new(BridgeStats::default());
        let b = Bridge::new(cfg, identity(), 0xABCD, now, stats.clone()).unwrap();
        (b, stats)
    }

    /// Connects the bridge over a fake broker and returns what it wrote.
    fn connect(b: &mut Bridge, now: Instant) -> Vec<mqttbytes::v4::Packet> {
        assert!(b.poll_connect(now));
        b.handle_connecting(now);
        b.handle_connected(now, UNIX_US);
        b.handle_read(&[0x20, 0x02, 0x00, 0x00], now, UNIX_US);
        written(b)
    }

    /// Test-only: mqttbytes' broker-side reader parses what the bridge wrote.
    fn written(b: &mut Bridge) -> Vec<mqttbytes::v4::Packet> {
        let mut buf = BytesMut::new();
        while let Some(x) = b.poll_transmit() {
            buf.extend_from_slice(&x);
        }
        let mut out = Vec::new();
        while !buf.is_empty() {
            out.push(mqttbytes::v4::read(&mut buf, 1 << 20).unwrap());
        }
        out
    }

    fn publish_packet(topic: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        mqttbytes::v4::Publish::new(topic, mqttbytes::QoS::AtMostOnce, payload.to_vec())
            .write(&mut out)
            .unwrap();
        out.to_vec()
    }

    fn sample() -> serde_json::Value {
        json!({
            "host": "127.0.0.1", "port": 1883, "clientid": "ws-{{rnd}}",
            "will": {"topic": "vscp-daemon/{{srvguid}}/will", "payload": "down"},
            "subscribe": [
                {"topic": "vscp/websocksrv/{{guid}}/#", "qos": 1, "format": "auto"},
                {"topic": "raw/string/#", "format": "string"}
            ],
            "publish": [
                {"topic": "vscp/{{guid}}/{{class}}/{{type}}/{{nodeid}}", "qos": 1, "retain": false, "format": "json"},
                {"topic": "vscp/xml/{{class}}", "qos": 0, "bretain": true, "format": "xml"}
            ]
        })
    }

    #[test]
    fn connect_clears_will_subscribes_with_rendered_topics() {
        let t = Instant::now();
        let (mut b, stats) = bridge(sample(), t);
        assert_eq!(b.client_id(), "ws-000000000000ABCD");
        let pkts = connect(&mut b, t);
        match &pkts[0] {
            mqttbytes::v4::Packet::Connect(c) => {
                assert_eq!(c.client_id, "ws-000000000000ABCD");
                let w = c.last_will.as_ref().unwrap();
                assert_eq!(w.topic, format!("vscp-daemon/{GUID}/will"));
                assert!(w.retain);
            }
            other => panic!("{other:?}"),
        }
        match &pkts[1] {
            mqttbytes::v4::Packet::Publish(p) => {
                assert_eq!(p.topic, format!("vscp-daemon/{GUID}/will"));
                assert!(p.retain && p.payload.is_empty());
            }
            other => panic!("{other:?}"),
        }
        match &pkts[2] {
            mqttbytes::v4::Packet::Subscribe(s) => {
                let f: Vec<_> = s.filters.iter().map(|f| f.path.clone()).collect();
                assert_eq!(
                    f,
                    [format!("vscp/websocksrv/{GUID}/#"), "raw/string/#".into()]
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(stats.snapshot().connected, 1);
    }

    #[test]
    fn confirmation_waits_for_the_puback_of_every_qos1_publish() {
        use vscp_transport::confirm::{Confirm, Confirmation};
        let t = Instant::now();
        let (mut b, _) = bridge(sample(), t);
        connect(&mut b, t);
        let c = Confirm::new();
        b.handle_session_event(&e2(), Some(&c), t, UNIX_US);
        let pkid = match &written(&mut b)[0] {
            mqttbytes::v4::Packet::Publish(p) => p.pkid,
            other => panic!("{other:?}"),
        };
        // The QoS 0 entry is written, the QoS 1 one is not acknowledged yet.
        assert_eq!(c.state(), Confirmation::Pending);
        let [h, l] = pkid.to_be_bytes();
        b.handle_read(&[0x40, 0x02, h, l], t, UNIX_US);
        assert_eq!(c.state(), Confirmation::Confirmed);

        // Only QoS 0 entries: nothing to wait for.
        let (mut b, _) = bridge(json!({"publish": [{"topic": "a", "qos": 0}]}), t);
        connect(&mut b, t);
        let c = Confirm::new();
        b.handle_session_event(&e2(), Some(&c), t, UNIX_US);
        assert_eq!(c.state(), Confirmation::Confirmed);

        // Broker away: buffered, and failed when the bridge stops with it unsent.
        let (mut b, _) = bridge(sample(), t);
        let c = Confirm::new();
        b.handle_session_event(&e2(), Some(&c), t, UNIX_US);
        assert_eq!(c.state(), Confirmation::Pending);
        b.shutdown(t, UNIX_US);
        assert_eq!(c.state(), Confirmation::Failed);
    }

    #[test]
    fn session_event_goes_to_every_entry() {
        let t = Instant::now();
        let (mut b, stats) = bridge(sample(), t);
        connect(&mut b, t);
        b.handle_session_event(&e2(), None, t, UNIX_US);
        let pkts = written(&mut b);
        assert_eq!(pkts.len(), 2);
        match (&pkts[0], &pkts[1]) {
            (mqttbytes::v4::Packet::Publish(j), mqttbytes::v4::Packet::Publish(x)) => {
                assert_eq!(
                    j.topic,
                    "vscp/FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00/10/6/0"
                );
                assert_eq!(j.qos, mqttbytes::QoS::AtLeastOnce);
                assert!(!j.retain);
                assert!(j.payload.starts_with(br#"{"measurement":{"sensorindex":0"#));
                assert_eq!(x.topic, "vscp/xml/10");
                assert_eq!(x.qos, mqttbytes::QoS::AtMostOnce);
                assert!(x.retain);
                assert!(x.payload.starts_with(b"<event vscpHead=\"96\""));
            }
            other => panic!("{other:?}"),
        }
        let s = stats.snapshot();
        assert_eq!(
            (s.events_from_sessions, s.publications, s.published),
            (1, 2, 2)
        );
        assert_eq!(s.inflight, 1);
    }

    #[test]
    fn literal_topics_when_escaping_is_off() {
        let t = Instant::now();
        let mut v = sample();
        v["bescape-pub-topics"] = json!(false);
        v["will"]["topic"] = json!("plain/will");
        let (mut b, _) = bridge(v, t);
        let pkts = connect(&mut b, t);
        assert!(matches!(&pkts[1], mqttbytes::v4::Packet::Publish(p) if p.topic == "plain/will"));
        b.handle_session_event(&e2(), None, t, UNIX_US);
        let pkts = written(&mut b);
        assert!(matches!(&pkts[0], mqttbytes::v4::Packet::Publish(p)
            if p.topic == "vscp/{{guid}}/{{class}}/{{type}}/{{nodeid}}"));
    }

    #[test]
    fn own_echo_is_dropped_foreign_events_delivered_once() {
        let t = Instant::now();
        let (mut b, stats) = bridge(sample(), t);
        connect(&mut b, t);
        let ev = e2();
        b.handle_session_event(&ev, None, t, UNIX_US);
        let pkts = written(&mut b);
        // The broker echoes both publishes back on a subscribed topic.
        for p in &pkts {
            if let mqttbytes::v4::Packet::Publish(p) = p {
                let topic = format!("vscp/websocksrv/{GUID}/echo");
                b.handle_read(&publish_packet(&topic, &p.payload), t, UNIX_US);
            }
        }
        assert_eq!(b.poll_event(), None);
        assert_eq!(stats.snapshot().echo_dropped, 2);
        // Another node's event, in two formats: delivered once.
        let mut other = e2();
        other.timestamp = 5;
        for f in [PublishFormat::String, PublishFormat::Binary] {
            let mut p = Vec::new();
            payload::encode(&other, f, true, &mut p);
            b.handle_read(
                &publish_packet(&format!("vscp/websocksrv/{GUID}/x"), &p),
                t,
                UNIX_US,
            );
        }
        let got = b.poll_event().unwrap();
        assert_eq!(got.timestamp, 5);
        assert_eq!(got.data, other.data);
        assert_eq!(b.poll_event(), None);
        let s = stats.snapshot();
        assert_eq!((s.duplicate_dropped, s.events_to_sessions), (1, 1));
    }

    #[test]
    fn subscription_format_by_matching_filter() {
        let t = Instant::now();
        let (mut b, stats) = bridge(sample(), t);
        connect(&mut b, t);
        // raw/string/# is declared `string`: a JSON payload there is malformed.
        b.handle_read(
            &publish_packet("raw/string/a", br#"{"vscpClass":20}"#),
            t,
            UNIX_US,
        );
        assert_eq!(b.poll_event(), None);
        assert_eq!(stats.snapshot().malformed, 1);
        b.handle_read(
            &publish_packet("raw/string/a", b"0,20,3,0,,0,-,1"),
            t,
            UNIX_US,
        );
        let ev = b.poll_event().unwrap();
        assert_eq!((ev.class, ev.vscp_type), (20, 3));
        // Stamped: date and timestamp from the clock input.
        assert_eq!(
            ev.datetime,
            DateTime::parse("2024-03-01T12:34:56Z").unwrap()
        );
        assert_eq!(ev.timestamp, UNIX_US as u32);
        // A topic no subscription matches (e.g. a retained message) is auto-detected.
        b.handle_read(
            &publish_packet("elsewhere", br#"{"vscpClass":30,"vscpTimeStamp":9}"#),
            t,
            UNIX_US,
        );
        assert_eq!(b.poll_event().unwrap().class, 30);
    }

    #[test]
    fn malformed_payloads_are_counted_and_never_hurt() {
        let t = Instant::now();
        let (mut b, stats) = bridge(sample(), t);
        connect(&mut b, t);
        let topic = format!("vscp/websocksrv/{GUID}/x");
        for p in [
            &b"hello"[..],
            b"{",
            b"<nope/>",
            b"\x00\x01\x02",
            b"a,b,c,d,e,f,g",
        ] {
            b.handle_read(&publish_packet(&topic, p), t, UNIX_US);
        }
        // Empty payloads (cleared retained messages) are ignored without counting.
        b.handle_read(&publish_packet(&topic, b""), t, UNIX_US);
        assert_eq!(stats.snapshot().malformed, 5);
        assert!(b.is_connected());
        b.handle_read(&publish_packet(&topic, b"0,20,3,0,,7,-"), t, UNIX_US);
        assert_eq!(b.poll_event().unwrap().class, 20);
    }

    #[test]
    fn burst_log() {
        let t = Instant::now();
        let mut l = BurstLog {
            last: None,
            suppressed: 0,
        };
        assert_eq!(l.hit(t), Some(0));
        assert_eq!(l.hit(t + Duration::from_secs(1)), None);
        assert_eq!(l.hit(t + Duration::from_secs(9)), None);
        // Still inside: the gap is measured from the last occurrence.
        assert_eq!(l.hit(t + Duration::from_secs(18)), None);
        assert_eq!(l.hit(t + Duration::from_secs(30)), Some(3));
    }

    #[test]
    fn filter_and_topic_defaults() {
        let t = Instant::now();
        let mut v = sample();
        v["bUseTopicForEventDefaults"] = json!(true);
        v["filter"] = json!({"class-filter": 10, "class-mask": 0xFFFF});
        v["subscribe"] = json!([{"topic": "vscp/#", "format": "string"}]);
        let (mut b, stats) = bridge(v, t);
        connect(&mut b, t);
        // Class and type from the topic; GUID too.
        b.handle_read(
            &publish_packet(
                "vscp/FF:EE:00:00:00:00:00:00:00:00:00:00:00:00:00:01/10/6/x",
                b"0,0,0,0,,5,-,1",
            ),
            t,
            UNIX_US,
        );
        let ev = b.poll_event().unwrap();
        assert_eq!((ev.class, ev.vscp_type), (10, 6));
        assert_eq!(ev.guid.0[..2], [0xFF, 0xEE]);
        // Class 20 does not pass the mqtt.filter.
        b.handle_read(
            &publish_packet("vscp/-/20/3/x", b"0,20,3,0,,6,-"),
            t,
            UNIX_US,
        );
        assert_eq!(b.poll_event(), None);
        assert_eq!(stats.snapshot().filtered, 1);
    }

    #[test]
    fn offline_events_are_buffered_and_published_after_connect() {
        let t = Instant::now();
        let (mut b, stats) = bridge(sample(), t);
        for ts in 1..=3 {
            let mut ev = e2();
            ev.timestamp = ts;
            b.handle_session_event(&ev, None, t, UNIX_US);
        }
        assert_eq!(stats.snapshot().offline_queued, 6);
        let pkts = connect(&mut b, t);
        let publishes = pkts
            .iter()
            .filter(|p| matches!(p, mqttbytes::v4::Packet::Publish(p) if !p.payload.is_empty()))
            .count();
        assert_eq!(publishes, 6);
        assert_eq!(stats.snapshot().offline_queued, 0);
    }

    #[test]
    fn v5_subscriptions_are_no_local() {
        let t = Instant::now();
        let mut v = sample();
        v["mqtt-options"] = json!({"protocol-version": 500});
        let (mut b, _) = bridge(v, t);
        b.handle_connecting(t);
        b.handle_connected(t, UNIX_US);
        b.handle_read(&[0x20, 0x03, 0x00, 0x00, 0x00], t, UNIX_US);
        let mut buf = BytesMut::new();
        while let Some(x) = b.poll_transmit() {
            buf.extend_from_slice(&x);
        }
        let mut subs = None;
        while !buf.is_empty() {
            if let mqttbytes::v5::Packet::Subscribe(s) =
                mqttbytes::v5::read(&mut buf, 1 << 20).unwrap()
            {
                subs = Some(s);
            }
        }
        assert!(subs.unwrap().filters.iter().all(|f| f.nolocal));
    }

    #[test]
    fn bad_rendered_topics_are_errors_or_counted() {
        let t = Instant::now();
        let (cfg, _) = MqttConfig::from_value(
            &json!({"subscribe": [{"topic": "a/{{user}}#"}], "user": "x"}),
            "<test>",
            "mqtt",
        )
        .unwrap();
        let e = Bridge::new(cfg, identity(), 0, t, Arc::default()).unwrap_err();
        assert_eq!(e.key(), Some("mqtt.subscribe[0].topic"));
        // A user escape that renders a wildcard into a publish topic: counted, not sent.
        let (mut b, stats) = bridge(
            json!({"user-escapes": {"w": "+"}, "publish": [{"topic": "a/{{{w}}}", "qos": 0}]}),
            t,
        );
        connect(&mut b, t);
        b.handle_session_event(&e2(), None, t, UNIX_US);
        assert!(written(&mut b).is_empty());
        assert_eq!(stats.snapshot().topic_errors, 1);
        let _ = QoS::AtMostOnce;
    }

    #[test]
    fn topic_defaults_need_four_levels() {
        let mut ev = Event::default();
        apply_topic_defaults(&mut ev, "a/FF/10");
        assert_eq!(ev, Event::default());
        apply_topic_defaults(&mut ev, "a/zz/x/7");
        assert!(ev.guid.is_zero());
        assert_eq!((ev.class, ev.vscp_type), (0, 7));
    }
}
