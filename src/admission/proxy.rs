//! The PROXY protocol header (HAProxy's "PROXY protocol" v1 text and v2 binary forms), sans-IO:
//! [`parse`] looks at the bytes a trusted proxy sent first and says how long the header is and
//! which client address it carries. Only TCP over IPv4/IPv6 carries an address; `LOCAL` (v2, the
//! proxy's own health checks), `UNKNOWN` (v1) and other families mean "use the connection's own
//! address", as the protocol asks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 prefix.
const V1_SIG: &[u8; 6] = b"PROXY ";
/// Longest v1 line, CRLF included (the protocol's own bound).
pub const V1_MAX: usize = 107;
/// Longest v2 header we accept (16 bytes + addresses + TLVs); the protocol allows 64 KiB of
/// TLVs, which no proxy we serve needs and which would be ours to buffer.
pub const V2_MAX: usize = 1024;
/// Enough to hold any header we accept.
pub const MAX_HEADER: usize = V2_MAX;

/// A complete header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Its length: the connection's own data starts after it.
    pub len: usize,
    /// The client's address, or `None`: use the connection's.
    pub source: Option<SocketAddr>,
}

/// What the bytes so far are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A header may still come: read more.
    Incomplete,
    Done(Header),
}

/// Why the bytes are not an acceptable header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY protocol header")]
    NotProxy,
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
    #[error("PROXY header too long")]
    TooLong,
    /// The connection ended, or `handshake-timeout` passed, before the header was complete.
    #[error("no complete PROXY header before the end of the connection or handshake-timeout")]
    Unfinished,
}

/// Looks at the start of a connection from a trusted proxy.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let starts = |sig: &[u8]| {
        let n = buf.len().min(sig.len());
        buf[..n] == sig[..n]
    };
    if starts(V2_SIG) {
        if buf.len() < 16 {
            return Ok(Parsed::Incomplete);
        }
        return v2(buf);
    }
    if starts(V1_SIG) {
        if buf.len() < V1_SIG.len() {
            return Ok(Parsed::Incomplete);
        }
        return v1(buf);
    }
    Err(ProxyError::NotProxy)
}

fn v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return match buf.len() >= V1_MAX {
            true => Err(ProxyError::TooLong),
            false => Ok(Parsed::Incomplete),
        };
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return Err(ProxyError::Malformed("v1 line does not end with CRLF"));
    }
    let line = std::str::from_utf8(&window[V1_SIG.len()..lf - 1])
        .map_err(|_| ProxyError::Malformed("v1 line is not text"))?;
    let mut fields = line.split(' ');
    let proto = fields.next().unwrap_or_default();
    let len = lf + 1;
    if proto == "UNKNOWN" {
        // The rest, if any, is to be ignored.
        return Ok(Parsed::Done(Header { len, source: None }));
    }
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(ProxyError::Malformed(
            "v1 needs protocol, two addresses, two ports",
        ));
    };
    let ip = |t: &str| -> Result<IpAddr, ProxyError> {
        match proto {
            "TCP4" => t.parse::<Ipv4Addr>().map(IpAddr::V4),
            "TCP6" => t.parse::<Ipv6Addr>().map(IpAddr::V6),
            _ => {
                return Err(ProxyError::Malformed(
                    "v1 protocol is not TCP4, TCP6 or UNKNOWN",
                ))
            }
        }
        .map_err(|_| ProxyError::Malformed("v1 address does not match its protocol"))
    };
    let port = |t: &str| -> Result<u16, ProxyError> {
        let ok = !t.is_empty() && t.len() <= 5 && t.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| t.parse::<u16>().ok())
            .flatten()
            .ok_or(ProxyError::Malformed(
                "v1 port is not a number in 0..=65535",
            ))
    };
    let source = SocketAddr::new(ip(src)?, port(sport)?);
    ip(dst)?;
    port(dport)?;
    Ok(Parsed::Done(Header {
        len,
        source: Some(source),
    }))
}

