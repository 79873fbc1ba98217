#!/usr/bin/env bash
# Runs every load scenario against a freshly started vscp-websocksrv and writes one JSON summary
# per scenario to $OUT (default loadtest/results-<date>.jsonl), the human summaries to stdout.
#
#   loadtest/run-all.sh            full run (release build, ~19,000 sessions, about 3 minutes)
#   loadtest/run-all.sh --smoke    small sizes on a debug build, and checks that each scenario
#                                  produced sane figures (exit 1 otherwise); .ci/run uses this
#
# Needs Mosquitto (apt-get install mosquitto): the fan-out runs against its websocket listener
# too, and the ingest scenario goes through the server's MQTT bridge to it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODE=full
[[ "${1:-}" == "--smoke" ]] && MODE=smoke

if [[ $MODE == smoke ]]; then
    PROFILE=debug; BUILD=(cargo build)
    STORM_CLIENTS=400; STORM_RATE=400; IDLE=500; FAN_P=1; FAN_S=10; FAN_RATE=500; FAN_SECS=3
    INGEST_RATE=200; INGEST_SECS=3; RUN_TIMEOUT=${RUN_TIMEOUT:-180}
else
    PROFILE=release; BUILD=(cargo build --release)
    STORM_CLIENTS=${STORM_CLIENTS:-10000}; STORM_RATE=${STORM_RATE:-5000}
    IDLE=${IDLE:-19000}; FAN_P=${FAN_P:-2}; FAN_S=${FAN_S:-100}; FAN_RATE=${FAN_RATE:-1000}
    FAN_SECS=${FAN_SECS:-5}; INGEST_RATE=${INGEST_RATE:-5000}; INGEST_SECS=${INGEST_SECS:-10}
fi
OUT=${OUT:-$ROOT/loadtest/results-$(date -u +%Y%m%d-%H%M%S)-$MODE.jsonl}

command -v mosquitto >/dev/null 2>&1 || [[ -x /usr/sbin/mosquitto ]] || {
    echo "mosquitto not found: apt-get install mosquitto" >&2; exit 1; }
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

echo "== building ($PROFILE)"
"${BUILD[@]}" -p vscp-websocksrv -p vscp-loadtest
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"
SERVER="$BIN_DIR/vscp-websocksrv"
LOADGEN="$BIN_DIR/vscp-loadtest"

source "$ROOT/loadtest/lib.sh"
WS_PORT=$(free_port); M_PORT=$(free_port); BROKER_PORT=$(free_port); TCP_PORT=$(free_port)

# The broker the bridge publishes to (plain MQTT, loopback only).
cat > "$WORK/mosquitto.conf" <<CONF
listener $BROKER_PORT 127.0.0.1
allow_anonymous true
persistence false
log_dest none
set_tcp_nodelay true
CONF
"$MOSQUITTO" -c "$WORK/mosquitto.conf" &
PIDS+=($!)

# The server: sample users and key, room for 19,000 sessions, the tcp/ip link interface on its
# own free port (the fan-out runs over it beside ws1), the bridge publishing every event as JSON
# at QoS 0 to vscp/<guid>/<class>/<type>/<nodeid>.
cat > "$WORK/websocksrv.json" <<JSON
{
  "interface": "127.0.0.1:$WS_PORT",
  "tcpip-interface": "tcp://127.0.0.1:$TCP_PORT",
  "metrics-interface": "127.0.0.1:$M_PORT",
  "key-file": "$ROOT/deploy/vscp.key",
  "path-users": "$ROOT/deploy/users.json",
  "max-clients": 20000,
  "logging": {"console-log-level": "warn"},
  "mqtt": {
    "host": "127.0.0.1", "port": $BROKER_PORT, "clientid": "websocksrv-loadtest",
    "bcleansession": true,
    "publish": [ { "topic": "vscp/{{guid}}/{{class}}/{{type}}/{{nodeid}}", "qos": 0, "format": "json" } ]
  }
}
JSON
# Memory per session is read as the server's RSS growth, so each idle run gets a fresh server
# (memory freed by earlier runs would be reused and hide the cost).
SERVER_PID=""
start_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    "$SERVER" --config "$WORK/websocksrv.json" >> "$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=($SERVER_PID)
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$M_PORT/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$WORK/server.log"; echo "server not ready" >&2; exit 1
}
start_server

LG=("$LOADGEN" --addr "127.0.0.1:$WS_PORT")
FAN_TCP=(--dialect ws1,tcp --tcp-addr "127.0.0.1:$TCP_PORT")
QUIET=(); [[ $MODE == smoke ]] && QUIET=(--quiet)
run() {  # run NAME ARGS...: human summary to stdout, JSON appended to $OUT
    local name=$1; shift
    echo "== $name: vscp-loadtest $*"
    # Bounded, so a stuck run fails the script instead of hanging it.
    timeout "${RUN_TIMEOUT:-600}" "${LG[@]}" "${QUIET[@]}" --json-out "$WORK/$name.json" "$@"
    cat "$WORK/$name.json" >> "$OUT"
}

echo "machine: $(nproc) cores, $(uname -r); results: $OUT"
: > "$OUT"
run storm storm --clients "$STORM_CLIENTS" --rate "$STORM_RATE" --concurrency 1000
if [[ $MODE == smoke ]]; then
    # The ws2 path once: log-in replies and NOOP probes in REF's JSON layout.
    start_server
    run idle idle --sessions "$IDLE" --rate 2000 --concurrency 500 --server-pid "$SERVER_PID" --hold 5 --settle 3 --dialect ws2
