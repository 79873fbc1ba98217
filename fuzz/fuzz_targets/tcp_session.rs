//! The tcp/ip link protocol: untrusted bytes through the transport's line framing (vscp-tcp:
//! LF-terminated lines, telnet IAC removal, the line length limit) into a whole session, as
//! the server's connection driver does, in reads of fuzzer-chosen sizes. The first byte picks
//! the user the session logs in as (or none) and the read size.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vscp_proto::Dialect;
use vscp_tcp::TcpTransport;
use vscp_transport::{Decoded, Framing, Handshake, Incoming, Transport};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    // A small line limit, so the too-long path is reached with short inputs too.
    let transport = TcpTransport {
        max_line_bytes: if ctl & 0x08 != 0 { 64 } else { 8192 },
    };
    let mut out = Vec::new();
    let Handshake::Accept { mut framing, .. } = transport.handshake(b"", &mut out) else {
        panic!("the tcp/ip transport accepts before any input");
    };
    let mut d = vscp_fuzz::start(Dialect::Tcp, ctl);
    let step = 1 + (ctl as usize >> 4);
    let mut pending: Vec<u8> = Vec::new();
    for chunk in rest.chunks(step) {
        pending.extend_from_slice(chunk);
        let mut start = 0;
        loop {
            let len = pending.len() - start;
            match framing.decode(&mut pending[start..], 8192, &mut out) {
                Err(_) => return,
                Ok(Decoded::Incomplete) => break,
                Ok(Decoded::Unit { used, msg }) => {
                    assert!(used <= len && (used > 0 || len == 0));
                    match msg {
                        Some(Incoming::Message(line)) => d.message(&line, 500),
                        Some(Incoming::Close) => return,
                        Some(Incoming::Pong) | None => {}
                    }
                    start += used;
                    if used == 0 || start == pending.len() {
                        break;
                    }
                }
            }
        }
        pending.drain(..start);
        // What the driver buffers for an unfinished line stays under the limit.
        assert!(pending.len() <= transport.max_line_bytes + step);
        if d.closed {
            return;
        }
    }
});
