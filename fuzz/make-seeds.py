#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/seeds/TARGET/) from the spec's test vectors
(shared/spec/vectors.md, tcp.md) and the inputs of the unit and integration tests, so the fuzzer
starts from valid sessions instead of from nothing. Rerun after changing it; the output is
deterministic. Usage: python3 fuzz/make-seeds.py"""
import hashlib
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEEDS = os.path.join(HERE, "seeds")
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def write(target, items):
    d = os.path.join(SEEDS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for item in items:
        if isinstance(item, str):
            item = item.encode()
        name = hashlib.sha1(item).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(item)


def frame(first, payload, masked=True):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    m = 0x80 if masked else 0
    if n < 126:
        h = bytes([first, m | n])
    elif n <= 0xFFFF:
        h = bytes([first, m | 126]) + struct.pack(">H", n)
    else:
        h = bytes([first, m | 127]) + struct.pack(">Q", n)
    if not masked:
        return h + payload
    return h + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


E2S = "96,10,6,17,2024-03-01T12:34:56Z,123456789,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00,0x88,0x82,0x09,0xC4"
E2J = '{\n"vscpHead": 96,\n"vscpObId":  17,\n"vscpDateTime": "2024-03-01T12:34:56Z",\n"vscpTimeStamp": 123456789,\n"vscpClass": 10,\n"vscpType": 6,\n"vscpGuid": "FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00",\n"vscpData": [136,130,9,196],\n"vscpNote": ""\n}'
E3J = '{\n"vscpHead": 0,\n"vscpObId":  0,\n"vscpDateTime": "",\n"vscpTimeStamp": 5000,\n"vscpClass": 20,\n"vscpType": 3,\n"vscpGuid": "00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00",\n"vscpData": [],\n"vscpNote": ""\n}'
E2X = '<event vscpHead="96" vscpObId="17" vscpDateTime="2024-03-01T12:34:56Z" vscpTimeStamp="123456789" vscpClass="10" vscpType="6" vscpGuid="FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00" vscpData="0x88,0x82,0x09,0xC4" />'
M1 = '{"measurement":{"sensorindex":0,"subzone":0,"unit":1,"value":25.0,"zone":0},"vscpClass":10,"vscpData":[136,130,9,196],"vscpDateTime":"2024-03-01T12:34:56Z","vscpGuid":"FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00","vscpHead":96,"vscpNote":"","vscpObId":17,"vscpTimeStamp":123456789,"vscpType":6}'
E4 = '{"vscpClass":20,"vscpType":3,"vscpDateTime":"2020-01-27T20:47:55Z","vscpData":[1,2,3]}'
E4S = '{"class":20,"type":3,"datetime":"2020-01-27T20:47:55Z","data":[1,2,3]}'
B_E2 = bytes.fromhex("0000 0060 075BCD15 07E803010C2238 000A 0006 FFFFFFFFFFFFFFF50000000000020000 0004 888209C4 66D4".replace(" ", ""))
B_MIN = bytes.fromhex("00" "000000000000000000000000000000" "1400030000000000000000000000000000000000" "07B5".replace(" ", ""))
STRINGS = [
    E2S,
    "0,30,5,0,2000-01-01T12:33:14,0,FF:FF:FF:FF:FF:FF:FF:FE:00:26:55:CA:00:06:00:00,0x01,0x01",
    "0,20,3,0,,5000,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00",
    "0x60,10,6,17,2024-03-01T12:34:56Z,123456789,FF:FF:FF:FF:FF:FF:FF:F5:00:00:00:00:00:02:00:00,136,0x82,9,0xC4",
    "0,20,3,0,,0,,1,2,3",
    "0,20,3,,,,-",
    "0,20,3,0,,0",
    "0,10,6,0,0,0,-",
    "0,20,3,0,,1733386445000000000,-,1",
    "0,1060,0,0,,0,-,0x01,0x02,0x03,0x01,0x40,0x35,0x80,0,0,0,0,0",
]
FILTERS = [
    ("0,0,0,-", "0,0,0,-"),
    ("0,10,0,-", "0,0xFFFF,0,-"),
    ("0,10,6,-", "0,0xFFFF,0xFFFF,-"),
    ("0,0,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01", "0,0,0,00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:FF"),
    ("3,0,0,-", "7,0,0,-"),
    ("0,0x200,0,-", "0,0xFE00,0,-"),
    ("0,0xFFFF,0xFFFF,-", "0,0,0,-"),
]
F4_WS2 = '{"filter_priority":0,"filter_class":10,"filter_type":6,"filter_guid":"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00","mask_priority":0,"mask_class":65535,"mask_type":65535,"mask_guid":"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"}'


def ws_frame():
    out = []
    for ctl in (0x01, 0x81, 0x12, 0x03):
        c = bytes([ctl])
        out.append(c + frame(0x81, "C;NOOP"))
        out.append(c + frame(0x81, "E;" + E2S) + frame(0x89, "hi") + frame(0x8A, ""))
        out.append(c + frame(0x01, "C;NO") + frame(0x89, "p") + frame(0x00, "O") + frame(0x80, "P"))
        out.append(c + frame(0x01, b"\xe2\x82") + frame(0x80, b"\xac"))
        out.append(c + frame(0x82, bytes([0xFF, 0x00])) + frame(0x02, b"ab") + frame(0x80, b"cd"))
        out.append(c + frame(0x81, "x" * 300) + frame(0x88, b"\x03\xe8bye"))
        out.append(c + frame(0x88, b"") + frame(0x88, b"\x03\xed"))
        out.append(c + frame(0x81, b"hi", masked=False))
        out.append(c + frame(0xC1, "x") + frame(0x83, "x") + frame(0x09, "p"))
    out.append(b"\x02" + frame(0x82, bytes(70000)))
    return out


def ws_upgrade():
    def req(path, extra="", method="GET"):
        return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n")
    return [
        req("/ws1"),
        req("/ws2", "Sec-WebSocket-Protocol: chat, vscp-json\r\n"),
        req("/ws1", "Sec-WebSocket-Protocol: vscp-std\r\nOrigin: http://example.com\r\n"),
        req("/nope"),
        req("/ws1", method="POST"),
        req("/runCase?case=1&agent=kosoku"),
        "GET /ws1 HTTP/1.1\r\nHost: x\r\n\r\n",
        req("/ws1") + "\x81",
        req("/ws1", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"),
    ]


def session(first, lines, sep="\n"):
    return bytes([first]) + sep.join(lines).encode()


W1 = [
    "C;OPEN", "C;VERSION",
    "C;AUTH;00112233445566778899AABBCCDDEEFF;42273E9F3440DABA5B0CC05242F742B2",
    "C;SF;0,10,6,-;0,0xFFFF,0xFFFF,-", "C;OPEN", "E;0,30,5,0,,0,-,1,2,3", "E;" + E2S,
    "C;noop", "c;NOOP", "C;FOO", "C;CLOSE", "C;CHALLENGE", "C;CLRQ", "C;COPYRIGHT",
    "C;SETFILTER;0,0x200,0,-;0,0xFE00,0,-", "C;", "+;NOOP", "E;0,20,3,0,,0", "E;0,0,3,,,,-",
    "E;0,1028,1,,,,-", "E;0x40,20,3,,,,-,1,2,3",
]
W2 = [
    '{"type":"cmd","command":"auth","args":{"iv":"5A475C082C80DCDF7F2DFBD976253B24","crypto":"69B1180D2F4809D39BE34E19C750107F"}}',
    '{"type":"CMD","command":"OPEN","args":null}',
    '{"type":"EVENT","event":{"vscpHead":0,"vscpClass":20,"vscpType":3,"vscpGuid":"-","vscpData":[1,2,3]}}',
    '{"type":"CMD","command":"VER","args":null}',
    '{"type":"CMD","command":"BOGUS","args":{}}',
    "not json",
    '{"type":"CMD","command":"SETFILTER","args":' + F4_WS2 + "}",
    '{"type":"EVENT","event":' + E2J.replace("\n", "") + "}",
    '{"type":"EVENT","event":' + E4 + "}",
    '{"type":"EVENT","event":' + E4S + "}",
    '{"type":"CMD","command":"CHALLENGE","args":null}',
    '{"type":"CMD","command":"CLRQ","args":null}',
    '{"type":"CMD","command":"CLOSE","args":null}',
    '{"type":"CMD","command":"COPYRIGHT","args":null}',
    '{"type":"+"}', '{"command":"NOOP"}', '{"type":"CMD","args":null}', '{"type":"CMD","command":"NOOP"}',
    '[1,2]', '{"type":7}',
]
TCP = [
    "noop", "help", "version", "wcyd", "user admin", "pass secret", "send 0,20,3,,,,-,0,1,35",
    "send " + E2S, "chkdata", "retr 2", "retr", "stat", "info", "chid", "getguid",
    "setguid FF:FF:FF:FF:FF:FF:FF:F5:02:88:88:00:00:00:00:02", "sflt 0,10,6,-", "smsk 0,0xFFFF,0xFFFF,-",
    "setfilter 0,10,0,-", "setmask 0,0xFFFF,0,-", "clra", "+", "challenge", "rcvloop", "quitloop",
    "interface list", "test", "restart", "shutdown", "dm", "var", "user", "pass", "ver", "quit",
]


def main():
    write("ws_frame", ws_frame())
    write("ws_upgrade", ws_upgrade())
    write("ws1_session", [session(f, W1) for f in (0, 1, 2, 3, 4)] + [session(1, W1[3:])])
    write("ws2_session", [session(f, W2) for f in (0, 1, 2, 3, 4, 0x11)] + [session(1, W2[1:])])
    tcp = [session(f, TCP, "\r\n") for f in (0, 0x11, 0x29)]
    tcp.append(session(0, ["user admin", "pass secret", "rcvloop", "", "quitloop", "retr 1"]))
    tcp.append(bytes([0x08]) + b"user \xff\xfb\x01admin\r\n" + b"x" * 200 + b"\nnoop\n")
    write("tcp_session", tcp)
    write("event_string", STRINGS + [E2J, E3J, E4, E4S])
    write("filter", [f"{f};{m}" for f, m in FILTERS] + [F4_WS2, "null", '{"filter_class":"0x10"}'])
    users = [open(os.path.join(ROOT, "deploy/users.json")).read()]
    users.append("""{"users":[
  {"name":"admin","password":"2d1e4f91dae49cd08eaba2293e422273","rights":"admin",
   "remotes":["+127.0.0.0/24","+192.168.0.0/16"],"events":"","note":"A normal user."},
  {"name":"user","password":"8c3088f1b27432344f14d82033749797","rights":"user"},
  {"name":"l","password":"8c3088f1b27432344f14d82033749797","rights":"send-events,0x10",
   "allow-events":["20:3","10:*","*:6","TX;20;-1","RX;10;6;3","BOTH;*;*"],"filter":"0,20,0,-",
   "mask":"0,0xFFFF,0,-","remotes":"-10.0.0.0/8,+::1/128","max-priority":3}]}""")
    write("users_json", users)
    write("config", [
        open(os.path.join(ROOT, "deploy/websocksrv.json")).read(),
        "{}",
        '{"interface":"tcp://0.0.0.0:8884","url-ws1":"/a","url-ws2":"/a"}',
        '{"mqtt":{"host":"mqtts://broker:8883","subscribe":["vscp/#",{"topic":"a/b","qos":1,"format":"json"}],'
        '"publish":[{"topic":"vscp/{{guid}}/{{class}}","format":"binary"}],"reconnect":{"delay":5,"delay-max":1}}}',
        '{"in-filter":"0,10,0,-","in-mask":"0,0xFFFF,0,-","tcpip-interface":"","logging":{"file-enable":true,"file-enable-log":false}}',
    ])
    mqtt = []
    for ctl, p in [(0, E2J), (0, M1), (0, E4), (1, E2X), (2, E2S), (3, b"\x00" + B_E2), (3, b"\x00" + B_MIN),
                   (4, E2J), (4, E2X), (4, E2S), (4, b"\x00" + B_E2), (4, "  " + E4S)]:
        mqtt.append(bytes([ctl]) + (p.encode() if isinstance(p, str) else p))
    write("mqtt_payload", mqtt)


if __name__ == "__main__":
    main()