else
    start_server
    run idle idle --sessions "$IDLE" --rate 2000 --concurrency 500 --server-pid "$SERVER_PID" --hold 5 --settle 3
    start_server
    run idle-ws2 idle --sessions "$IDLE" --rate 2000 --concurrency 500 --server-pid "$SERVER_PID" --hold 5 --settle 3 --dialect ws2
fi
start_server
if [[ $MODE == smoke ]]; then
    run fanout fanout --publishers $FAN_P --subscribers $FAN_S --rate $FAN_RATE --duration $FAN_SECS --against both "${FAN_TCP[@]}" --server-pid $SERVER_PID --metrics "127.0.0.1:$M_PORT"
else
    run fanout fanout --publishers $FAN_P --subscribers $FAN_S --rate $FAN_RATE --duration $FAN_SECS --against both "${FAN_TCP[@]}" --sweep --server-pid $SERVER_PID --metrics "127.0.0.1:$M_PORT"
fi
run ingest ingest --broker "127.0.0.1:$BROKER_PORT" --topic 'vscp/#' --clients 4 --rate $INGEST_RATE --duration $INGEST_SECS
if [[ $MODE == smoke ]]; then
    # As fast as acknowledged, through the bridge and then straight to a Mosquitto the generator
    # starts (websockets, QoS 1), with the server's own counters (about 10 s). The full-size
    # comparison is loadtest/ingest.sh.
    run ingest-both ingest --broker "127.0.0.1:$BROKER_PORT" --topic 'vscp/#' --clients 2 --rate 0 --window 8 --duration 2 --against both --metrics "127.0.0.1:$M_PORT" --server-pid "$SERVER_PID" --broker-pid "${PIDS[0]}"
fi

if [[ $MODE == smoke ]]; then
    # Sanity, not speed: every client got in, nothing was lost at these low rates, every held
    # session still answered, the comparison ran against both, the bridge delivered everything.
    python3 - "$WORK" "$STORM_CLIENTS" "$IDLE" <<'PY'
import json, sys
w, storm_n, idle_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
j = lambda n: json.load(open(f"{w}/{n}.json"))
s, i, f, g = j("storm"), j("idle"), j("fanout"), j("ingest")
bad = []
if s["opened"] != storm_n: bad.append(f"storm: {s['opened']} of {storm_n} opened {s['errors']}")
if i["alive_after_hold"] != idle_n: bad.append(f"idle: {i['alive_after_hold']} of {idle_n} alive")
if not i["server_bytes_per_session"]: bad.append("idle: no memory figure")
runs = {r["dialect"]: r for r in f["runs"]}
for t in ("ws1", "tcp", "mqtt-ws"):
    r = runs.get(t)
    if r is None: bad.append(f"fanout: no {t} run"); continue
    if r["lost"] != 0 or r["deliveries_received"] == 0 or r["unparsed"] != 0 or r["negative_acks"] != 0:
        bad.append(f"fanout {t}: {r['deliveries_received']} of {r['deliveries_expected']}, {r['unparsed']} unparsed, {r['negative_acks']} refused")
if not f.get("ratio_delivered_vscp_over_mosquitto"): bad.append("fanout: no ratio")
if not (f.get("dialects_versus_first") or {}).get("tcp", {}).get("ratio_delivered"): bad.append("fanout: no tcp : ws1 ratio")
if g["lost"] != 0 or g["received_at_subscriber"] == 0: bad.append(f"ingest: {g['received_at_subscriber']} of {g['events_sent']}")
# Windowed ingest, both sides: every event answered, something arrived, nothing lost on the
# direct path, and the server's counters add up (what it accepted it published or dropped; a
# server that drops under this load is the bug of issue 12, not a smoke failure). The bridge
# counts its publishes with a lag (see loadtest/src/metrics.rs), hence the slack.
b = j("ingest-both")
sides = {r["side"]: r for r in b["sides"]}
for name in ("server", "broker"):
    r = sides.get(name)
    if r is None: bad.append(f"ingest-both: no {name} side"); continue
    if r["events_sent"] == 0 or r["unanswered"] != 0 or r["negative_acks"] != 0 or r["unparsed"] != 0 or r["received_at_subscriber"] == 0:
        bad.append(f"ingest-both {name}: sent {r['events_sent']}, unanswered {r['unanswered']}, negative {r['negative_acks']}, unparsed {r['unparsed']}, received {r['received_at_subscriber']}")
if "broker" in sides and sides["broker"]["lost"] != 0: bad.append(f"ingest-both broker: {sides['broker']['lost']} lost")
m = sides.get("server", {}).get("server_metrics") or {}
if not m: bad.append("ingest-both: no server metrics")
elif m["accepted"] != sides["server"]["acked"] or abs(m["published"] + m["dropped"] - m["accepted"]) > max(100, m["accepted"] // 100):
    bad.append(f"ingest-both server metrics do not add up: {m}, acked {sides['server']['acked']}, received {sides['server']['received_at_subscriber']}")
if not b.get("ratio_received_per_s_server_over_broker"): bad.append("ingest-both: no ratio")
for b in bad: print("FAIL", b)
sys.exit(1 if bad else 0)
PY
    echo "== load-test smoke passed"
fi
