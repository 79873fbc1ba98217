//! The two bounded queues between the host's threads and the uplink executor.
//!
//! The host side (VSCPWrite, VSCPRead) is plain threads, so both queues are a `std` Mutex +
//! Condvar; the executor side only ever holds a lock for a push or a batch pop, never across an
//! `.await`, so it is never blocked for longer than a host thread's push/pop.
//!
//! - **to clients** (VSCPWrite → sessions), capacity `max-in-queue`: a full queue makes
//!   VSCPWrite wait up to its `timeout`, then fail (the host decides; vscpd logs it). Nothing
//!   is ever dropped silently in this direction.
//! - **to host** (sessions → VSCPRead), capacity `max-out-queue`: the executor must never wait
//!   for the host, so when the host does not read, the **oldest** event is dropped and counted
//!   (the same policy as a session's outbox).
//!
//! Waking the executor: a glommio executor sleeps in `io_uring_enter`; a host thread cannot
//! poke it through glommio's API. So the queue owns one end of a `socketpair` and writes one
//! byte into it when the to-clients queue goes from "nothing pending" to "something pending";
//! the executor reads the other end through glommio's own socket reads (an io_uring poll), as
//! it does for any TCP connection. See [`crate::uplink`].

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use vscp_proto::Event;

/// Why an event was not queued for the clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// Still full when the timeout ran out (or immediately, for timeout 0).
    Full,
    /// The instance is closing.
    Closed,
}

/// Why no event came back for the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopError {
    /// Nothing arrived within the timeout.
    Timeout,
    /// The instance is closing.
    Closed,
}

struct ToClients {
    queue: VecDeque<Event>,
    /// A wake-up byte is in flight and the executor has not taken a batch since: further pushes
    /// need not write another one.
    kicked: bool,
    closed: bool,
}

struct ToHost {
    queue: VecDeque<Event>,
    closed: bool,
}

/// Counters the driver keeps on its own (also logged at close).
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Events the host never read in time: dropped (oldest first) from the to-host queue.
    pub dropped_to_host: AtomicU64,
    /// VSCPWrite calls refused because the to-clients queue stayed full.
    pub refused_full: AtomicU64,
}

/// The queues of one driver instance, shared by the host threads and the uplink executor.
pub struct HostQueues {
    to_clients: Mutex<ToClients>,
    to_clients_room: Condvar,
    to_clients_cap: usize,
    to_host: Mutex<ToHost>,
    to_host_ready: Condvar,
    to_host_cap: usize,
    /// The host's end of the wake-up socketpair.
    kick: UnixStream,
    /// Drop and refusal counters.
    pub stats: QueueStats,
}

impl std::fmt::Debug for HostQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostQueues")
            .field("to_clients_cap", &self.to_clients_cap)
            .field("to_host_cap", &self.to_host_cap)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Locks, ignoring poisoning: a panic while holding one of these locks cannot leave the queue
/// half-updated (every critical section is a single push/pop/flag store), and refusing to work
/// afterwards would turn one bug into a dead driver.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits on `cv` until `deadline` (`None`: no deadline). Returns the guard and whether the
/// deadline has passed.
fn wait_until<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
) -> (MutexGuard<'a, T>, bool) {
    match deadline {
        None => (cv.wait(guard).unwrap_or_else(|e| e.into_inner()), false),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (guard, true);
            }
            let (g, _) = cv
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner());
            (g, false)
        }
    }
}

/// `now + timeout`, or `None` ("no deadline") when that is past what `Instant` can hold —
/// the host asked for a wait of centuries.
fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

impl HostQueues {
    /// New queues and the executor's end of the wake-up socketpair.
    pub fn new(
        to_clients_cap: usize,
        to_host_cap: usize,
    ) -> std::io::Result<(HostQueues, UnixStream)> {
        let (kick, wake_rx) = UnixStream::pair()?;
        // The host never waits on this socket: a full socket buffer just means a wake-up is
        // already pending.
        kick.set_nonblocking(true)?;
        Ok((
            HostQueues {
                to_clients: Mutex::new(ToClients {
                    queue: VecDeque::new(),
                    kicked: false,
                    closed: false,
                }),
                to_clients_room: Condvar::new(),
                to_clients_cap: to_clients_cap.max(1),
                to_host: Mutex::new(ToHost {
                    queue: VecDeque::new(),
                    closed: false,
                }),
                to_host_ready: Condvar::new(),
                to_host_cap: to_host_cap.max(1),
                kick,
                stats: QueueStats::default(),
            },
            wake_rx,
        ))
    }

