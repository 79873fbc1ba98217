//! `libvscpl2drv-websocksrv.so`: the vscp-websocksrv server as a drop-in VSCP Level II driver
//! for the VSCP daemon (vscpd 15.x) and other hosts that load Level II drivers.
//!
//! The host `dlopen`s the library and calls six C functions (level2-driver.md §1–2):
//! [`VSCPOpen`] starts the same thread-per-core server the standalone binary runs, with the
//! host as its uplink ([`uplink::HostUplink`]); [`VSCPWrite`] and [`VSCPRead`] move events
//! through two bounded queues ([`queues`]); [`VSCPClose`] stops the server and joins every
//! thread. Everything else — sessions, protocols, users, filters, routing — is the shared
//! server code; this crate is only the ABI layer.
//!
//! Rules of the C boundary kept here:
//! - no panic crosses it: every export runs inside `catch_unwind` and answers a panic with
//!   `VSCP_ERROR_INTERNAL` (or 0 / NULL);
//! - NULL pointers and out-of-range sizes get error codes, never a dereference;
//! - the event layout is the 15.x one ([`abi::VscpEvent`]); events are copied field by field;
//! - data handed to the host is `malloc`ed and belongs to the host.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
// The exports keep the C names vscpd looks up.
#![allow(non_snake_case)]

pub mod abi;
pub mod queues;
pub mod uplink;

use abi::{
    VscpEvent, VSCP_ERROR_FIFO_FULL, VSCP_ERROR_INTERNAL, VSCP_ERROR_MEMORY, VSCP_ERROR_NOT_OPEN,
    VSCP_ERROR_PARAMETER, VSCP_ERROR_SUCCESS, VSCP_ERROR_TIMEOUT,
};
use queues::{HostQueues, PopError, PushError};
use std::ffi::{CStr, OsStr};
use std::net::SocketAddr;
use std::os::raw::{c_char, c_int, c_long, c_ulong};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};
use vscp_websocksrv::config::Config;
use vscp_websocksrv::ServerHandle;

/// The version this library reports: the driver release whose ABI and behaviour it replaces
/// (15.2.0.0), so hosts and tools that check it treat it as that driver.
pub const DRIVER_VERSION: (u8, u8, u8, u8) = (15, 2, 0, 0);

/// `VSCPGetVendorString`'s answer (NUL-terminated, static).
const VENDOR: &CStr =
    c"vscp-websocksrv (drop-in for the VSCP Project's vscpl2drv-websocksrv), https://www.vscp.org";

/// REF hands out 1681 + slot index; the first instance of a process gets 1681 here too. Later
/// handles only grow, so a stale handle after VSCPClose is never mistaken for a new instance.
const FIRST_HANDLE: c_long = 1681;

/// How long VSCPClose waits, at most, for the kernel to release the listen port (see
/// [`wait_port_released`]).
const PORT_RELEASE_WAIT: Duration = Duration::from_secs(1);

/// One open driver instance.
struct Instance {
    queues: Arc<HostQueues>,
    /// Taken by VSCPClose.
    server: Mutex<Option<ServerHandle>>,
}

struct Registry {
    next: c_long,
    /// A Vec, not a map: a process has a handful of instances at most, and an empty Vec owns
    /// no heap memory once closed instances are gone.
    open: Vec<(c_long, Arc<Instance>)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next: FIRST_HANDLE,
    open: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    // A panic while the registry is locked (none is known) must not lock every later call out.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn lookup(handle: c_long) -> Option<Arc<Instance>> {
    registry()
        .open
        .iter()
        .find(|(h, _)| *h == handle)
        .map(|(_, i)| i.clone())
}

/// Runs an export's body, turning a panic into `on_panic` (no unwinding into C).
fn guarded<T>(what: &str, on_panic: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(_) => {
            eprintln!("vscpl2drv-websocksrv: internal error (panic) in {what}");
            on_panic
        }
    }
}

/// Reports an open failure where the host's operator will see it: logging may not be set up
/// yet (the config did not load), so stderr as well as tracing.
fn open_failed(reason: String) -> c_long {
    eprintln!("vscpl2drv-websocksrv: VSCPOpen failed: {reason}");
    tracing::error!("VSCPOpen failed: {reason}");
    0
}

