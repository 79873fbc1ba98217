//! The websocket frame decoder (vscp-ws `framing::Decoder`) on untrusted bytes, as the server's
//! connection driver uses it: the input arrives in pieces of fuzzer-chosen sizes, every whole
//! frame is decoded in place and consumed, and the rest waits for more. Checked beyond "no
//! panic": a decoded frame never claims more bytes than there are, and `Incomplete` never
//! follows a frame that was already whole.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vscp_ws::framing::{Decoded, Decoder, Incoming};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    // The message limit: small ones reach the size checks, the server default the rest.
    let max = match ctl & 0x3 {
        0 => 125,
        1 => 1024,
        2 => 65536,
        _ => 1 << 20,
    };
    // Read sizes: 1..=16 bytes, or everything at once.
    let step = if ctl & 0x80 != 0 {
        rest.len().max(1)
    } else {
        1 + (ctl as usize >> 3 & 0xF)
    };
    let mut d = Decoder::default();
    let mut pending: Vec<u8> = Vec::new();
    for chunk in rest.chunks(step) {
        pending.extend_from_slice(chunk);
        loop {
            let len = pending.len();
            match d.decode(&mut pending, max) {
                Err(_) => return,
                Ok(Decoded::Incomplete) => break,
                Ok(Decoded::Frame { used, msg }) => {
                    assert!(used <= len && used >= 2, "frame of {used} bytes in {len}");
                    if let Some(Incoming::Text(t)) = &msg {
                        assert!(t.len() <= max);
                        assert!(std::str::from_utf8(t).is_ok());
                    }
                    if let Some(Incoming::Close(Some((_, reason)))) = &msg {
                        assert!(reason.len() <= 123);
                    }
                    pending.drain(..used);
                }
            }
        }
    }
});
