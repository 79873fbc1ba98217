//! The resolved, immutable settings every shard reads, built once from the [`Config`].

use crate::config::Config;
use std::net::SocketAddr;
use vscp_proto::session::SessionConfig;
use vscp_proto::Guid;
use vscp_tcp::TcpTransport;
use vscp_ws::WsTransport;

/// A client-facing transport a listener speaks. One variant per transport: adding a transport
/// adds a variant here and one match arm in `shard.rs` (docs/architecture.md).
#[derive(Clone, Debug)]
pub enum ListenerKind {
    /// Websockets (`interface`, with `url-ws1`/`url-ws2`).
    Ws(WsTransport),
    /// The VSCP tcp/ip link interface (`tcpip-interface`).
    Tcp(TcpTransport),
}

impl ListenerKind {
    /// The config key that sets the listener's address, for error messages.
    pub fn config_key(&self) -> &'static str {
        match self {
            ListenerKind::Ws(_) => "interface",
            ListenerKind::Tcp(_) => "tcpip-interface",
        }
    }

    /// The transport's short name, for logs (`ws`, `tcp`).
    pub fn transport_name(&self) -> &'static str {
        use vscp_transport::Transport;
        match self {
            ListenerKind::Ws(t) => t.name(),
            ListenerKind::Tcp(t) => t.name(),
        }
    }
}

/// One listener: what it speaks and where (port 0: the first shard picks one, the others bind
/// the same address).
#[derive(Clone, Debug)]
pub struct ListenerSpec {
    pub kind: ListenerKind,
    pub addr: SocketAddr,
    /// TLS under the transport (`wss://`, `stcp://`).
    pub tls: bool,
}

/// What every shard needs from the configuration.
#[derive(Debug)]
pub struct Settings {
    pub session: SessionConfig,
    /// The listeners, in the order of [`crate::ServerHandle::listen_addrs`]; the first is the
    /// websocket listener, the tcp/ip one (when on) comes next.
    pub listeners: Vec<ListenerSpec>,
    pub max_out_queue: usize,
    pub max_in_queue: usize,
    pub max_message_bytes: usize,
    pub receive_sent_events: bool,
    pub interface_guid: Guid,
    /// Sessions reply to an event only once the uplink confirms it, within this time (the
    /// uplink's [`crate::uplink::Uplink::confirm_timeout`]; `None` without).
    pub confirm_timeout: Option<std::time::Duration>,
    /// TCP keepalive for every accepted socket.
    pub keepalive: crate::keepalive::KeepaliveSettings,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Settings {
        let ws = WsTransport {
            ws1: cfg.enable_ws1.then(|| cfg.url_ws1.clone()),
            ws2: cfg.enable_ws2.then(|| cfg.url_ws2.clone()),
        };
        Settings {
            session: SessionConfig {
                key: *cfg.key,
                ws2_accept_client_iv: cfg.ws2_accept_client_iv,
                check_interface_rights: cfg.check_interface_rights,
                software_version: env!("CARGO_PKG_VERSION").to_string(),
                copyright:
                    "Copyright (C) the vscp-websocksrv authors, MIT licence, https://www.vscp.org"
                        .into(),
                auth_timeout: cfg.auth_timeout,
                idle_timeout: cfg.idle_timeout,
                ping_interval: cfg.ws_ping_interval,
                pong_timeout: cfg.ws_pong_timeout,
                // `start_with_uplink` says `l2drv` when vscpd runs the server.
                tcp_host: "standalone",
            },
            listeners: std::iter::once(ListenerSpec {
                kind: ListenerKind::Ws(ws),
                addr: cfg.listen,
                tls: cfg.listen_tls,
            })
            .chain(cfg.tcpip_listen.map(|addr| ListenerSpec {
                kind: ListenerKind::Tcp(TcpTransport::default()),
                addr,
                tls: cfg.tcpip_tls,
            }))
            .collect(),
            max_out_queue: cfg.max_out_queue,
            max_in_queue: cfg.max_in_queue,
            max_message_bytes: cfg.max_message_bytes,
            receive_sent_events: cfg.receive_sent_events,
            // The configured `guid`, or one derived from the listen address (ws1.md Q9).
            interface_guid: Guid(cfg.interface_guid()),
            confirm_timeout: None,
            keepalive: cfg.keepalive(),
        }
    }
}

