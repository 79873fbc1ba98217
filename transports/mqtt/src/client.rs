//! The MQTT client state machine (sans-IO): connect/CONNACK, SUBSCRIBE/SUBACK, QoS 0/1/2
//! publish with an in-flight window, keepalive, reconnect backoff and a bounded offline buffer.
//!
//! Nothing here touches a socket or reads the clock. The glue calls the `handle_*` inputs —
//! including [`Client::handle_timeout`] with the current time — writes what
//! [`Client::poll_transmit`] returns, and asks [`Client::poll_connect`] /
//! [`Client::wants_socket`] whether a connection should be opened or closed.
//!
//! # Delivery guarantees
//! QoS 1 publishes stay in the in-flight window until PUBACK. When the connection drops they
//! are kept and re-sent first (DUP set, original order) after the next CONNACK, then the
//! offline buffer drains in order. That is at-least-once: a publish the broker received but
//! whose PUBACK was lost with the connection is sent twice. QoS 0 publishes that were written
//! to a connection which then failed are lost, as QoS 0 allows. QoS 2 publishes share the
//! window and leave it at PUBCOMP; after a reconnect one whose PUBREC arrived is completed with
//! PUBREL (not re-published), so a broker that kept the session delivers it exactly once.
//!
//! # Offline buffer
//! Publishes that cannot be sent now (no connection, or the window is full) wait in a FIFO of
//! `max_pending` entries. When it is full the **oldest** waiting publish is dropped and counted
//! (`dropped_overflow`): for VSCP traffic (measurements, state changes) the newest values
//! matter most, and the shards must never be held up by a broker that is away.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::codec::{Ack, Codec, ConnectOptions, Incoming, Message, OutPublish, SubscribeFilter};
use crate::codec::{Protocol, QoS};
use crate::config::Reconnect;
use crate::error::ConnectionError;
use vscp_transport::confirm::Confirm;

/// The shortest reconnect delay, whatever the configuration says: a broker that refuses every
/// connection must not turn the uplink core into a busy loop.
pub const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// The most publications one event may add to a waiting buffer beyond its capacity (one per
/// publish entry); past it the buffer drops oldest even while connected.
const MAX_EVENT_PUBLICATIONS: usize = 64;

/// Static settings of the client.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub protocol: Protocol,
    pub connect: ConnectOptions,
    /// 0 disables keepalive.
    pub keepalive: Duration,
    /// Deadline for TCP connect plus CONNACK.
    pub connection_timeout: Duration,
    /// Sent (all in one SUBSCRIBE) after every CONNACK.
    pub subscriptions: Vec<SubscribeFilter>,
    /// Topic of a retained will to clear after every CONNACK (empty retained QoS 1 publish,
    /// mqtt.md §7).
    pub clear_will_topic: Option<String>,
    /// Our in-flight window for QoS 1 and 2 publishes.
    pub send_maximum: u16,
    /// Capacity of the offline buffer.
    pub max_pending: usize,
    /// While connected, a full buffer is the caller's signal to wait ([`Client::has_room`])
    /// rather than a reason to drop: nothing is dropped then. Off: drop oldest at all times.
    pub wait_when_connected: bool,
    pub reconnect: Reconnect,
    /// Largest packet accepted from the broker; larger ones are skipped and counted.
    pub max_packet_bytes: usize,
    /// MQTT 5 user properties for every publish.
    pub user_properties: Vec<(String, String)>,
}

/// One message to publish. `tag` is the caller's; it comes back in [`ClientEvent::Sent`].
#[derive(Clone, Debug)]
pub struct Publication {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub tag: u64,
    /// Released at PUBACK (QoS 1) or PUBCOMP (QoS 2), failed when the publication is dropped.
    /// The caller holds it once per QoS 1/2 publication (QoS 0 ones carry none).
    pub confirm: Option<Confirm>,
}

impl Publication {
    fn acknowledged(&self) {
        if let Some(c) = &self.confirm {
            c.release();
        }
    }

    fn dropped(&self) {
        if let Some(c) = &self.confirm {
            c.fail();
        }
    }
}

/// What happened inside the client, for the bridge to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// CONNACK accepted.
    Connected { session_present: bool },
    /// The connection (or the attempt) ended; a retry is scheduled.
    Disconnected(ConnectionError),
    /// An application message arrived.
    Message(Message),
    /// A publication was written to the connection (first time or re-sent).
    Sent { tag: u64 },
    /// The broker refused some subscription filters.
    SubscribeFailed { failures: usize },
    /// A packet above the size limit was skipped.
    Oversized { bytes: usize },
}

/// Running totals. Plain integers: the client lives on one core; the bridge publishes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// PUBLISH packets written (including re-sends).
    pub published: u64,
    /// QoS 1/2 publishes (or QoS 2 PUBRELs) re-sent after a reconnect.
    pub resent: u64,
    /// PUBACKs for our publishes.
    pub acked: u64,
    /// Publishes dropped because the offline buffer was full (oldest first).
    pub dropped_overflow: u64,
    /// Publications still buffered or unacknowledged when the client stopped.
    pub dropped_shutdown: u64,
    /// Successful CONNACKs.
    pub connects: u64,
    /// Connections or attempts that ended (any reason).
    pub disconnects: u64,
    /// Application messages received.
    pub received: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No connection; connect at `retry_at`.
    Idle {
        retry_at: Instant,
    },
    /// TCP connect in progress.
    Connecting {
        deadline: Instant,
    },
    /// CONNECT sent.
    AwaitConnAck {
        deadline: Instant,
    },
    Connected,
    /// DISCONNECT queued; no more connections.
    Stopped,
}

