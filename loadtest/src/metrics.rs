//! The server's own counters, read from its metrics interface (`GET /metrics`, Prometheus text
//! format) before and after a run, so a report can say how many events the server accepted,
//! how many its uplink published and how many it dropped, next to what the generator saw.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Events accepted from websocket clients (labels `core`, `dialect`).
pub const ACCEPTED: &str = "vscp_events_received_total";
/// Messages the uplink (the MQTT bridge) sent to the broker (label `uplink`).
pub const PUBLISHED: &str = "vscp_uplink_published_total";
/// Of those, acknowledged by the broker (QoS 1).
pub const UPLINK_ACKED: &str = "vscp_uplink_acked_total";
/// Messages the uplink dropped (labels `uplink`, `reason`).
pub const DROPPED: &str = "vscp_uplink_dropped_total";
/// Writes to client sockets: send(2) calls and send entries submitted through io_uring.
pub const SOCKET_WRITES: &str = "vscp_socket_writes_total";
/// Sessions waiting for room in a full ring (a gauge; servers before it was added lack it).
pub const WAITING: &str = "vscp_publishers_waiting";

/// One scrape: every series' value summed over its label sets, by metric name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape(HashMap<String, f64>);

impl Scrape {
    /// Fetches and parses `http://addr/metrics`.
    pub fn fetch(addr: SocketAddr) -> Result<Scrape> {
        let body = http_get(addr, "/metrics")?;
        Ok(Scrape::parse(&body))
    }

    /// Fetches until the run's counters (accepted, published, acked, dropped) read the same
    /// twice in a row, 250 ms apart, for at most 5 s: the server adds some of its counters up
    /// with a delay (a scrape right after the last delivery read the uplink's published count
    /// a few events short), so a single scrape at the end could undercount. Not a cure: the
    /// MQTT bridge folds its client's counts into the metrics only when it next handles
    /// something from the client, so with QoS 0 (no PUBACKs) the last few publishes of a burst
    /// may stay uncounted until the next event or keep-alive.
    pub fn fetch_settled(addr: SocketAddr) -> Result<Scrape> {
        let key = |s: &Scrape| [ACCEPTED, PUBLISHED, UPLINK_ACKED, DROPPED].map(|n| s.get(n));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut last = Scrape::fetch(addr)?;
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let next = Scrape::fetch(addr)?;
            if key(&next) == key(&last) || std::time::Instant::now() > deadline {
                return Ok(next);
            }
            last = next;
        }
    }

    /// Sums each metric over its label sets. Comment lines and lines that do not parse are
    /// skipped (a scrape is a report, not a validation).
    pub fn parse(text: &str) -> Scrape {
        let mut sums: HashMap<String, f64> = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((name, value)) = sample(line) {
                *sums.entry(name.to_string()).or_default() += value;
            }
        }
        Scrape(sums)
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    /// What a run changed: counters as `after - before` (a counter absent before counts from
    /// 0), the gauge as its value at the end. Missing series are null.
    pub fn run_json(before: &Scrape, after: &Scrape) -> Value {
        let delta = |name: &str| {
            after
                .get(name)
                .map(|a| (a - before.get(name).unwrap_or(0.0)).max(0.0) as u64)
        };
        json!({
            "accepted": delta(ACCEPTED),
            "published": delta(PUBLISHED),
            "uplink_acked": delta(UPLINK_ACKED),
            "dropped": delta(DROPPED),
            "publishers_waiting_at_end": after.get(WAITING),
        })
    }
}

