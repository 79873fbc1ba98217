//! Reads the PROXY header a trusted proxy sends first (the socket side of [`super::proxy`]).

use super::proxy::{self, Parsed, ProxyError};
use futures::AsyncReadExt;
use glommio::net::TcpStream;
use std::net::SocketAddr;
use std::time::Duration;

/// How long to wait before peeking again at a header that came in pieces (rare: a proxy
/// writes it in one segment).
const REPEEK: Duration = Duration::from_millis(5);

/// Takes exactly the header off `stream` within `within` and returns the client address it
/// carries (`None`: use the connection's own). Peeks until the header is complete and then
/// reads only its bytes, so what follows (an HTTP request, a TLS ClientHello) stays in the
/// socket for the connection's own handshake.
pub async fn read_header(
    stream: &mut TcpStream,
    within: Duration,
) -> Result<Option<SocketAddr>, ProxyError> {
    let read = glommio::timer::timeout(within, async {
        let mut buf = vec![0u8; proxy::MAX_HEADER];
        let mut seen = 0;
        loop {
            let n = match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return Ok(Err(ProxyError::Unfinished)),
                Ok(n) => n,
            };
            match proxy::parse(&buf[..n]) {
                Ok(Parsed::Done(h)) => {
                    return Ok(match stream.read_exact(&mut buf[..h.len]).await {
                        Ok(()) => Ok(h.source),
                        Err(_) => Err(ProxyError::Unfinished),
                    });
                }
                Ok(Parsed::Incomplete) => {
                    // A peek returns at once while any byte is unread: wait for more.
                    if n == seen {
                        glommio::timer::sleep(REPEEK).await;
                    }
                    seen = n;
                }
                Err(e) => return Ok(Err(e)),
            }
        }
    })
    .await;
    read.unwrap_or(Err(ProxyError::Unfinished))
}
