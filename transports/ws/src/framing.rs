//! RFC 6455 framing, without I/O: decodes frames from bytes the caller read, and encodes frames
//! into a buffer the caller writes. Mostly the server side; the MQTT bridge's websocket link to
//! a broker uses [`Decoder::for_client`] and [`encode_masked`] (the client side).
//!
//! tungstenite does the HTTP upgrade and remains the frame codec (header parsing and
//! formatting); what this module replaces is tungstenite's *connection* (`WebSocket`,
//! `FrameCodec`), whose read and write buffers (and async-tungstenite's waker proxies) live as
//! long as the connection. A server holds tens of thousands of sessions that
//! are silent nearly all the time, so the server's connection driver reads into one buffer per
//! shard and a session keeps bytes of its own only while a frame or a fragmented message is
//! incomplete.
//!
//! The checks and their close codes are tungstenite's (so clients see the same behaviour as
//! before): a frame or message over the size limit is 1009, text that is not UTF-8 is 1007,
//! anything else RFC 6455 forbids is 1002.

use std::io::Cursor;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;
use vscp_transport::{Close, Payload, WireError};

pub const OP_CONTINUE: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close codes this server sends (RFC 6455 §7.4.1).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const INVALID: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const SIZE: u16 = 1009;
}

/// The close code a failure is answered with.
pub fn close_code(e: WireError) -> u16 {
    match e {
        WireError::TooBig => close_code::SIZE,
        WireError::BadUtf8 => close_code::INVALID,
        WireError::Protocol(_) => close_code::PROTOCOL,
    }
}

/// The close code and reason of the close frame we send.
pub fn close_frame(why: Close) -> (u16, &'static str) {
    match why {
        Close::Shutdown => (close_code::AWAY, "server shutting down"),
        Close::LoginTimeout => (close_code::POLICY, "login timeout"),
        Close::IdleTimeout => (close_code::NORMAL, "idle timeout"),
        // Mostly unread (the peer is gone), but a peer that was only slow learns why.
        Close::PongTimeout => (close_code::AWAY, "pong timeout"),
        Close::Failed(e) => (
            close_code(e),
            match e {
                WireError::TooBig => "message too big",
                WireError::BadUtf8 => "invalid UTF-8",
                WireError::Protocol(_) => "protocol error",
            },
        ),
    }
}

