//! The C structures and numbers of the 15.x Level II driver ABI (level2-driver.md §2–3.1), and
//! the copies between them and [`vscp_proto::Event`].
//!
//! Events are copied field by field, never transmuted: the host's struct has padding we must
//! not read, and `pdata` points into host memory whose lifetime ends when the call returns.

use std::os::raw::c_int;
use vscp_proto::{DateTime, Event, Guid, MAX_DATA};

/// `CANAL_ERROR_SUCCESS` / `VSCP_ERROR_SUCCESS`.
pub const VSCP_ERROR_SUCCESS: c_int = 0;
/// `CANAL_ERROR_FIFO_FULL` / `VSCP_ERROR_FIFO_FULL`: VSCPWrite with timeout 0 on a full queue.
pub const VSCP_ERROR_FIFO_FULL: c_int = 9;
/// `CANAL_ERROR_TIMEOUT`: VSCPRead found nothing in time; VSCPWrite waited in vain for room.
pub const VSCP_ERROR_TIMEOUT: c_int = 32;
/// `CANAL_ERROR_NOT_OPEN`: the instance was closed while the call waited.
pub const VSCP_ERROR_NOT_OPEN: c_int = 33;
/// `CANAL_ERROR_PARAMETER`: NULL event, `sizeData > 512`, or data without a buffer.
pub const VSCP_ERROR_PARAMETER: c_int = 34;
/// `CANAL_ERROR_MEMORY`: REF's answer to an unknown handle (kept for compatibility), and ours
/// when `malloc` fails.
pub const VSCP_ERROR_MEMORY: c_int = 35;
/// `CANAL_ERROR_INTERNAL`: a bug (a caught panic).
pub const VSCP_ERROR_INTERNAL: c_int = 36;

