//! The sends of one executor turn, handed to the kernel together ("cork/uncork").
//!
//! A batch of events wakes many sessions on a shard at once (an input batch or a ring batch,
//! docs/architecture.md). Each of them used to write its share with its own send(2). Now a
//! session on a plain socket queues its framed bytes here, and the shard's flusher task, woken
//! by the first one, runs after the others in the same turn and submits every queued send with
//! one `io_uring_enter` (one `IORING_OP_SEND` per socket).
//!
//! Why, measured (docs/BENCHMARKS.md "Send path"): the TCP work of a send is the same either way,
//! but while the kernel works through one submission the receivers it wakes do not preempt the
//! shard, so a receiving process on the same core runs once per turn instead of once per send,
//! and the system-call entries of a turn are one instead of one per socket.
//!
//! The sends are `MSG_DONTWAIT`: a socket that is full answers at once (what it took, or
//! EAGAIN) instead of arming a poll, and its session writes the rest through its own stream,
//! waiting for the socket as before. TLS connections are not corked: their bytes are encrypted
//! into the shard's buffer per connection and written directly.

use io_uring::{opcode, types, IoUring};
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Submission queue entries: sends beyond this in one turn go out in further submissions.
const ENTRIES: u32 = 256;
/// What the arena keeps between turns: a saturated turn (100 sessions × 8 KiB) reuses it
/// instead of mapping and unmapping a large allocation every turn; more is given back.
const ARENA_KEEP: usize = 1024 * 1024;

/// One shard's queue of sends for the current turn.
pub struct Cork {
    ring: RefCell<IoUring>,
    /// The queued bytes, back to back; read by the kernel during [`Cork::flush`].
    arena: RefCell<Vec<u8>>,
    queue: RefCell<Vec<Queued>>,
    /// The flusher task, while it waits for the first send of a turn.
    flusher: Cell<Option<Waker>>,
}

impl std::fmt::Debug for Cork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cork")
            .field("queued", &self.queue.borrow().len())
            .finish()
    }
}

struct Queued {
    fd: RawFd,
    start: usize,
    len: usize,
    ticket: Rc<Ticket>,
}

/// Where a session's queued send leaves its outcome. One per session (made with its first
/// corked send) and reused; a session has at most one send queued at a time.
#[derive(Default)]
pub struct Ticket {
    state: RefCell<State>,
    waker: Cell<Option<Waker>>,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Ticket").field(&self.state.borrow()).finish()
    }
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Idle,
    Queued,
    /// The session went away while its send was queued: its socket may be closed (and the
    /// number reused by another connection), so nothing is sent for it.
    Cancelled,
    Done(Sent),
}

/// What became of a queued send.
#[derive(Debug)]
pub enum Sent {
    All,
    /// The socket took only part (or, EAGAIN, nothing): these bytes are still to be written.
    Rest(Vec<u8>),
    Failed(io::Error),
}