/// The abuse limits of `cfg` as numbers, with the shares left to their defaults derived from
/// `max-clients` (so a SIGHUP that changes `max-clients` moves them too).
pub fn admission_policy(cfg: &Config) -> crate::admission::Policy {
    use crate::admission::bucket::Rate;
    use crate::admission::policy::{
        default_max_unauthenticated, default_max_unauthenticated_per_address,
    };
    let max_unauthenticated = cfg
        .max_unauthenticated
        .unwrap_or_else(|| default_max_unauthenticated(cfg.max_clients));
    crate::admission::Policy {
        handshake_timeout: cfg.handshake_timeout,
        login_failures: Rate::every(cfg.login_failure_budget, cfg.login_failure_refill),
        login_cooldown: cfg.login_failure_cooldown,
        connection_rate: Rate::per_second(cfg.connection_rate, cfg.connection_burst),
        max_per_address: cfg.max_clients_per_address,
        max_unauthenticated,
        max_unauthenticated_per_address: cfg
            .max_unauthenticated_per_address
            .unwrap_or_else(|| default_max_unauthenticated_per_address(max_unauthenticated)),
        proxy_from: cfg.proxy_protocol_from.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `json`'s keys (beside a key file and an empty users file) read as a config.
    fn config(json: &str) -> Result<(Config, Vec<String>), String> {
        // One folder per call: the tests run at once.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vscp-settings-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vscp.key"), "2DBB079A38985AF00EBEEFE22F9FFA0E\n").unwrap();
        std::fs::write(dir.join("users.json"), r#"{"users":[]}"#).unwrap();
        let base = r#""key-file":"vscp.key","path-users":"users.json""#;
        let text = format!("{{{base}{}{json}}}", if json.is_empty() { "" } else { "," });
        let result = Config::from_json_str(&text, &dir, "<inline>").map_err(|e| e.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    fn settings(json: &str) -> Result<(Settings, Vec<String>), String> {
        config(json).map(|(cfg, warnings)| (Settings::from_config(&cfg), warnings))
    }

    fn addrs(s: &Settings) -> Vec<(&'static str, String)> {
        s.listeners
            .iter()
            .map(|l| (l.kind.config_key(), l.addr.to_string()))
            .collect()
    }

    #[test]
    fn tcpip_interface_forms_default_and_off() {
        let ok = |json: &str| addrs(&settings(json).unwrap().0);
        assert_eq!(
            ok(""),
            [
                ("interface", "127.0.0.1:8884".into()),
                ("tcpip-interface", "127.0.0.1:9598".into())
            ]
        );
        for (text, want) in [
            ("tcp://127.0.0.1:9600", "127.0.0.1:9600"),
            ("tcp://localhost", "127.0.0.1:9598"),
            ("0.0.0.0:9598", "0.0.0.0:9598"),
            ("9601", "127.0.0.1:9601"),
            ("[::1]:9602", "[::1]:9602"),
            ("tcp://[::1]:9603/", "[::1]:9603"),
        ] {
            let json = format!(r#""tcpip-interface":"{text}""#);
            assert_eq!(ok(&json)[1], ("tcpip-interface", want.into()), "{text}");
        }
        assert_eq!(ok(r#""tcpip-interface":"""#).len(), 1, "empty turns it off");
        assert_eq!(ok(r#""tcpip-interface":"  ""#).len(), 1);
    }

    #[test]
    fn garbage_and_tls_without_a_certificate_are_refused_naming_the_key() {
        for bad in ["ws2://x:1", "example.org:9598", "127.0.0.1:99999"] {
            let json = format!(r#""tcpip-interface":"{bad}""#);
            let err = settings(&json)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(err.contains("tcpip-interface"), "{err}");
        }
        // TLS needs its certificate (the default path does not exist here).
        let err = settings(r#""tcpip-interface":"stcp://127.0.0.1:9598""#).unwrap_err();
        assert!(err.contains("ssl_certificate"), "{err}");
    }

    #[test]
    fn absent_key_beside_port_0_or_the_same_port() {
        let (s, _) = settings(r#""interface":"127.0.0.1:0""#).unwrap();
        assert_eq!(addrs(&s)[1], ("tcpip-interface", "127.0.0.1:0".into()));
        let (s, warnings) = settings(r#""interface":"9598""#).unwrap();
        assert_eq!(addrs(&s).len(), 1, "REF-style interface 9598: tcp/ip off");
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("tcp/ip link interface is off")),
            "{warnings:?}"
        );
        // Written explicitly on the same port: start() refuses it, naming both keys.
        let (s, _) = settings(r#""interface":"9598","tcpip-interface":"9598""#).unwrap();
        assert_eq!(addrs(&s).len(), 2);
    }

    fn policy(json: &str) -> Result<crate::admission::Policy, String> {
        config(json).map(|(cfg, _)| admission_policy(&cfg))
    }

    #[test]
    fn abuse_limit_defaults_and_keys() {
        use crate::admission::bucket::Rate;
        use std::time::Duration;
        let p = policy("").unwrap();
        assert_eq!(p.handshake_timeout, Duration::from_secs(10));
        assert_eq!(p.login_failures, Rate::every(20, Duration::from_secs(3)));
        assert_eq!(p.login_cooldown, Duration::from_secs(60));
        assert_eq!(p.connection_rate, Rate::per_second(1000, 2000));
        assert_eq!(p.max_per_address, 0);
        // Derived from max-clients 100.
        assert_eq!(
            (p.max_unauthenticated, p.max_unauthenticated_per_address),
            (50, 12)
        );
        assert!(p.proxy_from.is_empty());
        let p = policy(
            r#""max-clients":1000,"handshake-timeout":3,"login-failure-budget":0,
               "connection-rate":0,"max-clients-per-address":7,"max-unauthenticated":40,
               "proxy-protocol-from":"10.0.0.0/8, ::1""#,
        )
        .unwrap();
        assert_eq!(p.handshake_timeout, Duration::from_secs(3));
        assert_eq!((p.login_failures, p.connection_rate), (None, None));
        assert_eq!(p.max_per_address, 7);
        assert_eq!(
            (p.max_unauthenticated, p.max_unauthenticated_per_address),
            (40, 10)
        );
        assert_eq!(p.proxy_from.len(), 2);
        let p = policy(r#""max-clients":0,"max-unauthenticated-per-address":0"#).unwrap();
        assert_eq!(
            (p.max_unauthenticated, p.max_unauthenticated_per_address),
            (0, 0)
        );
        for (bad, key) in [
            (r#""handshake-timeout":0"#, "handshake-timeout"),
            (r#""login-failure-refill":0"#, "login-failure-refill"),
            (r#""connection-burst":0"#, "connection-burst"),
            (r#""address-table-size":10"#, "address-table-size"),
            (
                r#""proxy-protocol-from":"10.0.0.0/40""#,
                "proxy-protocol-from",
            ),
            (r#""max-unauthenticated":-1"#, "max-unauthenticated"),
        ] {
            let err = policy(bad).unwrap_err();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }
}
