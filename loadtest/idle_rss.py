#!/usr/bin/env python3
"""Server memory per idle websocket session.

Opens N raw websocket connections to /ws1 (upgrade + greeting, no login), then reports the
server's resident memory before and after, per session. Run the server with `auth-timeout: 0`
and `max-clients: 0` so it keeps them.

    python3 loadtest/idle_rss.py N SERVER_PID [HOST:PORT] [--seq]

--seq waits for each greeting before opening the next connection (one handshake at a time).
"""
import base64, os, resource, socket, sys, time

args = [a for a in sys.argv[1:] if not a.startswith("--")]
n, pid = int(args[0]), int(args[1])
host, port = (args[2] if len(args) > 2 else "127.0.0.1:8884").rsplit(":", 1)
seq = "--seq" in sys.argv
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

def rss_kib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])

def greeted(s):
    data = b""
    while b"AUTH0" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("server closed a connection")
        data += chunk

before = rss_kib()
socks = []
for _ in range(n):
    s = socket.create_connection((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        f"GET /ws1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    socks.append(s)
    if seq:
        greeted(s)
if not seq:
    for s in socks:
        greeted(s)
time.sleep(1)
after = rss_kib()
print(f"{n} idle ws1 sessions: server RSS {before} KiB -> {after} KiB, {(after - before) / n:.2f} KiB/session")
