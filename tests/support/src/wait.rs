//! Deadlines, ports and child processes.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

/// Polls `f` until it returns true or `timeout` passes; the last answer of `f`.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// A port on 127.0.0.1 nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits (up to 10 s) until something accepts connections on `addr`.
pub fn wait_listening(addr: SocketAddr) {
    let up = eventually(Duration::from_secs(10), || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    });
    assert!(up, "nothing listens on {addr}");
}

/// Stops a child this test started: SIGTERM (so it can shut down cleanly and save what it
/// saves), then SIGKILL if it has not exited within `grace`. Reaps it either way.
pub fn terminate(child: &mut Child, grace: Duration) {
    // SAFETY: plain kill(2) on the PID of a child we started and still own (not yet reaped,
    // so the PID cannot have been reused).
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let exited = eventually(grace, || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        // Child::kill is kill(SIGKILL) on this child's PID.
        let _ = child.kill();
        let _ = child.wait();
    }
}
