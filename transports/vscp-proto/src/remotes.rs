//! The per-user client address ACL, users.json key `remotes` (users.md §5).
//!
//! REC semantics, deliberately different from REF: an empty list allows everyone; otherwise the
//! verdict starts as *deny* and the last matching entry wins. REF starts with *allow*, so its `+`
//! entries never restrict anything — a user relying on that is locked out here (release-note item).

use std::fmt;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

/// One `+net` / `-net` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteRule {
    /// `+` (true) or `-` (false).
    pub allow: bool,
    /// The network with host bits cleared; IPv4-mapped IPv6 entries are stored as IPv4.
    pub net: IpNet,
    /// Whether the user wrote a `/prefix`; only affects [`fmt::Display`], so a plain host entry
    /// is shown the way it was written.
    explicit_prefix: bool,
}

/// An ordered list of [`RemoteRule`]s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remotes {
    rules: Vec<RemoteRule>,
}

impl Remotes {
    /// Parses the string form: comma-separated entries, each trimmed; empty entries are skipped.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::parse_items([text])
    }

    /// Parses the array form (one entry per element). Elements are also split on `,` so that an
    /// element written like the string form is not silently mangled.
    pub fn parse_items<'a, I>(items: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut rules = Vec::new();
        for item in items {
            for entry in item.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                rules.push(parse_rule(entry)?);
            }
        }
        Ok(Self { rules })
    }

    /// The entries in file order.
    pub fn rules(&self) -> &[RemoteRule] {
        &self.rules
    }

    /// True when no entry is configured (everyone may connect).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// May a client at `ip` log in as this user?
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        let ip = canonical_ip(ip);
        self.rules
            .iter()
            .rev()
            .find(|r| r.net.contains(&ip))
            .is_some_and(|r| r.allow)
    }
}

/// Dual-stack listeners report IPv4 clients as `::ffff:a.b.c.d`; without this an IPv4 entry
/// would never match them.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn parse_rule(entry: &str) -> Result<RemoteRule, String> {
    let bad = || format!("invalid remote {entry:?} (expected +addr[/prefix] or -addr[/prefix])");
    let allow = match entry.as_bytes().first() {
        Some(b'+') => true,
        Some(b'-') => false,
        _ => return Err(bad()),
    };
    let body = entry[1..].trim();
    let (net, explicit_prefix) = match body.split_once('/') {
        Some((addr, prefix)) => {
            let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
            let prefix = prefix.trim();
            if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let prefix: u8 = prefix.parse().map_err(|_| bad())?;
            (IpNet::new(addr, prefix).map_err(|_| bad())?, true)
        }
        None => {
            let addr: IpAddr = body.parse().map_err(|_| bad())?;
            (IpNet::from(addr), false)
        }
    };
    Ok(RemoteRule {
        allow,
        net: canonical_net(net.trunc()),
        explicit_prefix,
    })
}

/// Peers are compared as IPv4 when mapped (see [`canonical_ip`]), so a mapped entry is turned
/// into IPv4 as well; otherwise `+::ffff:10.0.0.0/104` could never match anything.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.addr().to_ipv4_mapped() {
            if v6.prefix_len() >= 96 {
                if let Ok(n) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(n);
                }
            }
        }
    }
    net
}

impl fmt::Display for RemoteRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.allow { '+' } else { '-' };
        let full = match self.net {
            IpNet::V4(n) => n.prefix_len() == 32,
            IpNet::V6(n) => n.prefix_len() == 128,
        };
        if self.explicit_prefix || !full {
            write!(f, "{sign}{}", self.net)
        } else {
            write!(f, "{sign}{}", self.net.addr())
        }
    }
}

