//! The client's side of the HTTP upgrade, without I/O: the request a client sends and the
//! check of the server's answer (RFC 6455 §4.1). The MQTT bridge uses it to reach a broker's
//! websocket listener (`ws://`, `wss://` in the `mqtt` block's `host`); frames then go out with
//! [`crate::framing::encode_masked`] and come in through [`crate::framing::Decoder::for_client`].
//!
//! tungstenite writes the request and parses the answer; the checks are the ones its own client
//! handshake makes (which it does not export apart from its blocking stream).

use tungstenite::handshake::client::{generate_key, generate_request, Request, Response};
use tungstenite::handshake::derive_accept_key;
use tungstenite::handshake::machine::TryParse;
use tungstenite::http::StatusCode;

/// Longest upgrade answer we wait for; a server that sends more without ending its headers is
/// not a websocket server.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// An upgrade request on its way: what the answer must carry.
#[derive(Debug)]
pub struct Upgrade {
    accept: String,
    subprotocol: String,
}

/// Why the server's answer does not open a websocket.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpgradeError {
    /// The answer is not HTTP, or its headers never end.
    #[error("not an HTTP answer to the websocket upgrade: {0}")]
    Malformed(String),
    /// The server answered, but with another status (a wrong path, a proxy, no websockets).
    #[error("the server refused the websocket upgrade: HTTP {0}")]
    Refused(u16),
    /// A 101 answer that breaks RFC 6455 §4.1 (the named header is missing or wrong).
    #[error("the websocket upgrade answer has a missing or wrong {0} header")]
    Header(&'static str),
}

/// The upgrade request for `path` on `host` (the `Host` header, with `:port` unless it is the
/// scheme's default), offering one subprotocol (MQTT over websockets needs `mqtt`).
pub fn request(
    host: &str,
    port: u16,
    default_port: u16,
    path: &str,
    subprotocol: &str,
) -> Result<(Vec<u8>, Upgrade), String> {
    // An IPv6 literal goes in brackets in `Host` (RFC 7230 §5.4).
    let host = match host.contains(':') {
        true => format!("[{host}]"),
        false => host.to_owned(),
    };
    let authority = match port == default_port {
        true => host,
        false => format!("{host}:{port}"),
    };
    let request = Request::builder()
        .uri(path)
        .header("Host", authority)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", generate_key())
        .header("Sec-WebSocket-Protocol", subprotocol)
        .body(())
        .map_err(|e| format!("cannot build the upgrade request: {e}"))?;
    let (bytes, key) = generate_request(request).map_err(|e| e.to_string())?;
    let accept = derive_accept_key(key.as_bytes());
    let subprotocol = subprotocol.to_owned();
    Ok((
        bytes,
        Upgrade {
            accept,
            subprotocol,
        },
    ))
}