fn v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Malformed("v2 version is not 2"));
    }
    let local = match ver_cmd & 0x0F {
        0 => true,
        1 => false,
        _ => return Err(ProxyError::Malformed("v2 command is not LOCAL or PROXY")),
    };
    let family = buf[13];
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > V2_MAX {
        return Err(ProxyError::TooLong);
    }
    if buf.len() < len {
        return Ok(Parsed::Incomplete);
    }
    let addr = &buf[16..len];
    let source = match family {
        // TCP over IPv4: src, dst, sport, dport.
        0x11 => {
            let a = addr
                .get(..12)
                .ok_or(ProxyError::Malformed("v2 TCP4 addresses truncated"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([a[8], a[9]]),
            ))
        }
        // TCP over IPv6.
        0x21 => {
            let a = addr
                .get(..36)
                .ok_or(ProxyError::Malformed("v2 TCP6 addresses truncated"))?;
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&a[..16]);
            let port = u16::from_be_bytes([a[32], a[33]]);
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        // UNSPEC, UDP, unix sockets: nothing we can use as a client address.
        _ if family >> 4 <= 3 && family & 0x0F <= 2 => None,
        _ => return Err(ProxyError::Malformed("v2 address family unknown")),
    };
    Ok(Parsed::Done(Header {
        len,
        source: if local { None } else { source },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(len: usize, source: Option<&str>) -> Result<Parsed, ProxyError> {
        Ok(Parsed::Done(Header {
            len,
            source: source.map(|s| s.parse().unwrap()),
        }))
    }

    fn v2_header(cmd: u8, family: u8, addr: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.push(0x20 | cmd);
        h.push(family);
        h.extend_from_slice(&(addr.len() as u16).to_be_bytes());
        h.extend_from_slice(addr);
        h
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let h = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 8884\r\nGET / HTTP/1.1\r\n";
        assert_eq!(parse(h), done(42, Some("192.0.2.7:56324")));
        let h = b"PROXY TCP6 2001:db8::5 2001:db8::1 4000 443\r\n";
        assert_eq!(parse(h), done(h.len(), Some("[2001:db8::5]:4000")));
        let h = b"PROXY UNKNOWN\r\n";
        assert_eq!(parse(h), done(15, None));
        let h = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nrest";
        assert_eq!(parse(h), done(h.len() - 4, None));
    }

    #[test]
    fn v1_truncated_is_incomplete() {
        let h = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 8884\r\n";
        for n in 0..h.len() {
            assert_eq!(parse(&h[..n]), Ok(Parsed::Incomplete), "{n} bytes");
        }
    }

    #[test]
    fn v1_malformed() {
        for h in [
            &b"PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\n"[..],
            b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 8884 9\r\n",
            b"PROXY TCP4 2001:db8::5 10.0.0.1 1 2\r\n",
            b"PROXY TCP6 192.0.2.7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 +1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\n",
            b"PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4  192.0.2.7 10.0.0.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 1 \xff\r\n",
        ] {
            assert!(
                matches!(parse(h), Err(ProxyError::Malformed(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(h),
                parse(h)
            );
        }
    }

    #[test]
    fn v1_too_long() {
        let mut h = b"PROXY UNKNOWN ".to_vec();
        h.resize(V1_MAX, b'x');
        assert_eq!(parse(&h), Err(ProxyError::TooLong));
        h.truncate(V1_MAX - 1);
        assert_eq!(parse(&h), Ok(Parsed::Incomplete));
        // The longest legal line still goes.
        let mut h = b"PROXY UNKNOWN ".to_vec();
        h.resize(V1_MAX - 2, b'x');
        h.extend_from_slice(b"\r\n");
        assert_eq!(parse(&h), done(V1_MAX, None));
    }

    #[test]
    fn not_proxy() {
        for h in [
            &b"GET /ws1 HTTP/1.1\r\n"[..],
            b"\x16\x03\x01\x02\x00",
            b"PROXZ",
            b"\r\n\r\n\0\r\nQUIX",
        ] {
            assert_eq!(parse(h), Err(ProxyError::NotProxy));
        }
        assert_eq!(parse(b""), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"\r\n\r\n"), Ok(Parsed::Incomplete));
    }

    #[test]
    fn v2_tcp4_tcp6_and_tlvs() {
        let mut a = vec![192, 0, 2, 7, 10, 0, 0, 1];
        a.extend_from_slice(&56324u16.to_be_bytes());
        a.extend_from_slice(&8884u16.to_be_bytes());
        let mut h = v2_header(1, 0x11, &a);
        let len = h.len();
        h.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(parse(&h), done(len, Some("192.0.2.7:56324")));

        let mut a = Vec::new();
        a.extend_from_slice(&"2001:db8::5".parse::<Ipv6Addr>().unwrap().octets());
        a.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        a.extend_from_slice(&4000u16.to_be_bytes());
        a.extend_from_slice(&443u16.to_be_bytes());
        // A TLV (PP2_TYPE_AUTHORITY) after the addresses is skipped.
        a.extend_from_slice(&[0x02, 0x00, 0x03, b'a', b'b', b'c']);
        let h = v2_header(1, 0x21, &a);
        assert_eq!(parse(&h), done(h.len(), Some("[2001:db8::5]:4000")));
    }

    #[test]
    fn v2_local_and_unspec_use_the_connection_address() {
        let h = v2_header(0, 0x00, &[]);
        assert_eq!(parse(&h), done(16, None));
        // LOCAL with addresses: still the connection's own.
        let h = v2_header(0, 0x11, &[1; 12]);
        assert_eq!(parse(&h), done(28, None));
        let h = v2_header(1, 0x00, &[]);
        assert_eq!(parse(&h), done(16, None));
        // UDP over IPv4.
        let h = v2_header(1, 0x12, &[1; 12]);
        assert_eq!(parse(&h), done(28, None));
    }

    #[test]
    fn v2_truncated_is_incomplete() {
        let h = v2_header(1, 0x11, &[1; 12]);
        for n in 0..h.len() {
            assert_eq!(parse(&h[..n]), Ok(Parsed::Incomplete), "{n} bytes");
        }
    }

    #[test]
    fn v2_malformed_and_too_long() {
        let mut h = v2_header(1, 0x11, &[1; 12]);
        h[12] = 0x11; // version 1 in the binary form
        assert!(matches!(parse(&h), Err(ProxyError::Malformed(_))));
        let h = v2_header(2, 0x11, &[1; 12]); // command 2
        assert!(matches!(parse(&h), Err(ProxyError::Malformed(_))));
        let h = v2_header(1, 0x11, &[1; 11]); // addresses shorter than TCP4's
        assert!(matches!(parse(&h), Err(ProxyError::Malformed(_))));
        let h = v2_header(1, 0x21, &[1; 35]);
        assert!(matches!(parse(&h), Err(ProxyError::Malformed(_))));
        let h = v2_header(1, 0x41, &[1; 12]); // family 4
        assert!(matches!(parse(&h), Err(ProxyError::Malformed(_))));
        let h = v2_header(1, 0x11, &vec![0; V2_MAX]);
        assert_eq!(parse(&h[..16]), Err(ProxyError::TooLong));
        let h = v2_header(1, 0x11, &vec![0; V2_MAX - 16]);
        assert_eq!(parse(&h), done(V2_MAX, Some("0.0.0.0:0")));
    }

    /// Any bytes at all: an answer, never a panic, and a header never longer than the input.
    #[test]
    fn arbitrary_input() {
        use proptest::prelude::*;
        proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 0..300), v2 in any::<bool>())| {
            let mut input = if v2 { V2_SIG.to_vec() } else { V1_SIG.to_vec() };
            input.extend_from_slice(&bytes);
            if let Ok(Parsed::Done(h)) = parse(&input) {
                prop_assert!(h.len <= input.len());
            }
            let _ = parse(&bytes);
        });
    }
}
