//! The binary's command-line clients (`sub`, `pub`, `auth-line`) against a real server: `sub`
//! in a child process prints what `pub` in another sends.

mod common;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vscp-websocksrv");
const KEY_HEX: &str = "2DBB079A38985AF00EBEEFE22F9FFA0E";

fn client(args: &[&str], url: &str, user: &str, password: &str) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .args(["--url", url, "--user", user, "--password", password])
        .args(["--key", KEY_HEX]);
    c
}

#[test]
fn sub_prints_what_pub_sends_and_pub_reports_refusals() {
    let fx = Fixture::new("cli");
    let srv = fx.start(json!({}));
    let url = format!("ws://{}/ws1", srv.local_addr());

    // sub's output is read on a thread, so a sub that hangs fails the test instead of hanging it.
    let (sub, rx) = spawn_sub(&["--count", "3"], &url);
    // A ws2 client beside them; sub's session is open once it is counted beside this one.
    let mut probe = connect(srv.local_addr(), "/ws2");
    probe.login_open("admin", "secret");
    let opened = eventually(Duration::from_secs(10), || {
        srv.stats().sessions_active >= 2 && srv.stats().logins_ok >= 2
    });
    assert!(opened, "sub logged in");
    std::thread::sleep(Duration::from_millis(300));

    let out = client(
        &[
            "pub",
            "0,20,3,,,,-,0,1,35",
            "0,10,6,,,,-,0x88,0x82,0x09,0xC4",
        ],
        &url,
        "admin",
        "secret",
    )
    .output()
    .expect("pub runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "+;EVENT\n+;EVENT\n");
    // The ws2 client got both, and what it sends reaches sub.
    let first: serde_json::Value = serde_json::from_str(&probe.recv_event()).unwrap();
    let ev = &first["event"];
    assert_eq!(
        (ev["vscpClass"].as_u64(), ev["vscpType"].as_u64()),
        (Some(20), Some(3)),
        "{first}"
    );
    probe.recv_event();
    let r =
        probe.cmd2(json!({"type":"EVENT","event":{"vscpClass":30,"vscpType":5,"vscpData":[7]}}));
    assert_eq!(r["type"], "+");

    let (lines, ok) = collect(sub, rx, 3);
    assert!(ok, "sub exits after --count 3");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[2].starts_with("0,30,5,") && lines[2].ends_with(",0x07"),
        "{lines:?}"
    );
    assert!(lines[0].starts_with("0,20,3,"), "{lines:?}");
    assert!(lines[0].ends_with(",0x00,0x01,0x23"), "{lines:?}");
    assert!(lines[1].starts_with("0,10,6,") && lines[1].ends_with(",0x88,0x82,0x09,0xC4"));

    // A malformed event: the reply is printed and the exit status says it failed.
    let out = client(&["pub", "nonsense"], &url, "admin", "secret")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("-;8;"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 1 events were not acknowledged"));

    // A wrong password is an error that says what to check.
    let out = client(&["pub", "0,20,3,,,,-,0"], &url, "admin", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("login as \"admin\" refused"));
    drop(probe);
    srv.shutdown();
}

/// Starts `sub` with `extra` arguments; its output lines arrive on the returned channel.
fn spawn_sub(
    extra: &[&str],
    url: &str,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut args = vec!["sub"];
    args.extend_from_slice(extra);
    let mut sub = client(&args, url, "admin", "secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sub starts");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = sub.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            let _ = tx.send(line);
        }
    });
    (sub, rx)
}

