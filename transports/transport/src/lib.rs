//! The seam between the server's generic connection driver and its client-facing transports
//! (websockets today; the VSCP tcp/ip link interface next), in the spirit of rumqttd's
//! `Network<P: Protocol>`: a transport turns bytes into whole messages and messages into
//! bytes, and may need a handshake first. Which *dialect* the messages are in (ws1, ws2, …) is
//! the session's business (`vscp_proto::Session`); a transport only says which one a connection
//! speaks, as a [`Dialect`], whose [`Dialect::index`] keys every per-dialect array of the
//! server (encode caches, counters, metric labels).
//!
//! Everything here is sans-IO: the driver reads into its own buffers and hands the bytes over,
//! and writes whatever a transport appended to its output buffer. So a transport is tested
//! without sockets, and the driver (buffers, batching, deadlines, the hub) is written once.
//!
//! # Adding a transport
//! Implement [`Transport`] (the listener-level part: handshake, which dialect) and [`Framing`]
//! (the per-connection part: decode input, encode messages and the close), then add a listener
//! kind in the server (docs/architecture.md walks through it).
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

pub mod confirm;

use std::ops::{Deref, DerefMut};

pub use vscp_proto::Dialect;

/// Why a peer's input cannot be accepted; the connection is closed (see [`Close::Failed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A message over the size limit (`max-message-size`).
    #[error("message over the size limit")]
    TooBig,
    /// Text that is not UTF-8.
    #[error("text is not UTF-8")]
    BadUtf8,
    /// Anything else the transport's protocol forbids (what, for the log).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
}

/// A complete message: in the driver's buffer (decoded in place), or owned when it had to be
/// put together from pieces (websocket fragments).
#[derive(Debug)]
pub enum Payload<'a> {
    /// The message bytes, where they were read.
    Borrowed(&'a mut [u8]),
    /// The message bytes, reassembled.
    Owned(Vec<u8>),
}

impl Deref for Payload<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Owned(v) => v,
        }
    }
}

impl DerefMut for Payload<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Owned(v) => v,
        }
    }
}

/// What a unit of input (a websocket frame, a text line) completed.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A whole message for the session (valid UTF-8 where the transport is a text one).
    Message(Payload<'a>),
    /// The peer is closing. Whatever answers its close is already in the output buffer.
    Close,
    /// The answer to a ping of ours ([`Framing::encode_ping`]): proof the peer is alive, but
    /// no activity of its user (a browser answers pings by itself).
    Pong,
}

/// The result of looking at the front of the input.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// Not a whole unit yet: read more (nothing was consumed).
    Incomplete,
    /// The first `used` bytes were one unit; `msg` is what it completed, if anything (a
    /// fragment, a ping or a telnet negotiation complete nothing the session needs to see).
    Unit {
        /// Bytes consumed.
        used: usize,
        /// What the unit completed.
        msg: Option<Incoming<'a>>,
    },
}

/// Why the server closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// The server is shutting down.
    Shutdown,
    /// No successful login within `auth-timeout`.
    LoginTimeout,
    /// Nothing received within `idle-timeout`.
    IdleTimeout,
    /// Nothing received within `ws-pong-timeout` of a ping.
    PongTimeout,
    /// The peer broke the protocol or a limit.
    Failed(WireError),
}

/// The per-connection part of a transport: its framing state.
pub trait Framing {
    /// Decodes the unit at the front of `buf`, which it may change in place (unmasking).
    /// `max_message_bytes` limits a whole message. Anything the transport answers on its own
    /// (a websocket pong, the answer to a close) is appended to `out`, which the driver writes.
    fn decode<'a>(
        &mut self,
        buf: &'a mut [u8],
        max_message_bytes: usize,
        out: &mut Vec<u8>,
    ) -> Result<Decoded<'a>, WireError>;

    /// Appends one message (a reply or an event) to `out`.
    fn encode(&self, out: &mut Vec<u8>, msg: &[u8]);

    /// Appends what tells the peer the connection ends and why. Returns whether the driver
    /// should then wait (briefly) for the peer's side of a closing handshake.
    fn encode_close(&self, out: &mut Vec<u8>, why: Close) -> bool;

    /// Appends a liveness probe the peer must answer ([`Incoming::Pong`]); returns `false`
    /// (and appends nothing) when the transport has none, as the tcp/ip link interface has not.
    fn encode_ping(&self, _out: &mut Vec<u8>) -> bool {
        false
    }
}

