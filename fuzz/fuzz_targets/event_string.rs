//! The event readers: the string form (ws1 `E;`, tcp/ip `send`, MQTT string payloads) and the
//! JSON form (ws2, MQTT JSON payloads), on untrusted text. An event that parses is written back
//! in the same form and must read back as the same event (the writers' output is what other
//! clients parse).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vscp_proto::codec::{json, string};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ev) = string::parse_event(text) {
            let mut s = String::new();
            string::write_event(&ev, &mut s);
            let again = string::parse_event(&s).expect("our own string form parses");
            assert_eq!(again, ev, "{s}");
        }
    }
    let mut buf = data.to_vec();
    if let Ok(ev) = json::parse_event_text(&mut buf) {
        let mut s = String::new();
        json::write_event(&ev, &mut s);
        let mut bytes = s.clone().into_bytes();
        let again = json::parse_event_text(&mut bytes).expect("our own JSON form parses");
        assert_eq!(again, ev, "{s}");
    }
});
