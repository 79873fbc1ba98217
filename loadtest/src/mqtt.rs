//! A minimal MQTT 3.1.1 client on glommio: QoS 0 publish and subscribe, QoS 1 publish with the
//! PUBACKs matched to packet ids ([`Inflight`]), over a websocket
//! (binary messages, subprotocol `mqtt`, as Mosquitto's `protocol websockets` listener speaks
//! it) or over plain TCP.
//!
//! Incoming bytes go into one accumulating buffer that is parsed packet by packet, because
//! neither transport keeps MQTT packets and reads 1:1: a websocket message may carry several
//! packets or part of one, and TCP has no boundaries at all.
//!
//! Per-client memory stays small (8 KiB read chunks, 8 KiB write batches; an idle websocket
//! client measured about 9 KiB of RSS), so a generator can hold a few hundred clients. Connect, subscribe and disconnect have no timeout
//! of their own; wrap them in `glommio::timer::timeout` where a stuck broker must not hang the
//! run. `next_publish` is cancel-safe, so it can be raced against a timer too.

use anyhow::{anyhow, bail, Context, Result};
use async_tungstenite::WebSocketStream;
use bytes::{BufMut, Bytes, BytesMut};
use futures::{AsyncRead, AsyncReadExt, AsyncWriteExt, SinkExt, StreamExt};
use glommio::net::TcpStream;
use mqttbytes::v4::{self, Packet, SubscribeReasonCode};
use mqttbytes::QoS;
use std::collections::{HashMap, VecDeque};
use std::net::Shutdown;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

/// Largest incoming MQTT packet and websocket message: well above the 64 KiB payloads the
/// scenarios send, yet small enough that a corrupt length field cannot make a few hundred
/// clients try to buffer gigabytes.
pub const MAX_PACKET_BYTES: usize = 256 * 1024;
/// Bytes asked of the socket per read (TCP) and tungstenite's read chunk (websocket).
const READ_CHUNK: usize = 8 * 1024;
/// Outgoing bytes buffered before they are written without waiting for `flush()`.
const WRITE_BATCH: usize = 8 * 1024;
/// How long `disconnect` waits for the broker to close its side; see there.
const CLOSE_DRAIN: Duration = Duration::from_secs(1);
/// The MQTT limit on a packet's remaining length (four length bytes).
const MQTT_MAX_REMAINING: usize = 268_435_455;

enum Transport {
    // Boxed: tungstenite's state is several times the size of a bare stream.
    Ws(Box<WebSocketStream<TcpStream>>),
    Tcp(TcpStream),
}

/// One MQTT connection. Methods take `&mut self`, so one client is driven by one task;
/// publishers and subscribers are separate clients.
pub struct MqttClient {
    transport: Transport,
    /// Received bytes not yet parsed into a whole packet.
    rbuf: BytesMut,
    /// TCP: encoded packets not yet written. Websocket: scratch for the packet being encoded
    /// (it leaves as one binary message).
    wbuf: BytesMut,
    /// Websocket messages were handed to tungstenite since the last flush.
    ws_unflushed: bool,
    /// PUBLISHes that arrived while `subscribe` waited for its SUBACK (an earlier
    /// subscription may already be delivering); `next_publish` returns them first.
    early: VecDeque<(String, Bytes)>,
    next_pkid: u16,
}

