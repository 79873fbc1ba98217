//! TLS under a connection: a rustls `ServerConnection` (sans-IO: bytes in, bytes out) driven
//! over the accepted glommio socket, as the stream `conn.rs` reads and writes.
//!
//! - Reading: ciphertext is read into the caller's buffer (the shard's receive buffer), handed
//!   to rustls, and the plaintext read back into that same buffer; whatever rustls could not
//!   take yet waits in `pending_in` (rare: only when its plaintext buffer is full).
//! - Writing: plaintext goes into rustls, the records come out into the shard's TLS buffer and
//!   are written at once; only what the socket did not take is kept, in `out`. While `out`
//!   holds anything no more is encrypted (`poll_write` is pending), so a client that does not
//!   read holds at most one batch of records here, as a plain session holds one batch in its
//!   driver's `output`.
//! - The handshake runs in [`ConnStream::poll_established`] under the connection's handshake
//!   deadline; its result is counted once (`vscp_tls_handshakes_total`).
//!
//! Idle, a session keeps no buffers of its own here: `out` and `pending_in` are unallocated
//! unless something waits, and rustls's own buffers are what rustls keeps.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::ServerConnection;

use crate::conn::ConnStream;
use crate::listener::Accept;
use crate::stats::{ShardStats, TlsOutcome};
use crate::tls::TlsStore;

/// Makes TLS streams of accepted sockets, on one shard.
#[derive(Debug)]
pub struct TlsAccept {
    store: Arc<TlsStore>,
    stats: Arc<ShardStats>,
    /// Where records are put together before a write: one per shard, used between awaits only.
    scratch: Rc<RefCell<Vec<u8>>>,
}

impl TlsAccept {
    pub fn new(store: Arc<TlsStore>, stats: Arc<ShardStats>) -> TlsAccept {
        TlsAccept {
            store,
            stats,
            scratch: Rc::new(RefCell::new(Vec::with_capacity(16 * 1024))),
        }
    }
}

impl Accept for TlsAccept {
    type Stream = TlsStream;

    fn wrap(&self, tcp: TcpStream) -> Option<TlsStream> {
        match ServerConnection::new(self.store.config()) {
            Ok(tls) => Some(TlsStream {
                tcp,
                tls: Box::new(tls),
                out: Vec::new(),
                pending_in: Vec::new(),
                scratch: self.scratch.clone(),
                stats: self.stats.clone(),
                counted: false,
                eof: false,
            }),
            Err(_) => {
                self.stats.tls_handshake(TlsOutcome::Error);
                None
            }
        }
    }
}

/// A server-side TLS connection over a glommio socket.
pub struct TlsStream {
    tcp: TcpStream,
    tls: Box<ServerConnection>,
    /// Records the socket has not taken yet.
    out: Vec<u8>,
    /// Ciphertext read that rustls could not take yet.
    pending_in: Vec<u8>,
    scratch: Rc<RefCell<Vec<u8>>>,
    stats: Arc<ShardStats>,
    /// The handshake's outcome has been counted.
    counted: bool,
    /// The peer's end of the TCP stream was read.
    eof: bool,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("handshaking", &self.tls.is_handshaking())
            .field("out", &self.out.len())
            .finish()
    }
}

impl TlsStream {
    fn count(&mut self, outcome: TlsOutcome) {
        if !self.counted {
            self.counted = true;
            self.stats.tls_handshake(outcome);
        }
    }

