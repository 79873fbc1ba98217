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

    let mut sub = client(&["sub", "--count", "3"], &url, "admin", "secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sub starts");
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

    // Read sub's output on a thread, so a sub that hangs fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = sub.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    while lines.len() < 3 {
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
    assert!(exited, "sub exits after --count 3");
    assert!(sub.wait().unwrap().success());
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
