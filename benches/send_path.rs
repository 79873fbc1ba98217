//! Which way of sending is cheaper on this kernel, for the fan-out's pattern: one small
//! message to each of many sockets in one executor turn.
//!
//! - `send(2)`: one system call per socket (what glommio's `TcpStream::poll_write` does: it
//!   tries every write as a non-blocking send first).
//! - io_uring: one `IORING_OP_SEND` entry per socket, all submitted with one `io_uring_enter`
//!   (what a shard could do at the end of a turn, "cork/uncork").
//!
//! Both send the same bytes over the same loopback connections; only the send phase is timed
//! (`iter_custom`), the receivers are drained outside it. The kernel's TCP work is the same
//! for both, so the difference is the cost of the system calls themselves, which is what a
//! virtual machine makes expensive. Figures: docs/BENCHMARKS.md, "Send path".
//!
//! `send_path_colocated` is the same with the receivers running: one thread, pinned to the
//! sender's core, waiting in epoll and reading whatever arrives (a client process sharing the
//! shard's core, as the load generator does on a 2-core machine). What is measured there is the
//! sender thread's CPU time (`RUSAGE_THREAD`), not wall time: each send wakes the receiver, and
//! whether it then preempts the sender between two sends is what differs between the two ways.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use io_uring::{opcode, types, IoUring};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// A ws1 event of 32 data bytes in a server-to-client websocket frame: what one delivery is.
const MESSAGE: usize = 180;

struct Pairs {
    /// The server's ends (we send on these).
    tx: Vec<TcpStream>,
    /// The clients' ends (drained between iterations).
    rx: Vec<TcpStream>,
}

fn pairs(n: usize) -> Pairs {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut tx = Vec::new();
    let mut rx = Vec::new();
    for _ in 0..n {
        let c = TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        s.set_nonblocking(true).unwrap();
        c.set_nonblocking(true).unwrap();
        tx.push(s);
        rx.push(c);
    }
    Pairs { tx, rx }
}

fn drain(p: &mut Pairs) {
    let mut buf = [0u8; 64 * 1024];
    for c in &mut p.rx {
        while let Ok(n) = c.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
}

fn send_path(c: &mut Criterion) {
    let msg = [b'x'; MESSAGE];
    let mut g = c.benchmark_group("send_path");
    g.measurement_time(Duration::from_secs(3));
    for n in [10usize, 100] {
        let mut p = pairs(n);
        g.bench_with_input(BenchmarkId::new("send_syscall_each", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    for s in &p.tx {
                        // SAFETY: a valid socket and a live buffer.
                        let r = unsafe {
                            libc::send(
                                s.as_raw_fd(),
                                msg.as_ptr().cast(),
                                msg.len(),
                                libc::MSG_DONTWAIT,
                            )
                        };
                        assert_eq!(r, MESSAGE as isize);
                    }
                    spent += t.elapsed();
                    drain(&mut p);
                }
                spent
            })
        });
        let mut ring = IoUring::new(256).unwrap();
        g.bench_with_input(BenchmarkId::new("io_uring_one_enter", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    {
                        let mut sq = ring.submission();
                        for s in &p.tx {
                            let e = opcode::Send::new(
                                types::Fd(s.as_raw_fd()),
                                msg.as_ptr(),
                                MESSAGE as u32,
                            )
                            .build();
                            // SAFETY: `msg` outlives the submission (we wait for every completion).
                            unsafe { sq.push(&e).unwrap() };
                        }
                    }
                    ring.submit_and_wait(p.tx.len()).unwrap();
                    for cqe in ring.completion() {
                        assert_eq!(cqe.result(), MESSAGE as i32);
                    }
                    spent += t.elapsed();
                    drain(&mut p);
                }
                spent
            })
        });
    }
    g.finish();
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// CPU time (user + system) of the calling thread so far.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut u);
        u
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(us(u.ru_utime) + us(u.ru_stime))
}

/// A thread on `cpu` that reads every client end until `stop`; returns what it read.
fn receiver(
    rx: Vec<TcpStream>,
    cpu: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        pin_to(cpu);
        // SAFETY: plain epoll calls on descriptors this thread owns.
        let ep = unsafe { libc::epoll_create1(0) };
        for (i, c) in rx.iter().enumerate() {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, c.as_raw_fd(), &mut ev) };
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let (mut buf, mut total) = ([0u8; 64 * 1024], 0);
        let mut rx = rx;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 256, 20) };
            for e in &events[..n.max(0) as usize] {
                while let Ok(k @ 1..) = rx[e.u64 as usize].read(&mut buf) {
                    total += k;
                }
            }
        }
        unsafe { libc::close(ep) };
        total
    })
}

fn send_path_colocated(c: &mut Criterion) {
    let msg = [b'x'; MESSAGE];
    let mut g = c.benchmark_group("send_path_colocated");
    g.measurement_time(Duration::from_secs(3));
    pin_to(0);
    for n in [10usize, 50] {
        let Pairs { tx, rx } = pairs(n);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = receiver(rx, 0, stop.clone());
        g.bench_with_input(BenchmarkId::new("send_syscall_each", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let start = thread_cpu();
                for _ in 0..iters {
                    for s in &tx {
                        // SAFETY: a valid socket and a live buffer.
                        let r = unsafe {
                            libc::send(
                                s.as_raw_fd(),
                                msg.as_ptr().cast(),
                                MESSAGE,
                                libc::MSG_DONTWAIT,
                            )
                        };
                        assert_eq!(r, MESSAGE as isize);
                    }
                    // One turn's sends, then the receiver has the core (as between two events).
                    std::thread::yield_now();
                }
                thread_cpu() - start
            })
        });
        let mut ring = IoUring::new(256).unwrap();
        g.bench_with_input(BenchmarkId::new("io_uring_one_enter", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let start = thread_cpu();
                for _ in 0..iters {
                    {
                        let mut sq = ring.submission();
                        for s in &tx {
                            let e = opcode::Send::new(
                                types::Fd(s.as_raw_fd()),
                                msg.as_ptr(),
                                MESSAGE as u32,
                            )
                            .flags(libc::MSG_DONTWAIT)
                            .build();
                            // SAFETY: `msg` outlives the submission (we wait for every completion).
                            unsafe { sq.push(&e).unwrap() };
                        }
                    }
                    ring.submit_and_wait(tx.len()).unwrap();
                    for cqe in ring.completion() {
                        assert_eq!(cqe.result(), MESSAGE as i32);
                    }
                    std::thread::yield_now();
                }
                thread_cpu() - start
            })
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap();
    }
    g.finish();
}

criterion_group!(benches, send_path, send_path_colocated);
criterion_main!(benches);