impl MqttClient {
    /// Websocket upgrade to `ws://{host_port}{path}` with `Sec-WebSocket-Protocol: mqtt` on an
    /// already connected stream, then CONNECT (clean session, keep-alive 0 = no pings) and wait
    /// for the CONNACK; an error if the broker refuses.
    pub async fn connect_ws(
        stream: TcpStream,
        host_port: &str,
        path: &str,
        client_id: &str,
    ) -> Result<Self> {
        // Small packets must not wait for Nagle; batching is ours to do (see `flush`).
        set_nodelay(&stream)?;
        let url = format!("ws://{host_port}{path}");
        let mut request = url.as_str().into_client_request()?;
        request.headers_mut().insert(
            "sec-websocket-protocol",
            tungstenite::http::HeaderValue::from_static("mqtt"),
        );
        // tungstenite's defaults (128 KiB read chunk, 128 KiB write buffer) would cost a few
        // hundred clients tens of MiB for nothing.
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_CHUNK)
            .write_buffer_size(WRITE_BATCH)
            .max_message_size(Some(MAX_PACKET_BYTES))
            .max_frame_size(Some(MAX_PACKET_BYTES));
        let (ws, _) = async_tungstenite::client_async_with_config(request, stream, Some(config))
            .await
            .with_context(|| format!("websocket upgrade to {url} (subprotocol mqtt)"))?;
        let mut client = Self::new(Transport::Ws(Box::new(ws)), 0);
        client.handshake(client_id).await?;
        Ok(client)
    }

    /// CONNECT over plain TCP, then wait for the CONNACK; an error if the broker refuses.
    pub async fn connect_tcp(stream: TcpStream, client_id: &str) -> Result<Self> {
        set_nodelay(&stream)?;
        let mut client = Self::new(Transport::Tcp(stream), READ_CHUNK);
        client.handshake(client_id).await?;
        Ok(client)
    }

    fn new(transport: Transport, rbuf_capacity: usize) -> Self {
        Self {
            transport,
            rbuf: BytesMut::with_capacity(rbuf_capacity),
            wbuf: BytesMut::new(),
            ws_unflushed: false,
            early: VecDeque::new(),
            next_pkid: 1,
        }
    }

    async fn handshake(&mut self, client_id: &str) -> Result<()> {
        let mut connect = v4::Connect::new(client_id);
        // Keep-alive 0: the broker never times an idle client out, so a silent subscriber
        // needs no PINGREQ timer.
        connect.keep_alive = 0;
        connect.clean_session = true;
        connect.write(&mut self.wbuf).map_err(mqtt_error)?;
        self.queue_packet().await?;
        self.flush().await?;
        match self.next_packet().await? {
            Some(Packet::ConnAck(ack)) if ack.code == v4::ConnectReturnCode::Success => Ok(()),
            Some(Packet::ConnAck(ack)) => {
                bail!("broker refused CONNECT of {client_id:?}: {:?}", ack.code)
            }
            Some(other) => bail!("expected CONNACK, broker sent {other:?}"),
            None => bail!("broker closed the connection before CONNACK"),
        }
    }

    /// SUBSCRIBE at QoS 0 and wait for the SUBACK; an error if the broker refuses the filter.
    pub async fn subscribe(&mut self, filter: &str) -> Result<()> {
        let pkid = self.next_pkid;
        // Packet identifiers must be non-zero.
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        let mut subscribe = v4::Subscribe::new(filter, QoS::AtMostOnce);
        subscribe.pkid = pkid;
        subscribe.write(&mut self.wbuf).map_err(mqtt_error)?;
        self.queue_packet().await?;
        self.flush().await?;
        loop {
            match self.next_packet().await? {
                Some(Packet::SubAck(ack)) if ack.pkid == pkid => {
                    return match ack.return_codes.first() {
                        Some(SubscribeReasonCode::Success(_)) => Ok(()),
                        code => bail!("broker refused SUBSCRIBE to {filter:?}: {code:?}"),
                    };
                }
                Some(Packet::Publish(p)) => self.early.push_back((p.topic, p.payload)),
                Some(_) => continue,
                None => bail!("broker closed the connection before SUBACK for {filter:?}"),
            }
        }
    }

    /// PUBLISH at QoS 0. Buffered: it goes out once about 8 KiB have accumulated, on `flush`,
    /// or before `next_publish` waits for input. A paced publisher must call `flush` before it
    /// sleeps, or its last messages wait for the next batch.
    pub async fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<()> {
        encode_publish(&mut self.wbuf, topic, payload, None)?;
        self.queue_packet().await
    }

    /// PUBLISH at QoS 1 with packet id `pkid` (from an [`Inflight`] window, which matches the
    /// PUBACK that `next_puback` returns). Buffered like `publish`.
    pub async fn publish_qos1(&mut self, topic: &str, payload: &[u8], pkid: u16) -> Result<()> {
        if pkid == 0 {
            bail!("MQTT packet id 0 is reserved");
        }
        encode_publish(&mut self.wbuf, topic, payload, Some(pkid))?;
        self.queue_packet().await
    }

    /// The packet id of the next incoming PUBACK, skipping every other packet type; `Ok(None)`
    /// once the broker has closed the connection. Flushes pending publishes before it waits.
    /// Cancel-safe, like `next_publish`.
    pub async fn next_puback(&mut self) -> Result<Option<u16>> {
        loop {
            match self.next_packet().await? {
                Some(Packet::PubAck(ack)) => return Ok(Some(ack.pkid)),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }

    /// Sends everything `publish` has buffered.
    pub async fn flush(&mut self) -> Result<()> {
        match &mut self.transport {
            Transport::Ws(ws) => {
                if self.ws_unflushed {
                    ws.flush().await?;
                    self.ws_unflushed = false;
                }
            }
            Transport::Tcp(stream) => write_out(stream, &mut self.wbuf).await?,
        }
        Ok(())
    }

    /// The next incoming PUBLISH as (topic, payload), skipping every other packet type;
    /// `Ok(None)` once the broker has closed the connection. Flushes pending publishes before
    /// it waits, so nothing sits in the buffer while the task is blocked here.
    pub async fn next_publish(&mut self) -> Result<Option<(String, Bytes)>> {
        if let Some(early) = self.early.pop_front() {
            return Ok(Some(early));
        }
        loop {
            match self.next_packet().await? {
                Some(Packet::Publish(p)) => return Ok(Some((p.topic, p.payload))),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }

    /// DISCONNECT, then close the transport. Waits (up to a second) for the broker to close its
    /// side: closing a socket with unread input sends a reset, which may make the broker drop
    /// the DISCONNECT still in its receive queue and count an abnormal disconnect.
    pub async fn disconnect(mut self) -> Result<()> {
        self.wbuf.put_slice(&[0xE0, 0x00]);
        self.queue_packet().await?;
        self.flush().await?;
        let drain = async {
            // Errors are expected here: the broker closes on DISCONNECT, possibly before our
            // close frame or FIN arrives.
            match &mut self.transport {
                Transport::Ws(ws) => {
                    let _ = WebSocketStream::close(ws, None).await;
                    while let Some(Ok(_)) = ws.next().await {}
                }
                Transport::Tcp(stream) => {
                    let _ = stream.shutdown(Shutdown::Write).await;
                    let mut sink = [0u8; 256];
                    while let Ok(1..) = stream.read(&mut sink).await {}
                }
            }
            Ok::<(), glommio::GlommioError<()>>(())
        };
        let _ = glommio::timer::timeout(CLOSE_DRAIN, drain).await;
        Ok(())
    }

    /// Hands the packet encoded in `wbuf` to the transport.
    async fn queue_packet(&mut self) -> Result<()> {
        match &mut self.transport {
            Transport::Ws(ws) => {
                // One MQTT packet per websocket message, as browser clients send them;
                // tungstenite buffers up to WRITE_BATCH of frames before writing.
                let packet = self.wbuf.split().freeze();
                ws.feed(Message::Binary(packet)).await?;
                self.ws_unflushed = true;
            }
            Transport::Tcp(stream) => {
                if self.wbuf.len() >= WRITE_BATCH {
                    write_out(stream, &mut self.wbuf).await?;
                }
            }
        }
        Ok(())
    }

    /// The next whole packet, reading (and first flushing) as needed; `None` once the broker
    /// has closed. Cancel-safe: bytes are only ever appended to `rbuf` in whole reads.
    async fn next_packet(&mut self) -> Result<Option<Packet>> {
        loop {
            if let Some(packet) = parse_packet(&mut self.rbuf)? {
                return Ok(Some(packet));
            }
            self.flush().await?;
            if !self.fill().await? {
                if !self.rbuf.is_empty() {
                    bail!(
                        "broker closed the connection inside a packet ({} bytes left over)",
                        self.rbuf.len()
                    );
                }
                return Ok(None);
            }
        }
    }

    /// Appends the next chunk of input to `rbuf`; false once the broker has closed.
    async fn fill(&mut self) -> Result<bool> {
        match &mut self.transport {
            Transport::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(data))) => {
                        self.rbuf.extend_from_slice(&data);
                        return Ok(true);
                    }
                    Some(Ok(Message::Text(_))) => {
                        bail!("broker sent a text websocket message; MQTT is binary only")
                    }
                    // Ping/pong are answered by tungstenite; after a Close it sends the
                    // reply, and the next read ends the stream.
                    Some(Ok(_)) => continue,
                    Some(Err(e)) if is_close(&e) => return Ok(false),
                    Some(Err(e)) => return Err(e).context("websocket read"),
                    None => return Ok(false),
                }
            },
            Transport::Tcp(stream) => {
                let rbuf = &mut self.rbuf;
                rbuf.reserve(READ_CHUNK);
                // The zeroed tail is added and trimmed again within one poll, so a cancelled
                // read never leaves filler bytes in the buffer.
                let n = std::future::poll_fn(|cx| {
                    let start = rbuf.len();
                    rbuf.resize(start + READ_CHUNK, 0);
                    let res = Pin::new(&mut *stream).poll_read(cx, &mut rbuf[start..]);
                    let got = match &res {
                        Poll::Ready(Ok(n)) => *n,
                        _ => 0,
                    };
                    rbuf.truncate(start + got);
                    res
                })
                .await;
                match n {
                    Ok(0) => Ok(false),
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(false),
                    Err(e) => Err(e).context("MQTT socket read"),
                }
            }
        }
    }
}

