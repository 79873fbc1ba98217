//! Delivery confirmations between a client session and an uplink on another core: the session
//! replies to an event only once the uplink's far side has it (with the MQTT bridge: the
//! broker's PUBACK or PUBCOMP of every publish the event produced).
//!
//! A [`Confirm`] starts with one hold, the uplink's own: the uplink adds one hold per
//! acknowledgement it waits for, then releases its own, so an event that produced nothing to
//! wait for is confirmed as soon as the uplink has looked at it. The session polls it. Nobody
//! left to confirm (every other clone dropped while holds remain) reads as failed, so a lost
//! event does not wait for the session's deadline when it does not have to.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// One event's confirmation, shared by the session that waits and the uplink that confirms.
#[derive(Clone, Debug)]
pub struct Confirm(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    holds: AtomicU32,
    failed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// Where a confirmation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirmation {
    /// Still waiting for the uplink.
    Pending,
    /// The far side has the event.
    Confirmed,
    /// It will not be confirmed (dropped on the way, or nobody is left to confirm it).
    Failed,
}

impl Default for Confirm {
    fn default() -> Self {
        Confirm::new()
    }
}

impl Confirm {
    /// A confirmation with the uplink's own hold.
    pub fn new() -> Confirm {
        Confirm(Arc::new(Inner {
            holds: AtomicU32::new(1),
            failed: AtomicBool::new(false),
            waker: Mutex::new(None),
        }))
    }

    /// One more acknowledgement to wait for.
    pub fn hold(&self) {
        self.0.holds.fetch_add(1, Ordering::AcqRel);
    }

    /// One acknowledgement arrived (or the uplink releases its own hold).
    pub fn release(&self) {
        if self.0.holds.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.wake();
        }
    }

    /// It will never be confirmed.
    pub fn fail(&self) {
        self.0.failed.store(true, Ordering::Release);
        self.wake();
    }

    /// Where it stands now.
    pub fn state(&self) -> Confirmation {
        if self.0.failed.load(Ordering::Acquire) {
            Confirmation::Failed
        } else if self.0.holds.load(Ordering::Acquire) == 0 {
            Confirmation::Confirmed
        } else if Arc::strong_count(&self.0) == 1 {
            // Holds remain but no clone is left to release them.
            Confirmation::Failed
        } else {
            Confirmation::Pending
        }
    }

    /// Like [`Confirm::state`], registering `cx` to be woken when it is decided.
    pub fn poll(&self, cx: &mut Context<'_>) -> Poll<Confirmation> {
        match self.state() {
            Confirmation::Pending => {}
            decided => return Poll::Ready(decided),
        }
        *self.0.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        // Decided between the first look and the registration: the wake may have been missed.
        match self.state() {
            Confirmation::Pending => Poll::Pending,
            decided => Poll::Ready(decided),
        }
    }

    fn wake(&self) {
        let waker = self
            .0
            .waker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn confirmed_after_every_hold_is_released_and_the_waiter_is_woken() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let session = Confirm::new();
        let uplink = session.clone();
        uplink.hold();
        uplink.hold();
        uplink.release(); // the uplink's own hold
        assert_eq!(session.poll(&mut cx), Poll::Pending);
        uplink.release();
        assert_eq!(session.state(), Confirmation::Pending);
        uplink.release();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(session.poll(&mut cx), Poll::Ready(Confirmation::Confirmed));
    }

    #[test]
    fn nothing_to_wait_for_is_confirmed_at_once() {
        let session = Confirm::new();
        session.clone().release();
        assert_eq!(session.state(), Confirmation::Confirmed);
    }

    #[test]
    fn failed_or_abandoned_reads_as_failed() {
        let session = Confirm::new();
        let uplink = session.clone();
        uplink.hold();
        uplink.fail();
        assert_eq!(session.state(), Confirmation::Failed);

        let session = Confirm::new();
        let uplink = session.clone();
        assert_eq!(session.state(), Confirmation::Pending);
        drop(uplink);
        assert_eq!(session.state(), Confirmation::Failed);
    }
}
