//! Issue acceptance: a flooding publisher and a stalled subscriber must not hold anyone back.
//!
//! With a small `max-out-queue`, a client S that opens its channel and never reads, and a
//! client F that publishes 20,000 max-size events as fast as the reading clients T (both
//! dialects) take them: T get every event in order, a marker sent by somebody else during the
//! flood reaches them while the flood is still running (not queued behind it), F gets all its
//! acks, memory stays bounded (outbox depth never exceeds sessions × max-out-queue) and the
//! drops at S are counted.
//!
//! F stays at most [`LEAD`] events ahead of the slower T, so the test does not depend on the
//! machine's speed: a T starved of CPU (a loaded CI machine) would otherwise fall more than
//! `max-out-queue` behind and rightly lose events at its outbox. S, which never reads, is not
//! waited for: that it holds nobody back is the point.
mod common;
use common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tungstenite::{Message, Utf8Bytes};

const MAX_OUT: usize = 100;
/// Data bytes per flood event (the VSCP maximum is 512).
const DATA_LEN: usize = 500;
/// Unacknowledged events F keeps in flight.
const WINDOW: usize = 1000;
/// How far F may run ahead of the slower reader: half of `max-out-queue`.
const LEAD: usize = MAX_OUT / 2;
/// A hang guard: every wait gives up after this (not a speed requirement).
const TOTAL_BOUND: Duration = Duration::from_secs(180);
const FLOOD_CLASS: u64 = 20;
const MARKER_CLASS: u64 = 30;

/// The floods saturate both CPUs of a small machine; run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn data_byte(seq: usize, i: usize) -> u8 {
    (seq.wrapping_mul(31) + i) as u8
}

/// Flood event `seq` (1-based; carried in the timestamp, which the server keeps when non-zero).
fn flood_text(dialect: &str, seq: usize) -> String {
    let data: Vec<u8> = (0..DATA_LEN).map(|i| data_byte(seq, i)).collect();
    if dialect == "ws1" {
        let mut s = format!("E;0,{FLOOD_CLASS},3,0,,{seq},-");
        for d in data {
            s.push(',');
            s.push_str(&d.to_string());
        }
        s
    } else {
        json!({"type":"EVENT","event":{"vscpClass":FLOOD_CLASS,"vscpType":3,
            "vscpTimeStamp":seq,"vscpData":data}})
        .to_string()
    }
}

fn is_ack(dialect: &str, m: &str) -> bool {
    if dialect == "ws1" {
        m == "+;EVENT"
    } else {
        m.contains("\"type\" : \"+\"") && m.contains("\"command\" : \"EVENT\"")
    }
}

/// (class, timestamp, data) of a delivered event.
fn parse_event(dialect: &str, m: &str) -> (u64, u64, Vec<u8>) {
    if dialect == "ws1" {
        let body = m
            .strip_prefix("E;")
            .unwrap_or_else(|| panic!("not an event: {m:.80}"));
        let f: Vec<&str> = body.split(',').collect();
        let data = f[7..]
            .iter()
            .map(|d| u8::from_str_radix(d.trim_start_matches("0x"), 16).unwrap())
            .collect();
        (f[1].parse().unwrap(), f[5].parse().unwrap(), data)
    } else {
        let v: Value = serde_json::from_str(m).unwrap_or_else(|e| panic!("{e}: {m:.80}"));
        assert_eq!(v["type"], "EVENT", "{m:.80}");
        let e = &v["event"];
        let data = e["vscpData"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as u8)
            .collect();
        (
            e["vscpClass"].as_u64().unwrap(),
            e["vscpTimeStamp"].as_u64().unwrap(),
            data,
        )
    }
}

#[derive(Debug, Default)]
struct Received {
    flood: usize,
    out_of_order: Option<(u64, u64)>,
    bad_data: Option<u64>,
    /// When each marker arrived, and how many flood events had arrived before it.
    markers: Vec<(Instant, usize)>,
    finished: Option<Duration>,
    error: Option<String>,
}