fn set_nodelay(stream: &TcpStream) -> Result<()> {
    stream
        .set_nodelay(true)
        .map_err(|e| anyhow!("setting TCP_NODELAY: {e}"))
}

/// The broker went away, with or without a closing handshake: an end of input, not a failure.
fn is_close(e: &tungstenite::Error) -> bool {
    use tungstenite::error::ProtocolError;
    match e {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => true,
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => true,
        tungstenite::Error::Io(io) => io.kind() == std::io::ErrorKind::ConnectionReset,
        _ => false,
    }
}

/// Writes all of `buf` and empties it. Cancel-safe: each written chunk is removed from `buf`
/// as soon as the socket has taken it, so a retry never sends bytes twice.
async fn write_out(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<()> {
    while !buf.is_empty() {
        let n = stream.write(buf).await.context("MQTT socket write")?;
        if n == 0 {
            bail!("MQTT socket closed while writing");
        }
        let _ = buf.split_to(n);
    }
    Ok(())
}

/// Takes one whole packet off the front of `buf`; `None` when `buf` holds only part of one.
fn parse_packet(buf: &mut BytesMut) -> Result<Option<Packet>> {
    match v4::read(buf, MAX_PACKET_BYTES) {
        Ok(packet) => Ok(Some(packet)),
        Err(mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(e) => Err(mqtt_error(e)).context("malformed MQTT packet from the broker"),
    }
}

/// Encodes a PUBLISH straight into `buf`: QoS 0, or QoS 1 with packet id `qos1`. Hand-written
/// rather than via `mqttbytes::v4::Publish`, which wants an owned topic and payload: two
/// allocations and a copy per message in the generator's hottest loop.
fn encode_publish(
    buf: &mut BytesMut,
    topic: &str,
    payload: &[u8],
    qos1: Option<u16>,
) -> Result<()> {
    let topic_len = u16::try_from(topic.len()).map_err(|_| anyhow!("topic over 65535 bytes"))?;
    let remaining = 2 + topic.len() + 2 * qos1.is_some() as usize + payload.len();
    if remaining > MQTT_MAX_REMAINING {
        bail!("PUBLISH of {remaining} bytes exceeds the MQTT limit");
    }
    buf.reserve(5 + remaining);
    // Type 3 (PUBLISH), flags DUP 0, QoS 0 or 1 (bits 2-1), RETAIN 0.
    buf.put_u8(if qos1.is_some() { 0x32 } else { 0x30 });
    let mut len = remaining;
    loop {
        let digit = (len % 128) as u8;
        len /= 128;
        if len == 0 {
            buf.put_u8(digit);
            break;
        }
        buf.put_u8(digit | 0x80);
    }
    buf.put_u16(topic_len);
    buf.put_slice(topic.as_bytes());
    if let Some(pkid) = qos1 {
        buf.put_u16(pkid);
    }
    buf.put_slice(payload);
    Ok(())
}

/// QoS 1 PUBLISHes awaiting their PUBACK, by packet id, each with a value of the caller's (the
/// send time): a window of at most `window` unacknowledged messages. Ids run 1, 2, ... 65535,
/// 1, ... and skip any still in flight, so a slow PUBACK never has its id reused.
#[derive(Debug)]
pub struct Inflight<T> {
    slots: HashMap<u16, T>,
    next: u16,
    window: usize,
}

impl<T> Inflight<T> {
    /// A window of `window` messages, at least 1 and at most 65535 (the packet ids there are).
    pub fn new(window: usize) -> Self {
        let window = window.clamp(1, u16::MAX as usize);
        Self {
            slots: HashMap::with_capacity(window.min(4096)),
            next: 1,
            window,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_full(&self) -> bool {
        self.slots.len() >= self.window
    }

    /// A packet id for a new PUBLISH carrying `value`; `None` while the window is full.
    pub fn take(&mut self, value: T) -> Option<u16> {
        if self.is_full() {
            return None;
        }
        // Fewer than 65535 ids are in use, so this finds a free one.
        loop {
            let id = self.next;
            self.next = self.next.checked_add(1).unwrap_or(1);
            if let std::collections::hash_map::Entry::Vacant(slot) = self.slots.entry(id) {
                slot.insert(value);
                return Some(id);
            }
        }
    }

    /// The PUBACK for `pkid` frees its slot and returns its value; `None` for an id that is not
    /// in flight (a duplicate or unknown PUBACK), which changes nothing.
    pub fn ack(&mut self, pkid: u16) -> Option<T> {
        self.slots.remove(&pkid)
    }
}

fn mqtt_error(e: mqttbytes::Error) -> anyhow::Error {
    anyhow!("MQTT: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish_bytes(topic: &str, payload: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        encode_publish(&mut buf, topic, payload, None).unwrap();
        buf
    }

    fn expect_publish(packet: Option<Packet>) -> (String, Bytes) {
        match packet {
            Some(Packet::Publish(p)) => {
                assert_eq!(p.qos, QoS::AtMostOnce);
                (p.topic, p.payload)
            }
            other => panic!("expected a PUBLISH, got {other:?}"),
        }
    }

    #[test]
    fn encoded_publish_reads_back_at_every_length_boundary() {
        // Remaining-length encodings switch from 1 to 2 bytes at 128 and 2 to 3 at 16384
        // (topic "a/b" adds 5 bytes to the payload).
        const SIZES: [usize; 11] = [
            0, 1, 121, 122, 123, 124, 127, 16_377, 16_378, 16_379, 61_440,
        ];
        for size in SIZES {
            let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut buf = publish_bytes("a/b", &payload);
            let remaining = size + 5;
            let length_bytes = match remaining {
                0..=127 => 1,
                128..=16_383 => 2,
                _ => 3,
            };
            assert_eq!(buf.len(), 1 + length_bytes + remaining, "{size} bytes");
            let (topic, got) = expect_publish(parse_packet(&mut buf).unwrap());
            assert_eq!(topic, "a/b");
            assert_eq!(&got[..], &payload[..], "payload of {size} bytes");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn several_packets_in_one_chunk() {
        let mut buf = BytesMut::new();
        for i in 0..5u8 {
            buf.extend_from_slice(&publish_bytes("t", &[i; 3]));
        }
        // A SUBACK and a PINGRESP in between, as a broker may interleave them.
        buf.extend_from_slice(&[0x90, 0x03, 0x00, 0x07, 0x00, 0xD0, 0x00]);
        buf.extend_from_slice(&publish_bytes("u", b"last"));
        for i in 0..5u8 {
            let (topic, payload) = expect_publish(parse_packet(&mut buf).unwrap());
            assert_eq!((topic.as_str(), &payload[..]), ("t", &[i; 3][..]));
        }
        match parse_packet(&mut buf).unwrap() {
            Some(Packet::SubAck(ack)) => {
                assert_eq!(ack.pkid, 7);
                assert_eq!(
                    ack.return_codes,
                    [SubscribeReasonCode::Success(QoS::AtMostOnce)]
                );
            }
            other => panic!("expected a SUBACK, got {other:?}"),
        }
        assert_eq!(parse_packet(&mut buf).unwrap(), Some(Packet::PingResp));
        let (topic, payload) = expect_publish(parse_packet(&mut buf).unwrap());
        assert_eq!((topic.as_str(), &payload[..]), ("u", &b"last"[..]));
        assert_eq!(parse_packet(&mut buf).unwrap(), None);
    }

    #[test]
    fn one_packet_split_across_chunks() {
        // 20,000 bytes: a three-byte remaining length, so splits land inside the header too.
        let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
        let wire = publish_bytes("split/topic", &payload);
        for chunk in [1, 2, 3, 7, 1000, 8192] {
            let mut buf = BytesMut::new();
            let mut parsed = None;
            for (i, piece) in wire.chunks(chunk).enumerate() {
                assert!(parsed.is_none(), "parsed before the last chunk");
                buf.extend_from_slice(piece);
                parsed = parse_packet(&mut buf).unwrap();
                if parsed.is_none() {
                    // Nothing may be consumed from a partial packet.
                    assert_eq!(buf.len(), (i * chunk + piece.len()).min(wire.len()));
                }
            }
            let (topic, got) = expect_publish(parsed);
            assert_eq!(topic, "split/topic");
            assert_eq!(&got[..], &payload[..], "chunk size {chunk}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn packet_straddling_two_chunks_with_neighbours() {
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&publish_bytes("x", b"one"));
        wire.extend_from_slice(&publish_bytes("x", &[9; 300]));
        wire.extend_from_slice(&publish_bytes("x", b"three"));
        // Cut in the middle of the second packet.
        let cut = 7 + 150;
        let mut buf = BytesMut::from(&wire[..cut]);
        let next_payload = |buf: &mut BytesMut| expect_publish(parse_packet(buf).unwrap()).1;
        assert_eq!(next_payload(&mut buf), &b"one"[..]);
        assert_eq!(parse_packet(&mut buf).unwrap(), None);
        buf.extend_from_slice(&wire[cut..]);
        assert_eq!(next_payload(&mut buf), &[9; 300][..]);
        assert_eq!(next_payload(&mut buf), &b"three"[..]);
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_and_malformed_packets_are_errors() {
        // Remaining length MAX_PACKET_BYTES + 1, refused from the header alone.
        let mut buf = BytesMut::new();
        buf.put_u8(0x30);
        let mut len = MAX_PACKET_BYTES + 1;
        while len > 0 {
            let digit = (len % 128) as u8;
            len /= 128;
            buf.put_u8(if len > 0 { digit | 0x80 } else { digit });
        }
        assert!(parse_packet(&mut buf).is_err());
        // Five remaining-length bytes.
        let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..]);
        assert!(parse_packet(&mut buf).is_err());
        // Packet type 0 is reserved.
        let mut buf = BytesMut::from(&[0x00, 0x00][..]);
        assert!(parse_packet(&mut buf).is_err());
    }

    #[test]
    fn topic_too_long_is_refused() {
        let mut buf = BytesMut::new();
        assert!(encode_publish(&mut buf, &"t".repeat(70_000), b"", None).is_err());
    }

    #[test]
    fn qos1_publish_carries_its_packet_id() {
        for (pkid, size) in [(1u16, 0usize), (300, 120), (65_535, 20_000)] {
            let payload: Vec<u8> = (0..size).map(|i| (i % 249) as u8).collect();
            let mut buf = BytesMut::new();
            encode_publish(&mut buf, "vscp/x", &payload, Some(pkid)).unwrap();
            match parse_packet(&mut buf).unwrap() {
                Some(Packet::Publish(p)) => {
                    assert_eq!(p.qos, QoS::AtLeastOnce);
                    assert_eq!(p.pkid, pkid);
                    assert_eq!(p.topic, "vscp/x");
                    assert_eq!(&p.payload[..], &payload[..]);
                }
                other => panic!("expected a PUBLISH, got {other:?}"),
            }
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn puback_parses_to_its_packet_id() {
        let mut buf = BytesMut::from(&[0x40, 0x02, 0x01, 0x2C][..]);
        match parse_packet(&mut buf).unwrap() {
            Some(Packet::PubAck(ack)) => assert_eq!(ack.pkid, 300),
            other => panic!("expected a PUBACK, got {other:?}"),
        }
    }

    #[test]
    fn inflight_window_fills_and_frees() {
        let mut w = Inflight::new(3);
        assert_eq!(w.take(10u64), Some(1));
        assert_eq!(w.take(11), Some(2));
        assert_eq!(w.take(12), Some(3));
        assert!(w.is_full());
        assert_eq!(w.take(13), None, "a full window gives no id");
        // PUBACKs in any order free their slot and return the send time.
        assert_eq!(w.ack(2), Some(11));
        assert_eq!(w.len(), 2);
        assert_eq!(w.take(14), Some(4));
        // A duplicate or unknown PUBACK changes nothing.
        assert_eq!(w.ack(2), None);
        assert_eq!(w.ack(999), None);
        assert_eq!(w.len(), 3);
        assert_eq!(
            (w.ack(1), w.ack(3), w.ack(4)),
            (Some(10), Some(12), Some(14))
        );
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn inflight_ids_wrap_past_zero_and_skip_ids_in_use() {
        let mut w = Inflight::new(4);
        // Id 1 stays unacknowledged for a whole lap of the id space.
        assert_eq!(w.take(0u32), Some(1));
        for i in 2..=u16::MAX {
            assert_eq!(w.take(i as u32), Some(i));
            assert_eq!(w.ack(i), Some(i as u32));
        }
        // 65535 wraps to 1, which is in flight: skipped; 0 is never used.
        assert_eq!(w.take(7), Some(2));
        assert_eq!(w.ack(1), Some(0));
        assert_eq!(w.ack(2), Some(7));
    }

    #[test]
    fn inflight_window_is_clamped_to_the_id_space() {
        assert_eq!(Inflight::<()>::new(0).window, 1);
        let mut w = Inflight::new(1_000_000);
        assert_eq!(w.window, 65_535);
        for i in 1..=u16::MAX {
            assert_eq!(w.take(()), Some(i));
        }
        assert!(w.is_full());
        assert_eq!(w.take(()), None);
    }
}
