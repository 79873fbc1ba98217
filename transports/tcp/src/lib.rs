//! The VSCP tcp/ip link interface transport (spec tcp.md §1): a telnet-style stream of command
//! lines. Sans-IO, behind the [`vscp_transport`] seam, like `vscp-ws` for websockets: the
//! server's generic connection driver reads and writes, the session
//! (`vscp_proto::Session` in [`Dialect::Tcp`]) handles the commands.
//!
//! - There is no handshake: the server speaks first (the greeting), so a connection is
//!   accepted before any input.
//! - A line ends at LF; a CR before it, and whitespace around the line, are the session's to
//!   trim. A bare CR does not end a line (REF).
//! - Telnet commands (IAC …) are removed from each line and never answered ([`telnet`]).
//! - A line longer than the limit is discarded up to its LF and answered once, when that LF
//!   arrives, with `-OK - Command line too long.`; the connection goes on (tcp.md Q3). The
//!   bytes of such a line are never kept: what the driver buffers stays under the limit.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

pub mod telnet;

use vscp_proto::tcp::replies;
use vscp_transport::{
    BusyAnswer, Close, Decoded, Dialect, Framing, Handshake, Incoming, Payload, Transport,
    WireError,
};

/// Default longest command line (tcp.md §1 REC): a `send` with 512 data bytes written as
/// `0xNN,` is about 2.7 KB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 8192;

/// The tcp/ip transport of one listener.
#[derive(Clone, Debug)]
pub struct TcpTransport {
    /// Longest line accepted (before its LF). The server's `max-message-size` applies too:
    /// the smaller of the two wins.
    pub max_line_bytes: usize,
}

