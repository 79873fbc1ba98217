//! What a connection task gets from its shard ([`ShardCtx`]) and from the process
//! ([`Shared`]). Both are built by `shard.rs` and read by `listener.rs` and `conn.rs`.

use crate::credentials::Authenticator;
use crate::hub::{Hub, RoutedEvent};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use vscp_proto::session::SessionConfig;
use vscp_proto::Guid;

/// Events written per batch (one write) before the socket and the slot are looked at again.
pub const WRITE_BATCH: usize = 64;
/// Most events a connection's input batch or a ring reader hands to the sessions before they
/// get to write: enough for many events per send, and (see [`batch_events`]) few enough that
/// a receiver that keeps reading never finds its outbox full.
const MAX_BATCH_EVENTS: usize = 256;

/// The event batch for a `max-out-queue` of `max_out_queue`: a quarter of it at most, so that
/// an outbox holding the rest of a batch its socket did not take still has room for the next.
pub fn batch_events(max_out_queue: usize) -> usize {
    (max_out_queue / 4).clamp(1, MAX_BATCH_EVENTS)
}
/// The shard's receive buffer: one read takes up to this much of a client's input. VSCP
/// messages are a few hundred bytes; a flooding client's pipelined events come in by the dozen.
const READ_CHUNK: usize = 16 * 1024;

/// Everything a connection task needs from its shard.
pub struct ShardCtx {
    pub shard: usize,
    pub hub: Hub,
    pub auth: Authenticator,
    pub session_cfg: SessionConfig,
    pub max_message_bytes: usize,
    /// Events routed per input batch or ring batch before the receivers write
    /// ([`batch_events`]).
    pub batch_events: usize,
    pub interface_guid: Guid,
    /// What the shards share: the client slots and the registry of live clients.
    pub shared: Arc<Shared>,
    /// With `ack-from-broker`: how long a session waits for the uplink to confirm an event.
    pub confirm_timeout: Option<std::time::Duration>,
    /// TCP keepalive for the sockets the shard accepts.
    pub keepalive: crate::keepalive::KeepaliveSettings,
    /// The shard's receive and send buffers, shared by all its connections.
    pub io: IoBuffers,
    /// The sends of the current turn, submitted together (`crate::cork`); `None` if the
    /// kernel refused the shard an io_uring of its own (sessions then write directly).
    pub cork: Option<Rc<crate::cork::Cork>>,
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for ShardCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardCtx")
            .field("shard", &self.shard)
            .finish()
    }
}

impl ShardCtx {
    /// A shard's context; `io` buffers are created here.
    pub fn new(
        shard: usize,
        hub: Hub,
        auth: Authenticator,
        settings: &crate::settings::Settings,
        shared: Arc<Shared>,
    ) -> ShardCtx {
        ShardCtx {
            shard,
            hub,
            auth,
            session_cfg: settings.session.clone(),
            max_message_bytes: settings.max_message_bytes,
            batch_events: batch_events(settings.max_out_queue),
            interface_guid: settings.interface_guid,
            shared,
            confirm_timeout: settings.confirm_timeout,
            keepalive: settings.keepalive,
            io: IoBuffers::new(),
            cork: match crate::cork::Cork::new() {
                Ok(cork) => Some(Rc::new(cork)),
                Err(e) => {
                    tracing::warn!(
                        shard,
                        "no io_uring for corked sends ({e}); writing directly"
                    );
                    None
                }
            },
            rng: ring::rand::SystemRandom::new(),
        }
    }

    /// 16 bytes from the OS CSPRNG for a session challenge.
    pub fn random_sid(&self) -> [u8; 16] {
        use ring::rand::SecureRandom;
        let mut sid = [0u8; 16];
        // Without OS randomness no challenge would be safe; refuse rather than fall back.
        self.rng.fill(&mut sid).expect("OS random number generator");
        sid
    }
}

/// Process-wide state the shards share (touched per connection, never per event).
#[derive(Debug)]
pub struct Shared {
    pub clients: AtomicUsize,
    /// Who they are (tcp/ip `interface list`).
    pub registry: crate::registry::ClientRegistry,
    /// `max-clients` (0 = no limit); SIGHUP may change it.
    pub max_clients: Arc<AtomicUsize>,
    /// The driver's `in-filter`/`out-filter`; SIGHUP may change them.
    pub filters: Arc<crate::hub::DriverFilters>,
    pub next_conn_id: AtomicU32,
    /// The abuse limits and the per-address table; SIGHUP may change the limits.
    pub admission: Arc<crate::admission::Admission>,
}

/// What a connection holds while it lives: one of the `max-clients` slots, its place in the
/// per-address table (`admitted`) and a pass through the shard's gate (shutdown waits for every
/// pass). All are given back when it is dropped, however the connection ends.
#[derive(Debug)]
pub struct ClientSlot {
    shared: Arc<Shared>,
    pub admitted: crate::admission::Admitted,
    _pass: glommio::sync::Pass,
}

impl ClientSlot {
    /// Holds a slot already counted in `shared.clients`, an admission and a gate pass.
    pub fn new(
        shared: Arc<Shared>,
        admitted: crate::admission::Admitted,
        pass: glommio::sync::Pass,
    ) -> ClientSlot {
        ClientSlot {
            shared,
            admitted,
            _pass: pass,
        }
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.shared.clients.fetch_sub(1, Ordering::AcqRel);
        self.shared.admission.release(&self.admitted);
    }
}

/// Buffers shared by every connection of a shard, used in turn: a connection borrows them only
/// between two awaits, never across one.
#[derive(Debug)]
pub struct IoBuffers {
    /// Where input is read and handled (unmasked and parsed in place).
    pub rx: RefCell<Box<[u8]>>,
    /// Where output is put together for one write.
    pub tx: RefCell<Vec<u8>>,
    /// The events of one outbox batch.
    pub batch: RefCell<Vec<Arc<RoutedEvent>>>,
}

impl IoBuffers {
    pub fn new() -> IoBuffers {
        IoBuffers {
            rx: RefCell::new(vec![0; READ_CHUNK].into_boxed_slice()),
            tx: RefCell::new(Vec::with_capacity(4096)),
            batch: RefCell::new(Vec::with_capacity(WRITE_BATCH)),
        }
    }
}

impl Default for IoBuffers {
    fn default() -> Self {
        IoBuffers::new()
    }
}