impl Ticket {
    /// The outcome of the send queued with this ticket, once the flusher has run.
    pub fn poll_sent(&self, cx: &mut Context<'_>) -> Poll<Sent> {
        let mut state = self.state.borrow_mut();
        match std::mem::take(&mut *state) {
            State::Done(sent) => Poll::Ready(sent),
            other => {
                *state = other;
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }

    /// Withdraws a queued send (see [`State::Cancelled`]); called when its session is dropped.
    pub fn cancel(&self) {
        let mut state = self.state.borrow_mut();
        if matches!(*state, State::Queued) {
            *state = State::Cancelled;
        }
    }

    fn finish(&self, sent: Sent) {
        *self.state.borrow_mut() = State::Done(sent);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

impl Cork {
    /// A shard's cork, with an io_uring of its own (glommio's rings are not open to us).
    pub fn new() -> io::Result<Cork> {
        Ok(Cork {
            ring: RefCell::new(IoUring::new(ENTRIES)?),
            arena: RefCell::new(Vec::new()),
            queue: RefCell::new(Vec::new()),
            flusher: Cell::new(None),
        })
    }

    /// Queues `bytes` for the socket `fd`; the outcome is left in `ticket`. The caller waits
    /// for it before it writes anything else on that socket, which keeps the stream in order.
    pub fn push(&self, fd: RawFd, bytes: &[u8], ticket: &Rc<Ticket>) {
        let mut arena = self.arena.borrow_mut();
        let start = arena.len();
        arena.extend_from_slice(bytes);
        *ticket.state.borrow_mut() = State::Queued;
        self.queue.borrow_mut().push(Queued {
            fd,
            start,
            len: bytes.len(),
            ticket: ticket.clone(),
        });
        if let Some(flusher) = self.flusher.take() {
            flusher.wake();
        }
    }

    /// The flusher: runs for as long as the shard does. Woken by the first send of a turn, it
    /// runs after the tasks already woken, which queue theirs meanwhile.
    pub async fn run(self: Rc<Self>) {
        loop {
            poll_fn(|cx| {
                if self.queue.borrow().is_empty() {
                    self.flusher.set(Some(cx.waker().clone()));
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            self.flush();
        }
    }

    /// Submits everything queued and hands each session its outcome.
    fn flush(&self) {
        // Borrowed for the whole flush (nothing pushes meanwhile: `finish` only schedules the
        // woken sessions), and cleared in place so that its memory serves the next turn.
        let mut queue = self.queue.borrow_mut();
        queue.retain(|q| matches!(*q.ticket.state.borrow(), State::Queued));
        let mut ring = self.ring.borrow_mut();
        {
            // Not changed until every send below has completed: the kernel reads from it.
            let arena = self.arena.borrow();
            for chunk in queue.chunks(ENTRIES as usize) {
                submit(&mut ring, &arena, chunk);
            }
        }
        queue.clear();
        let mut arena = self.arena.borrow_mut();
        arena.clear();
        if arena.capacity() > ARENA_KEEP {
            arena.shrink_to(ARENA_KEEP);
        }
    }
}

/// Sends `chunk` (at most [`ENTRIES`]) with one submission and waits for all of it: with
/// `MSG_DONTWAIT` a socket send completes during the submission, so the wait is only a check.
fn submit(ring: &mut IoUring, arena: &[u8], chunk: &[Queued]) {
    {
        let mut sq = ring.submission();
        for (i, q) in chunk.iter().enumerate() {
            let bytes = &arena[q.start..q.start + q.len];
            let send = opcode::Send::new(types::Fd(q.fd), bytes.as_ptr(), bytes.len() as u32)
                .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                .build()
                .user_data(i as u64);
            // SAFETY: `arena` is borrowed, so unchanged and alive, until every entry pushed here
            // has completed (the loop below waits for all of them); the queue has room for
            // `ENTRIES` and nothing else is in it between flushes.
            unsafe { sq.push(&send).expect("a chunk fits the submission queue") };
        }
    }
    let mut done = 0;
    while done < chunk.len() {
        if let Err(e) = ring.submit_and_wait(chunk.len() - done) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The ring itself failed (not one socket): nothing can be said of what was sent,
            // so every session still waiting ends with the error.
            for q in chunk {
                if matches!(*q.ticket.state.borrow(), State::Queued) {
                    q.ticket
                        .finish(Sent::Failed(io::Error::new(e.kind(), e.to_string())));
                }
            }
            return;
        }
        for cqe in ring.completion() {
            let q = &chunk[cqe.user_data() as usize];
            let sent = match cqe.result() {
                n if n as usize == q.len => Sent::All,
                n if n >= 0 => Sent::Rest(arena[q.start + n as usize..q.start + q.len].to_vec()),
                e if -e == libc::EAGAIN => Sent::Rest(arena[q.start..q.start + q.len].to_vec()),
                e => Sent::Failed(io::Error::from_raw_os_error(-e)),
            };
            q.ticket.finish(sent);
            done += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::task::Waker;

    /// Connected loopback pairs: (the end we send on, the peer's end).
    fn pairs(n: usize) -> Vec<(TcpStream, TcpStream)> {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        (0..n)
            .map(|_| {
                let peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
                let (ours, _) = l.accept().unwrap();
                ours.set_nonblocking(true).unwrap();
                peer.set_nonblocking(true).unwrap();
                (ours, peer)
            })
            .collect()
    }

    fn outcome(ticket: &Ticket) -> Poll<Sent> {
        ticket.poll_sent(&mut Context::from_waker(Waker::noop()))
    }

    fn read_all(peer: &mut TcpStream, want: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < want && std::time::Instant::now() < deadline {
            match peer.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    #[test]
    fn the_sends_of_a_turn_go_out_together_each_to_its_socket() {
        let cork = Cork::new().unwrap();
        let mut pairs = pairs(3);
        let tickets: Vec<Rc<Ticket>> = (0..3).map(|_| Rc::default()).collect();
        for (i, ((ours, _), ticket)) in pairs.iter().zip(&tickets).enumerate() {
            cork.push(ours.as_raw_fd(), format!("event {i}\n").as_bytes(), ticket);
            assert!(
                outcome(ticket).is_pending(),
                "nothing is sent before the flush"
            );
        }
        cork.flush();
        for (i, ((_, peer), ticket)) in pairs.iter_mut().zip(&tickets).enumerate() {
            assert!(matches!(outcome(ticket), Poll::Ready(Sent::All)));
            assert_eq!(read_all(peer, 8), format!("event {i}\n").as_bytes());
        }
        // The arena and queue start empty again; a ticket is reused for the next turn.
        cork.push(pairs[0].0.as_raw_fd(), b"next", &tickets[0]);
        cork.flush();
        assert!(matches!(outcome(&tickets[0]), Poll::Ready(Sent::All)));
        assert_eq!(read_all(&mut pairs[0].1, 4), b"next");
    }

    #[test]
    fn a_full_socket_leaves_the_rest_to_its_session_in_order() {
        let cork = Cork::new().unwrap();
        let mut pairs = pairs(1);
        let (ours, peer) = &mut pairs[0];
        // More than the socket buffers of both ends hold while the peer does not read.
        let bytes: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let ticket = Rc::default();
        cork.push(ours.as_raw_fd(), &bytes, &ticket);
        cork.flush();
        let Poll::Ready(Sent::Rest(rest)) = outcome(&ticket) else {
            panic!("a 16 MiB send cannot fit a loopback socket that is not read");
        };
        assert!(!rest.is_empty() && rest.len() < bytes.len());
        let taken = bytes.len() - rest.len();
        assert_eq!(
            rest,
            bytes[taken..],
            "the rest is exactly what the socket did not take"
        );
        assert_eq!(read_all(peer, taken), bytes[..taken]);
        // A socket that is still full takes nothing: EAGAIN is a rest, not an error.
        let again = Rc::default();
        let mut stuffed = vec![0u8; 1 << 20];
        while ours.write(&stuffed).is_ok() {}
        stuffed.truncate(100);
        cork.push(ours.as_raw_fd(), &stuffed, &again);
        cork.flush();
        assert!(matches!(outcome(&again), Poll::Ready(Sent::Rest(r)) if r.len() == 100));
    }

    #[test]
    fn a_cancelled_send_is_not_sent_and_a_broken_one_reports_its_error() {
        let cork = Cork::new().unwrap();
        let mut pairs = pairs(1);
        let ticket = Rc::default();
        cork.push(pairs[0].0.as_raw_fd(), b"never", &ticket);
        ticket.cancel();
        cork.flush();
        let mut buf = [0u8; 8];
        let read = pairs[0].1.read(&mut buf);
        assert!(matches!(read, Err(e) if e.kind() == io::ErrorKind::WouldBlock));
        // Not a socket: the kernel refuses the send, and only that session hears of it.
        let (file, other) = (std::fs::File::open("/dev/null").unwrap(), Rc::default());
        let fine = Rc::default();
        cork.push(file.as_raw_fd(), b"x", &other);
        cork.push(pairs[0].0.as_raw_fd(), b"fine", &fine);
        cork.flush();
        assert!(
            matches!(outcome(&other), Poll::Ready(Sent::Failed(e)) if e.raw_os_error() == Some(libc::ENOTSOCK))
        );
        assert!(matches!(outcome(&fine), Poll::Ready(Sent::All)));
        assert_eq!(read_all(&mut pairs[0].1, 4), b"fine");
    }

    #[test]
    fn more_sends_than_the_ring_holds_go_out_in_several_submissions() {
        let cork = Cork::new().unwrap();
        let mut pairs = pairs(ENTRIES as usize + 10);
        let tickets: Vec<Rc<Ticket>> = pairs.iter().map(|_| Rc::default()).collect();
        for ((ours, _), ticket) in pairs.iter().zip(&tickets) {
            cork.push(ours.as_raw_fd(), b"ev", ticket);
        }
        cork.flush();
        for ((_, peer), ticket) in pairs.iter_mut().zip(&tickets) {
            assert!(matches!(outcome(ticket), Poll::Ready(Sent::All)));
            assert_eq!(read_all(peer, 2), b"ev");
        }
    }
}
