//! The MQTT bridge as this server's [`Uplink`]. The bridge itself (configuration, topic and
//! payload mapping, the MQTT client and its glommio loop) lives in the `vscp-mqtt` crate; this
//! adapter only connects it to the uplink rings, because `vscp-mqtt` cannot depend on this
//! crate (this crate depends on it).

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;

use vscp_mqtt::{BridgeStats, ConfigError, EventPorts, Identity, MqttBridge, MqttConfig};
use vscp_proto::{Event, Guid};

use crate::config::Config;
use crate::hub::RoutedEvent;
use crate::stats::UplinkStats;
use crate::uplink::{Uplink, UplinkPorts};

/// The MQTT bridge, ready to be handed to [`crate::start_with_uplink`].
#[derive(Debug)]
pub struct MqttUplink {
    bridge: MqttBridge,
}

impl MqttUplink {
    /// Validates the driver config's `mqtt` block and builds the bridge. The interface GUID
    /// (`ifguid`, and `guid` in subscribe topics) is the server's; standalone there is no
    /// vscpd, so `srvguid` is the same GUID. Returns the bridge and warnings (unknown keys).
    /// Errors and warnings name the config's file and the key (`mqtt.reconnect.delay`).
    pub fn new(
        block: &serde_json::Value,
        cfg: &Config,
    ) -> Result<(MqttUplink, Vec<String>), ConfigError> {
        let (mqtt, warnings) = MqttConfig::from_value(block, &cfg.origin, "mqtt")?;
        let guid = Guid(cfg.interface_guid());
        let bridge = MqttBridge::new(
            mqtt,
            Identity {
                interface_guid: guid,
                server_guid: guid,
            },
        )?;
        Ok((MqttUplink { bridge }, warnings))
    }

    /// The bridge's counters; they keep updating while the server runs.
    pub fn stats(&self) -> Arc<BridgeStats> {
        self.bridge.stats()
    }
}

impl Uplink for MqttUplink {
    fn name(&self) -> &'static str {
        "mqtt"
    }

    fn confirm_timeout(&self) -> Option<std::time::Duration> {
        self.bridge.ack_timeout()
    }

    fn run(self: Box<Self>, ports: UplinkPorts) -> Pin<Box<dyn Future<Output = ()>>> {
        let exported = ports.stats().clone();
        let own = self.bridge.stats();
        Box::pin(async move {
            // The bridge keeps its own counters; copy the ones `/metrics` and `/readyz` read
            // into the uplink's, on this executor, a few times a second.
            let mirror = glommio::spawn_local(async move {
                loop {
                    mirror_stats(&own, &exported);
                    glommio::timer::sleep(MIRROR_INTERVAL).await;
                }
            });
            self.bridge.run(Ports(ports)).await;
            mirror.cancel().await;
        })
    }
}

/// How often the bridge's counters are copied for `/metrics` and `/readyz`.
const MIRROR_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

fn mirror_stats(own: &BridgeStats, exported: &UplinkStats) {
    use std::sync::atomic::Ordering::Relaxed;
    let s = own.snapshot();
    exported.connected.store(s.connected == 1, Relaxed);
    exported
        .reconnects
        .store(s.connects.saturating_sub(1), Relaxed);
    exported.published.store(s.published, Relaxed);
    exported.acked.store(s.acked, Relaxed);
    exported.in_flight.store(s.inflight as i64, Relaxed);
    exported.buffered.store(s.offline_queued as i64, Relaxed);
    for (to, from) in [
        (&exported.dropped_buffer_full, s.offline_dropped),
        (&exported.dropped_shutdown, s.shutdown_dropped),
        (&exported.dropped_invalid, s.topic_errors),
        (&exported.resent, s.resent),
        (&exported.received, s.messages_received),
        (&exported.discarded_filter, s.filtered),
        (&exported.discarded_echo, s.echo_dropped),
        (&exported.discarded_duplicate, s.duplicate_dropped),
        (&exported.discarded_oversized, s.oversized),
        (&exported.subscribe_failures, s.subscribe_failures),
        (&exported.malformed, s.malformed),
    ] {
        to.store(from, Relaxed);
    }
}

struct Ports(UplinkPorts);

/// An event from the sessions, shared with every other receiver (no copy).
struct Shared(Arc<RoutedEvent>);

impl Deref for Shared {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.0.event
    }
}

impl EventPorts for Ports {
    type Incoming = Shared;

    async fn recv(&self) -> Option<Shared> {
        self.0.recv().await.map(Shared)
    }

    async fn send(&self, event: Event) {
        self.0.send(event).await
    }

    fn confirmation(event: &Shared) -> Option<&vscp_transport::confirm::Confirm> {
        event.0.confirm.as_ref()
    }
}
