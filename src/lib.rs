//! vscp-websocksrv: a thread-per-core VSCP websocket server (ws1 text and ws2 JSON dialects),
//! wire- and config-compatible with the VSCP project's `vscpl2drv-websocksrv` driver.
//!
//! # Architecture
//! One glommio executor per shard, pinned to a core, each with its own SO_REUSEPORT listeners.
//! A connection lives and dies on the shard that accepted it. Protocol logic is sans-IO in the
//! `vscp-proto` crate (sessions, codecs) and the transport crates (`vscp-ws`: the HTTP upgrade
//! and RFC 6455 framing, behind the `vscp-transport` seam); this crate is the glue
//! (docs/architecture.md has the picture and the path of one event):
//! - [`server`]: starts the shards and the rings between them, stops them;
//! - [`settings`]: what the shards read from the config, including the list of listeners;
//! - [`shard`]: a shard's executor: listeners, ring readers, drain at shutdown;
//! - [`listener`]: the accept loop of one listener (client slots, back-off);
//! - [`admission`]: abuse limits per source address (failed logins, connection rate, the
//!   share of connections not logged in yet), the PROXY protocol;
//! - [`keepalive`]: TCP keepalive on the accepted sockets;
//! - [`conn`]: one connection of any transport driving a `vscp_proto::Session`;
//! - [`awaiting`]: replies held until the uplink confirms an event (`ack-from-broker`);
//! - [`context`]: what a connection gets from its shard (hub, credentials, buffers);
//! - [`hub`]: fan-out of events to local sessions and to the other shards' rings;
//! - [`registry`]: every live client connection, for the tcp/ip `interface list`;
//! - [`credentials`]: password checks off the hot path with a verified-credential cache;
//! - [`shutdown`]: the stop signal from the starter to every executor;
//! - [`config`]: the driver configuration file;
//! - [`stats`]: per-shard and uplink counters; [`metrics`] renders them for [`http`];
//! - [`uplink`]: the interface the MQTT bridge and the vscpd host sit behind;
//! - [`mqtt`]: the MQTT bridge (crate `vscp-mqtt`) as an uplink;
//! - [`tls`]: TLS settings for the client listeners (`wss://`, `stcp://`) and their reloads;
//! - [`tls_stream`]: a TLS connection, the stream the driver runs on for those listeners;
//! - [`clients`]: the binary's command-line clients (`pub`, `sub`, `auth-line`).
#![warn(missing_debug_implementations, rust_2018_idioms)]

pub mod admission;
pub mod awaiting;
pub mod clients;
pub mod config;
pub mod conn;
pub mod context;
pub mod cork;
pub mod credentials;
pub mod http;
pub mod hub;
pub mod keepalive;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod mqtt;
pub mod registry;
pub mod server;
pub mod settings;
pub mod shard;
pub mod shutdown;
pub mod stats;
pub mod tls;
pub mod tls_stream;
pub mod uplink;

pub use server::{start, start_with_uplink, ServerHandle, StartError};
