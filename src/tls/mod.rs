//! TLS under the client listeners (`wss://`, `stcp://`): rustls with the ring provider.
//!
//! - [`settings`]: the `ssl_*` keys and the `tls` block, validated into [`TlsSettings`];
//! - [`build`]: the rustls server configuration from the files they name;
//! - [`store`]: the configuration new connections get, its reload (SIGHUP, `ssl_short_trust`);
//! - [`x509`]: the certificate's expiry, for the metrics.
//!
//! The connections themselves are `crate::tls_stream`'s (a rustls `ServerConnection` driven
//! over the accepted socket): a module of its own, since it depends on the connection driver
//! while this one is read by the config.
//!
//! Plain listeners do not go through any of this: the connection driver is compiled per stream
//! type, and a plain socket is used as it is.

pub mod build;
pub mod settings;
pub mod store;
pub mod x509;

pub use settings::TlsSettings;
pub use store::TlsStore;
