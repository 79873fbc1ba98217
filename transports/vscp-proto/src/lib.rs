//! Sans-IO core of the VSCP websocket server.
//!
//! Nothing in this crate touches a socket, a thread or the clock: time comes in as an argument,
//! bytes come in as slices and go out as `String`/`Bytes`. The async glue in the root crate drives it.
//!
//! # Layout
//! - [`guid`], [`event`], [`number`], [`datetime`]: the VSCP event model (spec events.md §1–4).
//! - [`codec`]: the string form (ws1, events.md §5) and the JSON form (ws2, events.md §6).
//! - [`filter`]: filter/mask model, matching rule and its string/JSON forms (events.md §8).
//! - [`users`], [`password`], [`rights`], [`remotes`], [`allow`]: the users.json database (users.md).
//! - [`auth`]: AES-128-CBC credential decryption for AUTH (ws1.md §4).
//! - `hex` (private): hex digits for [`auth`], [`password`], [`guid`] and [`codec`].
//! - [`ws1`], [`ws2`], [`tcp`]: message grammar and reply formatting of the dialects (the
//!   websocket ones and the tcp/ip link interface).
//! - [`session`]: the per-connection state machine shared by the dialects, with its login and
//!   idle deadlines and the tcp/ip receive loop's keepalive (`now` in, `poll_timeout` out).
//! - `testing` (tests, or the `testing` feature): the spec's example events.
#![warn(missing_debug_implementations, rust_2018_idioms)]

pub mod allow;
pub mod auth;
pub mod codec;
pub mod datetime;
pub mod error;
pub mod event;
pub mod filter;
pub mod guid;
mod hex;
pub mod number;
pub mod password;
pub mod remotes;
pub mod rights;
pub mod session;
pub mod tcp;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod users;
pub mod ws1;
pub mod ws2;

pub use error::ParseError;
pub use event::{DateTime, Event, MAX_DATA};
pub use filter::Filter;
pub use guid::Guid;
pub use session::{Action, Dialect, Session, Timeout};
pub use users::{User, UserDb};
