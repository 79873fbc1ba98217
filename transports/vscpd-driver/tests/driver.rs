//! Issue 6 acceptance: the built shared object, loaded by a C host exactly as vscpd loads it
//! (tests/c/vscpd_host.c: dlopen + dlsym, then VSCPOpen/Read/Write/Close), checked with real
//! websocket clients on loopback.
//!
//! The C host is compiled here with the system C compiler (`$CC`, default `cc`). Setting
//! `VSCPD_DRIVER_MEMCHECK=asan` builds it with AddressSanitizer + LeakSanitizer (which then
//! also watch every allocation the driver makes, through the interposed malloc); the host must
//! still exit 0, so any memory error or leak fails the test (see .ci/driver-memcheck).
//!
//! Every wait is bounded; a stuck driver fails a test instead of hanging it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use vscp_testkit::{free_port, Client, ScratchDir, ADMIN_USERS_JSON};

/// The driver GUID vscpd passes to VSCPOpen.
const DRIVER_GUID: &str = "FFFFFFFFFFFFFFF50288880000000001";

/// The sanitizer slows the host (and the driver's allocations) down.
fn slow_factor() -> u32 {
    if memcheck().is_some() {
        3
    } else {
        1
    }
}

fn wait(secs: u64) -> Duration {
    Duration::from_secs(secs) * slow_factor()
}

fn memcheck() -> Option<String> {
    std::env::var("VSCPD_DRIVER_MEMCHECK")
        .ok()
        .filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Finding the driver and building the C host.

/// The cdylib cargo built for this test run: it sits in the same `deps` folder as this test
/// binary (cargo builds the library, all crate types, before the tests that use it), or one
/// level up. `VSCPD_DRIVER_SO` overrides. As a last resort it is built here.
fn driver_so() -> PathBuf {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        if let Ok(p) = std::env::var("VSCPD_DRIVER_SO") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("test binary path");
        let deps = exe.parent().expect("deps folder").to_path_buf();
        let name = "libvscpl2drv_websocksrv.so";
        for dir in [deps.clone(), deps.join("..")] {
            let p = dir.join(name);
            if p.exists() {
                return p;
            }
        }
        // Not found (an unusual cargo layout): build it into the same target folder.
        let profile_dir = deps.parent().expect("profile folder");
        let target_dir = profile_dir.parent().expect("target folder");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "vscpl2drv-websocksrv"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the driver failed");
        let p = target_dir.join("debug").join(name);
        assert!(p.exists(), "{} not built", p.display());
        p
    })
    .clone()
}

/// Compiles tests/c/vscpd_host.c once per test binary.
fn c_host() -> PathBuf {
    static HOST: OnceLock<PathBuf> = OnceLock::new();
    HOST.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/vscpd_host.c");
        // Under the target folder (cargo's scratch space for integration tests), so nothing
        // is left in /tmp; the pid keeps concurrent runs apart.
        let flavour = if memcheck().is_some() {
            "asan"
        } else {
            "plain"
        };
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("vscpd_host-{flavour}-{}", std::process::id()));
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let mut cmd = Command::new(&cc);
        cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-pthread"]);
        if memcheck().is_some() {
            cmd.args(["-O1", "-fsanitize=address", "-fno-omit-frame-pointer"]);
        } else {
            cmd.arg("-O2");
        }
        cmd.arg("-o").arg(&out).arg(&src).arg("-ldl");
        let res = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
        assert!(
            res.status.success(),
            "{cc} failed:\n{}",
            String::from_utf8_lossy(&res.stderr)
        );
        out
    })
    .clone()
}

// ---------------------------------------------------------------------------------------------
// The C host process.

