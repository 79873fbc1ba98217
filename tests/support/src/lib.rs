//! Helpers shared by the integration tests of the workspace (the root crate's tests/,
//! transports/mqtt/tests and transports/vscpd-driver/tests): everything a test needs to talk
//! to a running server as a real client would, and nothing that knows the server's own types.
//!
//! Every read has a timeout and every wait a deadline, so a broken server fails a test instead
//! of hanging it. Everything listens on 127.0.0.1 with ports picked by the OS, and only
//! processes a test started are signalled (by PID).
//!
//! # Layout
//! - [`ws`]: a blocking websocket client (tungstenite over a std socket) that reads the AUTH0
//!   greeting, logs in with the AES credential, sends commands and waits for events.
//! - [`fixture`]: the sample key and users, scratch directories, config files.
//! - [`tls`]: certificates made at test time, a rustls client stream, which addresses speak
//!   TLS (`VSCP_TEST_TLS=1` runs the websocket and tcp/ip suites over `wss://`/`stcp://`).
//! - [`wait`]: `eventually`, free ports, waiting for a listener, stopping a child process.
//! - `broker` (feature `broker`): rumqttd in process.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

#[cfg(feature = "broker")]
pub mod broker;
pub mod fixture;
pub mod tls;
pub mod wait;
pub mod ws;

#[cfg(feature = "broker")]
pub use broker::start_rumqttd;
pub use fixture::{write_config, ScratchDir, ADMIN_USERS_JSON, KEY, KEY_FILE};
pub use wait::{eventually, free_port, terminate, wait_listening};
pub use ws::{client_on_stream, connect, encrypt_raw, raw_frame, Client, Ending, READ_TIMEOUT};