/// Loads the config: inline JSON when the text starts with `{` (after trimming), relative
/// paths then resolving against the process's working directory; otherwise a file path.
fn load_config(raw: &CStr) -> Result<(Config, Vec<String>), String> {
    let bytes = raw.to_bytes();
    let text = String::from_utf8_lossy(bytes);
    if text.trim_start().starts_with('{') {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Config::from_json_str(&text, &cwd, "<inline config>").map_err(|e| e.to_string())
    } else {
        // Linux paths are bytes: a non-UTF-8 path is used exactly as given.
        let path = match std::str::from_utf8(bytes) {
            Ok(s) => Path::new(s.trim()),
            Err(_) => Path::new(OsStr::from_bytes(bytes)),
        };
        Config::load(path).map_err(|e| e.to_string())
    }
}

/// The first open whose config loads installs the logger from that config's `logging` block;
/// the host process has one global subscriber, so later instances share it.
fn init_logging(cfg: &Config) {
    static LOGGING: Once = Once::new();
    LOGGING.call_once(|| {
        if let Err(e) = vscp_websocksrv::logging::init(&cfg.logging, cfg.debug) {
            // Another component of the host already installed a subscriber: use that one.
            eprintln!("vscpl2drv-websocksrv: {e}");
        }
    });
}

fn open(path_config: *const c_char, guid: *const u8) -> c_long {
    if path_config.is_null() {
        return open_failed("no configuration given (NULL path)".into());
    }
    // SAFETY: the host passes a NUL-terminated string (vscpd: the `path-config` value).
    let raw = unsafe { CStr::from_ptr(path_config) };
    let (mut cfg, warnings) = match load_config(raw) {
        Ok(c) => c,
        Err(e) => return open_failed(e),
    };
    if !guid.is_null() {
        let mut g = [0u8; 16];
        // SAFETY: a non-NULL `pguid` points to the 16 GUID bytes (level2-driver.md §1).
        unsafe { std::ptr::copy_nonoverlapping(guid, g.as_mut_ptr(), 16) };
        // An all-zero driver GUID means "none given": keep the config's (or the derived one).
        if g != [0u8; 16] {
            cfg.guid = g;
        }
    }
    init_logging(&cfg);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    if cfg.mqtt.is_some() {
        // In a driver the host is the uplink; vscpd runs the MQTT side itself (from its own
        // driver entry), so a second bridge here would duplicate every event.
        tracing::warn!("the config's mqtt block is ignored when running as a vscpd driver");
    }
    let users_text = match std::fs::read_to_string(&cfg.users_file) {
        Ok(t) => t,
        Err(e) => {
            return open_failed(format!(
                "{}: cannot read the users file: {e}",
                cfg.users_file.display()
            ))
        }
    };
    let users = match vscp_proto::UserDb::from_json(&users_text) {
        Ok(u) => u,
        Err(e) => {
            return open_failed(format!(
                "{}: invalid users file: {e}",
                cfg.users_file.display()
            ))
        }
    };
    for key in users.unknown_keys() {
        tracing::warn!(file = %cfg.users_file.display(), "users file: unknown key {key:?} ignored");
    }
    let (queues, wake_rx) = match HostQueues::new(cfg.max_in_queue, cfg.max_out_queue) {
        Ok(q) => q,
        Err(e) => return open_failed(format!("cannot create the wake-up socketpair: {e}")),
    };
    let queues = Arc::new(queues);
    let host = uplink::HostUplink::new(queues.clone(), wake_rx);
    let server = match vscp_websocksrv::start_with_uplink(&cfg, users, Some(Box::new(host))) {
        Ok(s) => s,
        Err(e) => return open_failed(format!("cannot start the server: {e}")),
    };
    let addr = server.local_addr();
    let shards = server.shards();
    let instance = Arc::new(Instance {
        queues,
        server: Mutex::new(Some(server)),
    });
    let handle = {
        let mut reg = registry();
        let h = reg.next;
        reg.next = reg.next.checked_add(1).unwrap_or(FIRST_HANDLE);
        reg.open.push((h, instance));
        h
    };
    tracing::info!(
        handle,
        %addr,
        shards,
        "vscpl2drv-websocksrv (vscp-websocksrv {}) open",
        env!("CARGO_PKG_VERSION")
    );
    handle
}

