//! The websocket transport: the HTTP upgrade ([`handshake`]), RFC 6455 frames ([`framing`]),
//! and which VSCP dialect a URL path selects (`/ws1` text, `/ws2` JSON). Sans-IO, behind the
//! [`vscp_transport`] seam: the server's generic connection driver does the reading and
//! writing, the VSCP session (`vscp_proto::Session`) the protocol.
#![warn(missing_debug_implementations, rust_2018_idioms)]

pub mod client;
pub mod framing;
pub mod handshake;

use framing::{Decoded as WsDecoded, Decoder, Incoming as WsIncoming};
use handshake::{Endpoints, Verdict};
use vscp_transport::{
    BusyAnswer, Close, Decoded, Framing, Handshake, Incoming, Transport, WireError,
};

/// The websocket transport of one listener: the path of each dialect's endpoint (`None` when
/// it is switched off).
#[derive(Clone, Debug, Default)]
pub struct WsTransport {
    /// Path of the ws1 (text) endpoint, e.g. `/ws1`.
    pub ws1: Option<String>,
    /// Path of the ws2 (JSON) endpoint, e.g. `/ws2`.
    pub ws2: Option<String>,
}

impl Transport for WsTransport {
    type Framing = WsFraming;

    fn name(&self) -> &'static str {
        "ws"
    }

    fn handshake(&self, input: &[u8], out: &mut Vec<u8>) -> Handshake<WsFraming> {
        let endpoints = Endpoints {
            ws1: self.ws1.as_deref(),
            ws2: self.ws2.as_deref(),
        };
        match handshake::answer(input, endpoints, out) {
            Verdict::Incomplete => Handshake::Incomplete,
            Verdict::Accept(dialect) => Handshake::Accept {
                dialect,
                framing: WsFraming::default(),
            },
            Verdict::Refuse => Handshake::Refuse,
        }
    }

    fn busy_answer(&self) -> BusyAnswer {
        BusyAnswer {
            text: b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 23\r\nConnection: close\r\n\r\ntoo many connections.\r\n",
            after_request: true,
        }
    }

    fn refused_answer(&self) -> BusyAnswer {
        BusyAnswer {
            text: b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 58\r\nConnection: close\r\n\r\ntoo many connections or failed logins from this address.\r\n",
            after_request: true,
        }
    }
}

/// One websocket connection's framing state (only a fragmented message in progress).
#[derive(Debug, Default)]
pub struct WsFraming {
    decoder: Decoder,
}

