//! `/metrics`, `/healthz` and `/readyz`, served by shard 0 from inside the glommio process (no
//! extra runtime thread). A deliberately tiny HTTP/1.1 responder: one request per connection,
//! `Connection: close`, bounded request size and time, because scrapers and probes need nothing
//! more and every extra feature is attack surface on an ingest node.

use crate::metrics::Exporter;
use crate::stats::UplinkStats;
use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest request head we read.
const MAX_REQUEST_BYTES: usize = 8192;
/// Time a client gets to send its request and read the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What `/readyz` looks at.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Every shard listens.
    pub listening: AtomicBool,
    /// The server is stopping (set before anything else stops).
    pub stopping: AtomicBool,
    /// Present when an uplink is configured: ready only while its far side is connected.
    pub uplink: Option<Arc<UplinkStats>>,
}

impl Readiness {
    /// `Ok` when ready, else the reason.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.stopping.load(Ordering::Acquire) {
            return Err("shutting down");
        }
        if !self.listening.load(Ordering::Acquire) {
            return Err("not listening yet");
        }
        if let Some(u) = &self.uplink {
            if !u.connected.load(Ordering::Acquire) {
                return Err("uplink not connected");
            }
        }
        Ok(())
    }
}

/// Serves until the task is cancelled.
pub async fn serve(listener: TcpListener, exporter: Arc<Exporter>, ready: Arc<Readiness>) {
    let exporter = Rc::new(exporter);
    loop {
        let Ok(stream) = listener.accept().await else {
            // Out of descriptors: wait instead of spinning (the session listener does the same).
            glommio::timer::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let exporter = exporter.clone();
        let ready = ready.clone();
        glommio::spawn_local(async move {
            let _ = glommio::timer::timeout(REQUEST_TIMEOUT, async move {
                handle(stream, &exporter, &ready).await;
                Ok(())
            })
            .await;
        })
        .detach();
    }
}

async fn handle(mut stream: TcpStream, exporter: &Exporter, ready: &Readiness) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_REQUEST_BYTES {
            let _ = respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await;
            return;
        }
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        let _ = respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n",
        )
        .await;
        return;
    }
    let (status, ctype, body) = match path {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            exporter.render(),
        ),
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
        "/readyz" => match ready.check() {
            Ok(()) => ("200 OK", "text/plain", "ready\n".to_string()),
            Err(why) => (
                "503 Service Unavailable",
                "text/plain",
                format!("not ready: {why}\n"),
            ),
        },
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics, /healthz or /readyz\n".to_string(),
        ),
    };
    let body = if method == "HEAD" {
        String::new()
    } else {
        body
    };
    let _ = respond(&mut stream, status, ctype, &body).await;
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await?;
    stream.close().await
}
