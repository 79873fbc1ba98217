//! vscp-websocksrv: a thread-per-core VSCP websocket server (ws1 text and ws2 JSON dialects),
//! wire- and config-compatible with the VSCP project's `vscpl2drv-websocksrv` driver.
//!
//! # Architecture
//! One glommio executor per shard, pinned to a core, each with its own SO_REUSEPORT listener.
//! A connection lives and dies on the shard that accepted it. Protocol logic is sans-IO in the
//! `vscp-proto` crate; this crate is the glue:
//! - [`server`]: starts the shards and the rings between them, stops them;
//! - [`shard`]: a shard's accept loop, its [`hub`] and shared per-shard context;
//! - [`conn`]: one websocket connection driving a `vscp_proto::Session`;
//! - [`handshake`]: the HTTP upgrade (tungstenite parses and answers; no I/O);
//! - [`framing`]: RFC 6455 frames after the upgrade (decode client frames, encode ours);
//! - [`hub`]: fan-out of events to local sessions and to the other shards' rings;
//! - [`credentials`]: password checks off the hot path with a verified-credential cache;
//! - [`config`]: the driver configuration file;
//! - [`stats`]: per-shard counters; [`metrics`] renders them for [`http`] (`/metrics`);
//! - [`uplink`]: the interface the MQTT bridge and the vscpd host sit behind.
//! - [`mqtt`]: the MQTT bridge (crate `vscp-mqtt`) as an uplink.
#![warn(missing_debug_implementations, rust_2018_idioms)]

pub mod config;
pub mod conn;
pub mod credentials;
pub mod framing;
pub mod handshake;
pub mod http;
pub mod hub;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod mqtt;
pub mod server;
pub mod shard;
pub mod stats;
pub mod uplink;

pub use server::{start, start_with_uplink, ServerHandle, StartError};