/// Up to `n` lines within 10 s, then waits for `sub` to exit (killing it if it does not) and
/// returns the lines and whether it exited successfully by itself.
fn collect(
    mut sub: std::process::Child,
    rx: std::sync::mpsc::Receiver<String>,
    n: usize,
) -> (Vec<String>, bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    while lines.len() < n {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let exited = eventually(Duration::from_secs(5), || {
        sub.try_wait().ok().flatten().is_some()
    });
    if !exited {
        let _ = sub.kill();
    }
    let ok = exited && sub.wait().unwrap().success();
    (lines, ok)
}

/// `pub` with `extra` arguments before the events; asserts every event was acknowledged.
fn publish_ok(url: &str, extra: &[&str], events: &[&str]) -> String {
    let mut args = vec!["pub"];
    args.extend_from_slice(extra);
    args.extend_from_slice(events);
    let out = client(&args, url, "admin", "secret").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{url}: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn sub_and_pub_speak_the_tcp_link_and_tls_too() {
    // Plain: sub over tcp:// (rcvloop, filter as setfilter/setmask) gets what pub sends over
    // ws:// and over tcp://; its filter keeps class 30 out.
    let fx = Fixture::new("cli-tcp");
    let srv = fx.start(json!({}));
    let ws = format!("ws://{}/ws1", srv.local_addr());
    let tcp = format!("tcp://{}", srv.tcpip_addr().expect("tcp/ip listener"));
    let (sub, rx) = spawn_sub(&["--count", "2", "--filter", "0,20,0,-;0,0xFFFF,0,-"], &tcp);
    let opened = eventually(Duration::from_secs(10), || srv.stats().logins_ok >= 1);
    assert!(opened, "sub logged in");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(publish_ok(&ws, &[], &["0,30,5,,,,-,7"]), "+;EVENT\n");
    assert_eq!(publish_ok(&ws, &[], &["0,20,3,,,,-,0,1,35"]), "+;EVENT\n");
    assert_eq!(
        publish_ok(&tcp, &[], &["0,20,4,,,,-,0,1,36"]),
        "+OK - Success.\n"
    );
    let (lines, ok) = collect(sub, rx, 2);
    assert!(ok, "sub exits after --count 2: {lines:?}");
    assert!(
        lines[0].starts_with("0,20,3,") && lines[0].ends_with(",0x00,0x01,0x23"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("0,20,4,") && lines[1].ends_with(",0x00,0x01,0x24"),
        "{lines:?}"
    );
    // A refused event over tcp/ip is a failed exit, with the server's reply printed.
    let out = client(&["pub", "0,20,3,,,,nonsense"], &tcp, "admin", "secret")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("-OK"));
    srv.shutdown();

    // TLS: sub over stcp:// with --json gets what pub sends over wss://; without --cafile the
    // test CA is not trusted and the handshake error says so.
    let fx = Fixture::new("cli-tls");
    fx.pki();
    let srv = fx.start(json!({
        "interface": "wss://127.0.0.1:0",
        "tcpip-interface": "stcp://127.0.0.1:0",
        "ssl_certificate": "server.pem"
    }));
    let ca = fx.join("ca.pem").display().to_string();
    let wss = format!("wss://{}/ws1", srv.local_addr());
    let stcp = format!("stcp://{}", srv.tcpip_addr().unwrap());
    let (sub, rx) = spawn_sub(&["--count", "1", "--json", "--cafile", &ca], &stcp);
    let opened = eventually(Duration::from_secs(10), || srv.stats().logins_ok >= 1);
    assert!(opened, "sub logged in over stcp");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        publish_ok(&wss, &["--cafile", &ca], &["0,20,3,,,,-,0,1,35"]),
        "+;EVENT\n"
    );
    let (lines, ok) = collect(sub, rx, 1);
    assert!(ok, "sub exits after --count 1: {lines:?}");
    let ev: serde_json::Value = serde_json::from_str(&lines[0]).expect("--json prints JSON");
    assert_eq!(
        (ev["vscpClass"].as_u64(), ev["vscpType"].as_u64()),
        (Some(20), Some(3)),
        "{ev}"
    );
    let out = client(&["pub", "0,20,3,,,,-,0"], &wss, "admin", "secret")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLS handshake failed"), "{err}");
    srv.shutdown();
}

#[test]
fn auth_line_logs_a_hand_made_session_in() {
    let fx = Fixture::new("cli-auth-line");
    let srv = fx.start(json!({}));
    let mut c = connect(srv.local_addr(), "/ws1");
    let sid = c.sid.clone();
    let out = Command::new(BIN)
        .args([
            "auth-line",
            "--sid",
            &sid,
            "--user",
            "admin",
            "--password",
            "secret",
        ])
        .args(["--key", KEY_HEX])
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(c.cmd(line.trim()).starts_with("+;AUTH1;"));
    srv.shutdown();
}

#[test]
fn check_config_says_ok_or_names_the_key_and_the_file() {
    let fx = Fixture::new("cli-check");
    let _ = fx.config(json!({}));
    let path = fx.join("websocksrv.json");
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": OK (0 warnings)"));

    // A bad value and a users file that does not exist: the first is reported, by key and file.
    write_config(
        &path,
        json!({"interface": "127.0.0.1:0", "key-file": "vscp.key", "path-users": "users.json"}),
        json!({"max-clients": "many"}),
    );
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max-clients") && err.contains("websocksrv.json"),
        "{err}"
    );

    let out = Command::new(BIN).arg("check-config").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("check-config needs --config"));
}

