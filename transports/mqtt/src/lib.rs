//! MQTT bridge of the VSCP websocket server (spec: shared/spec/mqtt.md).
//!
//! Events accepted from websocket clients are published to every `publish` entry of the
//! `mqtt` configuration block; messages on the `subscribe` topics are decoded and handed to
//! the sessions. Several servers sharing one broker exchange their clients' events this way,
//! which is how an installation scales past one machine (README "Scaling out").
//!
//! # Architecture
//! Everything that decides anything is sans-IO and tested without a network; the async part
//! is one small loop:
//! - [`config`]: the `mqtt` block, read from a `serde_json::Value` with key-naming errors;
//! - [`template`]: mustache topic templates and their variables;
//! - [`measurement`]: the measurement decoding behind the JSON `measurement` block;
//! - [`payload`]: event ↔ payload in the json, xml, string and binary forms, `auto` detection;
//! - [`topic`]: MQTT topic validation and wildcard matching;
//! - [`codec`]: MQTT 3.1.1 and 5 packets — the only user of the (unmaintained) mqttbytes crate;
//! - [`client`]: the MQTT client state machine: CONNECT/CONNACK, SUBSCRIBE, QoS 0/1/2 with an
//!   in-flight window, keepalive, reconnect backoff, bounded offline buffer;
//! - [`dedup`]: dropping broker echoes of our own publishes and duplicate deliveries;
//! - [`bridge`]: the mapping between sessions and broker on top of the client;
//! - [`tls`]: the rustls client configuration for TLS to the broker (reads the PEM files);
//! - [`runtime`]: the glommio loop (TCP or TLS, timers, the [`EventPorts`] to the sessions) that
//!   runs on the server's uplink core;
//! - [`stats`]: the bridge's counters.
#![warn(missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

pub mod bridge;
pub mod client;
pub mod codec;
pub mod config;
pub mod dedup;
pub mod error;
pub mod measurement;
pub mod payload;
pub mod runtime;
pub mod stats;
pub mod template;
pub mod tls;
pub mod topic;
pub mod websocket;

pub use bridge::{Bridge, Identity};
pub use config::MqttConfig;
pub use error::{ConfigError, ConnectionError};
pub use runtime::{EventPorts, MqttBridge};
pub use stats::{BridgeStats, Snapshot};