/// The MQTT client.
#[derive(Debug)]
pub struct Client {
    cfg: ClientConfig,
    codec: Codec,
    state: State,
    read_buf: BytesMut,
    out: BytesMut,
    pending: VecDeque<Publication>,
    /// Unacknowledged QoS 1 and QoS 2 publishes, oldest first (a QoS 2 one leaves at
    /// PUBCOMP).
    inflight: VecDeque<(u16, Publication)>,
    /// The packet ids of `inflight`, so that allocating one is not a scan of the window.
    in_use: PkidSet,
    /// Ids of in-flight QoS 2 publishes whose PUBREC arrived: PUBREL was sent, PUBCOMP is
    /// awaited, and after a reconnect PUBREL (not the PUBLISH) is what gets re-sent, so the
    /// broker delivers the message exactly once.
    released: HashSet<u16>,
    window: usize,
    next_pkid: u16,
    last_tx: Instant,
    ping_sent: Option<Instant>,
    keepalive: Duration,
    backoff: Duration,
    /// QoS 2 messages received and not yet released (PUBREL), so a re-sent one is not
    /// delivered twice.
    qos2_pending: HashSet<u16>,
    events: VecDeque<ClientEvent>,
    stats: ClientStats,
}

impl Client {
    /// A client that will connect at once (`poll_connect(now)` is true).
    pub fn new(cfg: ClientConfig, now: Instant) -> Client {
        let backoff = cfg.reconnect.delay.max(MIN_RECONNECT_DELAY);
        Client {
            codec: Codec::new(cfg.protocol, cfg.max_packet_bytes),
            state: State::Idle { retry_at: now },
            read_buf: BytesMut::with_capacity(4096),
            out: BytesMut::with_capacity(4096),
            pending: VecDeque::new(),
            inflight: VecDeque::new(),
            in_use: PkidSet::default(),
            released: HashSet::new(),
            window: usize::from(cfg.send_maximum.max(1)),
            next_pkid: 0,
            last_tx: now,
            ping_sent: None,
            keepalive: cfg.keepalive,
            backoff,
            qos2_pending: HashSet::new(),
            events: VecDeque::new(),
            stats: ClientStats::default(),
            cfg,
        }
    }

    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// Publishes waiting in the offline buffer.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Unacknowledged QoS 1 and 2 publishes.
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Nothing buffered and nothing waiting for an acknowledgement: a stop loses nothing.
    pub fn is_drained(&self) -> bool {
        self.pending.is_empty() && self.inflight.is_empty()
    }

    /// True when `n` more publications fit the buffer. With `wait_when_connected` the glue
    /// asks this before taking another event and waits while it is false; an empty buffer
    /// always has room, so an event with more publications than the buffer holds still goes.
    pub fn has_room(&self, n: usize) -> bool {
        self.pending.is_empty() || self.pending.len() + n <= self.cfg.max_pending
    }

    /// True when the glue should start a TCP connection now.
    pub fn poll_connect(&self, now: Instant) -> bool {
        matches!(self.state, State::Idle { retry_at } if now >= retry_at)
    }

    /// False when the glue should close its socket (the connection failed, or we stopped
    /// and DISCONNECT has been handed out).
    pub fn wants_socket(&self) -> bool {
        matches!(
            self.state,
            State::Connecting { .. } | State::AwaitConnAck { .. } | State::Connected
        )
    }

    /// True once [`Client::shutdown`] was called.
    pub fn is_stopped(&self) -> bool {
        self.state == State::Stopped
    }

    /// The glue started a TCP connect.
    pub fn handle_connecting(&mut self, now: Instant) {
        self.state = State::Connecting {
            deadline: now + self.cfg.connection_timeout,
        };
    }

    /// The TCP connection is up: CONNECT is queued.
    pub fn handle_connected(&mut self, now: Instant) {
        // A connect that completes after we gave up on it is not used (the glue then sees
        // `wants_socket() == false` and closes it).
        let State::Connecting { deadline } = self.state else {
            return;
        };
        self.codec.reset();
        self.read_buf.clear();
        self.out.clear();
        self.ping_sent = None;
        self.keepalive = self.cfg.keepalive;
        if let Err(e) = self.codec.encode_connect(&self.cfg.connect, &mut self.out) {
            self.fail(ConnectionError::Protocol(e.to_string()), now);
            return;
        }
        self.last_tx = now;
        self.state = State::AwaitConnAck { deadline };
    }

    /// The TCP connect failed or the connection closed.
    pub fn handle_closed(&mut self, error: ConnectionError, now: Instant) {
        if self.wants_socket() {
            self.fail(error, now);
        }
    }

    /// Bytes read from the broker.
    pub fn handle_read(&mut self, bytes: &[u8], now: Instant) {
        if !matches!(self.state, State::AwaitConnAck { .. } | State::Connected) {
            return;
        }
        self.read_buf.extend_from_slice(bytes);
        loop {
            match self.codec.decode(&mut self.read_buf) {
                Ok(None) => break,
                Ok(Some(p)) => {
                    // Any packet proves the broker is alive.
                    self.ping_sent = None;
                    self.on_packet(p, now);
                    if !matches!(self.state, State::AwaitConnAck { .. } | State::Connected) {
                        break;
                    }
                }
                Err(e) => {
                    self.fail(ConnectionError::Protocol(e.0), now);
                    break;
                }
            }
        }
    }

    /// Queues a publication: sent now when connected and the window allows, else buffered.
    pub fn publish(&mut self, p: Publication, now: Instant) {
        if self.state == State::Stopped {
            self.stats.dropped_overflow += 1;
            p.dropped();
            return;
        }
        let waits = self.cfg.wait_when_connected && self.state == State::Connected;
        if waits && self.pending.len() < self.cfg.max_pending.max(MAX_EVENT_PUBLICATIONS) {
            // The glue checked `has_room`; the bound above only guards against a caller that
            // did not.
        } else if self.cfg.max_pending == 0 {
            // No buffer at all: only what can go out right now is kept.
            let can_send = self.state == State::Connected
                && self.pending.is_empty()
                && (p.qos == QoS::AtMostOnce || self.inflight.len() < self.window);
            if !can_send {
                self.stats.dropped_overflow += 1;
                p.dropped();
                return;
            }
        } else if self.pending.len() >= self.cfg.max_pending {
            if let Some(old) = self.pending.pop_front() {
                old.dropped();
            }
            self.stats.dropped_overflow += 1;
        }
        self.pending.push_back(p);
        self.fill_window(now);
    }

