//! The logical VSCP event (events.md §1–2).

use crate::guid::Guid;

/// Maximum number of data bytes in a Level II event (`VSCP_MAX_DATA`).
pub const MAX_DATA: usize = 512;

/// UTC date and time of an event. All fields zero means "not set": the first server that
/// sees the event fills in the current time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
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
