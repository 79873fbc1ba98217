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

criterion_group!(benches, send_path);
criterion_main!(benches);
