//! The host (vscpd) as the server's uplink.
//!
//! It runs on the uplink executor (glommio) and moves events between the server's uplink ports
//! and the [`HostQueues`] the host threads use:
//!
//! - **sessions → host**: `ports.recv()` in a loop, each event pushed into the to-host queue.
//!   That push never waits (drop-oldest when the host does not read), so a host that stops
//!   calling VSCPRead never holds up the executor or, through the rings, the sessions.
//! - **host → sessions**: wait for a wake-up byte on a socketpair (written by VSCPWrite when
//!   the queue becomes non-empty), then drain the queue in batches into `ports.send()`, which
//!   waits while a shard ring is full — that backpressure reaches the host as a full queue,
//!   i.e. a VSCPWrite that waits and then reports it.
//!
//! Why a socketpair: a host thread cannot drive a glommio executor directly. Polling the
//! queue from the executor with a short timer would cost a wake-up per tick on an idle
//! driver and add up to a tick of latency; glommio wakers can be woken from foreign threads,
//! but a waker the host holds at shutdown ends up queued in an executor that no longer runs
//! (and pins that executor's task). A socket read is an ordinary glommio I/O source (an
//! io_uring poll, like any TCP read) and costs the host one `send(2)` per batch. Measured on
//! loopback (release build, tests/driver.rs-style host): VSCPWrite → event at a ws1 client
//! p50 ≈ 120 µs, including the client's own read; an idle driver costs no wake-ups.
//!
//! Ending: VSCPClose shuts the host's end of the socketpair down before it stops the server,
//! so the read sees end-of-file and [`Uplink::run`] returns by itself. That matters beyond
//! tidiness: glommio 0.9 never frees a task that is cancelled (or left behind at executor
//! exit) while pending, so a run that had to be cancelled would leak its task block.

use crate::queues::HostQueues;
use futures::AsyncReadExt;
use std::future::Future;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use vscp_websocksrv::uplink::{Uplink, UplinkPorts};

/// Events taken from the to-clients queue per lock; bounds how long the host can be kept from
/// the lock and lets other tasks run between batches.
const BATCH: usize = 256;

/// Logs the drop counter at the first drop and then every this many.
const DROP_LOG_EVERY: u64 = 1000;

/// The vscpd host behind the uplink interface.
#[derive(Debug)]
pub struct HostUplink {
    queues: Arc<HostQueues>,
    wake_rx: UnixStream,
}

impl HostUplink {
    /// `wake_rx` is the executor's end of the socketpair [`HostQueues::new`] returned.
    pub fn new(queues: Arc<HostQueues>, wake_rx: UnixStream) -> HostUplink {
        HostUplink { queues, wake_rx }
    }
}

impl Uplink for HostUplink {
    fn name(&self) -> &'static str {
        "vscpd"
    }

    fn run(self: Box<Self>, ports: UplinkPorts) -> Pin<Box<dyn Future<Output = ()>>> {
        let HostUplink { queues, wake_rx } = *self;
        Box::pin(async move {
            // The host is in-process: it is "connected" for as long as the driver is open.
            ports.stats().connected.store(true, Ordering::Release);
            // SAFETY: `into_raw_fd` hands over sole ownership of an open socket fd, which the
            // glommio stream takes over (and closes when dropped). The conversion must happen
            // here, on the executor, because glommio binds the stream to the current reactor.
            let wake = unsafe { glommio::net::UnixStream::from_raw_fd(wake_rx.into_raw_fd()) };
            // Both directions in this one task: whichever ends first (the host closed, or the
            // shards are gone) ends the other by dropping it, with nothing left to cancel.
            let to_clients = pin!(to_clients(&ports, &queues, wake));
            let to_host = pin!(to_host(&ports, &queues));
            futures::future::select(to_clients, to_host).await;
            ports.stats().connected.store(false, Ordering::Release);
        })
    }
}

/// Sessions → host, until the shards are gone.
async fn to_host(ports: &UplinkPorts, queues: &HostQueues) {
    while let Some(ev) = ports.recv().await {
        let dropped = queues.push_to_host(ev.event.clone());
        let stats = ports.stats();
        stats.published.fetch_add(1, Ordering::Relaxed);
        let held = i64::try_from(queues.to_host_len()).unwrap_or(i64::MAX);
        stats.buffered.store(held, Ordering::Relaxed);
        if dropped {
            stats.dropped_buffer_full.fetch_add(1, Ordering::Relaxed);
            let n = queues.stats.dropped_to_host.load(Ordering::Relaxed);
            if n == 1 || n.is_multiple_of(DROP_LOG_EVERY) {
                tracing::warn!(
                    dropped = n,
                    "the host does not read (VSCPRead): oldest client events dropped"
                );
            }
        }
    }
}

/// Host → sessions: wait for a wake-up, then drain the queue into the shards; until the host
/// closes its end of the socketpair.
async fn to_clients(ports: &UplinkPorts, queues: &HostQueues, mut wake: glommio::net::UnixStream) {
    let mut buf = [0u8; 64];
    loop {
        loop {
            let batch = queues.take_for_clients(BATCH);
            if batch.is_empty() {
                break;
            }
            for ev in batch {
                ports.send(ev).await;
            }
        }
        match wake.read(&mut buf).await {
            // End of file: VSCPClose is under way, nothing more will come.
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "vscpd driver: wake-up socket failed; host events no longer reach clients"
                );
                // Keep the other direction (client events to the host) going until shutdown.
                std::future::pending::<()>().await;
            }
        }
    }
}