impl Framing for WsFraming {
    fn decode<'a>(
        &mut self,
        buf: &'a mut [u8],
        max_message_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<Decoded<'a>, WireError> {
        let (used, msg) = match self.decoder.decode(buf, max_message_bytes)? {
            WsDecoded::Incomplete => return Ok(Decoded::Incomplete),
            WsDecoded::Frame { used, msg } => (used, msg),
        };
        let msg = match msg {
            None => None,
            Some(WsIncoming::Text(text)) => Some(Incoming::Message(text)),
            // ws1.md §1: binary frames carry nothing in either dialect.
            Some(WsIncoming::Binary(_)) => None,
            Some(WsIncoming::Pong) => Some(Incoming::Pong),
            Some(WsIncoming::Ping(data)) => {
                framing::encode(out, framing::OP_PONG, data);
                None
            }
            Some(WsIncoming::Close(close)) => {
                framing::encode_close_answer(out, close);
                Some(Incoming::Close)
            }
        };
        Ok(Decoded::Unit { used, msg })
    }

    fn encode(&self, out: &mut Vec<u8>, msg: &[u8]) {
        framing::encode(out, framing::OP_TEXT, msg);
    }

    fn encode_close(&self, out: &mut Vec<u8>, why: Close) -> bool {
        framing::encode_close(out, Some(framing::close_frame(why)));
        // Our own close of a healthy connection waits for the client's answer; after a
        // failure its input cannot be trusted any more, so it is not read again.
        !matches!(why, Close::Failed(_))
    }

    fn encode_ping(&self, out: &mut Vec<u8>) -> bool {
        // No payload: a pong is matched to nothing, any input proves the peer alive.
        framing::encode(out, framing::OP_PING, b"");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vscp_transport::Dialect;

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        const MASK: [u8; 4] = [1, 2, 3, 4];
        let mut f = vec![first, 0x80 | payload.len() as u8];
        f.extend_from_slice(&MASK);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        f
    }

    #[test]
    fn handshake_selects_the_dialect_by_path() {
        let t = WsTransport {
            ws1: Some("/ws1".into()),
            ws2: None,
        };
        let mut out = Vec::new();
        assert!(matches!(t.handshake(b"", &mut out), Handshake::Incomplete));
        let req = "GET /ws1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        match t.handshake(req.as_bytes(), &mut out) {
            Handshake::Accept { dialect, .. } => assert_eq!(dialect, Dialect::Ws1),
            other => panic!("{other:?}"),
        }
        out.clear();
        let off = req.replace("/ws1", "/ws2");
        assert!(matches!(
            t.handshake(off.as_bytes(), &mut out),
            Handshake::Refuse
        ));
        assert!(out.starts_with(b"HTTP/1.1 404"));
    }

    /// The refusals are whole HTTP responses: the Content-Length is their body's.
    #[test]
    fn refusal_answers_are_well_formed() {
        let t = WsTransport::default();
        for (answer, status) in [(t.busy_answer(), "503"), (t.refused_answer(), "429")] {
            let text = std::str::from_utf8(answer.text).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), body.len(), "{text}");
            assert!(answer.after_request);
        }
    }

    #[test]
    fn pings_are_answered_and_closes_echoed() {
        let mut f = WsFraming::default();
        let mut out = Vec::new();
        let mut ping = masked(0x89, b"hi");
        match f.decode(&mut ping, 100, &mut out).unwrap() {
            Decoded::Unit { used, msg: None } => assert_eq!(used, 8),
            other => panic!("{other:?}"),
        }
        assert_eq!(out, [0x8A, 2, b'h', b'i']);
        out.clear();
        // 1005 may not be sent by a client: answered with 1002.
        let mut close = masked(0x88, &[0x03, 0xED]);
        assert!(matches!(
            f.decode(&mut close, 100, &mut out).unwrap(),
            Decoded::Unit {
                msg: Some(Incoming::Close),
                ..
            }
        ));
        assert_eq!(&out[..4], [0x88, 20, 0x03, 0xEA]);
        let mut text = masked(0x81, b"C;NOOP");
        match f.decode(&mut text, 100, &mut out).unwrap() {
            Decoded::Unit {
                msg: Some(Incoming::Message(m)),
                ..
            } => assert_eq!(&*m, b"C;NOOP"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn our_close_waits_for_the_answer_unless_the_client_failed() {
        let f = WsFraming::default();
        let mut out = Vec::new();
        assert!(f.encode_close(&mut out, Close::Shutdown));
        assert_eq!(&out[..4], [0x88, 22, 0x03, 0xE9]);
        out.clear();
        assert!(!f.encode_close(&mut out, Close::Failed(WireError::TooBig)));
        assert_eq!(&out[..4], [0x88, 17, 0x03, 0xF1]);
        out.clear();
        assert!(f.encode_close(&mut out, Close::LoginTimeout));
        assert_eq!(&out[..4], [0x88, 15, 0x03, 0xF0]);
        out.clear();
        assert!(f.encode_close(&mut out, Close::PongTimeout));
        assert_eq!(out, b"\x88\x0e\x03\xe9pong timeout");
    }

    #[test]
    fn our_ping_is_an_empty_ping_frame_and_its_pong_is_reported() {
        let mut f = WsFraming::default();
        let mut out = Vec::new();
        assert!(f.encode_ping(&mut out));
        assert_eq!(out, [0x89, 0]);
        out.clear();
        let mut pong = masked(0x8A, b"");
        match f.decode(&mut pong, 100, &mut out).unwrap() {
            Decoded::Unit {
                used: 6,
                msg: Some(Incoming::Pong),
            } => {}
            other => panic!("{other:?}"),
        }
        assert!(out.is_empty(), "a pong is not answered");
    }
}
