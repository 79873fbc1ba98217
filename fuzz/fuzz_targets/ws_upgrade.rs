//! The HTTP upgrade (vscp-ws `handshake::answer`, tungstenite's request parser) on untrusted
//! bytes, whole and cut at every length the fuzzer's first byte picks: an incomplete request
//! must stay incomplete for every shorter prefix, and an accepted one is answered with a 101.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vscp_ws::handshake::{answer, answer_any_path, Endpoints, Verdict};

const EP: Endpoints<'static> = Endpoints {
    ws1: Some("/ws1"),
    ws2: Some("/ws2"),
};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let whole = answer(data, EP, &mut out);
    if let Verdict::Accept(_) = whole {
        assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    }
    // The driver calls it again after every read: a prefix of a request never gets a verdict
    // that the whole request would contradict.
    if whole == Verdict::Incomplete {
        for cut in [0, data.len() / 2, data.len().saturating_sub(1)] {
            out.clear();
            assert_eq!(answer(&data[..cut], EP, &mut out), Verdict::Incomplete);
        }
    }
    out.clear();
    let _ = answer_any_path(data, &mut out);
});