/// One sample line: `name{label="v",...} value [timestamp]` or `name value [timestamp]`.
fn sample(line: &str) -> Option<(&str, f64)> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    if rest.starts_with('{') {
        // Skip the label set; a quoted value may hold '}' or escaped quotes.
        let (mut quoted, mut escaped, mut end) = (false, false, None);
        for (i, c) in rest.char_indices().skip(1) {
            match (quoted, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (true, false, '"') => quoted = false,
                (false, _, '"') => quoted = true,
                (false, _, '}') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        rest = &rest[end? + 1..];
    }
    let value = rest.split_whitespace().next()?;
    let v = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    (!name.is_empty()).then_some((name, v))
}

/// A plain HTTP/1.1 GET with `Connection: close`; the body of a 200 answer.
fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("metrics interface {addr}"))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("reading http://{addr}{path}"))?;
    let text = String::from_utf8_lossy(&raw);
    http_body(&text).with_context(|| format!("http://{addr}{path}"))
}

/// The body of a raw HTTP/1.1 response, de-chunked if needed; an error unless the status is 200.
fn http_body(raw: &str) -> Result<String> {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .context("no end of headers in the answer")?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("answered {status:?}");
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok(body.to_string());
    }
    let (mut out, mut rest) = (String::new(), body);
    loop {
        let (size, tail) = rest.split_once("\r\n").context("truncated chunk header")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = tail.get(..size).context("truncated chunk")?;
        out.push_str(chunk);
        rest = tail[size..].strip_prefix("\r\n").unwrap_or(&tail[size..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP vscp_events_received_total Events accepted from websocket clients.
# TYPE vscp_events_received_total counter
vscp_events_received_total{core="0",dialect="ws1"} 1200
vscp_events_received_total{core="1",dialect="ws1"} 800
vscp_events_received_total{core="0",dialect="ws2"} 5
vscp_uplink_published_total{uplink="mqtt"} 1500
vscp_uplink_acked_total{uplink="mqtt"} 1490
vscp_uplink_dropped_total{uplink="mqtt",reason="buffer_full"} 500
vscp_uplink_dropped_total{uplink="mqtt",reason="odd } \" value"} 5 1700000000000
vscp_sessions_active 20
vscp_delivery_latency_seconds_bucket{le="+Inf"} 7
vscp_publishers_waiting{core="0"} 3
vscp_publishers_waiting{core="1"} 1
not a sample line
"#;

    #[test]
    fn sums_over_label_sets() {
        let s = Scrape::parse(TEXT);
        assert_eq!(s.get(ACCEPTED), Some(2005.0));
        assert_eq!(s.get(PUBLISHED), Some(1500.0));
        assert_eq!(
            s.get(DROPPED),
            Some(505.0),
            "every reason, timestamp ignored"
        );
        assert_eq!(s.get(WAITING), Some(4.0));
        assert_eq!(s.get("vscp_sessions_active"), Some(20.0));
        assert_eq!(s.get("vscp_delivery_latency_seconds_bucket"), Some(7.0));
        assert_eq!(s.get("not"), None);
        assert_eq!(s.get("vscp_missing"), None);
    }

    #[test]
    fn run_figures_are_differences_and_missing_is_null() {
        let before = Scrape::parse("vscp_events_received_total{core=\"0\"} 5\n");
        let after = Scrape::parse(
            "vscp_events_received_total{core=\"0\"} 105\nvscp_uplink_published_total 90\n",
        );
        let j = Scrape::run_json(&before, &after);
        assert_eq!(j["accepted"], 100);
        assert_eq!(j["published"], 90, "absent before counts from zero");
        assert!(j["dropped"].is_null());
        assert!(j["publishers_waiting_at_end"].is_null());
    }

    #[test]
    fn http_bodies_plain_and_chunked() {
        let plain = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\na 1\n\n";
        assert_eq!(http_body(plain).unwrap(), "a 1\n\n");
        let chunked =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na 1\n\r\n3;x=y\r\nb 2\r\n0\r\n\r\n";
        assert_eq!(http_body(chunked).unwrap(), "a 1\nb 2");
        assert!(http_body("HTTP/1.1 404 Not Found\r\n\r\n").is_err());
        assert!(http_body("garbage").is_err());
    }
}
