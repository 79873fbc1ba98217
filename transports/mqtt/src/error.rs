//! Errors of the MQTT bridge.

/// A bad `mqtt` configuration block: the workspace's one config error, naming the file and the
/// dotted key (`mqtt.reconnect.delay`, `mqtt.publish[1].format`).
pub use vscp_config::ConfigError;

/// Why the connection to the broker ended (logged once per connection, counted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The broker sent bytes that are not MQTT, or a packet we cannot accept here.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// CONNACK with a failure code.
    #[error("broker refused the connection: {0}")]
    Refused(String),
    /// No CONNACK within `connection-timeout`.
    #[error("no CONNACK within the connection timeout")]
    ConnAckTimeout,
    /// No PINGRESP (or any packet) within the keepalive interval after a PINGREQ.
    #[error("broker did not answer PINGREQ within the keepalive interval")]
    PingTimeout,
    /// The broker sent DISCONNECT (v5).
    #[error("broker disconnected: {0}")]
    ServerDisconnect(String),
    /// The TCP connection failed, closed or timed out.
    #[error("connection: {0}")]
    Io(String),
}
