//! The limits as numbers ([`Policy`]), resolved from the config keys by `settings.rs` and
//! replaced as a whole on SIGHUP. Nothing here reads a file or the clock.

use super::bucket::Rate;
use ipnet::IpNet;
use std::net::IpAddr;
use std::time::Duration;

/// Every abuse limit (docs/config.md "Abuse limits"). `None` or 0 means off where noted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `handshake-timeout`: PROXY header, TLS and upgrade must be done within it.
    pub handshake_timeout: Duration,
    /// `login-failure-budget` / `login-failure-refill`: failed logins an address may have.
    pub login_failures: Option<Rate>,
    /// `login-failure-cooldown`: how long an address that used its budget is refused.
    pub login_cooldown: Duration,
    /// `connection-rate` / `connection-burst`: new connections per address.
    pub connection_rate: Option<Rate>,
    /// `max-clients-per-address`: connections (logged in or not) per address; 0 = off.
    pub max_per_address: usize,
    /// `max-unauthenticated`, resolved: connections not logged in yet, all addresses; 0 = off.
    pub max_unauthenticated: usize,
    /// `max-unauthenticated-per-address`, resolved; 0 = off.
    pub max_unauthenticated_per_address: usize,
    /// `proxy-protocol-from`: peers whose PROXY header is believed; empty = PROXY is off.
    pub proxy_from: Vec<IpNet>,
}

impl Default for Policy {
    /// Every limit off, the default handshake deadline (tests of the table start here).
    fn default() -> Policy {
        Policy {
            handshake_timeout: Duration::from_secs(10),
            login_failures: None,
            login_cooldown: Duration::ZERO,
            connection_rate: None,
            max_per_address: 0,
            max_unauthenticated: 0,
            max_unauthenticated_per_address: 0,
            proxy_from: Vec::new(),
        }
    }
}

impl Policy {
    /// Whether `peer` may send a PROXY header (and must: from a trusted proxy it is required).
    pub fn trusts_proxy(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        self.proxy_from.iter().any(|n| n.contains(&peer))
    }
}

/// `max-unauthenticated` when the key is absent: half of `max-clients` (0, unlimited, stays 0),
/// so logged-in clients always have the other half.
pub fn default_max_unauthenticated(max_clients: usize) -> usize {
    max_clients.div_ceil(2)
}

/// `max-unauthenticated-per-address` when absent: a quarter of the overall share (at least 1),
/// so one address can never hold all of it.
pub fn default_max_unauthenticated_per_address(max_unauthenticated: usize) -> usize {
    match max_unauthenticated {
        0 => 0,
        n => (n / 4).max(1),
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports) as the
/// IPv4 address it is, so rules and limits see one address, not two.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Reads `proxy-protocol-from`: a string of CIDRs or addresses separated by commas or
/// whitespace, or an array of them. A bare address is a /32 (/128).
pub fn parse_cidrs(value: serde_json::Value) -> Result<Vec<IpNet>, String> {
    let items: Vec<String> = match value {
        serde_json::Value::String(s) => s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s.trim().to_owned()),
                other => Err(format!("expected an address or CIDR string, found {other}")),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "expected a string or an array of CIDRs (\"10.0.0.0/8, ::1\"), found {other}"
            ))
        }
    };
    items
        .iter()
        .map(|t| {
            t.parse::<IpNet>()
                .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{t:?} is not an IP address or CIDR (e.g. 10.0.0.0/8)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn derived_shares() {
        assert_eq!(default_max_unauthenticated(100), 50);
        assert_eq!(default_max_unauthenticated(1), 1);
        assert_eq!(default_max_unauthenticated(0), 0);
        assert_eq!(default_max_unauthenticated_per_address(50), 12);
        assert_eq!(default_max_unauthenticated_per_address(3), 1);
        assert_eq!(default_max_unauthenticated_per_address(0), 0);
    }

    #[test]
    fn cidr_lists() {
        let nets = parse_cidrs(json!("10.0.0.0/8, 192.168.1.5 ::1")).unwrap();
        assert_eq!(nets.len(), 3);
        let p = Policy {
            proxy_from: nets,
            ..Policy::default()
        };
        assert!(p.trusts_proxy("10.1.2.3".parse().unwrap()));
        assert!(p.trusts_proxy("192.168.1.5".parse().unwrap()));
        assert!(!p.trusts_proxy("192.168.1.6".parse().unwrap()));
        assert!(p.trusts_proxy("::1".parse().unwrap()));
        // A dual-stack socket's view of an IPv4 proxy.
        assert!(p.trusts_proxy("::ffff:10.9.9.9".parse().unwrap()));
        assert_eq!(parse_cidrs(json!(["127.0.0.1/32"])).unwrap().len(), 1);
        assert_eq!(parse_cidrs(json!("")).unwrap(), vec![]);
        assert!(parse_cidrs(json!("10.0.0.0/33")).is_err());
        assert!(parse_cidrs(json!("proxy.example")).is_err());
        assert!(parse_cidrs(json!(5)).is_err());
        assert!(parse_cidrs(json!([5])).is_err());
    }
}
