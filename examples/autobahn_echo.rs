//! A websocket echo server for the Autobahn TestSuite (docs/HARDENING.md), built from the
//! server's own upgrade and framing code (`vscp_ws::handshake`, `vscp_ws::framing`): only the
//! sockets (one std thread per connection) and the echo are this file's.
//!
//!     cargo run --release --example autobahn_echo -- 127.0.0.1:9001
//!     kosoku -m fuzzingclient 127.0.0.1:9001
//!
//! What it composes differently from the VSCP endpoints, because a conformance suite expects a
//! plain echo server: every URL path is accepted without a subprotocol
//! (`handshake::answer_any_path`), and binary messages are echoed too (the VSCP transport
//! drops them). Everything Autobahn checks on the wire (the request parsing and the 101, the
//! frame and message checks and their close codes, unmasking, fragments, control frames, the
//! answer to a close) is the server's code, unchanged. Closing also follows the server
//! (src/conn.rs): after the client's close its close is answered and the connection ends; after
//! a protocol failure the close frame is sent and the input is not read again.
//!
//! Bounded like the server: at most `MAX_CONNECTIONS` at once (more are closed at once), 64 MiB
//! per message, and a connection that sends nothing for 60 s is dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vscp_transport::{Close, HandshakeLimits};
use vscp_ws::framing::{self, Decoded, Decoder, Incoming};
use vscp_ws::handshake::{self, Verdict};

/// Autobahn's largest messages (case 9.x) are 16 MiB.
const MAX_MESSAGE_BYTES: usize = 64 << 20;
const MAX_CONNECTIONS: usize = 64;
const IDLE: Duration = Duration::from_secs(60);

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("autobahn_echo: listening on {}", listener.local_addr()?);
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            continue; // dropped: closed at once
        }
        let active = active.clone();
        std::thread::spawn(move || {
            if let Err(e) = serve(stream) {
                eprintln!("autobahn_echo: connection: {e}");
            }
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }
    Ok(())
}

fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IDLE))?;
    let mut input = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut out = Vec::new();

    // The upgrade, as the server's driver runs it: everything so far, after every read.
    let mut limits = HandshakeLimits::default();
    loop {
        let n = read(&mut stream, &mut chunk)?;
        if n == 0 || !limits.allow(n) {
            return Ok(());
        }
        input.extend_from_slice(&chunk[..n]);
        match handshake::answer_any_path(&input, &mut out) {
            Verdict::Incomplete => continue,
            Verdict::Accept(_) => break,
            Verdict::Refuse => {
                stream.write_all(&out)?;
                return Ok(());
            }
        }
    }
    stream.write_all(&out)?;
    input.clear();

    let mut decoder = Decoder::default();
    // Bytes of `input` already decoded; compacted before each read.
    let mut at = 0;
    loop {
        input.drain(..at);
        at = 0;
        let n = read(&mut stream, &mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        input.extend_from_slice(&chunk[..n]);
        out.clear();
        // Every whole frame of this read, then one write, as the server batches.
        let end = loop {
            match decoder.decode(&mut input[at..], MAX_MESSAGE_BYTES) {
                Ok(Decoded::Incomplete) => break None,
                Ok(Decoded::Frame { used, msg }) => {
                    let closed = match msg {
                        None | Some(Incoming::Pong) => false,
                        Some(Incoming::Text(text)) => {
                            framing::encode(&mut out, framing::OP_TEXT, &text);
                            false
                        }
                        Some(Incoming::Binary(data)) => {
                            framing::encode(&mut out, framing::OP_BINARY, &data);
                            false
                        }
                        Some(Incoming::Ping(data)) => {
                            framing::encode(&mut out, framing::OP_PONG, data);
                            false
                        }
                        Some(Incoming::Close(close)) => {
                            framing::encode_close_answer(&mut out, close);
                            true
                        }
                    };
                    at += used;
                    if closed {
                        break Some(());
                    }
                }
                Err(e) => {
                    let (code, reason) = framing::close_frame(Close::Failed(e));
                    framing::encode_close(&mut out, Some((code, reason)));
                    break Some(());
                }
            }
        };
        stream.write_all(&out)?;
        if end.is_some() {
            // The server closes the TCP connection first (RFC 6455 §7.1.1).
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

fn read(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
