//! The ws2 JSON parser (simd-json in place) driven through whole sessions: the first byte picks
//! the user the session logs in as (or none) and whether a client IV is accepted, the rest is
//! messages separated by LF, handled as the server's connection driver handles them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vscp_proto::Dialect;

fuzz_target!(|data: &[u8]| {
    vscp_fuzz::run_session(Dialect::Ws2, data, b'\n');
});
