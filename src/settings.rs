//! The resolved, immutable settings every shard reads, built once from the [`Config`].

use crate::config::Config;
use std::net::SocketAddr;
use vscp_proto::session::SessionConfig;
use vscp_proto::{Filter, Guid};
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
}

/// One listener: what it speaks and where (port 0: the first shard picks one, the others bind
/// the same address).
#[derive(Clone, Debug)]
pub struct ListenerSpec {
    pub kind: ListenerKind,
    pub addr: SocketAddr,
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
    pub in_filter: Filter,
    pub out_filter: Filter,
    pub interface_guid: Guid,
    /// Sessions reply to an event only once the uplink confirms it, within this time (the
    /// uplink's [`crate::uplink::Uplink::confirm_timeout`]; `None` without).
    pub confirm_timeout: Option<std::time::Duration>,
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
                software_version: env!("CARGO_PKG_VERSION").to_string(),
                copyright:
                    "Copyright (C) the vscp-websocksrv authors, MIT licence, https://www.vscp.org"
                        .into(),
                auth_timeout: cfg.auth_timeout,
                idle_timeout: cfg.idle_timeout,
                // `start_with_uplink` says `l2drv` when vscpd runs the server.
                tcp_host: "standalone",
            },
            listeners: vec![ListenerSpec {
                kind: ListenerKind::Ws(ws),
                addr: cfg.listen,
            }],
            max_out_queue: cfg.max_out_queue,
            max_in_queue: cfg.max_in_queue,
            max_message_bytes: cfg.max_message_bytes,
            receive_sent_events: cfg.receive_sent_events,
            in_filter: cfg.in_filter,
            out_filter: cfg.out_filter,
            // The configured `guid`, or one derived from the listen address (ws1.md Q9).
            interface_guid: Guid(cfg.interface_guid()),
            confirm_timeout: None,
        }
    }
}
