//! A VSCP tcp/ip link client (the telnet-style interface, shared/spec/tcp.md): the greeting,
//! `user`/`pass`, `rcvloop` for subscribers and `send` lines for publishers. Replies end with
//! one line starting `+OK` or `-OK`; inside the receive loop every other line is an event and
//! `+OK` alone is the keep-alive.

use crate::client::{ws1_event, Login};
use anyhow::{bail, Context, Result};
use futures::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use futures::AsyncReadExt;
use glommio::net::TcpStream;

pub type LinkReader = BufReader<ReadHalf<TcpStream>>;
pub type LinkWriter = WriteHalf<TcpStream>;

/// Reads the greeting, logs in and, with `rcvloop`, enters the receive loop. Each step is
/// checked; a `-OK` reply is an error carrying the server's text.
pub async fn open_link(
    stream: TcpStream,
    login: &Login,
    rcvloop: bool,
) -> Result<(LinkReader, LinkWriter)> {
    let (r, mut w) = stream.split();
    let mut r = BufReader::with_capacity(16 * 1024, r);
    let mut line = String::new();
    reply(&mut r, &mut line).await.context("greeting")?;
    let mut steps = vec![
        ("user", format!("user {}\r\n", login.user)),
        ("pass", format!("pass {}\r\n", login.password)),
    ];
    if rcvloop {
        steps.push(("rcvloop", "rcvloop\r\n".to_string()));
    }
    for (what, cmd) in steps {
        w.write_all(cmd.as_bytes()).await?;
        w.flush().await?;
        reply(&mut r, &mut line).await.context(what)?;
    }
    Ok((r, w))
}

/// Reads up to the reply's terminal line; `Ok` for `+OK…`, an error with the text for `-OK…`.
async fn reply(r: &mut LinkReader, line: &mut String) -> Result<()> {
    loop {
        if !read_line(r, line).await? {
            bail!("connection closed");
        }
        if line.starts_with("+OK") {
            return Ok(());
        }
        if line.starts_with("-OK") {
            bail!("refused: {line}");
        }
    }
}

/// The next line without its CR LF into `line`; false at end of stream.
pub async fn read_line(r: &mut LinkReader, line: &mut String) -> Result<bool> {
    line.clear();
    if r.read_line(line).await? == 0 {
        return Ok(false);
    }
    let len = line.trim_end_matches(['\r', '\n']).len();
    line.truncate(len);
    Ok(true)
}

/// Appends a `send` command for an event carrying its send time (the ws1 event's fields: the
/// event string is the same in both protocols).
pub fn push_send(out: &mut Vec<u8>, nanos: u64, data_len: usize) {
    let e = ws1_event(nanos, data_len);
    out.extend_from_slice(b"send ");
    out.extend_from_slice(e.strip_prefix("E;").unwrap_or(&e).as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::sent_nanos;

    #[test]
    fn a_sent_event_read_back_from_the_receive_loop_keeps_its_time() {
        let mut out = Vec::new();
        push_send(&mut out, 0x0102_0304_0506_0708, 10);
        let line = std::str::from_utf8(&out).unwrap();
        assert!(
            line.starts_with("send 0,20,3,") && line.ends_with("\r\n"),
            "{line}"
        );
        // What the server writes in the receive loop: the same fields, the GUID and date filled.
        let data = line.trim_end().splitn(8, ',').nth(7).unwrap();
        let delivered = format!(
            "0,20,3,2,2026-12-06T00:06:23Z,3778442129,FF:FF:FF:FF:FF:FF:FF:FD:7F:00:00:01:00:02:00:00,{data}"
        );
        assert_eq!(sent_nanos(&delivered), Some(0x0102_0304_0506_0708));
    }
}
