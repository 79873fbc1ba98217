//! The HTTP upgrade, without I/O: tungstenite parses the client's request and builds the
//! answer, exactly as its own server handshake would; the server's connection driver does
//! the reading and writing.
//!
//! Why not tungstenite's handshake future: it keeps a 4 KiB read buffer and its state machine
//! per connection while it waits for the request. In a connection storm thousands of those
//! live at once, and when they are freed they leave holes between the sessions' long-lived
//! allocations that the allocator cannot give back. Here a request that arrives whole (nearly
//! all do) is parsed and answered where it was read, in the shard's receive buffer, and every
//! temporary allocation is freed before the connection waits again.

use tungstenite::handshake::machine::TryParse;
use tungstenite::handshake::server::{
    create_response, write_response, ErrorResponse, Request, Response,
};
use tungstenite::http::{HeaderValue, StatusCode};
use vscp_proto::Dialect;

/// The websocket endpoints: the URL path of each dialect, `None` when it is switched off.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints<'a> {
    pub ws1: Option<&'a str>,
    pub ws2: Option<&'a str>,
}

/// What to do with the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not a whole request yet: read more.
    Incomplete,
    /// Send the answer, then speak websocket in this dialect.
    Accept(Dialect),
    /// Send the answer (if there is one) and close.
    Refuse,
}

/// Looks at everything the client has sent so far. For a whole request the answer to send is
/// appended to `out`; a malformed upgrade gets none (the connection is just closed), as with
/// tungstenite.
// The closure's error type is tungstenite's (its handshake callback's), large or not.
#[allow(clippy::result_large_err)]
pub fn answer(buf: &[u8], endpoints: Endpoints<'_>, out: &mut Vec<u8>) -> Verdict {
    answer_with(buf, out, |request, response| {
        choose(request, response, endpoints)
    })
}

/// [`answer`] for a server with one endpoint at every path and no subprotocol: what a
/// conformance test suite (Autobahn's fuzzing client) expects of a plain websocket server. The
/// request is parsed and checked exactly as for the VSCP endpoints; the dialect is `Ws1`.
#[allow(clippy::result_large_err)]
pub fn answer_any_path(buf: &[u8], out: &mut Vec<u8>) -> Verdict {
    answer_with(buf, out, |_, response| Ok((Dialect::Ws1, response)))
}

// The error type is tungstenite's (its handshake callback's), large or not.
#[allow(clippy::result_large_err)]
fn answer_with(
    buf: &[u8],
    out: &mut Vec<u8>,
    choose: impl FnOnce(&Request, Response) -> Result<(Dialect, Response), ErrorResponse>,
) -> Verdict {
    let (used, request) = match Request::try_parse(buf) {
        Ok(None) => return Verdict::Incomplete,
        Ok(Some(parsed)) => parsed,
        Err(_) => return Verdict::Refuse,
    };
    // A client must wait for the answer before it sends frames; tungstenite refuses too.
    if used != buf.len() {
        return Verdict::Refuse;
    }
    let Ok(response) = create_response(&request) else {
        return Verdict::Refuse;
    };
    match choose(&request, response) {
        Ok((dialect, response)) => match write_response(&mut *out, &response) {
            Ok(()) => Verdict::Accept(dialect),
            Err(_) => Verdict::Refuse,
        },
        Err(refusal) => {
            if write_response(&mut *out, &refusal).is_ok() {
                if let Some(body) = refusal.body() {
                    out.extend_from_slice(body.as_bytes());
                }
            }
            Verdict::Refuse
        }
    }
}

/// The dialect from the URL path, and the subprotocol echoed when the client offered it.
// The error type is tungstenite's (its handshake callback's), large or not.
#[allow(clippy::result_large_err)]
fn choose(
    req: &Request,
    mut resp: Response,
    endpoints: Endpoints<'_>,
) -> Result<(Dialect, Response), ErrorResponse> {
    let path = req.uri().path();
    // Browsers abort the handshake if they offered a subprotocol and get none back; echo the
    // VSCP names, select nothing otherwise (ws1.md §1).
    let (dialect, wanted) = if endpoints.ws1 == Some(path) {
        (Dialect::Ws1, "vscp-std")
    } else if endpoints.ws2 == Some(path) {
        (Dialect::Ws2, "vscp-json")
    } else {
        let mut r = ErrorResponse::new(Some(format!("no websocket endpoint at {path}\n")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return Err(r);
    };
    let offered = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == wanted);
    if offered {
        resp.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static(wanted));
    }
    Ok((dialect, resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EP: Endpoints<'static> = Endpoints {
        ws1: Some("/ws1"),
        ws2: Some("/ws2"),
    };

    fn request(path: &str, extra: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    }

    fn run(req: &str) -> (Verdict, String) {
        let mut out = Vec::new();
        let v = answer(req.as_bytes(), EP, &mut out);
        (v, String::from_utf8(out).unwrap())
    }

    #[test]
    fn accepts_both_endpoints_with_the_rfc_accept_key() {
        let (v, out) = run(&request("/ws1", ""));
        assert_eq!(v, Verdict::Accept(Dialect::Ws1));
        assert!(
            out.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "{out}"
        );
        // RFC 6455 §1.3's example key and answer.
        assert!(out.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(out.ends_with("\r\n\r\n") && !out.contains("protocol"));
        let (v, out) = run(&request(
            "/ws2",
            "Sec-WebSocket-Protocol: chat, vscp-json\r\n",
        ));
        assert_eq!(v, Verdict::Accept(Dialect::Ws2));
        assert!(
            out.contains("sec-websocket-protocol: vscp-json\r\n"),
            "{out}"
        );
    }

    #[test]
    fn incomplete_then_whole() {
        let req = request("/ws1", "");
        for cut in [0, 1, 10, req.len() - 1] {
            assert_eq!(run(&req[..cut]).0, Verdict::Incomplete, "{cut}");
        }
        assert_eq!(run(&req).0, Verdict::Accept(Dialect::Ws1));
    }

    #[test]
    fn refusals() {
        let (v, out) = run(&request("/nope", ""));
        assert_eq!(v, Verdict::Refuse);
        assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
        assert!(
            out.ends_with("\r\n\r\nno websocket endpoint at /nope\n"),
            "{out}"
        );
        // Silently dropped, as tungstenite does: garbage, not an upgrade, bytes after the request.
        for req in [
            "\x00\x01garbage\r\n\r\n".to_string(),
            "GET /ws1 HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            request("/ws1", "").replace("GET", "POST"),
            format!("{}\u{81}", request("/ws1", "")),
        ] {
            assert_eq!(run(&req), (Verdict::Refuse, String::new()), "{req:?}");
        }
        let off = Endpoints {
            ws1: Some("/ws1"),
            ws2: None,
        };
        let mut out = Vec::new();
        assert_eq!(
            answer(request("/ws2", "").as_bytes(), off, &mut out),
            Verdict::Refuse
        );
    }

    #[test]
    fn any_path_accepts_every_path_and_checks_the_rest() {
        let mut out = Vec::new();
        let req = request(
            "/runCase?case=1&agent=x",
            "Sec-WebSocket-Protocol: chat\r\n",
        );
        assert_eq!(
            answer_any_path(req.as_bytes(), &mut out),
            Verdict::Accept(Dialect::Ws1)
        );
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "{out}"
        );
        assert!(!out.contains("protocol"), "{out}");
        let mut out = Vec::new();
        let bad = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(answer_any_path(bad.as_bytes(), &mut out), Verdict::Refuse);
        assert_eq!(answer_any_path(b"GET / HT", &mut out), Verdict::Incomplete);
    }
}
