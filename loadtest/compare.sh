#!/usr/bin/env bash
# Before/after performance comparison of two vscp-websocksrv binaries, in one run, with one
# load generator: fan-out (fixed rate and saturated), memory per idle session, connect storm.
#
#   loadtest/compare.sh [options] BEFORE_SERVER AFTER_SERVER LOADGEN
#
# Every measurement runs against a freshly started server on free loopback ports, on the
# settings loadtest/run-all.sh uses (sample users and key, default shards, max-clients 20000),
# identical for both binaries. Each measurement is repeated --runs times; within a round the two
# binaries run back to back and the order alternates from round to round (B A, A B, B A, ...) so
# drift on the shared machine does not favour one side. The JSON summaries of vscp-loadtest
# (--json) are collected in --out, then one table is printed:
#   metric | before (each run, median) | after (each run, median) | after/before (medians)
#
# Options (defaults in brackets; --quick sizes in braces):
#   --runs N            repetitions of every measurement per binary [3] {3}
#   --idle-sessions N   authenticated idle sessions for the memory figure [5000] {500}
#   --storm-clients N   connect storm clients [5000] {500}
#   --storm-rate R      connect storm logins started per second [5000] {1000}
#   --fan-pub P         fan-out publishers [2] {2}
#   --fan-sub S         fan-out subscribers [100] {20}
#   --fan-rate R        fixed-rate fan-out, events/s offered [1000] {500}
#   --sat-rate R        saturated fan-out, events/s offered; 0 = as fast as accepted [0] {0}
#                       (the server then drops from full queues: overload behaviour, noisy on a
#                       shared 2-core machine; compare medians of several runs, or use --runs 5)
#   --fan-secs D        seconds of publishing per fan-out run [5] {2}
#   --only LIST         comma-separated subset of fanout,saturated,idle,storm [all]
#   --timeout S         limit per vscp-loadtest run, seconds [300]
#   --out FILE          JSON lines, one per run [loadtest/results-compare-<date>.jsonl]
#   --quick             the small sizes in braces (a check that everything works, ~2 minutes)
#
# Needs python3, curl, ss and timeout; nothing is built (pass release binaries).
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-2}"; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=3; IDLE=5000; STORM_CLIENTS=5000; STORM_RATE=5000
FAN_P=2; FAN_S=100; FAN_RATE=1000; SAT_RATE=0; FAN_SECS=5
ONLY=fanout,saturated,idle,storm; RUN_TIMEOUT=300; OUT=""
QUICK=0; ARGS=()
# --quick first, so explicit sizes given with it still win.
for a in "$@"; do
    if [[ $a == --quick ]]; then
        QUICK=1; IDLE=500; STORM_CLIENTS=500; STORM_RATE=1000; FAN_S=20; FAN_RATE=500; FAN_SECS=2
    fi
done
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) shift ;;
        --runs) RUNS=$2; shift 2 ;;
        --idle-sessions) IDLE=$2; shift 2 ;;
        --storm-clients) STORM_CLIENTS=$2; shift 2 ;;
        --storm-rate) STORM_RATE=$2; shift 2 ;;
        --fan-pub) FAN_P=$2; shift 2 ;;
        --fan-sub) FAN_S=$2; shift 2 ;;
        --fan-rate) FAN_RATE=$2; shift 2 ;;
        --sat-rate) SAT_RATE=$2; shift 2 ;;
        --fan-secs) FAN_SECS=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --timeout) RUN_TIMEOUT=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) usage 0 ;;
        -*) echo "unknown option $1" >&2; usage ;;
        *) ARGS+=("$1"); shift ;;
    esac