    /// Writes pending records: everything, or pending with the waker registered.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            while !self.out.is_empty() {
                match ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.out)) {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(n) => {
                        self.out.drain(..n);
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            // Give the memory back: the next records most likely go out at once.
            self.out = Vec::new();
            if !self.tls.wants_write() {
                return Poll::Ready(Ok(()));
            }
            let scratch = self.scratch.clone();
            let mut buf = scratch.borrow_mut();
            buf.clear();
            while self.tls.wants_write() {
                // Into a Vec: cannot fail.
                self.tls.write_tls(&mut *buf)?;
            }
            match Pin::new(&mut self.tcp).poll_write(cx, &buf) {
                Poll::Ready(Ok(n)) if n == buf.len() => {}
                // The rest is written by the loop, which registers the waker if needed.
                Poll::Ready(Ok(n)) => self.out.extend_from_slice(&buf[n..]),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.out.extend_from_slice(&buf);
                    return Poll::Pending;
                }
            }
        }
    }

    /// Sends what is pending if the socket takes it; errors only on a failed socket.
    fn try_send(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.poll_send(cx) {
            Poll::Ready(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Gives rustls more ciphertext: what waits in `pending_in`, else one read of the socket
    /// into `scratch`. Ready once something was handed over or the end was read.
    fn poll_receive(&mut self, cx: &mut Context<'_>, scratch: &mut [u8]) -> Poll<io::Result<()>> {
        if !self.pending_in.is_empty() {
            let pending = std::mem::take(&mut self.pending_in);
            let used = self.feed(cx, &pending)?;
            if used < pending.len() {
                self.pending_in = pending[used..].to_vec();
            }
            return Poll::Ready(Ok(()));
        }
        let n = ready!(Pin::new(&mut self.tcp).poll_read(cx, scratch))?;
        if n == 0 {
            self.eof = true;
            // Tells rustls the transport ended, so a missing close_notify is seen as such.
            let _ = self.tls.read_tls(&mut io::empty());
            if self.tls.is_handshaking() {
                self.count(TlsOutcome::Abandoned);
            }
            return Poll::Ready(Ok(()));
        }
        let used = self.feed(cx, &scratch[..n])?;
        if used < n {
            self.pending_in.extend_from_slice(&scratch[used..n]);
        }
        Poll::Ready(Ok(()))
    }

    /// Hands `bytes` to rustls and processes them; returns how many it took.
    fn feed(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> io::Result<usize> {
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.tls.read_tls(&mut rest) {
                Ok(0) => break,
                Ok(_) => {}
                // Its buffers are full (plaintext not read yet): the rest waits.
                Err(_) => break,
            }
            if let Err(e) = self.tls.process_new_packets() {
                // The alert rustls queued tells the peer why, if the socket takes it now.
                let _ = self.try_send(cx);
                let outcome = match e {
                    rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::InvalidCertRevocationList(_) => TlsOutcome::BadCertificate,
                    _ => TlsOutcome::Error,
                };
                self.count(outcome);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        if !self.tls.is_handshaking() {
            self.count(TlsOutcome::Ok);
        }
        self.try_send(cx)?;
        Ok(bytes.len() - rest.len())
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        // Timed out or dropped mid-handshake.
        if self.tls.is_handshaking() {
            self.count(TlsOutcome::Abandoned);
        }
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            // Records still waiting (a close frame the driver then waits on an answer to).
            this.try_send(cx)?;
            match this.tls.reader().read(buf) {
                // 0: the peer's close_notify, the end of the stream.
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The TCP stream ended without close_notify: for the driver, the same end as
                // a plain socket's (a truncation attack cannot forge a VSCP message).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(0)),
                Err(e) => return Poll::Ready(Err(e)),
            }
            if this.eof {
                return Poll::Ready(Ok(0));
            }
            ready!(this.poll_receive(cx, buf))?;
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Older records first; nothing more is encrypted while they wait.
        ready!(this.poll_send(cx))?;
        // Before the handshake completes rustls keeps the plaintext and sends it right after
        // (the tcp/ip greeting is written before the client's first byte).
        let n = this.tls.writer().write(buf)?;
        this.try_send(cx)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.tls.send_close_notify();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_close(cx)
    }
}

impl ConnStream for TlsStream {
    const ENCRYPTED: bool = true;

    fn poll_established(
        &mut self,
        cx: &mut Context<'_>,
        scratch: &mut [u8],
    ) -> Poll<io::Result<()>> {
        loop {
            self.try_send(cx)?;
            if !self.tls.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            ready!(self.poll_receive(cx, scratch))?;
        }
    }

    fn has_pending_output(&self) -> bool {
        !self.out.is_empty() || self.tls.wants_write()
    }

    fn queue_close(&mut self) {
        self.tls.send_close_notify();
    }
}