/// What a frame completed.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A whole text message, unmasked and valid UTF-8.
    Text(Payload<'a>),
    /// A whole binary message. VSCP has no use for them (the server drops them); a single-frame
    /// one costs nothing to hand over, and a fragmented one is put together like text.
    Binary(Payload<'a>),
    Ping(&'a [u8]),
    Pong,
    /// The client's close frame: its code and reason, if it gave any.
    Close(Option<(u16, &'a str)>),
}

/// The result of looking at the front of the input.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// Not a whole frame yet: read more (nothing was consumed).
    Incomplete,
    /// The first `used` bytes were one frame; `msg` is what it completed (nothing for a
    /// fragment that is not the last).
    Frame {
        used: usize,
        msg: Option<Incoming<'a>>,
    },
}

/// The receiving side of one connection: only the state of a fragmented message in progress.
#[derive(Debug, Default)]
pub struct Decoder {
    /// The payload so far of a fragmented message; unallocated when none is in progress.
    fragments: Vec<u8>,
    /// The data opcode of the fragmented message in progress.
    fragmented: Option<u8>,
    /// How much of a fragmented text message's `fragments` is known to be valid UTF-8, so each
    /// fragment is checked as it arrives (RFC 6455 §8.1: fail as soon as the text is invalid)
    /// and no byte is checked twice.
    checked: usize,
    /// We are the client: frames come from a server and must not be masked (RFC 6455 §5.1).
    from_server: bool,
}

impl Decoder {
    /// A decoder for the client's side of a connection: it takes the server's unmasked frames
    /// and refuses masked ones.
    pub fn for_client() -> Decoder {
        Decoder {
            from_server: true,
            ..Decoder::default()
        }
    }

    /// Decodes the frame at the front of `buf` (unmasking it in place). `max` limits both a
    /// frame's payload and a whole message.
    pub fn decode<'a>(&mut self, buf: &'a mut [u8], max: usize) -> Result<Decoded<'a>, WireError> {
        // The header is tungstenite's codec; only the buffers around it are ours.
        let mut cursor = Cursor::new(&*buf);
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(Decoded::Incomplete),
            // The only error of a header parse: a reserved opcode.
            Err(_) => return Err(WireError::Protocol("reserved opcode")),
        };
        let head = cursor.position() as usize;
        // Refused as soon as the header is known, like tungstenite: no point reading the rest.
        if len > max as u64 {
            return Err(WireError::TooBig);
        }
        let len = len as usize;
        let used = head + len;
        if buf.len() < used {
            return Ok(Decoded::Incomplete);
        }
        let mask = match (header.mask, self.from_server) {
            (Some(mask), false) => Some(mask),
            (None, true) => None,
            (None, false) => return Err(WireError::Protocol("unmasked frame from a client")),
            (Some(_), true) => return Err(WireError::Protocol("masked frame from a server")),
        };
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(WireError::Protocol(
                "reserved bits set without an extension",
            ));
        }
        let payload = &mut buf[head..used];
        if let Some(mask) = mask {
            unmask(payload, mask);
        }
        let msg = match header.opcode {
            OpCode::Control(control) => {
                if !header.is_final {
                    return Err(WireError::Protocol("fragmented control frame"));
                }
                if len > 125 {
                    return Err(WireError::Protocol("control frame over 125 bytes"));
                }
                match control {
                    Control::Close => Some(Incoming::Close(parse_close(payload)?)),
                    Control::Ping => Some(Incoming::Ping(payload)),
                    Control::Pong => Some(Incoming::Pong),
                    // Refused by the header parse already.
                    Control::Reserved(_) => return Err(WireError::Protocol("reserved opcode")),
                }
            }
            OpCode::Data(data) => {
                let opcode = match data {
                    Data::Continue => OP_CONTINUE,
                    Data::Text => OP_TEXT,
                    Data::Binary => OP_BINARY,
                    Data::Reserved(_) => return Err(WireError::Protocol("reserved opcode")),
                };
                self.data_frame(opcode, header.is_final, payload, max)?
            }
        };
        Ok(Decoded::Frame { used, msg })
    }

    fn data_frame<'a>(
        &mut self,
        opcode: u8,
        fin: bool,
        payload: &'a mut [u8],
        max: usize,
    ) -> Result<Option<Incoming<'a>>, WireError> {
        match (opcode, self.fragmented) {
            (OP_CONTINUE, None) => Err(WireError::Protocol("continuation without a start")),
            (OP_CONTINUE, Some(kind)) => {
                if self.fragments.len() + payload.len() > max {
                    return Err(WireError::TooBig);
                }
                self.fragments.extend_from_slice(payload);
                if kind == OP_TEXT {
                    self.check_text(fin)?;
                }
                if !fin {
                    return Ok(None);
                }
                self.fragmented = None;
                self.checked = 0;
                let whole = std::mem::take(&mut self.fragments);
                if kind == OP_BINARY {
                    return Ok(Some(Incoming::Binary(Payload::Owned(whole))));
                }
                // Every byte was checked as its fragment arrived.
                Ok(Some(Incoming::Text(Payload::Owned(whole))))
            }
            (OP_TEXT | OP_BINARY, Some(_)) => {
                Err(WireError::Protocol("new message inside a fragmented one"))
            }
            (OP_TEXT | OP_BINARY, None) if fin => complete(opcode, Payload::Borrowed(payload)),
            (OP_TEXT | OP_BINARY, None) => {
                self.fragments = payload.to_vec();
                self.fragmented = Some(opcode);
                self.checked = 0;
                if opcode == OP_TEXT {
                    self.check_text(false)?;
                }
                Ok(None)
            }
            _ => Err(WireError::Protocol("reserved data opcode")),
        }
    }

    /// Checks the text of a fragmented message that arrived since the last check. Only the
    /// last fragment (`fin`) must end on a whole character; before it, a character may be cut
    /// between fragments.
    fn check_text(&mut self, fin: bool) -> Result<(), WireError> {
        match std::str::from_utf8(&self.fragments[self.checked..]) {
            Ok(_) => self.checked = self.fragments.len(),
            // Cut at the end, not wrong (yet).
            Err(e) if e.error_len().is_none() && !fin => self.checked += e.valid_up_to(),
            Err(_) => return Err(WireError::BadUtf8),
        }
        Ok(())
    }
}