fn close(handle: c_long) -> c_int {
    let instance = {
        let mut reg = registry();
        let Some(pos) = reg.open.iter().position(|(h, _)| *h == handle) else {
            // REF answers 0 for an unknown handle too; vscpd ignores the result anyway.
            return VSCP_ERROR_SUCCESS;
        };
        let (_, inst) = reg.open.swap_remove(pos);
        if reg.open.is_empty() {
            // Give the allocation back, so an idle library owns no heap memory.
            reg.open = Vec::new();
        }
        inst
    };
    // Release VSCPRead/VSCPWrite calls waiting on this instance before the (slower) shutdown.
    instance.queues.close();
    let server = instance
        .server
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(server) = server {
        let addr = server.local_addr();
        // Closes every session with 1001 and joins every executor thread.
        server.shutdown();
        if !wait_port_released(addr, PORT_RELEASE_WAIT) {
            tracing::warn!(
                %addr,
                "the listen port is still in use after VSCPClose; a VSCPOpen on it may fail for a while"
            );
        }
    }
    let s = &instance.queues.stats;
    tracing::info!(
        handle,
        dropped_to_host = s.dropped_to_host.load(Ordering::Relaxed),
        refused_full = s.refused_full.load(Ordering::Relaxed),
        "vscpl2drv-websocksrv closed"
    );
    VSCP_ERROR_SUCCESS
}