    /// Keepalive and deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Connecting { deadline } if now >= deadline => {
                self.fail(ConnectionError::Io("connect timed out".into()), now);
            }
            State::AwaitConnAck { deadline } if now >= deadline => {
                self.fail(ConnectionError::ConnAckTimeout, now);
            }
            State::Connected if !self.keepalive.is_zero() => match self.ping_sent {
                Some(at) if now >= at + self.keepalive => {
                    self.fail(ConnectionError::PingTimeout, now);
                }
                Some(_) => {}
                None if now >= self.last_tx + self.keepalive => {
                    self.encode(|c, out| c.encode_pingreq(out), now);
                    self.ping_sent = Some(now);
                }
                None => {}
            },
            _ => {}
        }
    }

    /// The next moment [`Client::handle_timeout`] or [`Client::poll_connect`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Idle { retry_at } => Some(retry_at),
            State::Connecting { deadline } | State::AwaitConnAck { deadline } => Some(deadline),
            State::Connected if !self.keepalive.is_zero() => Some(match self.ping_sent {
                Some(at) => at + self.keepalive,
                None => self.last_tx + self.keepalive,
            }),
            _ => None,
        }
    }

    /// Bytes to write to the connection, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Stops for good: DISCONNECT is queued when connected; nothing reconnects afterwards.
    /// Buffered publishes are dropped (and counted).
    pub fn shutdown(&mut self) {
        if self.state == State::Connected {
            self.out.clear();
            let _ = self.codec.encode_disconnect(&mut self.out);
        } else {
            self.out.clear();
        }
        self.stats.dropped_shutdown += (self.pending.len() + self.inflight.len()) as u64;
        for p in self.pending.drain(..) {
            p.dropped();
        }
        // Not acknowledged now: whoever waits on them is told at once.
        for (_, p) in &self.inflight {
            p.dropped();
        }
        self.state = State::Stopped;
    }

    fn fail(&mut self, error: ConnectionError, now: Instant) {
        if self.state == State::Stopped {
            return;
        }
        // A connection error is logged by the bridge once, from this event.
        self.events.push_back(ClientEvent::Disconnected(error));
        self.stats.disconnects += 1;
        self.out.clear();
        self.read_buf.clear();
        self.ping_sent = None;
        self.state = State::Idle {
            retry_at: now + self.backoff,
        };
        if self.cfg.reconnect.exponential {
            let max = self.cfg.reconnect.delay_max.max(MIN_RECONNECT_DELAY);
            self.backoff = (self.backoff * 2).min(max);
        }
    }

    fn on_packet(&mut self, p: Incoming, now: Instant) {
        match p {
            Incoming::ConnAck {
                session_present,
                result,
                receive_maximum,
                server_keepalive,
            } => {
                if !matches!(self.state, State::AwaitConnAck { .. }) {
                    self.fail(ConnectionError::Protocol("unexpected CONNACK".into()), now);
                    return;
                }
                if let Err(reason) = result {
                    self.fail(ConnectionError::Refused(reason), now);
                    return;
                }
                self.on_connack(session_present, receive_maximum, server_keepalive, now);
            }
            _ if !self.is_connected() => {
                self.fail(
                    ConnectionError::Protocol("packet before CONNACK".into()),
                    now,
                );
            }
            Incoming::Publish(m) => self.on_message(m, now),
            Incoming::PubAck { pkid } => {
                if let Some(i) = self
                    .inflight
                    .iter()
                    .position(|(id, p)| *id == pkid && p.qos == QoS::AtLeastOnce)
                {
                    if let Some((id, p)) = self.inflight.remove(i) {
                        self.in_use.set(id, false);
                        p.acknowledged();
                    }
                    self.stats.acked += 1;
                    self.fill_window(now);
                }
                // A PUBACK for an id we do not track (the will clean-up) needs nothing.
            }
            Incoming::PubRec { pkid } => {
                let qos1 = self
                    .inflight
                    .iter()
                    .any(|(id, p)| *id == pkid && p.qos == QoS::AtLeastOnce);
                if qos1 {
                    // A broker bug; the PUBACK may still come, so the entry stays.
                    return;
                }
                if self.inflight.iter().any(|(id, _)| *id == pkid) {
                    self.released.insert(pkid);
                }
                // Released even when untracked (a PUBREC repeated after PUBCOMP, or from a
                // session we no longer hold), so the broker can drop its state for the id.
                self.encode(|c, out| c.encode_ack(Ack::PubRel, pkid, out), now);
            }
            Incoming::PubComp { pkid } => {
                if self.released.remove(&pkid) {
                    if let Some(i) = self.inflight.iter().position(|(id, _)| *id == pkid) {
                        if let Some((id, p)) = self.inflight.remove(i) {
                            self.in_use.set(id, false);
                            p.acknowledged();
                        }
                        self.stats.acked += 1;
                        self.fill_window(now);
                    }
                }
            }
            Incoming::PubRel { pkid } => {
                self.qos2_pending.remove(&pkid);
                self.encode(|c, out| c.encode_ack(Ack::PubComp, pkid, out), now);
            }
            Incoming::UnsubAck => {}
            Incoming::SubAck { failures, .. } => {
                if failures > 0 {
                    self.events
                        .push_back(ClientEvent::SubscribeFailed { failures });
                }
            }
            Incoming::PingResp => {}
            Incoming::Disconnect { reason } => {
                self.fail(ConnectionError::ServerDisconnect(reason), now);
            }
            Incoming::Oversized { bytes } => {
                self.events.push_back(ClientEvent::Oversized { bytes });
            }
        }
    }

    fn on_connack(
        &mut self,
        session_present: bool,
        receive_maximum: Option<u16>,
        server_keepalive: Option<u16>,
        now: Instant,
    ) {
        self.state = State::Connected;
        self.stats.connects += 1;
        if !session_present {
            // A new session: the broker forgot the QoS 2 messages it was sending us, so ids
            // are free again. With the session kept, a message whose PUBREL was lost comes
            // again (DUP) and must still count as delivered.
            self.qos2_pending.clear();
        }
        self.backoff = self.cfg.reconnect.delay.max(MIN_RECONNECT_DELAY);
        let ours = usize::from(self.cfg.send_maximum.max(1));
        self.window = receive_maximum.map_or(ours, |r| ours.min(usize::from(r.max(1))));
        if let Some(k) = server_keepalive {
            self.keepalive = Duration::from_secs(k.into());
        }
        self.events
            .push_back(ClientEvent::Connected { session_present });

        // Order per mqtt.md §7: clear the retained will, subscribe, then resume publishing.
        if let Some(topic) = self.cfg.clear_will_topic.clone() {
            let pkid = self.alloc_pkid();
            let empty = Bytes::new();
            let props = self.cfg.user_properties.clone();
            self.encode(
                |c, out| {
                    c.encode_publish(
                        &OutPublish {
                            topic: &topic,
                            payload: &empty,
                            qos: QoS::AtLeastOnce,
                            retain: true,
                            dup: false,
                            pkid,
                            user_properties: &props,
                        },
                        out,
                    )
                },
                now,
            );
        }
        if !self.cfg.subscriptions.is_empty() {
            let pkid = self.alloc_pkid();
            let subs = self.cfg.subscriptions.clone();
            self.encode(|c, out| c.encode_subscribe(pkid, &subs, out), now);
        }
        // Re-send what was in flight when the last connection died, oldest first; a QoS 2
        // publish the broker already has (PUBREC seen) is completed with PUBREL instead.
        let inflight: Vec<(u16, Publication)> = self.inflight.iter().cloned().collect();
        for (pkid, p) in &inflight {
            self.stats.resent += 1;
            if self.released.contains(pkid) {
                let id = *pkid;
                self.encode(|c, out| c.encode_ack(Ack::PubRel, id, out), now);
            } else {
                self.write_publish(p, *pkid, true, now);
            }
        }
        self.fill_window(now);
    }

    fn on_message(&mut self, m: Message, now: Instant) {
        match m.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                let pkid = m.pkid;
                self.encode(|c, out| c.encode_ack(Ack::PubAck, pkid, out), now);
            }
            QoS::ExactlyOnce => {
                let pkid = m.pkid;
                self.encode(|c, out| c.encode_ack(Ack::PubRec, pkid, out), now);
                if !self.qos2_pending.insert(pkid) {
                    // Re-sent before our PUBREC arrived: already delivered.
                    return;
                }
            }
        }
        self.stats.received += 1;
        self.events.push_back(ClientEvent::Message(m));
    }

    /// Moves buffered publishes to the wire while the window allows, keeping their order.
    fn fill_window(&mut self, now: Instant) {
        if self.state != State::Connected {
            return;
        }
        while let Some(front) = self.pending.front() {
            if front.qos != QoS::AtMostOnce && self.inflight.len() >= self.window {
                break;
            }
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            if p.qos == QoS::AtMostOnce {
                self.write_publish(&p, 0, false, now);
            } else {
                let pkid = self.alloc_pkid();
                self.write_publish(&p, pkid, false, now);
                self.in_use.set(pkid, true);
                self.inflight.push_back((pkid, p));
            }
        }
    }

    fn write_publish(&mut self, p: &Publication, pkid: u16, dup: bool, now: Instant) {
        let props = std::mem::take(&mut self.cfg.user_properties);
        let r = self.codec.encode_publish(
            &OutPublish {
                topic: &p.topic,
                payload: &p.payload,
                qos: p.qos,
                retain: p.retain,
                dup,
                pkid,
                user_properties: &props,
            },
            &mut self.out,
        );
        self.cfg.user_properties = props;
        match r {
            Ok(()) => {
                self.last_tx = now;
                self.stats.published += 1;
                self.events.push_back(ClientEvent::Sent { tag: p.tag });
            }
            // Only a topic or payload beyond MQTT's size limits fails to encode; the
            // bridge validates topics and VSCP payloads are small, so this is a bug.
            Err(e) => debug_assert!(false, "publish failed to encode: {e}"),
        }
    }

    fn encode(
        &mut self,
        f: impl FnOnce(&Codec, &mut BytesMut) -> Result<(), crate::codec::CodecError>,
        now: Instant,
    ) {
        match f(&self.codec, &mut self.out) {
            Ok(()) => self.last_tx = now,
            Err(e) => self.fail(ConnectionError::Protocol(e.to_string()), now),
        }
    }

    /// The next free packet id (1..=65535), skipping ids still in flight.
    fn alloc_pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1);
            if self.next_pkid == 0 {
                self.next_pkid = 1;
            }
            let id = self.next_pkid;
            if !self.in_use.get(id) {
                return id;
            }
        }
    }
}