    /// Host side (VSCPWrite): queues `event` for the clients, waiting up to `timeout` for room.
    pub fn push_to_clients(&self, event: Event, timeout: Duration) -> Result<(), PushError> {
        let deadline = deadline_after(timeout);
        let mut g = lock(&self.to_clients);
        loop {
            if g.closed {
                return Err(PushError::Closed);
            }
            if g.queue.len() < self.to_clients_cap {
                break;
            }
            let (ng, expired) = wait_until(&self.to_clients_room, g, deadline);
            g = ng;
            if expired {
                self.stats.refused_full.fetch_add(1, Ordering::Relaxed);
                return Err(PushError::Full);
            }
        }
        g.queue.push_back(event);
        let kick = !g.kicked;
        g.kicked = true;
        drop(g);
        if kick {
            self.kick();
        }
        Ok(())
    }

    /// Writes the wake-up byte. MSG_NOSIGNAL: the host process (vscpd) may not ignore SIGPIPE,
    /// and a write after the executor's end is gone must not kill it. Errors are harmless:
    /// EAGAIN means a byte is already waiting, EPIPE that nobody listens any more.
    fn kick(&self) {
        let byte = 1u8;
        // SAFETY: the fd is owned by `self.kick` and open for as long as `self` lives; the
        // buffer is one valid byte.
        unsafe {
            libc::send(
                self.kick.as_raw_fd(),
                (&byte as *const u8).cast(),
                1,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            );
        }
    }

    /// Executor side: takes up to `max` events for the clients and makes room for waiting
    /// VSCPWrite calls. An empty result means everything queued so far has been taken.
    pub fn take_for_clients(&self, max: usize) -> Vec<Event> {
        let mut g = lock(&self.to_clients);
        // Cleared before taking, under the lock: any push after this point writes a new
        // wake-up byte, so an event can never sit in the queue unnoticed.
        g.kicked = false;
        let n = g.queue.len().min(max);
        let batch: Vec<Event> = g.queue.drain(..n).collect();
        drop(g);
        if !batch.is_empty() {
            self.to_clients_room.notify_all();
        }
        batch
    }

    /// Executor side: hands a client event to the host; never waits. Returns true when the
    /// oldest queued event had to be dropped to make room.
    pub fn push_to_host(&self, event: Event) -> bool {
        let mut g = lock(&self.to_host);
        if g.closed {
            return false;
        }
        let dropped = if g.queue.len() >= self.to_host_cap {
            g.queue.pop_front();
            self.stats.dropped_to_host.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        };
        g.queue.push_back(event);
        drop(g);
        self.to_host_ready.notify_one();
        dropped
    }

    /// Events waiting for the host.
    pub fn to_host_len(&self) -> usize {
        lock(&self.to_host).queue.len()
    }

    /// Host side (VSCPRead): the next client event, waiting up to `timeout` (0: no wait).
    pub fn pop_for_host(&self, timeout: Duration) -> Result<Event, PopError> {
        let deadline = deadline_after(timeout);
        let mut g = lock(&self.to_host);
        loop {
            if g.closed {
                return Err(PopError::Closed);
            }
            if let Some(ev) = g.queue.pop_front() {
                return Ok(ev);
            }
            let (ng, expired) = wait_until(&self.to_host_ready, g, deadline);
            g = ng;
            if expired {
                return Err(PopError::Timeout);
            }
        }
    }

    /// Host side: puts an event back at the head (it could not be handed over, e.g. malloc
    /// failed), so the next VSCPRead gets it again.
    pub fn unpop_for_host(&self, event: Event) {
        let mut g = lock(&self.to_host);
        if !g.closed {
            g.queue.push_front(event);
        }
    }