impl Upgrade {
    /// Looks at what the server has sent so far: `None` while the answer is incomplete, else
    /// the length of the answer (what follows it is already websocket frames).
    pub fn check(&self, buf: &[u8]) -> Result<Option<usize>, UpgradeError> {
        let (len, answer) = match Response::try_parse(buf) {
            Ok(Some(parsed)) => parsed,
            Ok(None) if buf.len() > MAX_ANSWER_BYTES => {
                return Err(UpgradeError::Malformed("no end of headers".into()))
            }
            Ok(None) => return Ok(None),
            Err(e) => return Err(UpgradeError::Malformed(e.to_string())),
        };
        if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(UpgradeError::Refused(answer.status().as_u16()));
        }
        let header = |name| answer.headers().get(name).and_then(|v| v.to_str().ok());
        let has_token = |name, token: &str| {
            header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        if !has_token("Upgrade", "websocket") {
            return Err(UpgradeError::Header("Upgrade"));
        }
        if !has_token("Connection", "upgrade") {
            return Err(UpgradeError::Header("Connection"));
        }
        if header("Sec-WebSocket-Accept") != Some(self.accept.as_str()) {
            return Err(UpgradeError::Header("Sec-WebSocket-Accept"));
        }
        // We offered exactly one; a server that picks none (or another) speaks something else.
        if header("Sec-WebSocket-Protocol").map(str::trim) != Some(self.subprotocol.as_str()) {
            return Err(UpgradeError::Header("Sec-WebSocket-Protocol"));
        }
        Ok(Some(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake;

    fn key_of(request: &[u8]) -> String {
        let text = std::str::from_utf8(request).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("Sec-WebSocket-Key: "))
            .unwrap();
        line["Sec-WebSocket-Key: ".len()..].to_owned()
    }

    fn answer(status: &str, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut a = format!("HTTP/1.1 {status}\r\n");
        for (k, v) in headers {
            a.push_str(&format!("{k}: {v}\r\n"));
        }
        a.push_str("\r\n");
        a.into_bytes()
    }

    #[test]
    fn the_request_names_host_path_and_subprotocol() {
        let (req, _) = request("broker.example", 8080, 80, "/mqtt", "mqtt").unwrap();
        let text = String::from_utf8(req).unwrap();
        assert!(text.starts_with("GET /mqtt HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("Host: broker.example:8080\r\n"), "{text}");
        assert!(text.contains("Sec-WebSocket-Protocol: mqtt\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"));
        let (req, _) = request("::1", 443, 443, "/", "mqtt").unwrap();
        assert!(String::from_utf8(req).unwrap().contains("Host: [::1]\r\n"));
    }

    #[test]
    fn a_server_answer_is_accepted_and_its_length_returned() {
        let (req, up) = request("localhost", 9001, 80, "/mqtt", "mqtt").unwrap();
        let accept = derive_accept_key(key_of(&req).as_bytes());
        let mut a = answer(
            "101 Switching Protocols",
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", &accept),
                ("Sec-WebSocket-Protocol", "mqtt"),
            ],
        );
        let len = a.len();
        assert_eq!(up.check(&a[..len - 1]), Ok(None), "incomplete");
        a.extend_from_slice(&[0x82, 0x02, 0x20, 0x02]); // a CONNACK frame right behind
        assert_eq!(up.check(&a), Ok(Some(len)));
    }

    #[test]
    fn our_own_server_handshake_accepts_the_request() {
        // The answer of a real RFC 6455 server (ours, tungstenite's code) to this request
        // passes everything but the subprotocol check: the VSCP endpoints pick none.
        let (req, up) = request("localhost", 8884, 80, "/ws1", "mqtt").unwrap();
        let mut out = Vec::new();
        let eps = handshake::Endpoints {
            ws1: Some("/ws1"),
            ws2: None,
        };
        assert!(matches!(
            handshake::answer(&req, eps, &mut out),
            handshake::Verdict::Accept(_)
        ));
        assert_eq!(
            up.check(&out),
            Err(UpgradeError::Header("Sec-WebSocket-Protocol"))
        );
    }

    #[test]
    fn wrong_answers_are_named() {
        let (req, up) = request("localhost", 80, 80, "/mqtt", "mqtt").unwrap();
        let accept = derive_accept_key(key_of(&req).as_bytes());
        let ok = [
            ("Upgrade", "websocket"),
            ("Connection", "keep-alive, Upgrade"),
            ("Sec-WebSocket-Accept", accept.as_str()),
            ("Sec-WebSocket-Protocol", "mqtt"),
        ];
        assert!(up
            .check(&answer("101 Switching Protocols", &ok))
            .unwrap()
            .is_some());
        let refused = answer("404 Not Found", &[("Content-Length", "0")]);
        assert_eq!(up.check(&refused), Err(UpgradeError::Refused(404)));
        for (i, name) in [
            "Upgrade",
            "Connection",
            "Sec-WebSocket-Accept",
            "Sec-WebSocket-Protocol",
        ]
        .into_iter()
        .enumerate()
        {
            let mut h = ok.to_vec();
            h[i].1 = "nonsense";
            assert_eq!(
                up.check(&answer("101 Switching Protocols", &h)),
                Err(UpgradeError::Header(name))
            );
        }
        assert!(matches!(
            up.check(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(UpgradeError::Malformed(_))
        ));
        let mut endless = b"HTTP/1.1 101 Switching Protocols\r\nX-Pad: ".to_vec();
        endless.resize(MAX_ANSWER_BYTES + 1, b'a');
        assert!(matches!(
            up.check(&endless),
            Err(UpgradeError::Malformed(_))
        ));
    }
}
