#!/usr/bin/env bash
# The ingest comparison of issue 12 in one command: starts a Mosquitto (a plain MQTT listener for
# the server's bridge and the measuring subscriber, a websockets listener for the direct
# clients; loopback, free ports), starts vscp-websocksrv with an `mqtt` block publishing every
# event to it (and a metrics interface), runs
#
#   vscp-loadtest ingest --against both --rate 0 ...
#
# and stops what it started, by PID. The human summary goes to stdout, the JSON to $OUT (default
# loadtest/results-<date>-ingest.json).
#
#   loadtest/ingest.sh                       release build; 20 clients, as fast as acked, 8 s, QoS 1
#   BRIDGE_LINK=mqtt loadtest/ingest.sh      the bridge on the broker's plain MQTT listener
#   CLIENTS=4 SECS=2 loadtest/ingest.sh --debug       debug build (what the smoke run uses)
#   QOS=0 loadtest/ingest.sh -- --window 16  bridge at QoS 0; generator flags after --
#
# Environment: CLIENTS (20), RATE (0 = as fast as acknowledged), WINDOW (64), SECS (8), QOS (1,
# the bridge's), AGAINST (both), FORMAT (json, the bridge's payload format), THREADS (1,
# generator executors), MQTT_EXTRA (more keys for the server's mqtt block, e.g.
# '"ack-from-broker": true'), SERVER_EXTRA (more top-level server keys, e.g. '"shards": 1'), OUT, SKIP_BUILD=1 (use the binaries in the target dir as they are),
# SERVER / LOADGEN (other binaries, e.g. an older server build for a before/after pair),
# BRIDGE_LINK (ws, the default: the bridge on the broker's websockets listener, `host:
# ws://...`, the listener the direct clients use; mqtt: on its plain MQTT listener, which
# Mosquitto reads a few bytes per system call, see docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PROFILE=release; BUILD=(cargo build -q --release)
if [[ "${1:-}" == "--debug" ]]; then PROFILE=debug; BUILD=(cargo build -q); shift; fi
[[ "${1:-}" == "--" ]] && shift
EXTRA=("$@")
CLIENTS=${CLIENTS:-20}; RATE=${RATE:-0}; WINDOW=${WINDOW:-64}; SECS=${SECS:-8}; QOS=${QOS:-1}
AGAINST=${AGAINST:-both}; FORMAT=${FORMAT:-json}; THREADS=${THREADS:-1}
BRIDGE_LINK=${BRIDGE_LINK:-ws}
OUT=${OUT:-$ROOT/loadtest/results-$(date -u +%Y%m%d-%H%M%S)-ingest.json}

command -v mosquitto >/dev/null 2>&1 || [[ -x /usr/sbin/mosquitto ]] || {
    echo "mosquitto not found: apt-get install mosquitto" >&2; exit 1; }
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

if [[ -z "${SKIP_BUILD:-}" ]]; then
    echo "== building ($PROFILE)"
    "${BUILD[@]}" -p vscp-websocksrv -p vscp-loadtest
fi
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"
SERVER=${SERVER:-$BIN_DIR/vscp-websocksrv}
LOADGEN=${LOADGEN:-$BIN_DIR/vscp-loadtest}

source "$ROOT/loadtest/lib.sh"
WS_PORT=$(free_port); M_PORT=$(free_port); BROKER_PORT=$(free_port); BROKER_WS_PORT=$(free_port)

# The broker: the settings of loadtest/src/mosquitto.rs (the fan-out comparison's), so the
# subscriber may fall behind by as many messages as a server session before anything drops.
USER_LINE=""; [[ $(id -u) == 0 ]] && USER_LINE="user root"
cat > "$WORK/mosquitto.conf" <<CONF
per_listener_settings false
allow_anonymous true
persistence false
sys_interval 0
$USER_LINE
log_dest stderr
log_type error
log_type warning
connection_messages false
set_tcp_nodelay true
max_queued_messages 32000
max_queued_bytes 0
max_inflight_messages 20

listener $BROKER_PORT 127.0.0.1
protocol mqtt
max_connections -1

listener $BROKER_WS_PORT 127.0.0.1
protocol websockets
max_connections -1
CONF
"$MOSQUITTO" -c "$WORK/mosquitto.conf" 2> "$WORK/mosquitto.log" &
BROKER_PID=$!
PIDS+=("$BROKER_PID")

case "$BRIDGE_LINK" in
    mqtt) BRIDGE_HOST="\"host\": \"127.0.0.1\", \"port\": $BROKER_PORT" ;;
    ws) BRIDGE_HOST="\"host\": \"ws://127.0.0.1:$BROKER_WS_PORT/mqtt\"" ;;
    *) echo "BRIDGE_LINK is mqtt or ws, not $BRIDGE_LINK" >&2; exit 1 ;;
esac
# The server: sample key and users, the bridge publishing every event at QoS $QOS.
cat > "$WORK/websocksrv.json" <<JSON
{
  "interface": "127.0.0.1:$WS_PORT",
  "tcpip-interface": "",
  "metrics-interface": "127.0.0.1:$M_PORT",
  "key-file": "$ROOT/deploy/vscp.key",
  "path-users": "$ROOT/deploy/users.json",
  "max-clients": 1000,${SERVER_EXTRA:+ $SERVER_EXTRA,}
  "logging": {"console-log-level": "warn"},
  "mqtt": {
    $BRIDGE_HOST, "clientid": "websocksrv-ingest",
    "bcleansession": true,${MQTT_EXTRA:+ $MQTT_EXTRA,}
    "publish": [ { "topic": "vscp/{{guid}}/{{class}}/{{type}}/{{nodeid}}", "qos": $QOS, "format": "$FORMAT" } ]
  }
}
JSON
"$SERVER" --config "$WORK/websocksrv.json" > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")

wait_port() {  # wait_port PORT: until something accepts on 127.0.0.1:PORT (10 s)
    for _ in $(seq 100); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
wait_port "$BROKER_PORT" && wait_port "$BROKER_WS_PORT" || {
    cat "$WORK/mosquitto.log"; echo "mosquitto did not come up" >&2; exit 1; }
ready=""
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$M_PORT/readyz" >/dev/null 2>&1 && { ready=1; break; }
    sleep 0.1
done
[[ -n $ready ]] || { cat "$WORK/server.log"; echo "server not ready" >&2; exit 1; }

CMD=("$LOADGEN" --addr "127.0.0.1:$WS_PORT" --threads "$THREADS" --json-out "$OUT"
     ingest --against "$AGAINST" --clients "$CLIENTS" --rate "$RATE" --window "$WINDOW"
     --duration "$SECS" --broker "127.0.0.1:$BROKER_PORT" --broker-ws "127.0.0.1:$BROKER_WS_PORT"
     --broker-pid "$BROKER_PID" --topic 'vscp/#' --server-pid "$SERVER_PID"
     --metrics "127.0.0.1:$M_PORT" --bridge-qos "$QOS" ${EXTRA[@]+"${EXTRA[@]}"})
echo "== $(nproc) cores; mosquitto pid $BROKER_PID (mqtt $BROKER_PORT, ws $BROKER_WS_PORT), server pid $SERVER_PID (ws $WS_PORT, metrics $M_PORT), bridge QoS $QOS over $BRIDGE_LINK"
echo "== vscp-loadtest ${CMD[*]:1}"
timeout "${RUN_TIMEOUT:-300}" "${CMD[@]}"
echo "== JSON: $OUT"
if grep -qiE 'error|panic' "$WORK/server.log"; then
    echo "== server log (errors):"; grep -iE 'error|panic' "$WORK/server.log" | tail -5
fi