/// What the handshake concluded.
#[derive(Debug)]
pub enum Handshake<F> {
    /// Not enough input yet: read more.
    Incomplete,
    /// Write the answer (if any was appended), then speak `dialect` with `framing`.
    Accept {
        /// The dialect the session speaks.
        dialect: Dialect,
        /// The connection's framing state.
        framing: F,
    },
    /// Write the answer (if any was appended) and close.
    Refuse,
}

/// A client-facing transport: shared (read-only) by every connection of one listener on one
/// shard.
pub trait Transport: 'static {
    /// The per-connection framing state (its `Default` is a placeholder until the handshake
    /// returns the real one).
    type Framing: Framing + Default;

    /// Short name for logs (`ws`, `tcp`).
    fn name(&self) -> &'static str;

    /// Looks at everything the peer has sent so far (all of it, from the first byte); the
    /// driver calls it once with no input before reading, so a transport without a handshake
    /// accepts at once. An answer to send is appended to `out`. Input after the handshake is
    /// not allowed: a client must wait for the answer.
    fn handshake(&self, input: &[u8], out: &mut Vec<u8>) -> Handshake<Self::Framing>;

    /// What a connection over `max-clients` is told before it is closed.
    fn busy_answer(&self) -> BusyAnswer;

    /// What a connection refused by a limit on its source address (connection rate, failed
    /// logins) is told before it is closed.
    fn refused_answer(&self) -> BusyAnswer;
}

/// The answer to a connection the server has no room for.
#[derive(Clone, Copy, Debug)]
pub struct BusyAnswer {
    /// The bytes to send.
    pub text: &'static [u8],
    /// Read the peer's request (up to its blank line) first: closing a socket with unread input
    /// makes the kernel send a reset, and the peer would see "connection reset" instead of the
    /// answer. For transports whose peer speaks first (HTTP).
    pub after_request: bool,
}

/// Guards a handshake against input sent in too many or too small pieces (tungstenite's rule):
/// a slow-loris client cannot keep a connection in its handshake for long with little data.
#[derive(Debug, Default)]
pub struct HandshakeLimits {
    reads: usize,
    bytes: usize,
}

impl HandshakeLimits {
    /// Largest handshake accepted.
    pub const MAX_BYTES: usize = 65536;
    const MAX_READS: usize = 512;
    const MIN_AVERAGE: usize = 128;
    const CHECK_AVERAGE_AFTER: usize = 64;

    /// Counts one read of `n` bytes; false when the handshake is to be refused.
    pub fn allow(&mut self, n: usize) -> bool {
        self.reads += 1;
        self.bytes += n;
        self.bytes <= Self::MAX_BYTES
            && self.reads <= Self::MAX_READS
            && !(self.reads > Self::CHECK_AVERAGE_AFTER
                && self.reads * Self::MIN_AVERAGE > self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_limits() {
        let mut l = HandshakeLimits::default();
        assert!(l.allow(600));
        assert!(!l.allow(65536));
        let mut l = HandshakeLimits::default();
        assert!((0..64).all(|_| l.allow(1)));
        assert!(!l.allow(1), "many tiny reads");
    }

    #[test]
    fn payload_derefs_to_its_bytes() {
        let mut buf = *b"abc";
        let mut p = Payload::Borrowed(&mut buf);
        p[0] = b'x';
        assert_eq!(&*p, b"xbc");
        assert_eq!(&*Payload::Owned(b"de".to_vec()), b"de");
    }
}
