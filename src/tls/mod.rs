//! TLS under the client listeners (`wss://`, `stcp://`): rustls with the ring provider.
//!
//! - [`settings`]: the `ssl_*` keys and the `tls` block, validated into [`TlsSettings`];
//! - [`build`]: the rustls server configuration from the files they name;
//! - [`store`]: the configuration new connections get, its reload (SIGHUP, `ssl_short_trust`);
//! - [`stream`]: a rustls `ServerConnection` driven over an accepted socket, the stream
//!   `conn.rs` runs a TLS connection on;
//! - [`x509`]: the certificate's expiry, for the metrics.
//!
//! Plain listeners do not go through any of this: the connection driver is compiled per stream
//! type, and a plain socket is used as it is.

pub mod build;
pub mod settings;
pub mod store;
pub mod stream;
pub mod x509;

pub use settings::TlsSettings;
pub use store::TlsStore;
pub use stream::{TlsAccept, TlsStream};