fn complete(opcode: u8, payload: Payload<'_>) -> Result<Option<Incoming<'_>>, WireError> {
    if opcode == OP_BINARY {
        return Ok(Some(Incoming::Binary(payload)));
    }
    if std::str::from_utf8(&payload).is_err() {
        return Err(WireError::BadUtf8);
    }
    Ok(Some(Incoming::Text(payload)))
}

/// A close frame's code and reason (RFC 6455 §5.5.1): none, or a 2-byte code and UTF-8 text.
fn parse_close(payload: &[u8]) -> Result<Option<(u16, &str)>, WireError> {
    match payload {
        [] => Ok(None),
        [_] => Err(WireError::Protocol("close frame with a 1-byte payload")),
        [hi, lo, reason @ ..] => {
            let reason = std::str::from_utf8(reason).map_err(|_| WireError::BadUtf8)?;
            Ok(Some((u16::from_be_bytes([*hi, *lo]), reason)))
        }
    }
}

/// Whether a client may send this close code (RFC 6455 §7.4), as tungstenite decides; a close
/// with any other code is answered with 1002.
pub fn close_code_allowed(code: u16) -> bool {
    tungstenite::protocol::frame::coding::CloseCode::from(code).is_allowed()
}

/// Appends the answer to a client's close (RFC 6455 §5.5.1): its own code and reason echoed, or
/// 1002 when its code is not one a client may send.
pub fn encode_close_answer(out: &mut Vec<u8>, close: Option<(u16, &str)>) {
    let answer = match close {
        Some((code, _)) if !close_code_allowed(code) => {
            Some((close_code::PROTOCOL, "Protocol violation"))
        }
        other => other,
    };
    encode_close(out, answer);
}

/// XORs the client's masking key over the payload, eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes(chunk.try_into().expect("8-byte chunk")) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    // Chunks are whole multiples of the 4-byte key, so the rest starts at key byte 0.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Appends one final, unmasked server frame (header by tungstenite's codec).
pub fn encode(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    encode_frame(out, opcode, payload, None);
}

/// Appends one final client frame, masked with `mask` (RFC 6455 §5.3: every client frame is
/// masked, with a key the client picks per frame).
pub fn encode_masked(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    encode_frame(out, opcode, payload, Some(mask));
}

fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    out.reserve(payload.len() + 14);
    let header = FrameHeader {
        is_final: true,
        opcode: OpCode::from(opcode),
        mask,
        ..FrameHeader::default()
    };
    // Formatting into a Vec cannot fail.
    let _ = header.format(payload.len() as u64, out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(mask) = mask {
        unmask(&mut out[start..], mask);
    }
}

/// Appends a close frame; `None` sends one without a code (the answer to such a close).
pub fn encode_close(out: &mut Vec<u8>, close: Option<(u16, &str)>) {
    let mut payload = [0u8; 125];
    let len = match close {
        None => 0,
        Some((code, reason)) => {
            // A client's reason fits (its frame was at most 125 bytes); ours are short.
            let reason = &reason.as_bytes()[..reason.len().min(123)];
            payload[..2].copy_from_slice(&code.to_be_bytes());
            payload[2..2 + reason.len()].copy_from_slice(reason);
            2 + reason.len()
        }
    };
    encode(out, OP_CLOSE, &payload[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![first];
        let len = payload.len();
        if len < 126 {
            f.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        f.extend_from_slice(&MASK);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        f
    }

    /// Decodes every frame in `input` fed one byte at a time (so every incomplete state is
    /// seen), returning the texts and a description of other messages.
    fn decode_all(input: &[u8], max: usize) -> Result<Vec<String>, WireError> {
        let mut d = Decoder::default();
        let mut pending = Vec::new();
        let mut out = Vec::new();
        for &b in input {
            pending.push(b);
            loop {
                match d.decode(&mut pending, max)? {
                    Decoded::Incomplete => break,
                    Decoded::Frame { used, msg } => {
                        match msg {
                            Some(Incoming::Text(t)) => {
                                out.push(String::from_utf8(t.to_vec()).unwrap())
                            }
                            Some(Incoming::Binary(b)) => out.push(format!("<binary {:?}>", &*b)),
                            Some(Incoming::Ping(p)) => out.push(format!("<ping {p:?}>")),
                            Some(Incoming::Pong) => out.push("<pong>".into()),
                            Some(Incoming::Close(c)) => out.push(format!("<close {c:?}>")),
                            None => {}
                        }
                        pending.drain(..used);
                    }
                }
            }
        }
        assert!(pending.is_empty(), "bytes left over");
        Ok(out)
    }

    #[test]
    fn messages_control_frames_and_lengths() {
        let mut input = frame(0x81, b"C;NOOP");
        input.extend(frame(0x89, b"hi"));
        input.extend(frame(0x8A, b""));
        input.extend(frame(0x82, &[0xFF, 0x00]));
        let long = "x".repeat(300);
        input.extend(frame(0x81, long.as_bytes()));
        let huge = "y".repeat(70_000);
        input.extend(frame(0x81, huge.as_bytes()));
        input.extend(frame(0x88, &[0x03, 0xE8, b'b', b'y', b'e']));
        let got = decode_all(&input, 100_000).unwrap();
        assert_eq!(
            got,
            vec![
                "C;NOOP".to_string(),
                "<ping [104, 105]>".into(),
                "<pong>".into(),
                "<binary [255, 0]>".into(),
                long,
                huge,
                "<close Some((1000, \"bye\"))>".into(),
            ]
        );
    }

    #[test]
    fn fragments_are_reassembled_around_control_frames() {
        let mut input = frame(0x01, b"C;NO");
        input.extend(frame(0x89, b"p"));
        input.extend(frame(0x00, b"O"));
        input.extend(frame(0x80, b"P"));
        // A character split across fragments is fine.
        input.extend(frame(0x01, b"\xE2\x82"));
        input.extend(frame(0x80, b"\xAC"));
        assert_eq!(
            decode_all(&input, 1000).unwrap(),
            vec!["<ping [112]>".to_string(), "C;NOOP".into(), "€".into()]
        );
    }

    #[test]
    fn bad_text_fails_at_the_fragment_that_makes_it_bad() {
        // Autobahn 6.4.1: the second fragment holds a code point over U+10FFFF. It is refused
        // when it arrives, before the message is finished; a character cut between fragments
        // is not refused.
        let mut d = Decoder::default();
        let mut first = frame(0x01, "κόσμε".as_bytes());
        assert!(matches!(
            d.decode(&mut first, 1000),
            Ok(Decoded::Frame { msg: None, .. })
        ));
        let mut cut = frame(0x00, b"\xE2\x82");
        assert!(matches!(
            d.decode(&mut cut, 1000),
            Ok(Decoded::Frame { msg: None, .. })
        ));
        let mut bad = frame(0x00, b"\xAC\xF4\x90\x80\x80");
        assert_eq!(d.decode(&mut bad, 1000).err(), Some(WireError::BadUtf8));
        // A cut character at the end of the message is bad.
        let input = [frame(0x01, b"ab\xE2"), frame(0x80, b"\x82")].concat();
        assert_eq!(decode_all(&input, 1000), Err(WireError::BadUtf8));
        // Binary fragments are not text.
        let input = [frame(0x02, b"\xFF"), frame(0x80, b"\xFE")].concat();
        assert_eq!(decode_all(&input, 1000).unwrap(), ["<binary [255, 254]>"]);
    }

    #[test]
    fn limits() {
        // Exactly at the limit passes, one more byte fails as soon as the header is seen.
        assert_eq!(
            decode_all(&frame(0x81, &[b' '; 1024]), 1024).unwrap().len(),
            1
        );
        let big = frame(0x81, &[b' '; 1025]);
        assert_eq!(decode_all(&big[..8], 1024), Err(WireError::TooBig));
        // Across fragments.
        let mut input = frame(0x01, &[b' '; 600]);
        input.extend(frame(0x80, &[b' '; 600]));
        assert_eq!(decode_all(&input, 1024), Err(WireError::TooBig));
    }

    #[test]
    fn errors_and_their_close_codes() {
        let cases: Vec<(Vec<u8>, WireError)> = vec![
            (frame(0x81, &[0xFF, 0xFE]), WireError::BadUtf8),
            (frame(0x81, b"C;\xED\xA0\x80"), WireError::BadUtf8),
            (
                [frame(0x01, b"C;NOOP"), frame(0x80, b"\xE2\x82")].concat(),
                WireError::BadUtf8,
            ),
            (frame(0x88, &[0x03, 0xE8, 0xFF]), WireError::BadUtf8),
            (
                vec![0x81, 0x02, b'h', b'i'],
                WireError::Protocol("unmasked frame from a client"),
            ),
            (frame(0x83, b"x"), WireError::Protocol("reserved opcode")),
            (frame(0x8B, b""), WireError::Protocol("reserved opcode")),
            (
                frame(0xC1, b"x"),
                WireError::Protocol("reserved bits set without an extension"),
            ),
            (
                frame(0x80, b"x"),
                WireError::Protocol("continuation without a start"),
            ),
            (
                frame(0x09, b"p"),
                WireError::Protocol("fragmented control frame"),
            ),
            (
                frame(0x89, &[0; 126]),
                WireError::Protocol("control frame over 125 bytes"),
            ),
            (
                frame(0x88, &[0x03]),
                WireError::Protocol("close frame with a 1-byte payload"),
            ),
            (
                [frame(0x01, b"C;"), frame(0x81, b"NOOP")].concat(),
                WireError::Protocol("new message inside a fragmented one"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(decode_all(&input, 1000), Err(want), "{input:02X?}");
        }
        assert_eq!(close_code(WireError::TooBig), 1009);
        assert_eq!(close_code(WireError::BadUtf8), 1007);
        assert_eq!(close_code(WireError::Protocol("")), 1002);
    }

    #[test]
    fn unmask_matches_the_bytewise_definition() {
        for len in 0..40 {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut masked: Vec<u8> = plain
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ MASK[i % 4])
                .collect();
            unmask(&mut masked, MASK);
            assert_eq!(masked, plain);
        }
    }

    #[test]
    fn encoding() {
        let mut out = Vec::new();
        encode(&mut out, OP_TEXT, b"hi");
        assert_eq!(out, [0x81, 2, b'h', b'i']);
        out.clear();
        encode(&mut out, OP_TEXT, &[b'x'; 300]);
        assert_eq!(out[..4], [0x81, 126, 0x01, 0x2C]);
        assert_eq!(out.len(), 304);
        out.clear();
        encode(&mut out, OP_BINARY, &[0; 70_000]);
        assert_eq!(out[..10], [0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70]);
        out.clear();
        encode_close(&mut out, Some((1001, "server shutting down")));
        assert_eq!(out[..4], [0x88, 22, 0x03, 0xE9]);
        assert_eq!(&out[4..], b"server shutting down");
        out.clear();
        encode_close(&mut out, None);
        assert_eq!(out, [0x88, 0]);
        assert!(close_code_allowed(1000) && close_code_allowed(4000));
        assert!(!close_code_allowed(1005) && !close_code_allowed(999));
    }

    #[test]
    fn client_frames_are_masked_and_a_client_decoder_takes_only_unmasked_ones() {
        // Our masked encoding is what the server side (and the test helper) reads.
        let mut out = Vec::new();
        encode_masked(&mut out, OP_BINARY, b"\x10\x0cMQTT", MASK);
        assert_eq!(out, frame(0x82, b"\x10\x0cMQTT"));
        assert_eq!(
            decode_all(&out, 100).unwrap(),
            ["<binary [16, 12, 77, 81, 84, 84]>"]
        );
        let mut big = Vec::new();
        encode_masked(&mut big, OP_BINARY, &[7; 300], [1, 2, 3, 4]);
        assert_eq!(big[..2], [0x82, 0x80 | 126]);
        // A client decoder: the server's frames are plain, a masked one is a protocol error.
        let mut d = Decoder::for_client();
        let mut plain = Vec::new();
        encode(&mut plain, OP_BINARY, b"\x20\x02\x00\x00");
        match d.decode(&mut plain, 100) {
            Ok(Decoded::Frame {
                used: 6,
                msg: Some(Incoming::Binary(p)),
            }) => {
                assert_eq!(&*p, b"\x20\x02\x00\x00")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Decoder::for_client().decode(&mut out, 100).err(),
            Some(WireError::Protocol("masked frame from a server"))
        );
    }
}
