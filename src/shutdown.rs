//! Telling the executors to stop, without polling.
//!
//! The starter (a plain thread: `main`, a test, the vscpd host) and the glommio executors share
//! no runtime, so the signal crosses threads through the kernel: each executor gets one end of
//! a Unix socket pair and awaits it on its io_uring; the starter holds the other ends and
//! closes them to stop everyone (the executors read end-of-file). Nothing is checked on a timer
//! and an idle server makes no system calls for it. Inside an executor the shard's [`Hub`]
//! closes the sessions and its `Gate` waits for them (mini-redis's "broadcast, then wait for
//! every handler's guard"; see `shard.rs`).
//!
//! [`Hub`]: crate::hub::Hub

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;

/// The starter's side: [`ShutdownTrigger::trigger`] (or dropping it) stops every executor that
/// was given a [`ShutdownSignal`] from it.
#[derive(Debug, Default)]
pub struct ShutdownTrigger {
    ends: Vec<UnixStream>,
}

impl ShutdownTrigger {
    /// A signal for one more executor.
    pub fn signal(&mut self) -> io::Result<ShutdownSignal> {
        let (ours, theirs) = UnixStream::pair()?;
        self.ends.push(ours);
        Ok(ShutdownSignal { end: theirs })
    }

    /// Tells every executor to stop (idempotent).
    pub fn trigger(&mut self) {
        // Closing our ends is the message: each executor's read returns end-of-file.
        self.ends.clear();
    }
}

/// An executor's side: [`ShutdownSignal::recv`] completes once the starter triggers.
#[derive(Debug)]
pub struct ShutdownSignal {
    end: UnixStream,
}

impl ShutdownSignal {
    /// Waits for the shutdown. Must run on a glommio executor.
    pub async fn recv(self) {
        use futures::AsyncReadExt;
        // SAFETY: `into_raw_fd` hands over sole ownership of a connected socket.
        let mut end = unsafe { glommio::net::UnixStream::from_raw_fd(self.end.into_raw_fd()) };
        let mut byte = [0u8; 1];
        // End-of-file (the trigger closed its end) or an error: either way, stop. Nothing is
        // ever written, so a read of one byte cannot return early.
        let _ = end.read(&mut byte).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn an_executor_wakes_when_the_trigger_fires_and_not_before() {
        let mut trigger = ShutdownTrigger::default();
        let signal = trigger.signal().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .spawn(move || async move {
                signal.recv().await;
                tx.send(Instant::now()).unwrap();
            })
            .unwrap();
        // Not woken while the trigger is held.
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        let fired = Instant::now();
        trigger.trigger();
        let woke = rx.recv_timeout(Duration::from_secs(5)).expect("woken");
        assert!(woke >= fired);
        ex.join().unwrap();
    }
}
