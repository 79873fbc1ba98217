//! Codec, filter, login and fan-out benchmarks (in memory, no sockets).
//!
//! Comparisons are side by side in one group so the ratio is measured in one run:
//! - `ws2_parse/simd_json` against `ws2_parse/serde_json` (same message, same fields read);
//! - `fanout/encode_once_shared` against `fanout/encode_per_subscriber`.

use bytes::Bytes;
use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput,
};
use vscp_proto::codec::string;
use vscp_proto::{Dialect, Event, Filter, Guid};

const WS1_EVENT: &str =
    "96,10,6,17,2024-03-01T12:34:56Z,123456789,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00,0x88,0x82,0x09,0xC4";
const WS2_EVENT: &str = r#"{"type":"EVENT","event":{"vscpHead":96,"vscpObId":17,"vscpDateTime":"2024-03-01T12:34:56Z","vscpTimeStamp":123456789,"vscpClass":10,"vscpType":6,"vscpGuid":"FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00","vscpData":[136,130,9,196],"vscpNote":""}}"#;

fn sample_event() -> Event {
    string::parse_event(WS1_EVENT).expect("sample parses")
}

fn bench_ws1(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws1");
    g.throughput(Throughput::Bytes(WS1_EVENT.len() as u64));
    g.bench_function("parse_event", |b| {
        b.iter(|| string::parse_event(black_box(WS1_EVENT)))
    });
    let ev = sample_event();
    g.bench_function("format_event", |b| {
        let mut out = String::with_capacity(256);
        b.iter(|| {
            out.clear();
            string::write_event(black_box(&ev), &mut out);
            out.len()
        })
    });
    g.finish();
}

/// The serde_json baseline reads the same fields the simd-json path reads.
fn serde_json_parse(text: &[u8]) -> Option<Event> {
    let v: serde_json::Value = serde_json::from_slice(text).ok()?;
    let e = v.get("event")?;
    let num = |k: &str| e.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    Some(Event {
        head: num("vscpHead") as u16,
        class: num("vscpClass") as u16,
        vscp_type: num("vscpType") as u16,
        obid: num("vscpObId") as u32,
        timestamp: num("vscpTimeStamp") as u32,
        datetime: vscp_proto::DateTime::parse(e.get("vscpDateTime")?.as_str()?).ok()?,
        guid: Guid::parse(e.get("vscpGuid")?.as_str()?).ok()?,
        data: e
            .get("vscpData")?
            .as_array()?
            .iter()
            .map(|x| x.as_u64().unwrap_or(0) as u8)
            .collect(),
    })
}

fn bench_ws2(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws2_parse");
    g.throughput(Throughput::Bytes(WS2_EVENT.len() as u64));
    g.bench_function("simd_json", |b| {
        b.iter_batched_ref(
            || WS2_EVENT.as_bytes().to_vec(),
            |buf| vscp_proto::ws2::parse_message(buf),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("serde_json", |b| {
        b.iter(|| serde_json_parse(black_box(WS2_EVENT.as_bytes())))
    });
    g.finish();

    let ev = sample_event();
    c.bench_function("ws2/format_event", |b| {
        let mut out = String::with_capacity(512);
        b.iter(|| {
            out.clear();
            vscp_proto::ws2::encode_event(black_box(&ev), &mut out);
            out.len()
        })
    });
}

fn bench_filter(c: &mut Criterion) {
    let ev = sample_event();
    let pass = Filter::ALL_PASS;
    let exact = Filter::from_strings(
        "0,10,6,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00",
        "7,0xFFFF,0xFFFF,FF:FF:FF:FF:FF:FF:FF:FF:FF:FF:FF:FF:FF:FF:FF:FF",
    )
    .expect("filter parses");
    let miss = Filter::from_strings("0,20,0,-", "0,0xFFFF,0,-").expect("filter parses");
    let mut g = c.benchmark_group("filter_match");
    for (name, f) in [
        ("all_pass", pass),
        ("exact_guid", exact),
        ("class_miss", miss),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(name), &f, |b, f| {
            b.iter(|| black_box(f).matches(black_box(&ev)))
        });
    }
    g.finish();
}

fn bench_login(c: &mut Criterion) {
    let key = [0x2Du8; 16];
    let sid = [0x55u8; 16];
    let crypto = vscp_proto::auth::encrypt_credentials(&key, &sid, "admin", "secret");
    let mut g = c.benchmark_group("login");
    g.bench_function("aes_decrypt_credentials", |b| {
        b.iter(|| vscp_proto::auth::decrypt_credentials(&key, &sid, black_box(&crypto)))
    });
    let users = vscp_proto::UserDb::from_json(
        r#"{"users":[{"name":"admin","password":"487636FDE3637C7C853AAC9EAF6FA062;357C71CA59F760C08C4125C444A22A91FD1FE1FB0E5628771A572BAF6F61B71F","rights":"admin"},
                     {"name":"legacy","password":"2d1e4f91dae49cd08eaba2293e422273","rights":"admin"}]}"#,
    )
    .expect("users parse");
    let admin = users.get("admin").expect("admin").clone();
    let legacy = users.get("legacy").expect("legacy").clone();
    g.sample_size(10);
    g.bench_function("pbkdf2_verify_70000", |b| {
        b.iter(|| admin.verify_password(black_box("secret")))
    });
    g.sample_size(100);
    g.bench_function("md5_verify", |b| {
        b.iter(|| legacy.verify_password(black_box("secret")))
    });
    g.finish();
}

/// One event to 1,000 subscribers of one dialect: encoding once and handing out clones of the
/// same `Bytes` (what the hub does) against encoding for each subscriber.
fn bench_fanout(c: &mut Criterion) {
    const SUBSCRIBERS: usize = 1000;
    let ev = sample_event();
    let mut g = c.benchmark_group("fanout");
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    g.bench_function("encode_once_shared", |b| {
        let mut outboxes: Vec<Vec<Bytes>> =
            (0..SUBSCRIBERS).map(|_| Vec::with_capacity(1)).collect();
        b.iter(|| {
            let mut s = String::with_capacity(256);
            Dialect::Ws1.encode_event(&ev, &mut s);
            let shared = Bytes::from(s);
            for o in outboxes.iter_mut() {
                o.clear();
                o.push(shared.clone());
            }
        })
    });
    g.bench_function("encode_per_subscriber", |b| {
        let mut outboxes: Vec<Vec<Bytes>> =
            (0..SUBSCRIBERS).map(|_| Vec::with_capacity(1)).collect();
        b.iter(|| {
            for o in outboxes.iter_mut() {
                let mut s = String::with_capacity(256);
                Dialect::Ws1.encode_event(&ev, &mut s);
                o.clear();
                o.push(Bytes::from(s));
            }
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_ws1,
    bench_ws2,
    bench_filter,
    bench_login,
    bench_fanout
);
criterion_main!(benches);
