//! MQTT over websockets (MQTT 3.1.1 §6, MQTT 5 §6), without I/O: the bridge's link to a broker
//! named `ws://` or `wss://` in `host`. After the upgrade the MQTT byte stream travels in binary
//! frames; a frame may hold several packets or part of one, so the link only wraps and unwraps
//! bytes and the MQTT codec never knows.
//!
//! Why a broker's websocket listener: some deployments only open one (behind an HTTP proxy or a
//! cloud load balancer), and Mosquitto reads a websocket connection in large chunks where it
//! reads a plain MQTT connection a few bytes at a time (three or four reads per packet), which is
//! most of its cost per bridged event (docs/BENCHMARKS.md, issue 12).

use vscp_ws::client::{Upgrade, UpgradeError};
use vscp_ws::framing::{self, Decoded, Decoder, Incoming};

/// The subprotocol MQTT over websockets registers (MQTT 3.1.1 §6, MQTT 5 §6).
pub const SUBPROTOCOL: &str = "mqtt";
/// Largest frame or message accepted from the broker: well above any packet the bridge takes
/// (an MQTT packet is at most 256 MiB, but a VSCP event's publish is a few KiB).
const MAX_FRAME: usize = 16 << 20;

/// One websocket connection to the broker, from the upgrade on.
#[derive(Debug)]
pub struct WsLink {
    /// The upgrade, until the broker's answer is in.
    upgrade: Option<Upgrade>,
    decoder: Decoder,
    /// Read bytes that do not make a whole frame yet (and, before the answer, the answer).
    pending: Vec<u8>,
    /// State of the masking keys' generator (xorshift64*). RFC 6455 §5.3 asks for keys a proxy
    /// cannot predict from earlier frames; a generator seeded from the OS per connection does
    /// that without a system call per frame.
    rng: u64,
}

/// What bytes from the broker amounted to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unwrapped {
    /// The MQTT bytes the frames carried, for the codec.
    pub mqtt: Vec<u8>,
    /// Frames to send back (pongs, the answer to a close).
    pub reply: Vec<u8>,
}

/// Why the link is over.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    #[error(transparent)]
    Upgrade(#[from] UpgradeError),
    #[error("websocket protocol error from the broker: {0:?}")]
    Frame(vscp_transport::WireError),
    #[error("the broker sent a text frame; MQTT over websockets is binary")]
    Text,
    #[error("the broker closed the websocket{}", match .0 { Some((c, r)) => format!(" ({c} {r})"), None => String::new() })]
    Closed(Option<(u16, String)>),
}

impl WsLink {
    /// The upgrade request for `path` on the broker, and the link waiting for the answer.
    /// `seed` (random) starts the masking keys.
    pub fn start(
        host: &str,
        port: u16,
        tls: bool,
        path: &str,
        seed: u64,
    ) -> Result<(WsLink, Vec<u8>), String> {
        let default_port = if tls { 443 } else { 80 };
        let (request, upgrade) =
            vscp_ws::client::request(host, port, default_port, path, SUBPROTOCOL)?;
        let link = WsLink {
            upgrade: Some(upgrade),
            decoder: Decoder::for_client(),
            pending: Vec::new(),
            rng: seed | 1,
        };
        Ok((link, request))
    }

    /// Whether the broker's answer to the upgrade is still to come.
    pub fn upgrading(&self) -> bool {
        self.upgrade.is_some()
    }

    /// Takes bytes read from the broker.
    pub fn unwrap(&mut self, read: &[u8]) -> Result<Unwrapped, LinkError> {
        let mut out = Unwrapped::default();
        // The common case, whole frames in one read, is decoded where it lies in `pending`.
        self.pending.extend_from_slice(read);
        let mut at = 0;
        if let Some(upgrade) = &self.upgrade {
            match upgrade.check(&self.pending)? {
                None => return Ok(out),
                Some(len) => {
                    at = len;
                    self.upgrade = None;
                }
            }
        }
        loop {
            match self.decoder.decode(&mut self.pending[at..], MAX_FRAME) {
                Err(e) => return Err(LinkError::Frame(e)),
                Ok(Decoded::Incomplete) => break,
                Ok(Decoded::Frame { used, msg }) => {
                    match msg {
                        None | Some(Incoming::Pong) => {}
                        Some(Incoming::Binary(bytes)) => out.mqtt.extend_from_slice(&bytes),
                        Some(Incoming::Text(_)) => return Err(LinkError::Text),
                        Some(Incoming::Ping(data)) => {
                            let data = data.to_vec();
                            let mask = self.mask();
                            framing::encode_masked(&mut out.reply, framing::OP_PONG, &data, mask);
                        }
                        Some(Incoming::Close(close)) => {
                            let close = close.map(|(code, why)| (code, why.to_owned()));
                            return Err(LinkError::Closed(close));
                        }
                    }
                    at += used;
                }
            }
        }
        self.pending.drain(..at);
        Ok(out)
    }