/// Entries joined with `,`, the AUTH1 `remotes` field (`+127.0.0.0/24,+192.168.0.0/16`).
impl fmt::Display for Remotes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{rule}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_allows_everyone() {
        let r = Remotes::parse("").unwrap();
        assert!(r.is_empty());
        assert!(r.allows(ip("8.8.8.8")));
        assert!(r.allows(ip("::1")));
        assert!(Remotes::parse(" , ").unwrap().is_empty());
        assert!(Remotes::parse_items([]).unwrap().allows(ip("1.2.3.4")));
    }

    #[test]
    fn plus_entries_restrict() {
        let r = Remotes::parse("+127.0.0.0/24, +192.168.0.0/16").unwrap();
        assert!(r.allows(ip("127.0.0.1")));
        assert!(r.allows(ip("192.168.44.5")));
        assert!(!r.allows(ip("10.0.0.1")));
        assert!(!r.allows(ip("127.0.1.1")));
        assert!(!r.allows(ip("::1")));
    }

    #[test]
    fn last_match_wins() {
        let r = Remotes::parse_items(["+10.0.0.0/8", "-10.1.2.3"]).unwrap();
        assert!(r.allows(ip("10.1.2.4")));
        assert!(!r.allows(ip("10.1.2.3")));
        let r = Remotes::parse_items(["-10.1.2.3", "+10.0.0.0/8"]).unwrap();
        assert!(r.allows(ip("10.1.2.3")));
        // Only deny entries: nothing matches → the initial deny stands.
        let r = Remotes::parse("-10.1.2.3").unwrap();
        assert!(!r.allows(ip("10.1.2.4")));
        let r = Remotes::parse("+0.0.0.0/0,-10.1.2.3").unwrap();
        assert!(r.allows(ip("10.1.2.4")));
        assert!(!r.allows(ip("10.1.2.3")));
    }

    #[test]
    fn host_bits_are_masked() {
        let r = Remotes::parse("+192.168.1.5/24").unwrap();
        assert!(r.allows(ip("192.168.1.77")));
        assert_eq!(r.to_string(), "+192.168.1.0/24");
    }

    #[test]
    fn ipv6() {
        let r = Remotes::parse("+fe80::/64,-fe80::dead").unwrap();
        assert!(r.allows(ip("fe80::1")));
        assert!(!r.allows(ip("fe80::dead")));
        assert!(!r.allows(ip("fe81::1")));
        assert!(!r.allows(ip("127.0.0.1")));
        assert_eq!(r.to_string(), "+fe80::/64,-fe80::dead");
    }

    #[test]
    fn mapped_ipv4_peer_matches_ipv4_entry() {
        let r = Remotes::parse("+127.0.0.0/8").unwrap();
        assert!(r.allows(ip("::ffff:127.0.0.1")));
        assert!(!r.allows(ip("::ffff:10.0.0.1")));
        let r = Remotes::parse("+::ffff:10.0.0.0/104").unwrap();
        assert!(r.allows(ip("10.9.9.9")));
        assert!(r.allows(ip("::ffff:10.9.9.9")));
        assert_eq!(r.to_string(), "+10.0.0.0/8");
    }

    #[test]
    fn display_keeps_written_form() {
        let r = Remotes::parse_items([
            "+127.0.0.0/24",
            " +192.168.0.0/16 ",
            "-10.1.2.3",
            "+1.2.3.4/32",
        ])
        .unwrap();
        assert_eq!(
            r.to_string(),
            "+127.0.0.0/24,+192.168.0.0/16,-10.1.2.3,+1.2.3.4/32"
        );
        assert_eq!(r.rules().len(), 4);
        assert!(!r.rules()[2].allow);
    }

    #[test]
    fn malformed_entries_are_errors() {
        for bad in [
            "127.0.0.1",
            "*127.0.0.1",
            "+",
            "+localhost",
            "+10.0.0.0/33",
            "+fe80::/129",
            "+10.0.0.0/",
            "+10.0.0.0/+8",
            "+10.0.0.0/8/8",
            "+256.0.0.1",
        ] {
            let err = Remotes::parse(bad).unwrap_err();
            assert!(err.contains(bad.trim()), "{bad}: {err}");
        }
        assert!(Remotes::parse_items(["+10.0.0.0/8", "nope"]).is_err());
    }
}