/// Waits until a plain bind of `addr` succeeds, for at most `within`; true once it does.
///
/// vscpd (or a test) may call VSCPOpen on the same port right after VSCPClose, and the
/// server's start refuses a port it cannot bind. Yet the port is not always free when
/// `shutdown` returns: measured, in about one close in four the socket stays in LISTEN for
/// ~25 ms after every executor thread has been joined (the listener's fd is closed, but an
/// io_uring request still in flight on it holds the socket until the kernel finishes tearing
/// the executor's rings down, which it does asynchronously). So VSCPClose returns only once
/// the port is really free. The probe binds without listening (no connection can land on it)
/// with SO_REUSEADDR: the same rules as the server's own "is another server running?" check.
/// Server-side TIME_WAIT sockets also block that check unless the listener sets SO_REUSEADDR
/// (then accepted sockets inherit it); otherwise this gives up after `within`.
fn wait_port_released(addr: SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let free = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .and_then(|s| {
            s.set_reuse_address(true)?;
            s.bind(&addr.into())
        });
        match free {
            Ok(()) => return true,
            // Only "in use" is worth waiting for; anything else (no such address any more)
            // cannot be fixed by waiting and is the next VSCPOpen's to report.
            Err(e) if e.kind() != std::io::ErrorKind::AddrInUse => return true,
            Err(_) if Instant::now() >= deadline => return false,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

// `c_ulong` is u64 on LP64 but u32 on 32-bit targets; the conversion is only useless here.
#[allow(clippy::useless_conversion)]
fn millis(timeout: c_ulong) -> Duration {
    Duration::from_millis(u64::from(timeout))
}

fn write(handle: c_long, ev: *const VscpEvent, timeout: c_ulong) -> c_int {
    let Some(instance) = lookup(handle) else {
        return VSCP_ERROR_MEMORY;
    };
    // SAFETY: `ev` is NULL or the host's event; event_from_host checks NULL, the size and
    // pdata before reading the data.
    let event = match unsafe { abi::event_from_host(ev) } {
        Ok(e) => e,
        Err(_) => return VSCP_ERROR_PARAMETER,
    };
    match instance.queues.push_to_clients(event, millis(timeout)) {
        Ok(()) => VSCP_ERROR_SUCCESS,
        Err(PushError::Full) if timeout == 0 => VSCP_ERROR_FIFO_FULL,
        Err(PushError::Full) => VSCP_ERROR_TIMEOUT,
        Err(PushError::Closed) => VSCP_ERROR_NOT_OPEN,
    }
}

fn read(handle: c_long, ev: *mut VscpEvent, timeout: c_ulong) -> c_int {
    if ev.is_null() {
        return VSCP_ERROR_PARAMETER;
    }
    let Some(instance) = lookup(handle) else {
        return VSCP_ERROR_MEMORY;
    };
    match instance.queues.pop_for_host(millis(timeout)) {
        // SAFETY: `ev` is the host's non-NULL, writable event.
        Ok(event) => match unsafe { abi::event_to_host(&event, ev) } {
            Ok(()) => VSCP_ERROR_SUCCESS,
            Err(abi::OutOfMemory) => {
                instance.queues.unpop_for_host(event);
                VSCP_ERROR_MEMORY
            }
        },
        Err(PopError::Timeout) => VSCP_ERROR_TIMEOUT,
        Err(PopError::Closed) => VSCP_ERROR_NOT_OPEN,
    }
}

/// Opens a driver instance: `pPathConfig` is the config file path, or the JSON config itself
/// when it starts with `{`; `pguid` is NULL or the 16-byte driver GUID (used as the interface
/// GUID when not all zero). Returns a non-zero handle, or 0 on failure (the reason goes to
/// stderr and the log).
#[no_mangle]
pub extern "C" fn VSCPOpen(pPathConfig: *const c_char, pguid: *const u8) -> c_long {
    guarded("VSCPOpen", 0, || open(pPathConfig, pguid))
}

/// Stops the instance: every session is closed (1001), every thread joined, the port freed.
/// Returns 0 (also for an unknown handle, as REF does).
#[no_mangle]
pub extern "C" fn VSCPClose(handle: c_long) -> c_int {
    guarded("VSCPClose", VSCP_ERROR_INTERNAL, || close(handle))
}

/// Queues a copy of the host's event for the websocket clients. 0 queued; 34 NULL event,
/// `sizeData > 512` or data without a buffer; 35 unknown handle (REF); when the queue
/// (`max-in-queue`) stays full: 9 for `timeout` 0, else 32 after waiting `timeout` ms; 33 when
/// the instance closed meanwhile.
#[no_mangle]
pub extern "C" fn VSCPWrite(handle: c_long, pEvent: *const VscpEvent, timeout: c_ulong) -> c_int {
    guarded("VSCPWrite", VSCP_ERROR_INTERNAL, || {
        write(handle, pEvent, timeout)
    })
}

/// Waits up to `timeout` ms (0: no wait) for an event from a websocket client and fills
/// `*pEvent` with it; `pdata` gets a new `malloc` buffer owned by the caller (NULL without
/// data). 0 success; 32 nothing in time; 34 NULL event; 35 unknown handle (REF) or out of
/// memory; 33 when the instance closed meanwhile.
#[no_mangle]
pub extern "C" fn VSCPRead(handle: c_long, pEvent: *mut VscpEvent, timeout: c_ulong) -> c_int {
    guarded("VSCPRead", VSCP_ERROR_INTERNAL, || {
        read(handle, pEvent, timeout)
    })
}

/// `major<<24 | minor<<16 | release<<8 | build` of [`DRIVER_VERSION`].
#[no_mangle]
pub extern "C" fn VSCPGetVersion() -> c_ulong {
    let (major, minor, release, build) = DRIVER_VERSION;
    c_ulong::from(major) << 24
        | c_ulong::from(minor) << 16
        | c_ulong::from(release) << 8
        | c_ulong::from(build)
}

/// A static NUL-terminated vendor string.
#[no_mangle]
pub extern "C" fn VSCPGetVendorString() -> *const c_char {
    VENDOR.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeroed() -> VscpEvent {
        // SAFETY: all-zero bytes are a valid VscpEvent (integers and a NULL pointer).
        unsafe { std::mem::zeroed() }
    }

    #[test]
    fn version_and_vendor() {
        assert_eq!(VSCPGetVersion(), 0x0F02_0000);
        // SAFETY: the export returns a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(VSCPGetVendorString()) };
        assert!(v.to_str().expect("ASCII").contains("vscpl2drv-websocksrv"));
    }

    #[test]
    fn unknown_handles_and_null_pointers_get_error_codes() {
        let mut ev = zeroed();
        assert_eq!(VSCPWrite(0, &ev, 0), VSCP_ERROR_MEMORY);
        assert_eq!(VSCPWrite(999_999, std::ptr::null(), 0), VSCP_ERROR_MEMORY);
        assert_eq!(VSCPRead(999_999, &mut ev, 0), VSCP_ERROR_MEMORY);
        assert_eq!(
            VSCPRead(999_999, std::ptr::null_mut(), 0),
            VSCP_ERROR_PARAMETER
        );
        assert_eq!(VSCPClose(999_999), VSCP_ERROR_SUCCESS);
        assert_eq!(VSCPOpen(std::ptr::null(), std::ptr::null()), 0);
        assert_eq!(
            VSCPOpen(c"/nonexistent/websocksrv.json".as_ptr(), std::ptr::null()),
            0
        );
        assert_eq!(VSCPOpen(c"{ not json".as_ptr(), std::ptr::null()), 0);
    }
}
