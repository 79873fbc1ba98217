//! The ws1 line parser driven through whole sessions: the first byte picks the user the session
//! logs in as (or none), the rest is text messages separated by LF, handled as the server's
//! connection driver handles them (login, rights, filters, routing back to the session, the
//! deadlines on a fake clock).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vscp_proto::Dialect;

fuzz_target!(|data: &[u8]| {
    vscp_fuzz::run_session(Dialect::Ws1, data, b'\n');
});
