#!/usr/bin/env python3
"""Server memory per idle websocket session.

Opens N raw websocket connections, then reports the server's resident memory before and
after, per session. Run the server with `auth-timeout: 0` (unless --login) and `max-clients`
above N so it keeps them.

    python3 loadtest/idle_rss.py N SERVER_PID [HOST:PORT] [--seq] [--ws2] [--login]
                                 [--key HEX] [--user NAME] [--password PW] [--settle S]

--seq    finishes each session (greeting, and with --login the AUTH and OPEN replies) before
         opening the next connection; without it every connection is opened at once and the
         sessions are driven together (a burst of handshakes and logins).
--ws2    uses /ws2 (JSON) instead of /ws1.
--login  also logs in (AUTH with the AES credential computed from the greeting's SID) and
         opens the channel (OPEN): an "authenticated idle" session.
--key    the AES key (first 32 hex digits of the server's key file; default: the sample key).
--settle seconds to wait after the last reply before reading the RSS (default 2).

Needs the `cryptography` package for --login (`pip install cryptography`).
"""
import argparse, base64, json, os, resource, selectors, socket, struct, sys, time

p = argparse.ArgumentParser(description="server RSS per idle websocket session")
p.add_argument("n", type=int)
p.add_argument("pid", type=int)
p.add_argument("addr", nargs="?", default="127.0.0.1:8884")
p.add_argument("--seq", action="store_true")
p.add_argument("--ws2", action="store_true")
p.add_argument("--login", action="store_true")
p.add_argument("--key", default="2DBB079A38985AF00EBEEFE22F9FFA0E")
p.add_argument("--user", default="admin")
p.add_argument("--password", default="secret")
p.add_argument("--settle", type=float, default=2.0)
opt = p.parse_args()
host, port = opt.addr.rsplit(":", 1)
port = int(port)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
if opt.n + 16 > hard:
    raise SystemExit(f"{opt.n} sessions need more than the open-file limit {hard}")

if opt.login:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    KEY = bytes.fromhex(opt.key[:32])


def credential(sid_hex):
    """hex(AES-128-CBC(key, iv=SID, "user:password" zero-padded to whole blocks)), as
    vscp_proto::auth::encrypt_credentials."""
    plain = f"{opt.user}:{opt.password}".encode()
    plain += b"\0" * (-len(plain) % 16)
    enc = Cipher(algorithms.AES(KEY), modes.CBC(bytes.fromhex(sid_hex))).encryptor()
    return (enc.update(plain) + enc.finalize()).hex().upper()


def frame(text):
    """One masked client text frame."""
    data = text.encode()
    mask = os.urandom(4)
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    else:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def messages(buf):
    """Splits complete server frames off `buf` (unmasked, unfragmented text): (texts, rest)."""
    out = []
    while len(buf) >= 2:
        n, off = buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, off = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, off = struct.unpack("!Q", buf[2:10])[0], 10
        if len(buf) < off + n:
            break
        if buf[0] & 0x0F == 0x8:
            raise SystemExit(f"server closed a session: {buf[off:off + n]!r}")
        out.append(buf[off:off + n].decode())
        buf = buf[off + n:]
    return out, buf


class Session:
    """One client: upgrade -> greeting [-> AUTH -> OPEN]. `feed` returns True when done."""

    def __init__(self):
        self.sock = socket.create_connection((host, port))
        self.buf = b""
        self.upgraded = False
        self.step = "greeting"
        key = base64.b64encode(os.urandom(16)).decode()
        path = "/ws2" if opt.ws2 else "/ws1"
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def feed(self):
        chunk = self.sock.recv(4096)
        if not chunk:
            raise SystemExit("server closed a connection")
        self.buf += chunk
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            if not self.buf.startswith(b"HTTP/1.1 101"):
                raise SystemExit(f"upgrade refused: {self.buf[:end]!r}")
            self.upgraded, self.buf = True, self.buf[end + 4:]
        texts, self.buf = messages(self.buf)
        for t in texts:
            self.on_text(t)
        return self.step == "done"

    def on_text(self, t):
        if opt.ws2:
            m = json.loads(t)
            ok = m.get("type") == "+"
            args = m.get("args")
            if self.step == "greeting" and ok and isinstance(args, list) and args[0] == "AUTH0":
                return self.greeted(args[1])
            cmd = m.get("command")
        else:
            f = t.split(";")
            ok = f[0] == "+"
            if self.step == "greeting" and ok and f[1] == "AUTH0":
                return self.greeted(f[2])
            cmd = f[1] if len(f) > 1 else ""
            cmd = "AUTH" if cmd == "AUTH1" else cmd
        if self.step == "auth" and cmd == "AUTH":
            if not ok:
                raise SystemExit(f"login refused: {t}")
            self.send_cmd("OPEN")
            self.step = "open"
        elif self.step == "open" and cmd == "OPEN":
            if not ok:
                raise SystemExit(f"OPEN refused: {t}")
            self.step = "done"

    def greeted(self, sid):
        if not opt.login:
            self.step = "done"
            return
        self.send_cmd("AUTH", sid, credential(sid))
        self.step = "auth"

    def send_cmd(self, name, sid=None, crypto=None):
        if opt.ws2:
            args = {"iv": sid, "crypto": crypto} if name == "AUTH" else None
            text = json.dumps({"type": "CMD", "command": name, "args": args})
        else:
            text = f"C;{name}" + (f";{sid};{crypto}" if name == "AUTH" else "")
        self.sock.sendall(frame(text))


def rss_kib():
    for line in open(f"/proc/{opt.pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])


def anon_kib():
    try:
        for line in open(f"/proc/{opt.pid}/smaps_rollup"):
            if line.startswith("Anonymous:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


before, before_anon = rss_kib(), anon_kib()
started = time.monotonic()
sessions = []
if opt.seq:
    for _ in range(opt.n):
        s = Session()
        while not s.feed():
            pass
        sessions.append(s)
else:
    sel = selectors.DefaultSelector()
    for _ in range(opt.n):
        s = Session()
        s.sock.setblocking(False)
        sel.register(s.sock, selectors.EVENT_READ, s)
        sessions.append(s)
    pending = opt.n
    while pending:
        for key, _ in sel.select(timeout=30):
            try:
                done = key.data.feed()
            except BlockingIOError:
                continue
            if done:
                sel.unregister(key.fileobj)
                pending -= 1
elapsed = time.monotonic() - started
time.sleep(opt.settle)
after, after_anon = rss_kib(), anon_kib()
kind = ("ws2" if opt.ws2 else "ws1") + (" logged-in+open" if opt.login else " greeted")
mode = "one by one" if opt.seq else "all at once"
print(
    f"{opt.n} idle {kind} sessions ({mode}, {elapsed:.1f} s): server RSS {before} KiB -> "
    f"{after} KiB, {(after - before) / opt.n:.2f} KiB/session "
    f"(anonymous {(after_anon - before_anon) / opt.n:.2f} KiB/session)"
)
sys.stdout.flush()
if os.environ.get("IDLE_RSS_HOLD"):
    # Keep the sessions open for inspection (e.g. /proc/PID/smaps) until interrupted.
    try:
        time.sleep(float(os.environ["IDLE_RSS_HOLD"]))
    except KeyboardInterrupt:
        pass