impl Default for TcpTransport {
    fn default() -> Self {
        TcpTransport {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

impl Transport for TcpTransport {
    type Framing = TcpFraming;

    fn name(&self) -> &'static str {
        "tcp"
    }

    fn handshake(&self, _input: &[u8], _out: &mut Vec<u8>) -> Handshake<TcpFraming> {
        Handshake::Accept {
            dialect: Dialect::Tcp,
            framing: TcpFraming {
                max_line_bytes: self.max_line_bytes,
                discarding: false,
            },
        }
    }

    fn busy_answer(&self) -> BusyAnswer {
        BusyAnswer {
            // tcp.md §1 REC: instead of the greeting, then close.
            text: b"-OK - Max number of clients connected.\r\n",
            after_request: false,
        }
    }

    fn refused_answer(&self) -> BusyAnswer {
        BusyAnswer {
            // Like the busy answer (tcp.md §1): instead of the greeting, then close.
            text: b"-OK - Too many connections or failed logins from this address.\r\n",
            after_request: false,
        }
    }
}

/// One connection's line framing state.
#[derive(Debug)]
pub struct TcpFraming {
    max_line_bytes: usize,
    /// Inside a line that is over the limit: its bytes are dropped until its LF.
    discarding: bool,
}

impl Default for TcpFraming {
    fn default() -> Self {
        TcpFraming {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            discarding: false,
        }
    }
}

const LF: u8 = b'\n';

impl TcpFraming {
    /// The too-long answer goes straight into the output, in order with the replies of the
    /// lines before it (the driver writes the transport's answers with the batch's replies).
    fn too_long(&mut self, out: &mut Vec<u8>) {
        self.discarding = false;
        self.encode(out, replies::LINE_TOO_LONG.as_bytes());
    }
}

impl Framing for TcpFraming {
    fn decode<'a>(
        &mut self,
        buf: &'a mut [u8],
        max_message_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<Decoded<'a>, WireError> {
        let max = self.max_line_bytes.min(max_message_bytes);
        let lf = buf.iter().position(|&b| b == LF);
        if self.discarding {
            return Ok(match lf {
                Some(i) => {
                    self.too_long(out);
                    Decoded::Unit {
                        used: i + 1,
                        msg: None,
                    }
                }
                None => Decoded::Unit {
                    used: buf.len(),
                    msg: None,
                },
            });
        }
        match lf {
            Some(i) if i > max => {
                self.too_long(out);
                Ok(Decoded::Unit {
                    used: i + 1,
                    msg: None,
                })
            }
            Some(i) => {
                let line = &mut buf[..i];
                let len = telnet::strip(line);
                Ok(Decoded::Unit {
                    used: i + 1,
                    msg: Some(Incoming::Message(Payload::Borrowed(&mut line[..len]))),
                })
            }
            None if buf.len() > max => {
                // Over the limit with no end in sight: drop what is here and the rest of the
                // line as it comes, so the driver never holds more than a line's worth.
                self.discarding = true;
                Ok(Decoded::Unit {
                    used: buf.len(),
                    msg: None,
                })
            }
            None => Ok(Decoded::Incomplete),
        }
    }

    fn encode(&self, out: &mut Vec<u8>, msg: &[u8]) {
        out.reserve(msg.len() + 2);
        out.extend_from_slice(msg);
        out.extend_from_slice(b"\r\n");
    }

    fn encode_close(&self, _out: &mut Vec<u8>, _why: Close) -> bool {
        // The protocol has no closing handshake: REF closes without a line on a timeout, and a
        // `quit` has had its reply already. Nothing to wait for either.
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes all of `input` the way the driver does (units in order, incomplete rest kept
    /// for the next read); the lines and everything the transport wrote by itself.
    fn decode_all(
        f: &mut TcpFraming,
        pending: &mut Vec<u8>,
        input: &[u8],
        max: usize,
    ) -> (Vec<Vec<u8>>, Vec<u8>) {
        pending.extend_from_slice(input);
        let mut lines = Vec::new();
        let mut out = Vec::new();
        let mut at = 0;
        while at < pending.len() {
            match f.decode(&mut pending[at..], max, &mut out).unwrap() {
                Decoded::Incomplete => break,
                Decoded::Unit { used, msg } => {
                    if let Some(Incoming::Message(m)) = msg {
                        lines.push(m.to_vec());
                    }
                    at += used;
                }
            }
        }
        pending.drain(..at);
        (lines, out)
    }

    fn framing() -> TcpFraming {
        match TcpTransport::default().handshake(b"", &mut Vec::new()) {
            Handshake::Accept { dialect, framing } => {
                assert_eq!(dialect, Dialect::Tcp);
                framing
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accepts_without_input_and_answers_busy_with_one_line() {
        let t = TcpTransport::default();
        assert_eq!(t.name(), "tcp");
        let _ = framing();
        let busy = t.busy_answer();
        assert_eq!(busy.text, b"-OK - Max number of clients connected.\r\n");
        assert!(!busy.after_request);
        let refused = t.refused_answer();
        assert!(refused.text.starts_with(b"-OK - ") && refused.text.ends_with(b".\r\n"));
        assert!(!refused.after_request);
    }

    #[test]
    fn lines_end_at_lf_with_or_without_cr() {
        let mut f = framing();
        let mut p = Vec::new();
        let (lines, out) = decode_all(&mut f, &mut p, b"noop\r\nchkdata\nver", 1 << 20);
        assert_eq!(lines, [b"noop\r".to_vec(), b"chkdata".to_vec()]);
        assert!(out.is_empty());
        assert_eq!(p, b"ver", "incomplete line kept");
        let (lines, _) = decode_all(&mut f, &mut p, b"sion\r\n", 1 << 20);
        assert_eq!(lines, [b"version\r".to_vec()]);
        // A bare CR does not end a line (REF).
        let (lines, _) = decode_all(&mut f, &mut p, b"a\rb\n", 1 << 20);
        assert_eq!(lines, [b"a\rb".to_vec()]);
    }

    #[test]
    fn t12_telnet_bytes_are_removed() {
        let mut f = framing();
        let mut p = Vec::new();
        let (lines, out) = decode_all(&mut f, &mut p, b"\xFF\xFB\x18\xFF\xFD\x03noop\r\n", 1 << 20);
        assert_eq!(lines, [b"noop\r".to_vec()]);
        assert!(out.is_empty(), "never negotiates");
        let (lines, _) = decode_all(
            &mut f,
            &mut p,
            b"\xFF\xF4\xFF\xFD\x06no\xFF\xFA\x18\x00xterm\xFF\xF0op\r\n",
            1 << 20,
        );
        assert_eq!(lines, [b"noop\r".to_vec()]);
        let (lines, _) = decode_all(&mut f, &mut p, b"noop\xFF\xFF\r\n", 1 << 20);
        assert_eq!(lines, [b"noop\xFF\r".to_vec()]);
    }

    #[test]
    fn t12_a_long_line_is_answered_once_and_the_connection_goes_on() {
        let mut f = framing();
        let mut p = Vec::new();
        let mut long = vec![b'x'; 9000];
        long.extend_from_slice(b"\r\nnoop\r\n");
        let (lines, out) = decode_all(&mut f, &mut p, &long, 1 << 20);
        assert_eq!(lines, [b"noop\r".to_vec()]);
        assert_eq!(out, b"-OK - Command line too long.\r\n");
        // Without its LF yet, in pieces: nothing is kept, one answer when the LF comes.
        for _ in 0..200 {
            let (lines, out) = decode_all(&mut f, &mut p, &[b'y'; 4096], 1 << 20);
            assert!(lines.is_empty() && out.is_empty());
            assert!(p.len() <= DEFAULT_MAX_LINE_BYTES, "buffered {}", p.len());
        }
        let (lines, out) = decode_all(&mut f, &mut p, b"yyy\nnoop\n", 1 << 20);
        assert_eq!(lines, [b"noop".to_vec()]);
        assert_eq!(out, b"-OK - Command line too long.\r\n");
        // The smaller of the transport's limit and max-message-size applies.
        let (lines, out) = decode_all(&mut f, &mut p, b"0123456789A\nnoop\n", 10);
        assert_eq!(lines, [b"noop".to_vec()]);
        assert_eq!(out, b"-OK - Command line too long.\r\n");
        // Exactly at the limit is fine.
        let (lines, out) = decode_all(&mut f, &mut p, b"0123456789\n", 10);
        assert_eq!(lines, [b"0123456789".to_vec()]);
        assert!(out.is_empty());
    }

    #[test]
    fn messages_get_crlf_and_the_close_says_nothing() {
        let f = framing();
        let mut out = Vec::new();
        f.encode(&mut out, b"+OK - Success.");
        assert_eq!(out, b"+OK - Success.\r\n");
        out.clear();
        for why in [
            Close::Shutdown,
            Close::LoginTimeout,
            Close::IdleTimeout,
            Close::PongTimeout,
            Close::Failed(WireError::TooBig),
        ] {
            assert!(!f.encode_close(&mut out, why));
        }
        assert!(!f.encode_ping(&mut out), "tcp/ip has no ping");
        assert!(out.is_empty());
    }

    proptest! {
        /// Arbitrary bytes never panic, and the lines (and answers) are the same however the
        /// input is split into reads.
        #[test]
        fn same_lines_wherever_split(input in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), Just(0xFFu8), any::<u8>()], 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..8)) {
            let max = 40;
            let mut f = framing();
            let mut p = Vec::new();
            let whole = decode_all(&mut f, &mut p, &input, max);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.sort();
            let mut f = framing();
            let mut p = Vec::new();
            let (mut lines, mut out) = (Vec::new(), Vec::new());
            let mut from = 0;
            for c in cuts.into_iter().chain([input.len()]) {
                let (l, o) = decode_all(&mut f, &mut p, &input[from..c], max);
                lines.extend(l);
                out.extend(o);
                from = c;
            }
            prop_assert_eq!(whole, (lines, out));
            prop_assert!(p.len() <= max + 1);
        }
    }
}
