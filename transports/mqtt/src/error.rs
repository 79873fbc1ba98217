//! Errors of the MQTT bridge.

/// A bad `mqtt` configuration block. The key is the dotted path from the driver config's
/// root (`mqtt.reconnect.delay`, `mqtt.publish[1].format`), so the caller only adds the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key \"{key}\": {reason}")]
pub struct ConfigError {
    /// Dotted key path.
    pub key: String,
    /// What is wrong and, where useful, what is expected.
    pub reason: String,
}

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