    /// Closing: every waiting and later VSCPRead/VSCPWrite returns at once; queued events are
    /// dropped; the executor's end of the wake-up socket reads end-of-file, which ends the
    /// uplink's work on its own (see [`crate::uplink`]).
    pub fn close(&self) {
        // Errors only mean the socket is already shut down.
        let _ = self.kick.shutdown(std::net::Shutdown::Both);
        {
            let mut g = lock(&self.to_clients);
            g.closed = true;
            g.queue.clear();
        }
        {
            let mut g = lock(&self.to_host);
            g.closed = true;
            g.queue.clear();
        }
        self.to_clients_room.notify_all();
        self.to_host_ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::Arc;

    fn ev(class: u16) -> Event {
        Event {
            class,
            ..Event::default()
        }
    }

    #[test]
    fn a_full_queue_to_the_clients_waits_then_refuses() {
        let (q, _rx) = HostQueues::new(2, 8).expect("socketpair");
        q.push_to_clients(ev(1), Duration::ZERO).expect("room");
        q.push_to_clients(ev(2), Duration::ZERO).expect("room");
        assert_eq!(
            q.push_to_clients(ev(3), Duration::ZERO),
            Err(PushError::Full)
        );
        let t = Instant::now();
        assert_eq!(
            q.push_to_clients(ev(3), Duration::from_millis(50)),
            Err(PushError::Full)
        );
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert_eq!(q.stats.refused_full.load(Ordering::Relaxed), 2);
        let got: Vec<u16> = q.take_for_clients(10).iter().map(|e| e.class).collect();
        assert_eq!(got, vec![1, 2]);
    }

    #[test]
    fn a_waiting_write_goes_through_once_the_executor_takes_a_batch() {
        let (q, _rx) = HostQueues::new(1, 8).expect("socketpair");
        let q = Arc::new(q);
        q.push_to_clients(ev(1), Duration::ZERO).expect("room");
        let q2 = q.clone();
        let writer = std::thread::spawn(move || q2.push_to_clients(ev(2), Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(q.take_for_clients(10).len(), 1);
        assert_eq!(writer.join().expect("no panic"), Ok(()));
        assert_eq!(q.take_for_clients(10)[0].class, 2);
    }

    #[test]
    fn one_wake_up_byte_per_batch() {
        let (q, mut rx) = HostQueues::new(100, 8).expect("socketpair");
        rx.set_nonblocking(true).expect("nonblocking");
        for i in 0..5 {
            q.push_to_clients(ev(i), Duration::ZERO).expect("room");
        }
        let mut buf = [0u8; 16];
        assert_eq!(rx.read(&mut buf).expect("a byte"), 1);
        assert_eq!(q.take_for_clients(3).len(), 3);
        // Taking cleared the flag, so the next push writes a new byte.
        q.push_to_clients(ev(9), Duration::ZERO).expect("room");
        assert_eq!(rx.read(&mut buf).expect("a byte"), 1);
        assert_eq!(q.take_for_clients(10).len(), 3);
        assert!(q.take_for_clients(10).is_empty());
    }

    #[test]
    fn the_queue_to_the_host_drops_the_oldest_and_counts() {
        let (q, _rx) = HostQueues::new(1, 2).expect("socketpair");
        assert!(!q.push_to_host(ev(1)));
        assert!(!q.push_to_host(ev(2)));
        assert!(q.push_to_host(ev(3)));
        assert_eq!(q.stats.dropped_to_host.load(Ordering::Relaxed), 1);
        assert_eq!(q.pop_for_host(Duration::ZERO).expect("event").class, 2);
        assert_eq!(q.pop_for_host(Duration::ZERO).expect("event").class, 3);
        let t = Instant::now();
        assert_eq!(
            q.pop_for_host(Duration::from_millis(30)),
            Err(PopError::Timeout)
        );
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert_eq!(q.pop_for_host(Duration::ZERO), Err(PopError::Timeout));
    }

    #[test]
    fn a_waiting_read_gets_the_next_event() {
        let (q, _rx) = HostQueues::new(1, 2).expect("socketpair");
        let q = Arc::new(q);
        let q2 = q.clone();
        let reader = std::thread::spawn(move || q2.pop_for_host(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        q.push_to_host(ev(7));
        assert_eq!(reader.join().expect("no panic").map(|e| e.class), Ok(7));
    }

    #[test]
    fn close_releases_waiting_callers() {
        let (q, _rx) = HostQueues::new(1, 2).expect("socketpair");
        let q = Arc::new(q);
        q.push_to_clients(ev(1), Duration::ZERO).expect("room");
        let (qr, qw) = (q.clone(), q.clone());
        let reader = std::thread::spawn(move || qr.pop_for_host(Duration::from_secs(60)));
        let writer = std::thread::spawn(move || qw.push_to_clients(ev(2), Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(20));
        let t = Instant::now();
        q.close();
        assert_eq!(reader.join().expect("no panic"), Err(PopError::Closed));
        assert_eq!(writer.join().expect("no panic"), Err(PushError::Closed));
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(!q.push_to_host(ev(3)));
        assert_eq!(q.to_host_len(), 0);
    }

    #[test]
    fn close_ends_the_wake_up_stream() {
        let (q, mut rx) = HostQueues::new(1, 2).expect("socketpair");
        rx.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        q.close();
        let mut buf = [0u8; 4];
        assert_eq!(rx.read(&mut buf).expect("EOF, not a timeout"), 0);
    }

    #[test]
    fn a_huge_timeout_does_not_overflow() {
        let (q, _rx) = HostQueues::new(1, 2).expect("socketpair");
        q.push_to_host(ev(1));
        assert!(q.pop_for_host(Duration::from_millis(u64::MAX)).is_ok());
    }
}