/// Reads until `n` flood events and `markers` markers arrived, or the deadline passes; `seen`
/// tells F how many flood events arrived so far.
fn read_all(
    c: &mut Client,
    n: usize,
    markers: usize,
    start: Instant,
    seen: &AtomicUsize,
) -> Received {
    let mut r = Received::default();
    let mut next = 1u64;
    while r.flood < n || r.markers.len() < markers {
        let left = (start + TOTAL_BOUND).saturating_duration_since(Instant::now());
        if left.is_zero() {
            r.error = Some("deadline".into());
            break;
        }
        let Some(m) = c.try_recv_text(left.min(Duration::from_secs(5))) else {
            if Instant::now() >= start + TOTAL_BOUND {
                r.error = Some("deadline".into());
                break;
            }
            continue;
        };
        let (class, ts, data) = parse_event(c.dialect, &m);
        match class {
            MARKER_CLASS => r.markers.push((Instant::now(), r.flood)),
            FLOOD_CLASS => {
                if ts != next && r.out_of_order.is_none() {
                    r.out_of_order = Some((next, ts));
                }
                next = ts + 1;
                r.flood += 1;
                seen.store(r.flood, Ordering::Relaxed);
                if ts.is_multiple_of(997) || r.flood == 1 {
                    let want: Vec<u8> = (0..DATA_LEN).map(|i| data_byte(ts as usize, i)).collect();
                    if data != want && r.bad_data.is_none() {
                        r.bad_data = Some(ts);
                    }
                }
            }
            other => {
                r.error = Some(format!("unexpected class {other}"));
                break;
            }
        }
    }
    r.finished = Some(start.elapsed());
    r
}

