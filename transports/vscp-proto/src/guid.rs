//! The 16-byte VSCP GUID (events.md §4).

/// A VSCP GUID, byte 0 most significant. Output form is 16 upper-case hex pairs joined by `:`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, Debug)]
pub struct Guid(pub [u8; 16]);
