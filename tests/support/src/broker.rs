//! rumqttd in process, so tests that need an MQTT broker need nothing installed.

use std::collections::HashMap;
use std::net::SocketAddr;

/// Starts rumqttd on its own thread with an MQTT 3.1.1 listener on `v4` and, if given, an
/// MQTT 5 listener on `v5`, and returns once they accept connections. rumqttd cannot be
/// stopped: it lives as long as the test process.
pub fn start_rumqttd(v4: SocketAddr, v5: Option<SocketAddr>) {
    let server = |name: &str, listen| {
        let settings = rumqttd::ServerSettings {
            name: name.into(),
            listen,
            tls: None,
            next_connection_delay_ms: 1,
            connections: rumqttd::ConnectionSettings {
                connection_timeout_ms: 60_000,
                max_payload_size: 1 << 20,
                max_inflight_count: 100,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        };
        Some(HashMap::from([("1".to_string(), settings)]))
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 200,
            max_segment_size: 1 << 20,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: server("v4", v4),
        v5: v5.and_then(|a| server("v5", a)),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let _ = rumqttd::Broker::new(config).start();
        })
        .expect("broker thread");
    crate::wait_listening(v4);
    if let Some(v5) = v5 {
        crate::wait_listening(v5);
    }
}
