//! Every live client connection of the server, for the tcp/ip `interface list` (tcp.md §5.15).
//! Shards add and remove their connections under one mutex, once when a session starts and once
//! when it ends, never per event; the list is built only when a client asks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use vscp_proto::{tcp, Dialect, Guid};

#[derive(Debug)]
struct Entry {
    dialect: Dialect,
    peer: SocketAddr,
    started_unix_secs: u64,
}

/// The server's live client connections, by connection id (the channel id).
#[derive(Debug, Default)]
pub struct ClientRegistry {
    clients: Mutex<BTreeMap<u32, Entry>>,
}

impl ClientRegistry {
    /// A session of `dialect` from `peer` started.
    pub fn add(&self, conn_id: u32, dialect: Dialect, peer: SocketAddr, now_unix_secs: u64) {
        let entry = Entry {
            dialect,
            peer,
            started_unix_secs: now_unix_secs,
        };
        self.lock().insert(conn_id, entry);
    }

    /// The session ended.
    pub fn remove(&self, conn_id: u32) {
        self.lock().remove(&conn_id);
    }

    /// One [`tcp::client_line`] per connection, oldest channel id first, each ending in CRLF;
    /// the interface GUID of each is derived from `server_guid` like a tcp/ip session's.
    pub fn lines(&self, server_guid: &Guid) -> String {
        let clients = self.lock();
        let mut out = String::with_capacity(clients.len() * 120);
        for (&id, e) in clients.iter() {
            let (kind, what) = match e.dialect {
                Dialect::Tcp => (tcp::CLIENT_TYPE_TCP, "tcp/ip client"),
                Dialect::Ws1 => (tcp::CLIENT_TYPE_WEBSOCKET, "ws1 websocket client"),
                Dialect::Ws2 => (tcp::CLIENT_TYPE_WEBSOCKET, "ws2 websocket client"),
            };
            let guid = tcp::interface_guid(server_guid, id);
            let name = format!("{what} {}", e.peer);
            out.push_str(&tcp::client_line(
                id,
                kind,
                &guid,
                &name,
                e.started_unix_secs,
            ));
            out.push_str(tcp::CRLF);
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Entry>> {
        // A panic elsewhere while holding it leaves a map that is still consistent.
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_live_sessions_by_channel_id_with_their_transport() {
        let r = ClientRegistry::default();
        let g = Guid::parse("FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:01").unwrap();
        r.add(9, Dialect::Ws2, "127.0.0.1:5000".parse().unwrap(), 0);
        r.add(
            7,
            Dialect::Tcp,
            "[::1]:40112".parse().unwrap(),
            1_796_199_245,
        );
        r.add(8, Dialect::Ws1, "127.0.0.2:6000".parse().unwrap(), 0);
        r.remove(8);
        assert_eq!(
            r.lines(&g),
            "7,5,FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:07:00:00,tcp/ip client [::1]:40112 | Started at 2026-12-02T08:14:05Z\r\n\
             9,8,FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:09:00:00,ws2 websocket client 127.0.0.1:5000 | Started at 1970-01-01T00:00:00Z\r\n"
        );
    }
}
