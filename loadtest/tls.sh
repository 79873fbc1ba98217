#!/usr/bin/env bash
# Connect storm and idle memory over TLS (wss://) beside the same over plain ws://, one server
# binary, a fresh server per measurement (docs/BENCHMARKS.md "TLS").
#
#   loadtest/tls.sh SERVER LOADGEN [--clients N] [--rate R] [--idle N]
#
# A throw-away CA and a P-256 certificate for 127.0.0.1 are made with openssl; the generator
# trusts that CA (`--tls-ca`). Settings as run-all.sh (sample users and key, default shards,
# max-clients 20000), without the MQTT bridge. JSON summaries go to loadtest/results-tls-<date>.jsonl.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=loadtest/lib.sh
source "$ROOT/loadtest/lib.sh"
[[ $# -ge 2 ]] || { sed -n '2,9p' "$0"; exit 2; }
SERVER=$(realpath "$1"); LOADGEN=$(realpath "$2"); shift 2
CLIENTS=5000; RATE=5000; IDLE=5000
while [[ $# -gt 0 ]]; do
    case $1 in
        --clients) CLIENTS=$2; shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
OUT="$ROOT/loadtest/results-tls-$(date +%Y%m%d-%H%M%S).jsonl"
SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
# lib.sh's cleanup removes $WORK.
trap 'stop_server; cleanup' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=loadtest CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$WORK/san.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/san.ext" -out "$WORK/server.crt" 2>/dev/null
cat "$WORK/server.key" "$WORK/server.crt" > "$WORK/server.pem"

start_server() {  # start_server ws|wss
    stop_server
    WS_PORT=$(free_port); M_PORT=$(free_port)
    cat > "$WORK/websocksrv.json" <<JSON
{
  "interface": "$1://127.0.0.1:$WS_PORT",
  "metrics-interface": "127.0.0.1:$M_PORT",
  "tcpip-interface": "",
  "ssl_certificate": "$WORK/server.pem",
  "key-file": "$ROOT/deploy/vscp.key",
  "path-users": "$ROOT/deploy/users.json",
  "max-clients": 20000,
  "logging": {"console-log-level": "warn"}
}
JSON
    "$SERVER" --config "$WORK/websocksrv.json" >> "$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$M_PORT/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$WORK/server.log"; echo "server not ready" >&2; exit 1
}

for scheme in ws wss; do
    TLS=(); [[ $scheme == wss ]] && TLS=(--tls-ca "$WORK/ca.pem")
    start_server "$scheme"
    echo "== $scheme storm: $CLIENTS clients at $RATE/s"
    timeout 600 "$LOADGEN" --addr "127.0.0.1:$WS_PORT" "${TLS[@]}" --quiet --json-out "$WORK/s.json" \
        storm --clients "$CLIENTS" --rate "$RATE" --concurrency 1000
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["scheme"]=sys.argv[2]; print(json.dumps(d))' \
        "$WORK/s.json" "$scheme" >> "$OUT"
    start_server "$scheme"
    echo "== $scheme idle: $IDLE authenticated sessions"
    timeout 600 "$LOADGEN" --addr "127.0.0.1:$WS_PORT" "${TLS[@]}" --quiet --json-out "$WORK/i.json" \
        idle --sessions "$IDLE" --rate 2000 --concurrency 500 --server-pid "$SERVER_PID" --hold 5 --settle 3
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["scheme"]=sys.argv[2]; print(json.dumps(d))' \
        "$WORK/i.json" "$scheme" >> "$OUT"
done
echo "results: $OUT"