    /// Appends `mqtt` (one or more packets) to `out` as one binary frame.
    pub fn wrap(&mut self, mqtt: &[u8], out: &mut Vec<u8>) {
        let mask = self.mask();
        framing::encode_masked(out, framing::OP_BINARY, mqtt, mask);
    }

    fn mask(&mut self) -> [u8; 4] {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let word = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((word >> 32) as u32).to_ne_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vscp_ws::handshake::{answer_any_path, Verdict};

    /// A link past the upgrade, answered by a real RFC 6455 server handshake (with the
    /// subprotocol added, as a broker would).
    fn upgraded() -> WsLink {
        let (mut link, request) = WsLink::start("127.0.0.1", 9001, false, "/mqtt", 7).unwrap();
        let mut answer = Vec::new();
        assert_eq!(
            answer_any_path(&request, &mut answer),
            Verdict::Accept(vscp_proto::Dialect::Ws1)
        );
        let text = String::from_utf8(answer).unwrap();
        let text = text.replacen("\r\n\r\n", "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n", 1);
        // The answer and a first frame arrive cut at an odd place.
        let mut bytes = text.into_bytes();
        framing::encode(&mut bytes, framing::OP_BINARY, &[0x20, 0x02, 0x00, 0x00]);
        let cut = bytes.len() - 3;
        assert!(link.upgrading());
        let first = link.unwrap(&bytes[..cut]).unwrap();
        assert!(first.mqtt.is_empty() && !link.upgrading());
        let rest = link.unwrap(&bytes[cut..]).unwrap();
        assert_eq!(rest.mqtt, [0x20, 0x02, 0x00, 0x00], "the CONNACK");
        link
    }

    #[test]
    fn packets_split_and_joined_across_frames_come_out_as_one_stream() {
        let mut link = upgraded();
        let mut frames = Vec::new();
        framing::encode(&mut frames, framing::OP_BINARY, &[0x40, 0x02]);
        framing::encode(
            &mut frames,
            framing::OP_BINARY,
            &[0x00, 0x01, 0x40, 0x02, 0x00, 0x02],
        );
        let mut got = Vec::new();
        for chunk in frames.chunks(3) {
            got.extend(link.unwrap(chunk).unwrap().mqtt);
        }
        assert_eq!(got, [0x40, 0x02, 0x00, 0x01, 0x40, 0x02, 0x00, 0x02]);
        assert!(link.pending.is_empty());
    }

    #[test]
    fn wrapped_bytes_are_one_masked_binary_frame_a_server_reads_back() {
        let mut link = upgraded();
        let mut out = Vec::new();
        link.wrap(b"\x30\x05\x00\x01tx", &mut out);
        link.wrap(b"\xc0\x00", &mut out);
        assert_ne!(out[2..6], out[10 + 2..10 + 6], "a new key per frame");
        let mut server = Decoder::default();
        let (mut at, mut got) = (0, Vec::new());
        while at < out.len() {
            match server.decode(&mut out[at..], 100).unwrap() {
                Decoded::Frame {
                    used,
                    msg: Some(Incoming::Binary(p)),
                } => {
                    got.extend_from_slice(&p);
                    at += used;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, b"\x30\x05\x00\x01tx\xc0\x00");
    }

    #[test]
    fn pings_are_answered_and_close_text_and_bad_frames_end_the_link() {
        let mut link = upgraded();
        let mut ping = Vec::new();
        framing::encode(&mut ping, framing::OP_PING, b"hi");
        let out = link.unwrap(&ping).unwrap();
        let mut server = Decoder::default();
        let mut reply = out.reply.clone();
        assert!(matches!(
            server.decode(&mut reply, 100),
            Ok(Decoded::Frame {
                msg: Some(Incoming::Pong),
                ..
            })
        ));
        let mut close = Vec::new();
        framing::encode_close(&mut close, Some((1001, "going away")));
        let closed = Err(LinkError::Closed(Some((1001, "going away".into()))));
        assert_eq!(upgraded().unwrap(&close), closed);
        let mut text = Vec::new();
        framing::encode(&mut text, framing::OP_TEXT, b"{}");
        assert_eq!(upgraded().unwrap(&text), Err(LinkError::Text));
        assert!(matches!(
            upgraded().unwrap(&[0x8F, 0x00]),
            Err(LinkError::Frame(_))
        ));
    }

    #[test]
    fn a_refused_upgrade_names_the_status() {
        let (mut link, _) = WsLink::start("localhost", 80, false, "/mqtt", 1).unwrap();
        let err = link.unwrap(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(err, Err(LinkError::Upgrade(UpgradeError::Refused(404))));
        assert_eq!(
            err.unwrap_err().to_string(),
            "the server refused the websocket upgrade: HTTP 404"
        );
    }
}
