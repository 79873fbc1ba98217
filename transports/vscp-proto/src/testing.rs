//! The example events of the spec (events.md §5–6), for tests: this crate's own, and those of
//! the crates that map events to other forms (MQTT payloads, the vscpd C structs), so every
//! test speaks of the same E2 and E3. Compiled for this crate's tests and, in other crates,
//! with the `testing` feature (a dev-dependency feature; nothing in a release build uses it).

use crate::event::{DateTime, Event};
use crate::guid::Guid;

/// E2: a full event, class 10 type 6 with a date, a timestamp, a GUID and four data bytes
/// (`96,10,6,17,2024-03-01T12:34:56Z,123456789,FF:…:F5:00:00:00:00:00:02:00:00,0x88,0x82,0x09,0xC4`).
pub fn e2() -> Event {
    Event {
        head: 0x60,
        class: 10,
        vscp_type: 6,
        obid: 17,
        timestamp: 123_456_789,
        datetime: DateTime {
            year: 2024,
            month: 3,
            day: 1,
            hour: 12,
            minute: 34,
            second: 56,
        },
        guid: Guid([
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xF5, 0, 0, 0, 0, 0, 2, 0, 0,
        ]),
        data: vec![0x88, 0x82, 0x09, 0xC4],
    }
}

/// E3: the smallest event, class 20 type 3 with a timestamp and nothing else set.
pub fn e3() -> Event {
    Event {
        class: 20,
        vscp_type: 3,
        timestamp: 5000,
        ..Event::default()
    }
}
