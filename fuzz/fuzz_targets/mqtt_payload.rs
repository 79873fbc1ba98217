//! The MQTT payload decoders (JSON, XML, string, binary, and `auto`'s detection) on untrusted
//! bytes from the broker: the first byte picks the subscription's format. An event that decodes
//! is encoded again in every publish format, with and without the measurement block.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vscp_mqtt::payload::{decode, encode, PublishFormat, SubscribeFormat};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, payload)) = data.split_first() else {
        return;
    };
    let format = match ctl % 5 {
        0 => SubscribeFormat::Json,
        1 => SubscribeFormat::Xml,
        2 => SubscribeFormat::String,
        3 => SubscribeFormat::Binary,
        _ => SubscribeFormat::Auto,
    };
    let Ok(ev) = decode(payload, format) else {
        return;
    };
    for f in [
        PublishFormat::Json,
        PublishFormat::Xml,
        PublishFormat::String,
        PublishFormat::Binary,
    ] {
        for block in [false, true] {
            let mut out = Vec::new();
            encode(&ev, f, block, &mut out);
            assert!(!out.is_empty());
        }
    }
});