#[test]
fn init_writes_a_config_that_checks_with_fresh_secrets_and_keeps_files() {
    let fx = Fixture::new("cli-init");
    let dir = fx.join("new/etc");
    // The sample config alone, as a new user prints it: the missing key file names `init`.
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("websocksrv.json");
    let sample = Command::new(BIN)
        .arg("print-default-config")
        .output()
        .unwrap();
    std::fs::write(&config, &sample.stdout).unwrap();
    let check = || {
        Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = check();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key-file") && err.contains("vscp-websocksrv init DIR"),
        "{err}"
    );

    let out = Command::new(BIN).arg("init").arg(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("kept") && said.contains("websocksrv.json"),
        "{said}"
    );
    let password = said
        .split("the user admin has the password ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the password is printed");
    assert!(
        check().status.success(),
        "{}",
        String::from_utf8_lossy(&check().stderr)
    );
    let users = std::fs::read_to_string(dir.join("users.json")).unwrap();
    let db = vscp_proto::UserDb::from_json(&users).unwrap();
    assert!(db.get("admin").unwrap().verify_password(password));
    assert!(!db.get("admin").unwrap().verify_password("secret"));
    let key = std::fs::read_to_string(dir.join("vscp.key")).unwrap();
    assert!(!key.starts_with(KEY_HEX), "a fresh key, not the sample");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("vscp.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the key is the owner's only");

    // Again: nothing is overwritten and no new password is made.
    let out = Command::new(BIN).arg("init").arg(&dir).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(said.matches("kept").count(), 3, "{said}");
    assert!(!said.contains("password"), "{said}");
    assert_eq!(std::fs::read_to_string(dir.join("vscp.key")).unwrap(), key);
}

#[test]
fn sample_credentials_are_refused_off_loopback_unless_allowed() {
    let fx = Fixture::new("cli-samples");
    // The test fixture uses the sample key and admin/secret.
    let path = fx.join("websocksrv.json");
    write_config(
        &path,
        json!({"interface": "0.0.0.0:0", "key-file": "vscp.key", "path-users": "users.json"}),
        json!({}),
    );
    std::fs::write(fx.join("users.json"), USERS_JSON).unwrap();
    let check = |extra: &[&str]| {
        Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&path)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = check(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SAMPLE key"), "{err}");
    assert!(
        err.contains("user \"admin\" has the SAMPLE password"),
        "{err}"
    );
    assert!(err.contains("--allow-sample-credentials"), "{err}");

    let out = check(&["--allow-sample-credentials"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: "));

    // On loopback the samples are fine (trying things out).
    write_config(
        &path,
        json!({"interface": "127.0.0.1:0", "key-file": "vscp.key", "path-users": "users.json"}),
        json!({}),
    );
    assert!(check(&[]).status.success());
}