struct Host {
    child: Child,
    /// Dropped (closed) at QUIT so the host sees EOF even if it missed the command.
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// `PUMPED …` lines (the pump thread's events), kept aside as they interleave.
    pumped: Vec<String>,
    /// The preamble: LAYOUT, VERSION, VENDOR, THREADS lines up to READY.
    preamble: Vec<String>,
    /// The collector of the host's stderr, when captured.
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Host {
    fn start(cwd: &Path) -> Host {
        Host::spawn(cwd, false)
    }

    /// `capture_stderr`: collect the host's stderr (the leak checker's report) instead of
    /// passing it through.
    fn spawn(cwd: &Path, capture_stderr: bool) -> Host {
        let so = driver_so();
        let mut cmd = Command::new(c_host());
        cmd.arg(&so)
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if capture_stderr {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        let mut child = cmd.spawn().expect("start the C host");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = std::io::Read::read_to_string(&mut err, &mut text);
                text
            })
        });
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut host = Host {
            child,
            stdin: Some(stdin),
            lines,
            stderr,
            pumped: Vec::new(),
            preamble: Vec::new(),
        };
        loop {
            let l = host.next_line(wait(30));
            if l == "READY" {
                break;
            }
            assert!(!l.starts_with("ERROR"), "C host: {l}");
            host.preamble.push(l);
        }
        host
    }

    fn next_line(&mut self, within: Duration) -> String {
        match self.lines.recv_timeout(within) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => panic!("the C host said nothing for {within:?}"),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait();
                panic!("the C host exited: {status:?}")
            }
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the C host's stdin is open");
        writeln!(stdin, "{line}").expect("write to the C host");
        stdin.flush().expect("flush");
    }

    /// Sends a command and returns its reply (the first line starting with `reply`).
    fn cmd(&mut self, line: &str, reply: &str) -> String {
        self.send(line);
        let deadline = Instant::now() + wait(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self.next_line(left.max(Duration::from_millis(1)));
            if l.starts_with("PUMPED ") {
                self.pumped.push(l);
            } else if l.starts_with(reply) {
                return l;
            } else {
                panic!("C host: unexpected line {l:?} waiting for {reply}");
            }
        }
    }

    /// Waits until the pump has printed `n` events in total.
    fn pumped_until(&mut self, n: usize) {
        let deadline = Instant::now() + wait(30);
        while self.pumped.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "only {} of {n} events pumped",
                self.pumped.len()
            );
            let l = self.next_line(left);
            assert!(l.starts_with("PUMPED "), "unexpected line {l:?}");
            self.pumped.push(l);
        }
    }

    fn open(&mut self, guid: &str, config: &str) -> i64 {
        let r = self.cmd(&format!("OPEN {guid} {config}"), "OPEN ");
        kv(&r)["handle"].parse().expect("handle")
    }

    fn close(&mut self, handle: i64) {
        let r = self.cmd(&format!("CLOSE {handle}"), "CLOSE ");
        assert_eq!(kv(&r)["rc"], "0", "{r}");
    }

    /// Threads in the host process, and their names.
    fn threads(&mut self) -> (usize, String) {
        let r = kv(&self.cmd("THREADS", "THREADS "));
        (r["n"].parse().expect("count"), r["names"].clone())
    }

    /// Every executor thread is joined by VSCPClose; glommio's blocking-pool threads are
    /// detached by glommio itself and leave right after their executor, so allow a moment.
    fn threads_back_to(&mut self, before: &(usize, String)) {
        let deadline = Instant::now() + wait(5);
        let mut now = self.threads();
        while &now != before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            now = self.threads();
        }
        assert_eq!(&now, before, "threads left after VSCPClose");
    }

    /// dlclose, exit 0. Under a memory checker a non-zero exit means errors or leaks.
    fn quit(self) {
        let (status, _) = self.exit();
        assert!(
            status.success(),
            "the C host exited with {status} (memory checker errors are on stderr)"
        );
    }

    /// Sends QUIT and returns the exit status and the captured stderr (empty if not captured).
    fn exit(mut self) -> (std::process::ExitStatus, String) {
        self.send("QUIT");
        let bye = self.next_line(wait(30));
        assert_eq!(bye, "BYE");
        self.stdin = None;
        let deadline = Instant::now() + wait(30);
        loop {
            match self.child.try_wait().expect("wait for the C host") {
                Some(status) => {
                    let err = self
                        .stderr
                        .take()
                        .map(|t| t.join().expect("stderr collector"))
                        .unwrap_or_default();
                    return (status, err);
                }
                None if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    panic!("the C host did not exit");
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Only reached with the child still running when a test failed: don't leave it behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `key=value` pairs of a reply line.
fn kv(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Config and websocket clients.

/// The key and users.json (admin/secret) a test config names.
struct Fixture(ScratchDir);

impl Deref for Fixture {
    type Target = ScratchDir;
    fn deref(&self) -> &ScratchDir {
        &self.0
    }
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        Fixture(ScratchDir::with_key_and_users(tag, ADMIN_USERS_JSON))
    }

    /// The config JSON (relative paths, two shards, console logging off).
    fn config_json(port: u16) -> String {
        serde_json::json!({
            "interface": format!("127.0.0.1:{port}"),
            "key-file": "vscp.key",
            "path-users": "users.json",
            "shards": 2,
            // Several instances run at once: no metrics listener on its fixed default port.
            "metrics-interface": "",
            // Nor on the tcp/ip link interface's default port 9598.
            "tcpip-interface": "",
            // VSCPD_DRIVER_TEST_LOG=debug (or info, …) shows the driver's log on stderr.
            "logging": match std::env::var("VSCPD_DRIVER_TEST_LOG") {
                Ok(level) => serde_json::json!({"console-enable-log": true, "console-log-level": level}),
                Err(_) => serde_json::json!({"console-enable-log": false}),
            }
        })
        .to_string()
    }

    /// Writes the config file and returns its path.
    fn config_file(&self, port: u16) -> String {
        let p = self.dir.join(format!("websocksrv-{port}.json"));
        std::fs::write(&p, Self::config_json(port)).expect("config");
        p.display().to_string()
    }
}

/// A websocket client of the driver's server on `port`, read timeouts stretched by
/// [`slow_factor`].
fn connect(port: u16, path: &str) -> Client {
    Client::connect_with_timeout(([127, 0, 0, 1], port).into(), path, wait(10))
}

/// Logged-in clients, alternating ws1/ws2, enough that both shards almost surely get some.
fn clients(port: u16, n: usize) -> Vec<Client> {
    (0..n)
        .map(|i| {
            let mut c = connect(port, if i % 2 == 0 { "/ws1" } else { "/ws2" });
            c.login_open("admin", "secret");
            c
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// level2-driver.md §3.1, as `name=offset` (plus size and align).
const SPEC_EVENT: &str = "size=56 align=8 crc=0 obid=4 year=8 month=10 day=11 hour=12 minute=13 \
     second=14 timestamp=16 head=20 vscp_class=22 vscp_type=24 GUID=26 sizeData=42 pdata=48";
const SPEC_EVENT_EX: &str = "size=556 align=4 sizeData=42 data=44";
const SPEC_FILTER: &str = "size=42 align=2 filter_priority=0 mask_priority=1 filter_class=2 \
     mask_class=4 filter_type=6 mask_type=8 filter_GUID=10 mask_GUID=26";

#[test]
#[cfg(target_pointer_width = "64")]
fn struct_layouts_version_and_vendor_match_the_spec() {
    let fx = Fixture::new("layout");
    let host = Host::start(&fx.dir);
    let find = |name: &str| {
        host.preamble
            .iter()
            .find(|l| l.starts_with(&format!("LAYOUT {name} ")))
            .map(|l| kv(l))
            .unwrap_or_else(|| panic!("no layout line for {name}"))
    };
    for (name, spec) in [
        ("vscpEvent", SPEC_EVENT),
        ("vscpEventEx", SPEC_EVENT_EX),
        ("vscpEventFilter", SPEC_FILTER),
    ] {
        assert_eq!(
            find(name),
            kv(spec),
            "{name}: the C compiler's layout vs the spec"
        );
    }
    assert!(host.preamble.contains(&"VERSION 0x0F020000".to_string()));
    assert!(host
        .preamble
        .iter()
        .any(|l| l.starts_with("VENDOR ") && l.contains("vscpl2drv-websocksrv")));
    host.quit();
}

#[test]
fn client_events_come_out_of_vscp_read_with_every_field() {
    let fx = Fixture::new("read");
    let port = free_port();
    let mut host = Host::start(&fx.dir);
    let h = host.open(DRIVER_GUID, &fx.config_file(port));
    assert_eq!(h, 1681, "the first instance gets REF's first handle");

    // Nothing yet: a timeout after (about) the time asked for.
    let r = kv(&host.cmd(&format!("READ {h} 100"), "READ "));
    assert_eq!(r["rc"], "32");
    assert!(r["ms"].parse::<u64>().expect("ms") >= 99, "{r:?}");
    let r = kv(&host.cmd(&format!("READ {h} 0"), "READ "));
    assert_eq!(r["rc"], "32");

    let mut a = connect(port, "/ws1");
    a.login_open("admin", "secret");
    // An all-zero GUID ('-') gets the interface GUID: the one vscpd passed to VSCPOpen.
    assert_eq!(
        a.cmd("E;0x60,10,6,0,2024-03-01T12:34:56Z,123456789,-,0x88,0x82,0x09,0xC4"),
        "+;EVENT"
    );
    let e = kv(&host.cmd(&format!("READ {h} {}", 5000 * slow_factor()), "READ "));
    assert_eq!(e["rc"], "0", "{e:?}");
    let expect = [
        ("head", "96"),
        ("class", "10"),
        ("type", "6"),
        ("crc", "0"),
        ("year", "2024"),
        ("month", "3"),
        ("day", "1"),
        ("hour", "12"),
        ("minute", "34"),
        ("second", "56"),
        ("timestamp", "123456789"),
        ("guid", DRIVER_GUID),
        ("size", "4"),
        ("data", "888209C4"),
    ];
    for (k, v) in expect {
        assert_eq!(e[k], v, "field {k}: {e:?}");
    }
    let obid_ws1: u32 = e["obid"].parse().expect("obid");
    assert_ne!(obid_ws1, 0, "obid is the connection id");

    let mut b = connect(port, "/ws2");
    b.login_open("admin", "secret");
    let data: Vec<u8> = (0..=255u8).chain(0..=255u8).collect(); // 512 bytes, the maximum
    let r = b.cmd(
        &serde_json::json!({"type":"EVENT","event":{
            "vscpHead": 0xE0, "vscpClass": 1040, "vscpType": 0xFFFF, "vscpTimeStamp": 4_000_000_000u32,
            "vscpDateTime": "1999-12-31T23:59:58Z",
            "vscpGuid": "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
            "vscpData": data}})
        .to_string(),
    );
    assert!(r.contains("\"+\""), "{r}");
    let e = kv(&host.cmd(&format!("READ {h} {}", 5000 * slow_factor()), "READ "));
    assert_eq!(e["rc"], "0", "{e:?}");
    let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
    let expect = [
        ("head", "224"),
        ("class", "1040"),
        ("type", "65535"),
        ("year", "1999"),
        ("month", "12"),
        ("day", "31"),
        ("hour", "23"),
        ("minute", "59"),
        ("second", "58"),
        ("timestamp", "4000000000"),
        ("guid", "00112233445566778899AABBCCDDEEFF"),
        ("size", "512"),
        ("data", hex.as_str()),
    ];
    for (k, v) in expect {
        assert_eq!(e[k], v, "field {k}");
    }
    let obid_ws2: u32 = e["obid"].parse().expect("obid");
    assert_ne!(obid_ws2, obid_ws1);

    // vscpd's own loop (a device thread calling VSCPRead with 50 ms) picks up a burst, in
    // order, while the main thread keeps calling VSCPWrite concurrently.
    host.cmd(&format!("PUMP {h}"), "PUMP ok");
    // Timestamps 1..=50 (0 would mean "unset" and be stamped by the server).
    for i in 1..=50u32 {
        a.send(&format!("E;0,20,3,0,,{i},-,{}", i % 256));
    }
    for i in 0..20 {
        let r = kv(&host.cmd(
            &format!("WRITE {h} 500 0 30 5 0 {i} 2024 1 2 3 4 5 {DRIVER_GUID} 01"),
            "WRITE ",
        ));
        assert_eq!(r["rc"], "0");
    }
    host.pumped_until(50);
    let stamps: Vec<String> = host
        .pumped
        .iter()
        .map(|l| kv(l)["timestamp"].clone())
        .collect();
    let want: Vec<String> = (1..=50).map(|i: u32| i.to_string()).collect();
    assert_eq!(stamps, want, "every event once, in order");
    host.cmd("UNPUMP", "UNPUMP ");
    // ws1 client `a` got the 20 host events, in order (it also got `b`'s event, client to
    // client, which is skipped here).
    let mut got = Vec::new();
    while got.len() < 20 {
        let e = a.recv_event();
        if let Some(rest) = e.strip_prefix("E;0,30,5,0,2024-01-02T03:04:05Z,") {
            got.push(rest.split(',').next().unwrap_or_default().to_string());
        }
    }
    let want: Vec<String> = (0..20).map(|i: u32| i.to_string()).collect();
    assert_eq!(got, want);

    drop((a, b));
    host.close(h);
    host.quit();
}

#[test]
fn vscp_write_reaches_ws1_and_ws2_clients() {
    let fx = Fixture::new("write");
    let port = free_port();
    let mut host = Host::start(&fx.dir);
    let h = host.open("-", &fx.config_file(port));
    assert_ne!(h, 0);
    let mut cs = clients(port, 6);
    // The host scribbles over and frees its event right after VSCPWrite returns: the clients
    // must still see the original data (a deep copy).
    let r = kv(&host.cmd(
        &format!("WRITE {h} 500 96 10 6 77 42 2024 3 1 12 34 56 FFFFFFFFFFFFFFF50000000000020000 888209C4"),
        "WRITE ",
    ));
    assert_eq!(r["rc"], "0");
    for c in cs.iter_mut() {
        let e = c.recv_event();
        if c.dialect == "ws2" {
            let v: serde_json::Value = serde_json::from_str(&e).expect("JSON");
            let ev = &v["event"];
            assert_eq!(ev["vscpHead"], 96, "{e}");
            assert_eq!(ev["vscpClass"], 10);
            assert_eq!(ev["vscpType"], 6);
            assert_eq!(ev["vscpTimeStamp"], 42);
            assert_eq!(ev["vscpDateTime"], "2024-03-01T12:34:56Z");
            assert_eq!(
                ev["vscpGuid"],
                "FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00"
            );
            assert_eq!(ev["vscpData"], serde_json::json!([0x88, 0x82, 0x09, 0xC4]));
        } else {
            assert_eq!(
                e,
                "E;96,10,6,77,2024-03-01T12:34:56Z,42,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00,0x88,0x82,0x09,0xC4"
            );
        }
    }
    // An event without data.
    let r = kv(&host.cmd(
        &format!("WRITE {h} 0 0 20 3 0 0 0 0 0 0 0 0 {DRIVER_GUID} -"),
        "WRITE ",
    ));
    assert_eq!(r["rc"], "0");
    for c in cs.iter_mut() {
        let e = c.recv_event();
        assert!(
            e.starts_with("E;0,20,3,") || e.contains("\"vscpClass\": 20"),
            "{e}"
        );
    }
    // Events from the host are not handed back to it.
    let r = kv(&host.cmd(&format!("READ {h} 100"), "READ "));
    assert_eq!(r["rc"], "32");
    drop(cs);
    host.close(h);
    host.quit();
}

#[test]
fn close_then_open_again_on_the_same_port() {
    let fx = Fixture::new("reopen");
    let port = free_port();
    let mut host = Host::start(&fx.dir);
    let before = host.threads();
    let config = fx.config_file(port);
    let h1 = host.open(DRIVER_GUID, &config);
    assert_eq!(h1, 1681);
    assert!(
        host.threads().0 > before.0,
        "the server runs its own threads"
    );
    // The port is taken while open: a second instance on it fails cleanly.
    assert_eq!(host.open(DRIVER_GUID, &config), 0);

    let mut c = connect(port, "/ws1");
    c.login_open("admin", "secret");
    // The client answers the server's close frame at once, as browsers and devices do.
    let closer = std::thread::spawn(move || c.close_code_within(wait(15)));
    let r = kv(&host.cmd(&format!("CLOSE {h1}"), "CLOSE "));
    assert_eq!(r["rc"], "0");
    // Sessions are closed with 1001 (going away) and the closing handshake completes.
    assert_eq!(closer.join().expect("client thread"), Some(1001));
    assert!(
        r["ms"].parse::<u32>().expect("ms") < 1500 * slow_factor(),
        "VSCPClose was slow: it waited for the client's close (2 s timeout) although the \
         client answered, or for the port (1 s), which a server-side TIME_WAIT socket holds \
         when the listener lacks SO_REUSEADDR: {r:?}"
    );
    host.threads_back_to(&before);
    // The port is free again: even a plain bind (no SO_REUSEPORT) gets it, despite the
    // server-side TIME_WAIT sockets the closing handshake leaves behind.
    if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
        let ss = Command::new("ss")
            .args(["-tan"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        let on_port: Vec<&str> = ss
            .lines()
            .filter(|l| l.contains(&format!(":{port} ")))
            .collect();
        panic!(
            "port {port} still taken after VSCPClose: {e}\n{}",
            on_port.join("\n")
        );
    }
    // A closed handle is unknown now.
    let r = kv(&host.cmd(&format!("READ {h1} 0"), "READ "));
    assert_eq!(r["rc"], "35");

    let h2 = host.open(DRIVER_GUID, &config);
    assert!(h2 > h1, "handles are not reused");
    let mut c = connect(port, "/ws2");
    c.login_open("admin", "secret");
    c.send(r#"{"type":"EVENT","event":{"vscpClass":20,"vscpType":3,"vscpData":[7]}}"#);
    let e = kv(&host.cmd(&format!("READ {h2} {}", 5000 * slow_factor()), "READ "));
    assert_eq!(e["rc"], "0");
    assert_eq!(e["data"], "07");

    // Several instances at once, each with its own port and queues.
    let port3 = free_port();
    let h3 = host.open("-", &fx.config_file(port3));
    assert!(h3 > h2);
    let mut c3 = connect(port3, "/ws1");
    c3.login_open("admin", "secret");
    assert_eq!(c3.cmd("E;0,20,3,0,,0,-,9"), "+;EVENT");
    let e = kv(&host.cmd(&format!("READ {h3} {}", 5000 * slow_factor()), "READ "));
    assert_eq!(e["data"], "09");
    assert_eq!(kv(&host.cmd(&format!("READ {h2} 50"), "READ "))["rc"], "32");
    drop((c, c3));
    host.close(h2);
    host.close(h3);
    host.threads_back_to(&before);
    host.quit();
}

#[test]
fn bad_calls_get_error_codes_not_crashes() {
    let fx = Fixture::new("bad");
    let port = free_port();
    let mut host = Host::start(&fx.dir);
    // Inline JSON config; relative paths resolve against the host's working directory.
    let h = host.open("0", &Fixture::config_json(port));
    assert_eq!(h, 1681);
    for (cmd, rc) in [
        (format!("WRITENULL {h}"), "34"),
        (format!("WRITEBIG {h}"), "34"),
        (format!("WRITENOBUF {h}"), "34"),
        (format!("READNULL {h}"), "34"),
        ("WRITENULL 4242".to_string(), "35"),
        ("READNULL 4242".to_string(), "34"),
        ("CLOSE 4242".to_string(), "0"),
    ] {
        let name = cmd
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let r = kv(&host.cmd(&cmd, &format!("{name} ")));
        assert_eq!(r["rc"], rc, "{cmd}");
    }
    let r = kv(&host.cmd(
        &format!("WRITE 4242 0 0 20 3 0 0 0 0 0 0 0 0 {DRIVER_GUID} -"),
        "WRITE ",
    ));
    assert_eq!(r["rc"], "35", "unknown handle (REF's code)");
    assert_eq!(kv(&host.cmd("READ 4242 0", "READ "))["rc"], "35");
    // Failing opens return 0 and leave nothing behind.
    assert_eq!(host.open("-", "/nonexistent/websocksrv.json"), 0);
    assert_eq!(host.open("-", "{ this is not json"), 0);
    assert_eq!(
        host.open(
            "-",
            r#"{"interface": "127.0.0.1:0", "key-file": "missing.key"}"#
        ),
        0
    );
    // The instance still works after all that.
    let mut c = connect(port, "/ws1");
    c.login_open("admin", "secret");
    // An all-zero GUID pointer means "no GUID": the derived interface GUID is used.
    assert_eq!(c.cmd("E;0,20,3,0,,0,-,1"), "+;EVENT");
    let e = kv(&host.cmd(&format!("READ {h} {}", 5000 * slow_factor()), "READ "));
    assert_eq!(e["rc"], "0");
    assert_eq!(e["guid"], "FFFFFFFFFFFFFFFD7F00000100000000");
    drop(c);
    host.close(h);
    host.quit();
}

/// Only under the memory checker: proves it is live and sees the buffers the driver hands
/// out. The host reads one event and, like vscpd, never frees `pdata`: LeakSanitizer must
/// report exactly that buffer (allocated by the driver's `VSCPRead`) and fail the host.
#[test]
fn the_memory_checker_catches_a_leaked_event_buffer() {
    if memcheck().is_none() {
        return;
    }
    let fx = Fixture::new("leakcheck");
    let port = free_port();
    let mut host = Host::spawn(&fx.dir, true);
    let h = host.open("-", &fx.config_file(port));
    let mut c = connect(port, "/ws1");
    c.login_open("admin", "secret");
    assert_eq!(c.cmd("E;0,20,3,0,,0,-,1,2,3"), "+;EVENT");
    let e = kv(&host.cmd(
        &format!("READLEAK {h} {}", 5000 * slow_factor()),
        "READLEAK ",
    ));
    assert_eq!(e["rc"], "0");
    drop(c);
    host.close(h);
    let (status, stderr) = host.exit();
    assert!(!status.success(), "the leaked buffer went unnoticed");
    assert!(
        stderr.contains("LeakSanitizer") && stderr.contains("3 byte(s) in 1 object(s)"),
        "{stderr}"
    );
    assert!(stderr.contains("event_to_host"), "{stderr}");
}