done
[[ ${#ARGS[@]} -eq 3 ]] || usage
for n in RUNS IDLE STORM_CLIENTS STORM_RATE FAN_P FAN_S FAN_RATE SAT_RATE FAN_SECS RUN_TIMEOUT; do
    [[ ${!n} =~ ^[0-9]+$ ]] || { echo "$n must be a whole number, not '${!n}'" >&2; exit 2; }
done
(( RUNS >= 1 )) || { echo "--runs must be at least 1" >&2; exit 2; }
abs() { [[ $1 == /* ]] && echo "$1" || echo "$PWD/$1"; }
BEFORE=$(abs "${ARGS[0]}"); AFTER=$(abs "${ARGS[1]}"); LOADGEN=$(abs "${ARGS[2]}")
for b in "$BEFORE" "$AFTER" "$LOADGEN"; do
    [[ -x $b ]] || { echo "not an executable: $b" >&2; exit 2; }
done
for t in python3 curl ss timeout; do
    command -v "$t" >/dev/null || { echo "$t not found" >&2; exit 2; }
done
OUT=${OUT:-$ROOT/loadtest/results-compare-$(date -u +%Y%m%d-%H%M%S).jsonl}
OUT=$(abs "$OUT")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vscp-compare.XXXXXX")
SERVER_PID=""   # the one server this script runs at a time
LG_PID=""       # the running `timeout vscp-loadtest ...`
stop_pid() {    # stop_pid PID: TERM, up to 10 s, then KILL; only a process this script started
    local pid=$1
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$LG_PID"; LG_PID=""
    stop_pid "$SERVER_PID"; SERVER_PID=""
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nobody listens on: the kernel picks one, and since glommio binds with SO_REUSEPORT a
# stale server on it would silently share the connections, so it is checked again with ss.
free_port() {
    local port
    for _ in 1 2 3 4 5; do
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        if [[ -z $(ss -Hltn "sport = :$port") ]]; then echo "$port"; return 0; fi
    done
    echo "no free port found" >&2; return 1
}

# start_server BINARY NAME: a fresh server on new free ports, on run-all.sh's settings (without
# the MQTT bridge: no broker is needed, and /readyz would wait for it); sets SERVER_PID and ADDR.
start_server() {
    local bin=$1 name=$2 ws_port m_port
    stop_pid "$SERVER_PID"; SERVER_PID=""
    ws_port=$(free_port); m_port=$(free_port)
    [[ $ws_port != "$m_port" ]] || m_port=$(free_port)
    cat > "$WORK/$name.json" <<JSON
{
  "interface": "127.0.0.1:$ws_port",
  "tcpip-interface": "",
  "metrics-interface": "127.0.0.1:$m_port",
  "key-file": "$ROOT/deploy/vscp.key",
  "path-users": "$ROOT/deploy/users.json",
  "max-clients": 20000,
  "logging": {"console-log-level": "warn"}
}
JSON
    "$bin" --config "$WORK/$name.json" > "$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 150); do
        if curl -sf "http://127.0.0.1:$m_port/readyz" >/dev/null 2>&1; then
            # Every listener on the port must be this server's (one per shard, SO_REUSEPORT).
            local listeners ours
            listeners=$(ss -Hltnp "sport = :$ws_port" | wc -l)
            ours=$(ss -Hltnp "sport = :$ws_port" | grep -c "pid=$SERVER_PID," || true)
            if (( listeners == 0 || listeners != ours )); then
                ss -Hltnp "sport = :$ws_port" >&2
                echo "port $ws_port: $listeners listeners, $ours of them server $SERVER_PID" >&2
                return 1
            fi
            ADDR=127.0.0.1:$ws_port
            METRICS_ADDR=127.0.0.1:$m_port
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    tail -20 "$WORK/$name.log" >&2
    echo "$bin did not become ready" >&2
    return 1
}

# measure KEY SIDE ROUND LOADGEN-ARGS...: fresh server of SIDE, one bounded vscp-loadtest run
# (@PID in the arguments becomes the server's pid, @METRICS its metrics address), its JSON appended to $OUT with the labels.
FAILED=0
measure() {
    local key=$1 side=$2 round=$3 bin name rc=0 t0 t1
    shift 3
    [[ $side == before ]] && bin=$BEFORE || bin=$AFTER
    name=$key-$side-$round
    if ! start_server "$bin" "$name"; then
        FAILED=$((FAILED + 1))
        echo "{\"compare\":{\"key\":\"$key\",\"side\":\"$side\",\"round\":$round,\"ok\":false,\"why\":\"server did not start\"}}" >> "$OUT"
        return 0
    fi
    local args=("${@//@PID/$SERVER_PID}")
    args=("${args[@]//@METRICS/$METRICS_ADDR}")
    t0=$(date +%s.%N)
    timeout -k 10 "$RUN_TIMEOUT" "$LOADGEN" --addr "$ADDR" --quiet --json "${args[@]}" \
        > "$WORK/$name.out" 2> "$WORK/$name.err" &
    LG_PID=$!
    wait "$LG_PID" || rc=$?
    LG_PID=""
    t1=$(date +%s.%N)
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "  server $side exited during the run" >&2
        [[ $rc != 0 ]] || rc=99
    fi
    stop_pid "$SERVER_PID"; SERVER_PID=""
    python3 - "$WORK/$name.out" "$key" "$side" "$round" "$rc" "$t0" "$t1" >> "$OUT" <<'PY' ||
import json, sys
path, key, side, rnd, rc, t0, t1 = sys.argv[1:]
label = {"key": key, "side": side, "round": int(rnd), "rc": int(rc),
         "seconds": round(float(t1) - float(t0), 1)}
try:
    out = json.loads(open(path).read())
except ValueError:
    out = None
label["ok"] = rc == "0" and out is not None
print(json.dumps({"compare": label, "result": out}))
sys.exit(0 if label["ok"] else 1)
PY
        { [[ $rc != 0 ]] || rc=98; }  # no JSON summary
    printf '  %-10s %-6s round %d: %5.1f s%s\n' "$key" "$side" "$round" \
        "$(awk "BEGIN{print $t1 - $t0}")" "$([[ $rc == 0 ]] || echo "  FAILED (rc $rc)")"
    if [[ $rc != 0 ]]; then
        FAILED=$((FAILED + 1))
        tail -5 "$WORK/$name.err" | sed 's/^/    /' >&2
        tail -5 "$WORK/$name.log" | sed 's/^/    server: /' >&2
    fi
}

wanted() { [[ ",$ONLY," == *",$1,"* ]]; }
# Each measurement: --runs rounds, both binaries per round, the order alternating.
compare() {
    local key=$1 r
    shift
    wanted "$key" || return 0
    for r in $(seq "$RUNS"); do
        if (( r % 2 == 1 )); then
            measure "$key" before "$r" "$@"; measure "$key" after "$r" "$@"
        else
            measure "$key" after "$r" "$@"; measure "$key" before "$r" "$@"
        fi
    done
}

START=$(date +%s)
: > "$OUT"
python3 - >> "$OUT" <<PY
import json, sys
print(json.dumps({"compare": {"key": "setup", "before": "$BEFORE", "after": "$AFTER",
  "loadgen": "$LOADGEN", "runs": $RUNS, "quick": bool($QUICK), "idle_sessions": $IDLE,
  "storm_clients": $STORM_CLIENTS, "storm_rate": $STORM_RATE, "fan_publishers": $FAN_P,
  "fan_subscribers": $FAN_S, "fan_rate": $FAN_RATE, "sat_rate": $SAT_RATE,
  "fan_secs": $FAN_SECS, "cores": $(nproc), "kernel": "$(uname -r)",
  "loadavg_at_start": "$(cut -d' ' -f1-3 /proc/loadavg)", "started": "$(date -u +%FT%TZ)"}}))
PY
{
    echo "before:  $BEFORE ($(sha256sum "$BEFORE" | cut -c1-12))"
    echo "after:   $AFTER ($(sha256sum "$AFTER" | cut -c1-12))"
    echo "loadgen: $LOADGEN"
    echo "machine: $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "results: $OUT"
} >&2

compare fanout    fanout --publishers "$FAN_P" --subscribers "$FAN_S" --rate "$FAN_RATE" \
                         --duration "$FAN_SECS" --server-pid @PID --metrics @METRICS
compare saturated fanout --publishers "$FAN_P" --subscribers "$FAN_S" --rate "$SAT_RATE" \
                         --duration "$FAN_SECS" --server-pid @PID --metrics @METRICS
compare idle      idle --sessions "$IDLE" --rate 2000 --concurrency 500 --server-pid @PID \
                       --hold 5 --settle 3
compare storm     storm --clients "$STORM_CLIENTS" --rate "$STORM_RATE" --concurrency 1000

ELAPSED=$(( $(date +%s) - START ))
echo >&2
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); took ${ELAPSED} s" >&2
echo
python3 "$ROOT/loadtest/compare_table.py" "$OUT"
if (( FAILED > 0 )); then
    echo "$FAILED run(s) failed; see the messages above and $OUT" >&2
    exit 1
fi
