//! Replies that wait for the uplink to confirm an event (`ack-from-broker`), kept in the order
//! the client sent its messages (sans-IO: time is an argument, the connection driver does the
//! writing).
//!
//! Once a session has an event waiting, every later reply (to events and commands alike) queues
//! behind it, so a client reading its replies sees them in the order of its messages. A session
//! with [`MAX_AWAITING`] entries stops reading its socket until the oldest is answered: the
//! window bounds what one client can leave unconfirmed.

use std::collections::VecDeque;
use std::task::{Context, Poll};
use std::time::Instant;
use vscp_transport::confirm::{Confirm, Confirmation};

/// Most replies a session may have waiting; it is not read while it has this many.
pub const MAX_AWAITING: usize = 256;

/// The queue of a session's waiting replies.
#[derive(Debug, Default)]
pub struct Awaiting {
    queue: VecDeque<Entry>,
}

#[derive(Debug)]
enum Entry {
    Event { confirm: Confirm, deadline: Instant },
    Reply(String),
}

/// A reply that can go out now.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// A reply that only waited for its turn.
    Reply(String),
    /// The answer to an event: `true` when the uplink confirmed it, `false` when it failed or
    /// its deadline passed.
    Event(bool),
}

impl Awaiting {
    pub fn push_event(&mut self, confirm: Confirm, deadline: Instant) {
        self.queue.push_back(Entry::Event { confirm, deadline });
    }

    pub fn push_reply(&mut self, text: String) {
        self.queue.push_back(Entry::Reply(text));
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The session should not read more input now.
    pub fn is_full(&self) -> bool {
        self.queue.len() >= MAX_AWAITING
    }

    /// The next reply that can go out at `now`, in order.
    pub fn next_due(&mut self, now: Instant) -> Option<Due> {
        let due = match self.queue.front()? {
            Entry::Reply(_) => None,
            Entry::Event { confirm, deadline } => match confirm.state() {
                Confirmation::Confirmed => Some(Due::Event(true)),
                Confirmation::Failed => Some(Due::Event(false)),
                Confirmation::Pending if *deadline <= now => Some(Due::Event(false)),
                Confirmation::Pending => return None,
            },
        };
        match self.queue.pop_front()? {
            Entry::Reply(text) => Some(Due::Reply(text)),
            Entry::Event { .. } => due,
        }
    }

    /// Registers `cx` with the oldest waiting event; ready when it has been decided meanwhile.
    pub fn poll_front(&self, cx: &mut Context<'_>) -> Poll<()> {
        match self.queue.front() {
            Some(Entry::Event { confirm, .. }) => confirm.poll(cx).map(|_| ()),
            _ => Poll::Ready(()),
        }
    }

    /// When the oldest waiting event times out (later ones cannot be answered before it).
    pub fn deadline(&self) -> Option<Instant> {
        match self.queue.front()? {
            Entry::Event { deadline, .. } => Some(*deadline),
            Entry::Reply(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn replies_leave_in_order_behind_the_events_they_followed() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(5);
        let mut a = Awaiting::default();
        let (first, second) = (Confirm::new(), Confirm::new());
        let uplink = (first.clone(), second.clone());
        a.push_event(first, t0 + timeout);
        a.push_reply("+;NOOP".into());
        a.push_event(second, t0 + timeout);
        assert_eq!(a.next_due(t0), None);
        // The second is confirmed first: it still waits for the first.
        uplink.1.release();
        assert_eq!(a.next_due(t0), None);
        uplink.0.release();
        assert_eq!(a.next_due(t0), Some(Due::Event(true)));
        assert_eq!(a.next_due(t0), Some(Due::Reply("+;NOOP".into())));
        assert_eq!(a.next_due(t0), Some(Due::Event(true)));
        assert!(a.is_empty());
    }

    #[test]
    fn an_event_not_confirmed_by_its_deadline_is_answered_negatively() {
        let t0 = Instant::now();
        let mut a = Awaiting::default();
        let c = Confirm::new();
        let _uplink = c.clone();
        a.push_event(c, t0 + Duration::from_millis(250));
        assert_eq!(a.deadline(), Some(t0 + Duration::from_millis(250)));
        assert_eq!(a.next_due(t0 + Duration::from_millis(249)), None);
        assert_eq!(
            a.next_due(t0 + Duration::from_millis(250)),
            Some(Due::Event(false))
        );
        // Dropped on the way (nobody left to confirm): answered at once.
        let c = Confirm::new();
        a.push_event(c, t0 + Duration::from_secs(5));
        assert_eq!(a.next_due(t0), Some(Due::Event(false)));
    }

    #[test]
    fn full_at_the_window() {
        let t0 = Instant::now();
        let mut a = Awaiting::default();
        let held: Vec<Confirm> = (0..MAX_AWAITING).map(|_| Confirm::new()).collect();
        for c in &held {
            a.push_event(c.clone(), t0 + Duration::from_secs(5));
        }
        assert!(a.is_full());
        held[0].release();
        assert_eq!(a.next_due(t0), Some(Due::Event(true)));
        assert!(!a.is_full());
    }
}
