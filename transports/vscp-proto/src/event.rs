//! The logical VSCP event (events.md §1–2).

use crate::guid::Guid;

/// Maximum number of data bytes in a Level II event (`VSCP_MAX_DATA`).
pub const MAX_DATA: usize = 512;

/// Declares a struct with the [`DateTime`] fields, in their order, between the fields of the
/// first and the second brace group: `DateTime` itself, and the 15.x driver ABI's flat
/// `vscpEvent`, whose `repr(C)` layout depends on that order. One list, so they cannot drift.
#[macro_export]
macro_rules! with_datetime_fields {
    ($(#[$a:meta])* $vis:vis struct $name:ident { $($before:tt)* } { $($after:tt)* }) => {
        $(#[$a])*
        $vis struct $name {
            $($before)*
            /// UTC year; all date and time fields zero means "not set".
            pub year: u16,
            /// 1–12.
            pub month: u8,
            /// 1–31.
            pub day: u8,
            /// 0–23.
            pub hour: u8,
            /// 0–59.
            pub minute: u8,
            /// 0–59.
            pub second: u8,
            $($after)*
        }
    };
}

with_datetime_fields! {
    /// UTC date and time of an event. All fields zero means "not set": the first server that
    /// sees the event fills in the current time.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct DateTime {} {}
}

/// A VSCP Level II event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// Flags: priority in bits 7..5, GUID type, dumb-node bit, rolling index (events.md §2).
    pub head: u16,
    pub class: u16,
    pub vscp_type: u16,
    /// Object id: set by the server to the id of the connection the event came in on.
    pub obid: u32,
    /// Sender's relative microsecond timestamp; 0 means "not set".
    pub timestamp: u32,
    pub datetime: DateTime,
    pub guid: Guid,
    /// 0..=[`MAX_DATA`] bytes.
    pub data: Vec<u8>,
}