/// One bit per MQTT packet id (8 KiB).
#[derive(Debug)]
struct PkidSet(Box<[u64; 1024]>);

impl Default for PkidSet {
    fn default() -> Self {
        PkidSet(Box::new([0; 1024]))
    }
}

impl PkidSet {
    fn get(&self, id: u16) -> bool {
        self.0[usize::from(id >> 6)] & (1 << (id & 63)) != 0
    }

    fn set(&mut self, id: u16, on: bool) {
        let word = &mut self.0[usize::from(id >> 6)];
        if on {
            *word |= 1 << (id & 63);
        } else {
            *word &= !(1 << (id & 63));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0_OFFSET: Duration = Duration::from_secs(0);

    fn cfg() -> ClientConfig {
        ClientConfig {
            protocol: Protocol::V311,
            connect: ConnectOptions {
                client_id: "c".into(),
                clean_session: false,
                keepalive_secs: 10,
                user: String::new(),
                password: String::new(),
                ..crate::codec::tests::connect_opts()
            },
            keepalive: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(5),
            subscriptions: vec![SubscribeFilter {
                filter: "in/#".into(),
                qos: QoS::AtLeastOnce,
                v5_options: 0,
            }],
            clear_will_topic: None,
            send_maximum: 2,
            max_pending: 3,
            wait_when_connected: false,
            reconnect: Reconnect {
                delay: Duration::from_secs(1),
                delay_max: Duration::from_secs(5),
                exponential: true,
            },
            max_packet_bytes: 1 << 20,
            user_properties: Vec::new(),
        }
    }

    fn publication(n: u64, qos: QoS) -> Publication {
        Publication {
            topic: format!("out/{n}"),
            payload: Bytes::from(format!("p{n}")),
            qos,
            retain: false,
            tag: n,
            confirm: None,
        }
    }

    /// A fake broker side: decodes what the client wrote. Test-only use of mqttbytes'
    /// broker-side reader (the client itself only goes through `codec`).
    struct Peer {
        buf: BytesMut,
    }

    #[derive(Debug, PartialEq)]
    enum Seen {
        Connect,
        Publish {
            topic: String,
            pkid: u16,
            dup: bool,
            retain: bool,
            payload_len: usize,
        },
        Subscribe {
            pkid: u16,
            filters: usize,
        },
        PubAck(u16),
        PubRec(u16),
        PubComp(u16),
        PubRel(u16),
        PingReq,
        Disconnect,
    }

    impl Peer {
        fn new() -> Peer {
            Peer {
                buf: BytesMut::new(),
            }
        }

        /// Parses client→broker packets (mqttbytes' reader handles both directions).
        fn take(&mut self, c: &mut Client) -> Vec<Seen> {
            while let Some(b) = c.poll_transmit() {
                self.buf.extend_from_slice(&b);
            }
            let mut out = Vec::new();
            while !self.buf.is_empty() {
                match mqttbytes::v4::read(&mut self.buf, 1 << 20) {
                    Ok(mqttbytes::v4::Packet::Connect(_)) => out.push(Seen::Connect),
                    Ok(mqttbytes::v4::Packet::Publish(p)) => out.push(Seen::Publish {
                        topic: p.topic,
                        pkid: p.pkid,
                        dup: p.dup,
                        retain: p.retain,
                        payload_len: p.payload.len(),
                    }),
                    Ok(mqttbytes::v4::Packet::Subscribe(s)) => out.push(Seen::Subscribe {
                        pkid: s.pkid,
                        filters: s.filters.len(),
                    }),
                    Ok(mqttbytes::v4::Packet::PubAck(a)) => out.push(Seen::PubAck(a.pkid)),
                    Ok(mqttbytes::v4::Packet::PubRec(a)) => out.push(Seen::PubRec(a.pkid)),
                    Ok(mqttbytes::v4::Packet::PubComp(a)) => out.push(Seen::PubComp(a.pkid)),
                    Ok(mqttbytes::v4::Packet::PubRel(a)) => out.push(Seen::PubRel(a.pkid)),
                    Ok(mqttbytes::v4::Packet::PingReq) => out.push(Seen::PingReq),
                    Ok(mqttbytes::v4::Packet::Disconnect) => out.push(Seen::Disconnect),
                    other => panic!("unexpected {other:?}"),
                }
            }
            out
        }
    }

    fn events(c: &mut Client) -> Vec<ClientEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    /// The reason of the one event `c` has, which must be a disconnect.
    fn disconnect_reason(c: &mut Client) -> ConnectionError {
        match &events(c)[..] {
            [ClientEvent::Disconnected(e)] => e.clone(),
            other => panic!("expected one disconnect, got {other:?}"),
        }
    }

    const CONNACK: &[u8] = &[0x20, 0x02, 0x00, 0x00];

    /// `c`'s socket to the broker comes up at `at` (it writes CONNECT).
    fn socket_up(c: &mut Client, at: Instant) {
        c.handle_connecting(at);
        c.handle_connected(at);
    }

    /// `c`'s socket comes up and the broker accepts the session (CONNACK 0), all at `at`.
    fn broker_accepts(c: &mut Client, at: Instant) {
        socket_up(c, at);
        c.handle_read(CONNACK, at);
    }

    fn puback(pkid: u16) -> Vec<u8> {
        let [h, l] = pkid.to_be_bytes();
        vec![0x40, 0x02, h, l]
    }

    /// PUBREC (0x50) and PUBCOMP (0x70) from the broker.
    fn pubrec(pkid: u16) -> Vec<u8> {
        let [h, l] = pkid.to_be_bytes();
        vec![0x50, 0x02, h, l]
    }

    fn pubcomp(pkid: u16) -> Vec<u8> {
        let [h, l] = pkid.to_be_bytes();
        vec![0x70, 0x02, h, l]
    }

    #[test]
    fn qos2_publish_completes_with_pubrec_pubrel_pubcomp() {
        let t = Instant::now();
        let (mut c, mut peer) = connected(t);
        c.publish(publication(1, QoS::ExactlyOnce), t);
        let seen = peer.take(&mut c);
        assert!(
            matches!(
                &seen[..],
                [Seen::Publish {
                    pkid: 2,
                    dup: false,
                    ..
                }]
            ),
            "{seen:?}"
        );
        assert_eq!(c.inflight_len(), 1);
        // A PUBACK is not the answer to a QoS 2 publish.
        c.handle_read(&puback(2), t);
        assert_eq!(c.inflight_len(), 1);
        c.handle_read(&pubrec(2), t);
        assert_eq!(peer.take(&mut c), [Seen::PubRel(2)]);
        assert_eq!(
            (c.inflight_len(), c.stats().acked),
            (1, 0),
            "waits for PUBCOMP"
        );
        c.handle_read(&pubcomp(2), t);
        assert_eq!((c.inflight_len(), c.stats().acked), (0, 1));
        // A repeated PUBCOMP or PUBREC changes nothing but is answered as the protocol asks.
        c.handle_read(&pubcomp(2), t);
        c.handle_read(&pubrec(2), t);
        assert_eq!(peer.take(&mut c), [Seen::PubRel(2)]);
        assert_eq!((c.inflight_len(), c.stats().acked), (0, 1));
    }

    #[test]
    fn qos2_resend_after_reconnect_is_publish_before_pubrec_and_pubrel_after() {
        let t = Instant::now();
        let (mut c, mut peer) = connected(t);
        c.publish(publication(1, QoS::ExactlyOnce), t);
        c.publish(publication(2, QoS::ExactlyOnce), t);
        peer.take(&mut c);
        // The broker has the first (PUBREC), not the second.
        c.handle_read(&pubrec(2), t);
        assert_eq!(peer.take(&mut c), [Seen::PubRel(2)]);
        c.handle_closed(ConnectionError::Io("reset".into()), t);
        let t1 = t + Duration::from_secs(1);
        assert!(c.poll_connect(t1));
        broker_accepts(&mut c, t1);
        let seen = peer.take(&mut c);
        assert_eq!(seen[0], Seen::Connect);
        assert!(matches!(seen[1], Seen::Subscribe { .. }));
        assert_eq!(seen[2], Seen::PubRel(2), "released, so only PUBREL again");
        assert!(
            matches!(&seen[3], Seen::Publish { topic, dup: true, pkid: 3, .. } if topic == "out/2"),
            "{seen:?}"
        );
        assert_eq!(seen.len(), 4);
        c.handle_read(&pubcomp(2), t1);
        c.handle_read(&pubrec(3), t1);
        c.handle_read(&pubcomp(3), t1);
        assert_eq!(peer.take(&mut c), [Seen::PubRel(3)]);
        assert_eq!(
            (c.inflight_len(), c.stats().acked, c.stats().resent),
            (0, 2, 2)
        );
    }

    #[test]
    fn qos2_publishes_share_the_window_with_qos1() {
        let t = Instant::now();
        let (mut c, mut peer) = connected(t);
        c.publish(publication(1, QoS::ExactlyOnce), t);
        c.publish(publication(2, QoS::AtLeastOnce), t);
        c.publish(publication(3, QoS::ExactlyOnce), t);
        assert_eq!(peer.take(&mut c).len(), 2, "window 2");
        assert_eq!((c.inflight_len(), c.pending_len()), (2, 1));
        c.handle_read(&pubrec(2), t);
        assert_eq!(c.pending_len(), 1, "PUBREC does not free the slot");
        c.handle_read(&pubcomp(2), t);
        let seen = peer.take(&mut c);
        assert_eq!(seen[0], Seen::PubRel(2));
        assert!(
            matches!(&seen[1], Seen::Publish { topic, .. } if topic == "out/3"),
            "{seen:?}"
        );
    }

    fn connected(now: Instant) -> (Client, Peer) {
        connected_with(cfg(), now)
    }

    fn connected_with(cfg: ClientConfig, now: Instant) -> (Client, Peer) {
        let mut c = Client::new(cfg, now);
        let mut peer = Peer::new();
        assert!(c.poll_connect(now));
        socket_up(&mut c, now);
        assert_eq!(peer.take(&mut c), [Seen::Connect]);
        c.handle_read(CONNACK, now);
        assert_eq!(
            peer.take(&mut c),
            [Seen::Subscribe {
                pkid: 1,
                filters: 1
            }]
        );
        assert_eq!(
            events(&mut c),
            [ClientEvent::Connected {
                session_present: false
            }]
        );
        (c, peer)
    }

    #[test]
    fn connect_subscribe_publish_qos0_and_window() {
        let t = Instant::now() + T0_OFFSET;
        let (mut c, mut peer) = connected(t);
        c.publish(publication(1, QoS::AtMostOnce), t);
        c.publish(publication(2, QoS::AtLeastOnce), t);
        c.publish(publication(3, QoS::AtLeastOnce), t);
        c.publish(publication(4, QoS::AtLeastOnce), t);
        c.publish(publication(5, QoS::AtMostOnce), t);
        let seen = peer.take(&mut c);
        // Window 2: publishes 4 and (to keep order) 5 wait.
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(matches!(&seen[0], Seen::Publish { pkid: 0, topic, .. } if topic == "out/1"));
        assert!(matches!(&seen[1], Seen::Publish { pkid: 2, .. }));
        assert!(matches!(&seen[2], Seen::Publish { pkid: 3, .. }));
        assert_eq!((c.inflight_len(), c.pending_len()), (2, 2));
        c.handle_read(&puback(2), t);
        let seen = peer.take(&mut c);
        assert!(matches!(&seen[0], Seen::Publish { pkid: 4, topic, .. } if topic == "out/4"));
        assert!(matches!(&seen[1], Seen::Publish { pkid: 0, topic, .. } if topic == "out/5"));
        assert_eq!(c.stats().acked, 1);
        let sent: Vec<_> = events(&mut c)
            .into_iter()
            .filter_map(|e| match e {
                ClientEvent::Sent { tag } => Some(tag),
                _ => None,
            })
            .collect();
        assert_eq!(sent, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn connected_full_buffer_asks_to_wait_and_drops_nothing() {
        let t = Instant::now() + T0_OFFSET;
        let cfg = ClientConfig {
            wait_when_connected: true,
            ..cfg()
        };
        let (mut c, _peer) = connected_with(cfg, t);
        // Window 2, buffer 3: the caller publishes while `has_room(1)` says so.
        let mut n = 0;
        while c.has_room(1) {
            n += 1;
            c.publish(publication(n, QoS::AtLeastOnce), t);
        }
        assert_eq!((n, c.inflight_len(), c.pending_len()), (5, 2, 3));
        assert!(!c.has_room(1));
        // Even a caller that ignores it loses nothing while connected (up to the guard).
        c.publish(publication(6, QoS::AtLeastOnce), t);
        assert_eq!((c.pending_len(), c.stats().dropped_overflow), (4, 0));
        c.handle_read(&puback(2), t);
        c.handle_read(&puback(3), t);
        assert_eq!((c.inflight_len(), c.pending_len()), (2, 2));
        assert!(c.has_room(1));
        // Away from the broker the buffer drops oldest again.
        c.handle_closed(ConnectionError::Io("gone".into()), t);
        for m in 7..=9 {
            c.publish(publication(m, QoS::AtLeastOnce), t);
        }
        assert_eq!(c.stats().dropped_overflow, 2);
    }

    #[test]
    fn offline_buffer_overflow_drops_oldest_and_drains_in_order() {
        let t = Instant::now();
        let mut c = Client::new(cfg(), t);
        for n in 1..=5 {
            c.publish(publication(n, QoS::AtLeastOnce), t);
        }
        assert_eq!(c.pending_len(), 3);
        assert_eq!(c.stats().dropped_overflow, 2);
        let mut peer = Peer::new();
        broker_accepts(&mut c, t);
        let topics: Vec<String> = peer
            .take(&mut c)
            .into_iter()
            .filter_map(|s| match s {
                Seen::Publish { topic, .. } => Some(topic),
                _ => None,
            })
            .collect();
        // Window 2: out/3 and out/4 go now, out/5 after an ack.
        assert_eq!(topics, ["out/3", "out/4"]);
    }

    #[test]
    fn inflight_is_resent_with_dup_after_reconnect_before_the_buffer() {
        let t = Instant::now();
        let (mut c, mut peer) = connected(t);
        c.publish(publication(1, QoS::AtLeastOnce), t);
        c.publish(publication(2, QoS::AtLeastOnce), t);
        c.publish(publication(3, QoS::AtLeastOnce), t);
        peer.take(&mut c);
        c.handle_closed(ConnectionError::Io("reset".into()), t);
        assert!(!c.wants_socket());
        assert!(matches!(
            events(&mut c).last(),
            Some(ClientEvent::Disconnected(ConnectionError::Io(_)))
        ));
        c.publish(publication(4, QoS::AtLeastOnce), t);
        // Backoff: not before `delay`.
        assert!(!c.poll_connect(t + Duration::from_millis(999)));
        assert!(c.poll_connect(t + Duration::from_secs(1)));
        let t1 = t + Duration::from_secs(1);
        broker_accepts(&mut c, t1);
        let seen = peer.take(&mut c);
        assert_eq!(seen[0], Seen::Connect);
        assert!(matches!(seen[1], Seen::Subscribe { .. }));
        assert!(
            matches!(&seen[2], Seen::Publish { topic, dup: true, pkid: 2, .. } if topic == "out/1")
        );
        assert!(
            matches!(&seen[3], Seen::Publish { topic, dup: true, pkid: 3, .. } if topic == "out/2")
        );
        assert_eq!(seen.len(), 4, "window full: 3 and 4 wait");
        c.handle_read(&puback(2), t1);
        c.handle_read(&puback(3), t1);
        let topics: Vec<_> = peer
            .take(&mut c)
            .into_iter()
            .map(|s| match s {
                Seen::Publish { topic, dup, .. } => (topic, dup),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            topics,
            [("out/3".to_string(), false), ("out/4".to_string(), false)]
        );
        assert_eq!(c.stats().resent, 2);
    }

    #[test]
    fn exponential_backoff_schedule_and_reset() {
        let t = Instant::now();
        let mut c = Client::new(cfg(), t);
        let mut now = t;
        let mut waits = Vec::new();
        for _ in 0..5 {
            c.handle_connecting(now);
            c.handle_closed(ConnectionError::Io("refused".into()), now);
            let at = c.poll_timeout().unwrap();
            waits.push((at - now).as_secs());
            now = at;
        }
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        // A successful connection resets the schedule.
        broker_accepts(&mut c, now);
        c.handle_closed(ConnectionError::Io("x".into()), now);
        assert_eq!(c.poll_timeout(), Some(now + Duration::from_secs(1)));
    }

    #[test]
    fn fixed_backoff_without_exponential() {
        let t = Instant::now();
        let mut cf = cfg();
        cf.reconnect.exponential = false;
        let mut c = Client::new(cf, t);
        for _ in 0..3 {
            c.handle_connecting(t);
            c.handle_closed(ConnectionError::Io("refused".into()), t);
            assert_eq!(c.poll_timeout(), Some(t + Duration::from_secs(1)));
        }
        // delay 0 is floored so a refusing broker cannot cause a busy loop.
        let mut cf = cfg();
        cf.reconnect.delay = Duration::ZERO;
        let mut c = Client::new(cf, t);
        c.handle_connecting(t);
        c.handle_closed(ConnectionError::Io("refused".into()), t);
        assert_eq!(c.poll_timeout(), Some(t + MIN_RECONNECT_DELAY));
    }

    #[test]
    fn keepalive_ping_and_timeout() {
        let t = Instant::now();
        let (mut c, mut peer) = connected(t);
        assert_eq!(c.poll_timeout(), Some(t + Duration::from_secs(10)));
        c.handle_timeout(t + Duration::from_secs(9));
        assert!(peer.take(&mut c).is_empty());
        let t1 = t + Duration::from_secs(10);
        c.handle_timeout(t1);
        assert_eq!(peer.take(&mut c), [Seen::PingReq]);
        c.handle_read(&[0xD0, 0x00], t1 + Duration::from_secs(1));
        // Answered: the next ping is due a keepalive after the last transmission.
        c.handle_timeout(t1 + Duration::from_secs(5));
        assert!(peer.take(&mut c).is_empty());
        let t2 = t1 + Duration::from_secs(10);
        c.handle_timeout(t2);
        assert_eq!(peer.take(&mut c), [Seen::PingReq]);
        // Unanswered for a keepalive interval: the connection is declared dead.
        c.handle_timeout(t2 + Duration::from_secs(10));
        assert!(!c.wants_socket());
        assert!(events(&mut c)
            .iter()
            .any(|e| *e == ClientEvent::Disconnected(ConnectionError::PingTimeout)));
    }

    #[test]
    fn connack_timeout_and_refusal() {
        let t = Instant::now();
        let mut c = Client::new(cfg(), t);
        c.handle_connecting(t);
        c.handle_connected(t + Duration::from_secs(1));
        c.handle_timeout(t + Duration::from_millis(4999));
        assert!(c.wants_socket());
        c.handle_timeout(t + Duration::from_secs(5));
        assert!(!c.wants_socket());
        assert_eq!(disconnect_reason(&mut c), ConnectionError::ConnAckTimeout);
        let t1 = c.poll_timeout().unwrap();
        socket_up(&mut c, t1);
        c.handle_read(&[0x20, 0x02, 0x00, 0x05], t1);
        assert!(matches!(
            disconnect_reason(&mut c),
            ConnectionError::Refused(_)
        ));
    }

    #[test]
    fn incoming_qos_levels_are_acknowledged() {
        let t = Instant::now();
        let (mut c, mut peer) = connected(t);
        // QoS 0, QoS 1 (pkid 5), QoS 2 (pkid 6) twice, then PUBREL 6.
        let mut bytes = vec![0x30, 0x05, 0x00, 0x01, b'a', b'x', b'y'];
        bytes.extend_from_slice(&[0x32, 0x06, 0x00, 0x01, b'b', 0x00, 0x05, b'z']);
        bytes.extend_from_slice(&[0x34, 0x06, 0x00, 0x01, b'c', 0x00, 0x06, b'q']);
        bytes.extend_from_slice(&[0x3C, 0x06, 0x00, 0x01, b'c', 0x00, 0x06, b'q']);
        bytes.extend_from_slice(&[0x62, 0x02, 0x00, 0x06]);
        // Split in odd places to prove partial input is kept.
        for chunk in bytes.chunks(3) {
            c.handle_read(chunk, t);
        }
        assert_eq!(
            peer.take(&mut c),
            [
                Seen::PubAck(5),
                Seen::PubRec(6),
                Seen::PubRec(6),
                Seen::PubComp(6)
            ]
        );
        let topics: Vec<_> = events(&mut c)
            .into_iter()
            .filter_map(|e| match e {
                ClientEvent::Message(m) => Some(m.topic),
                _ => None,
            })
            .collect();
        assert_eq!(
            topics,
            ["a", "b", "c"],
            "the QoS 2 re-send is delivered once"
        );
        assert_eq!(c.stats().received, 3);
    }

    #[test]
    fn garbage_from_broker_drops_the_connection() {
        let t = Instant::now();
        let (mut c, _peer) = connected(t);
        c.handle_read(&[0x10, 0x00], t);
        assert!(!c.wants_socket());
        assert!(matches!(
            disconnect_reason(&mut c),
            ConnectionError::Protocol(_)
        ));
    }

    #[test]
    fn packet_before_connack_is_a_protocol_error() {
        let t = Instant::now();
        let mut c = Client::new(cfg(), t);
        socket_up(&mut c, t);
        c.handle_read(&[0xD0, 0x00], t);
        assert!(!c.wants_socket());
    }

    #[test]
    fn will_is_cleared_then_subscribe() {
        let t = Instant::now();
        let mut cf = cfg();
        cf.clear_will_topic = Some("w".into());
        let mut c = Client::new(cf, t);
        let mut peer = Peer::new();
        broker_accepts(&mut c, t);
        let seen = peer.take(&mut c);
        assert_eq!(seen[0], Seen::Connect);
        assert_eq!(
            seen[1],
            Seen::Publish {
                topic: "w".into(),
                pkid: 1,
                dup: false,
                retain: true,
                payload_len: 0
            }
        );
        assert!(matches!(seen[2], Seen::Subscribe { pkid: 2, .. }));
        // Its PUBACK is for an id we do not track: nothing happens.
        c.handle_read(&puback(1), t);
        assert_eq!(c.stats().acked, 0);
    }

    #[test]
    fn v5_receive_maximum_caps_the_window() {
        let t = Instant::now();
        let mut cf = cfg();
        cf.protocol = Protocol::V5;
        cf.send_maximum = 10;
        let mut c = Client::new(cf, t);
        socket_up(&mut c, t);
        // CONNACK with receive maximum 1.
        c.handle_read(&[0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x01], t);
        assert!(c.is_connected());
        c.publish(publication(1, QoS::AtLeastOnce), t);
        c.publish(publication(2, QoS::AtLeastOnce), t);
        assert_eq!((c.inflight_len(), c.pending_len()), (1, 1));
    }

    #[test]
    fn shutdown_sends_disconnect_and_stops() {
        let t = Instant::now();
        let (mut c, mut peer) = connected(t);
        c.publish(publication(1, QoS::AtLeastOnce), t);
        peer.take(&mut c);
        events(&mut c);
        c.shutdown();
        assert_eq!(peer.take(&mut c), [Seen::Disconnect]);
        assert!(!c.wants_socket());
        assert!(!c.poll_connect(t + Duration::from_secs(100)));
        c.handle_closed(ConnectionError::Io("closed".into()), t);
        assert!(events(&mut c).is_empty());
    }

    #[test]
    fn packet_ids_wrap_and_skip_inflight() {
        let t = Instant::now();
        let (mut c, _peer) = connected(t);
        c.next_pkid = u16::MAX - 1;
        c.publish(publication(1, QoS::AtLeastOnce), t); // 65535
        c.publish(publication(2, QoS::AtLeastOnce), t); // wraps to 1? 1 was the SUBSCRIBE, free
        let ids: Vec<u16> = c.inflight.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [u16::MAX, 1]);
        c.next_pkid = u16::MAX - 1;
        assert_eq!(c.alloc_pkid(), 2, "65535 and 1 are in flight");
    }
}
