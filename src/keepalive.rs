//! TCP keepalive on every accepted socket (`tcp-keepalive-idle`, `-interval`, `-count`).
//!
//! A device that vanishes without a FIN (power loss, a NAT or firewall that dropped the
//! mapping) leaves a session that nothing ever writes to or reads from: without keepalive it
//! would hold its `max-clients` slot and its memory for ever. The kernel's probes find such a
//! peer within `idle + interval × count` at no cost to us (no task wakes, no timer of ours);
//! the connection's next read then fails and the session ends as for any socket error.
//!
//! Keepalive probes go out only while nothing is unacknowledged on the socket. A peer that
//! vanishes while events are on their way to it is found by the kernel's retransmission
//! timeout instead (about 15 minutes with the default `tcp_retries2`), or sooner by the
//! websocket pings (`ws-ping-interval`), whose pong deadline runs whatever the socket does.

use socket2::{SockRef, TcpKeepalive};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// The keepalive settings accepted sockets get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepaliveSettings {
    /// Silence before the first probe; zero turns keepalive off (sockets keep the OS default,
    /// which is off).
    pub idle: Duration,
    /// Between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes after which the kernel resets the connection.
    pub count: u32,
}

impl KeepaliveSettings {
    /// The defaults: a dead peer is found within 2 minutes (60 s + 6 × 10 s) instead of the
    /// Linux defaults' 2 h 11 min, for one 0-byte probe per idle minute per session.
    pub const DEFAULT: KeepaliveSettings = KeepaliveSettings {
        idle: Duration::from_secs(60),
        interval: Duration::from_secs(10),
        count: 6,
    };

    /// Whether keepalive is set at all.
    pub fn is_on(&self) -> bool {
        !self.idle.is_zero()
    }

    /// The longest a vanished, idle peer can hold its session: `idle + interval × count`.
    pub fn detection_time(&self) -> Duration {
        self.idle + self.interval * self.count
    }

    /// Sets SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT on `socket` (nothing
    /// when off).
    pub fn apply(&self, socket: &impl AsRawFd) -> io::Result<()> {
        if !self.is_on() {
            return Ok(());
        }
        // SAFETY: `socket` owns the descriptor and outlives the borrow, which ends here.
        let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
        let params = TcpKeepalive::new()
            .with_time(self.idle)
            .with_interval(self.interval)
            .with_retries(self.count);
        SockRef::from(&fd).set_tcp_keepalive(&params)
    }
}

impl Default for KeepaliveSettings {
    fn default() -> Self {
        KeepaliveSettings::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn accepted() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (server, client)
    }

    #[test]
    fn the_kernel_reads_back_what_was_set() {
        let (server, _client) = accepted();
        let set = KeepaliveSettings {
            idle: Duration::from_secs(45),
            interval: Duration::from_secs(7),
            count: 4,
        };
        set.apply(&server).unwrap();
        let s = SockRef::from(&server);
        assert!(s.keepalive().unwrap());
        assert_eq!(s.keepalive_time().unwrap(), Duration::from_secs(45));
        assert_eq!(s.keepalive_interval().unwrap(), Duration::from_secs(7));
        assert_eq!(s.keepalive_retries().unwrap(), 4);
        assert_eq!(set.detection_time(), Duration::from_secs(73));
    }

    #[test]
    fn off_leaves_the_socket_alone() {
        let (server, _client) = accepted();
        let off = KeepaliveSettings {
            idle: Duration::ZERO,
            ..KeepaliveSettings::DEFAULT
        };
        off.apply(&server).unwrap();
        assert!(!SockRef::from(&server).keepalive().unwrap());
        assert_eq!(
            KeepaliveSettings::DEFAULT.detection_time(),
            Duration::from_secs(120),
            "the documented default"
        );
    }
}