/// F's side: `n` events with at most [`WINDOW`] unacknowledged and at most [`LEAD`] ahead of
/// the slower reader (`readers`: flood events each has received); returns (acks, time taken).
fn flood(
    f: &mut Client,
    n: usize,
    progress: &AtomicUsize,
    readers: [&AtomicUsize; 2],
) -> (usize, Duration) {
    let t0 = Instant::now();
    let dialect = f.dialect;
    let (mut sent, mut acked) = (0usize, 0usize);
    while acked < n {
        if t0.elapsed() > TOTAL_BOUND {
            return (acked, t0.elapsed());
        }
        let slowest = readers.iter().map(|r| r.load(Ordering::Relaxed)).min();
        let ahead_limit = slowest.unwrap_or(n) + LEAD;
        let mut wrote = false;
        while sent < n && sent - acked < WINDOW && sent < ahead_limit {
            sent += 1;
            f.ws.write(Message::Text(Utf8Bytes::from(flood_text(dialect, sent))))
                .expect("flood write");
            progress.store(sent, Ordering::Relaxed);
            wrote = true;
        }
        if wrote {
            f.ws.flush().expect("flood flush");
        }
        // Read acks until half the window is free again (or all are in); while the readers
        // hold F back, take whatever ack comes within a millisecond and look again.
        let target = if sent == n {
            n
        } else {
            sent.saturating_sub(WINDOW / 2)
        };
        let wait = if acked < target {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(1)
        };
        while acked < target.max(acked + 1).min(sent) {
            let Some(m) = f.try_recv_text(wait) else {
                break;
            };
            assert!(is_ack(dialect, &m), "F got something else: {m:.100}");
            acked += 1;
        }
        if !wrote && acked == sent {
            // Everything acknowledged and the readers not caught up yet: let them run.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    (acked, t0.elapsed())
}

fn login_only(c: &mut Client) {
    let r = c.auth("user", "secret");
    assert!(r.starts_with("+;AUTH1;") || r.contains("\"+\""), "{r}");
}

fn marker(c: &mut Client) {
    let r = if c.dialect == "ws1" {
        c.cmd("E;0,30,5,0,,0,-,170")
    } else {
        c.cmd(
            &json!({"type":"EVENT","event":{"vscpClass":30,"vscpType":5,"vscpData":[170]}})
                .to_string(),
        )
    };
    assert!(is_ack(c.dialect, &r), "marker not acked: {r}");
}

/// Runs one flood. `t_on_other_shard`: the readers sit on the other shard than F (events cross
/// the ring) or on the same one (local fan-out).
fn run_flood(tag: &str, f_dialect: &str, n: usize, t_on_other_shard: bool) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new(tag);
    let srv = fx.start(json!({"max-out-queue": MAX_OUT}));
    let (mut f, fa) = connect_tracked(&srv, &format!("/{f_dialect}"));
    let fb = 1 - fa;
    let ts = if t_on_other_shard { fb } else { fa };
    let mut t1 = connect_on_shard(&srv, "/ws1", ts);
    let mut t2 = connect_on_shard(&srv, "/ws2", ts);
    // Stalled subscribers on both shards, and a marker sender on each.
    let mut s_a = connect_on_shard(&srv, "/ws1", fa);
    let mut s_b = connect_on_shard(&srv, "/ws2", fb);
    let mut m_a = connect_on_shard(&srv, "/ws2", fa);
    let mut m_b = connect_on_shard(&srv, "/ws1", fb);
    login_only(&mut f); // F's channel stays closed: its replies are acks only
    t1.login_open("user", "secret");
    t2.login_open("user", "secret");
    s_a.login_open("user", "secret");
    s_b.login_open("user", "secret");
    login_only(&mut m_a);
    login_only(&mut m_b);
    assert!(
        eventually(Duration::from_secs(5), || srv.stats().sessions_active == 7),
        "{:?}",
        srv.stats()
    );
    let sessions = 7usize;
    let bound = (sessions * MAX_OUT) as i64;

    let start = Instant::now();
    let progress = AtomicUsize::new(0);
    let (seen1, seen2) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let done = AtomicBool::new(false);
    let (r1, r2, (acks, flood_time), max_depth, marker_sent) = std::thread::scope(|sc| {
        let mon = sc.spawn(|| {
            let mut max = 0i64;
            let mut samples = 0u64;
            while !done.load(Ordering::Relaxed) {
                max = max.max(srv.stats().outbox_depth);
                samples += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            (max, samples)
        });
        let h1 = sc.spawn(|| read_all(&mut t1, n, 2, start, &seen1));
        let h2 = sc.spawn(|| read_all(&mut t2, n, 2, start, &seen2));
        let hf = sc.spawn(|| flood(&mut f, n, &progress, [&seen1, &seen2]));
        // Markers from both shards once the flood is well under way.
        while progress.load(Ordering::Relaxed) < n / 3 && start.elapsed() < TOTAL_BOUND {
            std::thread::sleep(Duration::from_millis(1));
        }
        let marker_sent = Instant::now();
        marker(&mut m_a);
        marker(&mut m_b);
        let fr = hf.join().unwrap();
        let r1 = h1.join().unwrap();
        let r2 = h2.join().unwrap();
        done.store(true, Ordering::Relaxed);
        let (max, samples) = mon.join().unwrap();
        eprintln!("{tag}: outbox depth sampled {samples} times, max {max} (bound {bound})");
        (r1, r2, fr, max, marker_sent)
    });
    let st = srv.stats();
    eprintln!(
        "{tag}: F ({f_dialect}, shard {fa}) sent {n} in {flood_time:?}; readers on shard {ts}: \
         ws1 done {:?}, ws2 done {:?}; marker latency ws1 {:?}, ws2 {:?}",
        r1.finished,
        r2.finished,
        r1.markers
            .iter()
            .map(|(t, _)| t.saturating_duration_since(marker_sent))
            .collect::<Vec<_>>(),
        r2.markers
            .iter()
            .map(|(t, _)| t.saturating_duration_since(marker_sent))
            .collect::<Vec<_>>(),
    );
    eprintln!("{tag}: {st:?}");

    assert_eq!(
        acks, n,
        "F got all its acks (the stalled clients did not block it)"
    );
    for (r, who) in [(&r1, "T ws1"), (&r2, "T ws2")] {
        assert_eq!(r.error, None, "{who}: {r:?}");
        assert_eq!(r.flood, n, "{who} got every flood event");
        assert_eq!(r.out_of_order, None, "{who}: order (expected, got)");
        assert_eq!(r.bad_data, None, "{who}: data of event");
        assert_eq!(r.markers.len(), 2, "{who}: both markers");
        // Sent a third of the way in, with F never more than LEAD ahead: a marker queued
        // behind the flood would come after its end.
        for &(_, flood_before) in &r.markers {
            assert!(
                flood_before < n,
                "{who}: a marker came only after the whole flood"
            );
        }
    }
    assert!(
        r1.finished.unwrap() < TOTAL_BOUND && r2.finished.unwrap() < TOTAL_BOUND,
        "within {TOTAL_BOUND:?}"
    );
    assert!(
        max_depth <= bound,
        "outbox depth {max_depth} exceeded {sessions} sessions x {MAX_OUT}"
    );
    assert!(
        st.dropped(vscp_websocksrv::stats::DropReason::QueueFull) > 0,
        "drops at the stalled clients are counted: {st:?}"
    );
    assert_eq!(
        st.received(vscp_proto::Dialect::Ws1) + st.received(vscp_proto::Dialect::Ws2),
        n as u64 + 2
    );
    // Nothing more arrives at the readers (no duplicates).
    for c in [&mut t1, &mut t2] {
        if let Some(m) = c.try_recv_text(Duration::from_millis(300)) {
            panic!("{} got an extra message: {m:.100}", c.dialect);
        }
    }
    let t0 = Instant::now();
    srv.shutdown();
    let took = t0.elapsed();
    eprintln!("{tag}: shutdown took {took:?}");
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    drop((s_a, s_b));
}

#[test]
fn flood_ws1_publisher_readers_on_the_other_shard() {
    run_flood("flood-cross", "ws1", 20_000, true);
}

#[test]
fn flood_ws2_publisher_readers_on_the_same_shard() {
    run_flood("flood-local", "ws2", 20_000, false);
}