/// Declares a `repr(C)` event struct of the 15.x headers: the header fields `vscpEvent` and
/// `vscpEventEx` share (`crc` … `size_data`, in the headers' order, so `repr(C)` pads them as
/// the C compiler does), then the struct's own way of holding the data.
macro_rules! vscp_event_struct {
    ($(#[$attr:meta])* $name:ident { $(#[$data_attr:meta])* $data:ident: $data_ty:ty }) => {
        vscp_proto::with_datetime_fields! {
            $(#[$attr])*
            #[repr(C)]
            #[derive(Debug, Clone, Copy)]
            pub struct $name {
                /// CRC over the event (UDP/Ethernet transports); 0 from websocket clients.
                pub crc: u16,
                /// Object id: the connection id of the session the event came from.
                pub obid: u32,
            } {
                /// Sender's relative timestamp in microseconds.
                pub timestamp: u32,
                /// Priority, GUID type and flag bits.
                pub head: u16,
                /// VSCP class.
                pub vscp_class: u16,
                /// VSCP type.
                pub vscp_type: u16,
                /// Originating node's GUID, MSB first.
                pub guid: [u8; 16],
                /// Number of data bytes, at most 512.
                pub size_data: u16,
                $(#[$data_attr])*
                pub $data: $data_ty,
            }
        }
    };
}

vscp_event_struct! {
    /// `vscpEvent` as laid out by the 15.x headers (vscp `72968b7` `vscp.h`): 56 bytes, align 8
    /// on LP64. The padding the C compiler inserts is the same `repr(C)` inserts.
    VscpEvent {
        /// The `size_data` bytes; NULL when `size_data` is 0.
        pdata: *mut u8
    }
}

vscp_event_struct! {
    /// `vscpEventEx` (not used by the five driver functions; mirrored so its layout is checked
    /// alongside the other two and ready for VSCP Works-style callers): the fields of
    /// [`VscpEvent`], with the data inline instead of behind a pointer.
    VscpEventEx {
        /// The first `size_data` bytes are the data.
        data: [u8; MAX_DATA]
    }
}

/// `vscpEventFilter`: an event passes when `(event ^ filter) & mask == 0` field by field. It is
/// [`vscp_proto::Filter`] itself, which is `repr(C)` with the header's field order for this.
pub type VscpEventFilter = vscp_proto::Filter;

/// Why a host event was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadEvent {
    /// The event pointer is NULL.
    Null,
    /// `sizeData` is over 512.
    TooMuchData(u16),
    /// `sizeData` is not 0 but `pdata` is NULL.
    NoBuffer,
}

/// Deep-copies a host event (header and `size_data` bytes at `pdata`).
///
/// # Safety
/// `ev` is NULL or points to a readable `vscpEvent`; when `size_data > 0` and `pdata` is not
/// NULL, `pdata` points to at least `size_data` readable bytes. (NULL and oversized events are
/// refused, not read.)
pub unsafe fn event_from_host(ev: *const VscpEvent) -> Result<Event, BadEvent> {
    if ev.is_null() {
        return Err(BadEvent::Null);
    }
    // The host's struct is normally aligned, but nothing in the ABI promises it; an unaligned
    // read costs nothing here.
    let e = std::ptr::read_unaligned(ev);
    let size = usize::from(e.size_data);
    if size > MAX_DATA {
        return Err(BadEvent::TooMuchData(e.size_data));
    }
    let data = if size == 0 {
        Vec::new()
    } else if e.pdata.is_null() {
        return Err(BadEvent::NoBuffer);
    } else {
        std::slice::from_raw_parts(e.pdata as *const u8, size).to_vec()
    };
    Ok(Event {
        head: e.head,
        class: e.vscp_class,
        vscp_type: e.vscp_type,
        obid: e.obid,
        timestamp: e.timestamp,
        datetime: DateTime {
            year: e.year,
            month: e.month,
            day: e.day,
            hour: e.hour,
            minute: e.minute,
            second: e.second,
        },
        guid: Guid(e.guid),
        data,
    })
}

/// Why an event could not be handed to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

/// Fills the host's `vscpEvent` with `event`. The data goes into a new `malloc` buffer stored
/// in `pdata` (NULL for no data) that belongs to the host from then on: vscpd never frees it,
/// a careful host calls `free()` (or, being glibc, `delete[]`). The previous `pdata` value is
/// overwritten, never freed: it is the host's. On failure `*out` is left untouched.
///
/// # Safety
/// `out` points to a writable `vscpEvent`.
pub unsafe fn event_to_host(event: &Event, out: *mut VscpEvent) -> Result<(), OutOfMemory> {
    let len = event.data.len().min(MAX_DATA);
    let pdata = if len == 0 {
        std::ptr::null_mut()
    } else {
        let p = libc::malloc(len) as *mut u8;
        if p.is_null() {
            return Err(OutOfMemory);
        }
        std::ptr::copy_nonoverlapping(event.data.as_ptr(), p, len);
        p
    };
    let e = VscpEvent {
        // Events on the websocket side carry no CRC; 0 is what REF hands over too.
        crc: 0,
        obid: event.obid,
        year: event.datetime.year,
        month: event.datetime.month,
        day: event.datetime.day,
        hour: event.datetime.hour,
        minute: event.datetime.minute,
        second: event.datetime.second,
        timestamp: event.timestamp,
        head: event.head,
        vscp_class: event.class,
        vscp_type: event.vscp_type,
        guid: event.guid.0,
        // `len` is at most MAX_DATA (512), so it fits.
        size_data: len as u16,
        pdata,
    };
    std::ptr::write_unaligned(out, e);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};
    use vscp_proto::testing::e2;

    // The numbers are level2-driver.md §3.1's (computed there with ctypes for x86-64 LP64).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn vscp_event_layout_matches_the_15x_headers() {
        assert_eq!(size_of::<VscpEvent>(), 56);
        assert_eq!(align_of::<VscpEvent>(), 8);
        assert_eq!(offset_of!(VscpEvent, crc), 0);
        assert_eq!(offset_of!(VscpEvent, obid), 4);
        assert_eq!(offset_of!(VscpEvent, year), 8);
        assert_eq!(offset_of!(VscpEvent, month), 10);
        assert_eq!(offset_of!(VscpEvent, day), 11);
        assert_eq!(offset_of!(VscpEvent, hour), 12);
        assert_eq!(offset_of!(VscpEvent, minute), 13);
        assert_eq!(offset_of!(VscpEvent, second), 14);
        assert_eq!(offset_of!(VscpEvent, timestamp), 16);
        assert_eq!(offset_of!(VscpEvent, head), 20);
        assert_eq!(offset_of!(VscpEvent, vscp_class), 22);
        assert_eq!(offset_of!(VscpEvent, vscp_type), 24);
        assert_eq!(offset_of!(VscpEvent, guid), 26);
        assert_eq!(offset_of!(VscpEvent, size_data), 42);
        assert_eq!(offset_of!(VscpEvent, pdata), 48);
    }

    #[test]
    fn vscp_event_ex_layout_matches_the_15x_headers() {
        assert_eq!(size_of::<VscpEventEx>(), 556);
        assert_eq!(align_of::<VscpEventEx>(), 4);
        assert_eq!(offset_of!(VscpEventEx, timestamp), 16);
        assert_eq!(offset_of!(VscpEventEx, guid), 26);
        assert_eq!(offset_of!(VscpEventEx, size_data), 42);
        assert_eq!(offset_of!(VscpEventEx, data), 44);
    }

    #[test]
    fn vscp_event_filter_layout_matches_the_15x_headers() {
        assert_eq!(size_of::<VscpEventFilter>(), 42);
        assert_eq!(align_of::<VscpEventFilter>(), 2);
        assert_eq!(offset_of!(VscpEventFilter, filter_priority), 0);
        assert_eq!(offset_of!(VscpEventFilter, mask_priority), 1);
        assert_eq!(offset_of!(VscpEventFilter, filter_class), 2);
        assert_eq!(offset_of!(VscpEventFilter, mask_class), 4);
        assert_eq!(offset_of!(VscpEventFilter, filter_type), 6);
        assert_eq!(offset_of!(VscpEventFilter, mask_type), 8);
        assert_eq!(offset_of!(VscpEventFilter, filter_guid), 10);
        assert_eq!(offset_of!(VscpEventFilter, mask_guid), 26);
    }

    #[test]
    fn an_event_survives_the_round_trip_through_the_c_struct() {
        let ev = e2();
        let mut c = VscpEvent {
            crc: 0xABCD,
            ..unsafe_zeroed()
        };
        // SAFETY: `c` is a valid, writable struct; the buffer it gets is freed below.
        unsafe {
            event_to_host(&ev, &mut c).expect("malloc");
            assert_eq!(c.size_data, 4);
            assert_eq!(c.crc, 0);
            let back = event_from_host(&c).expect("valid");
            assert_eq!(back, ev);
            libc::free(c.pdata as *mut libc::c_void);
        }
    }

    #[test]
    fn no_data_means_a_null_buffer() {
        let mut ev = e2();
        ev.data.clear();
        let mut c = VscpEvent {
            pdata: std::ptr::dangling_mut::<u8>(),
            ..unsafe_zeroed()
        };
        // SAFETY: `c` is writable; no buffer is allocated for zero bytes.
        unsafe { event_to_host(&ev, &mut c).expect("no allocation") };
        assert!(c.pdata.is_null());
        assert_eq!(c.size_data, 0);
    }

    fn unsafe_zeroed() -> VscpEvent {
        // SAFETY: every field of VscpEvent is an integer, an integer array or a raw pointer,
        // for all of which all-zero bytes are a valid value.
        unsafe { std::mem::zeroed() }
    }

    #[test]
    fn bad_host_events_are_refused_without_reading_data() {
        // SAFETY: the pointers are NULL or point to live locals; data is never read through a
        // NULL or oversized pdata.
        unsafe {
            assert_eq!(
                event_from_host(std::ptr::null()).unwrap_err(),
                BadEvent::Null
            );
            let big = VscpEvent {
                size_data: 513,
                pdata: std::ptr::dangling_mut::<u8>(),
                ..unsafe_zeroed()
            };
            assert_eq!(
                event_from_host(&big).unwrap_err(),
                BadEvent::TooMuchData(513)
            );
            let nobuf = VscpEvent {
                size_data: 3,
                ..unsafe_zeroed()
            };
            assert_eq!(event_from_host(&nobuf).unwrap_err(), BadEvent::NoBuffer);
            let max = [0x5Au8; 512];
            let full = VscpEvent {
                size_data: 512,
                pdata: max.as_ptr() as *mut u8,
                ..unsafe_zeroed()
            };
            assert_eq!(
                event_from_host(&full).expect("512 is allowed").data.len(),
                512
            );
        }
    }
}
