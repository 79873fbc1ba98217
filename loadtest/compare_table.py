#!/usr/bin/env python3
"""The table of loadtest/compare.sh, from its JSON lines (so a finished run can be re-read).

    python3 loadtest/compare_table.py loadtest/results-compare-<date>.jsonl

One row per metric: every run of the BEFORE binary and their median, the same for AFTER, the
ratio of the medians (after/before) and a hint: "worse" when AFTER's median is more than 5 %
(25 % for the saturated fan-out and p99 tails, which are noisy) worse than BEFORE's worst run,
"better" when it is that much better than BEFORE's best, "~" otherwise (within the
noise the runs show). A hint, not a test: read the runs.
"""
import json
import statistics
import sys


def fanout(r):
    return r["runs"][0]


def ms(r, q):
    return r["latency_ms"][q]


# key, label, unit, value(result) -> float | None, direction (+1 higher is better, -1 lower
# is better, 0 no direction), decimals
METRICS = [
    ("fanout", "fan-out fixed: delivered/expected", "%",
     lambda r: 100.0 * fanout(r)["deliveries_received"] / max(1, fanout(r)["deliveries_expected"]), +1, 3),
    ("fanout", "fan-out fixed: deliveries/s", "/s", lambda r: fanout(r)["delivered_per_s"], +1, 0),
    ("fanout", "fan-out fixed: latency p50", "ms", lambda r: ms(fanout(r), "p50"), -1, 3),
    ("fanout", "fan-out fixed: latency p99", "ms", lambda r: ms(fanout(r), "p99"), -1, 3),
    ("fanout", "fan-out fixed: server CPU per delivery", "µs",
     lambda r: fanout(r)["target_cpu_us_per_delivery"], -1, 3),
    ("fanout", "fan-out fixed: socket writes per delivery (server's count)", "",
     lambda r: fanout(r).get("target_socket_writes_per_delivery"), -1, 3),
    ("saturated", "fan-out saturated: events sent/s", "/s", lambda r: fanout(r)["sent_per_s"], +1, 0),
    ("saturated", "fan-out saturated: deliveries/s", "/s", lambda r: fanout(r)["delivered_per_s"], +1, 0),
    ("saturated", "fan-out saturated: deliveries per server CPU-s", "/s",
     lambda r: (1e6 / fanout(r)["target_cpu_us_per_delivery"]) if fanout(r)["target_cpu_us_per_delivery"] else None, +1, 0),
    ("saturated", "fan-out saturated: socket writes per delivery (server's count)", "",
     lambda r: fanout(r).get("target_socket_writes_per_delivery"), -1, 3),
    ("saturated", "fan-out saturated: lost (dropped by full queues)", "%",
     lambda r: 100.0 * fanout(r)["loss_ratio"], 0, 2),
    ("saturated", "fan-out saturated: latency p99", "ms", lambda r: ms(fanout(r), "p99"), -1, 1),
    ("idle", "idle: server RSS per session", "KiB",
     lambda r: r["server_bytes_per_session"] / 1024.0 if r.get("server_bytes_per_session") else None, -1, 3),
    ("idle", "idle: sessions answering NOOP after the hold", "",
     lambda r: r["alive_after_hold"], +1, 0),
    ("storm", "storm: logins/s", "/s", lambda r: r["logins_per_s"], +1, 0),
    ("storm", "storm: connect->OPEN p50", "ms", lambda r: r["open_latency_ms"]["p50"], -1, 3),
    ("storm", "storm: connect->OPEN p99", "ms", lambda r: r["open_latency_ms"]["p99"], -1, 3),
    ("storm", "storm: failed logins", "", lambda r: r["failed"], -1, 0),
]


# How far beyond BEFORE's extreme run AFTER's median must be for a hint. The saturated fan-out
# (overload: the server drops from full queues) and p99 tails moved by 10-25 % between runs of
# one binary on the shared 2-core machine, so they get a wider margin.
MARGIN, NOISY_MARGIN = 0.05, 0.25


def fmt(v, dec):
    if v is None:
        return "FAIL"
    return f"{v:,.{dec}f}"


def main(path):
    setup, runs = {}, {}
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        rec = json.loads(line)
        c = rec["compare"]
        if c["key"] == "setup":
            setup = c
            continue
        runs.setdefault((c["key"], c["side"]), []).append((c["round"], rec.get("result") if c.get("ok") else None))
    for v in runs.values():
        v.sort(key=lambda x: x[0])

    if setup:
        print(f"before: {setup['before']}")
        print(f"after:  {setup['after']}")
        print(
            f"sizes: fan-out {setup['fan_publishers']} -> {setup['fan_subscribers']} for {setup['fan_secs']} s "
            f"at {setup['fan_rate']} ev/s (fixed) and {setup['sat_rate'] or 'as fast as accepted'}"
            f"{' ev/s' if setup['sat_rate'] else ''} (saturated); idle {setup['idle_sessions']} sessions; "
            f"storm {setup['storm_clients']} clients at {setup['storm_rate']}/s; "
            f"{setup['runs']} runs each{' (--quick)' if setup.get('quick') else ''}; "
            f"{setup['cores']} cores, load average at start {setup['loadavg_at_start']}"
        )
        print()
    rows = [("metric", "before (runs → median)", "after (runs → median)", "after/before", "")]
    for key, label, unit, get, direction, dec in METRICS:
        margin = NOISY_MARGIN if (key == "saturated" or "p99" in label) else MARGIN
        if (key, "before") not in runs and (key, "after") not in runs:
            continue
        cells, med = [], {}
        for side in ("before", "after"):
            vals = []
            for _, res in runs.get((key, side), []):
                try:
                    vals.append(None if res is None else get(res))
                except (KeyError, TypeError, IndexError, ZeroDivisionError):
                    vals.append(None)
            ok = [v for v in vals if v is not None]
            med[side] = statistics.median(ok) if ok else None
            med[side + "_all"] = ok
            cells.append(" ".join(fmt(v, dec) for v in vals) + f" → **{fmt(med[side], dec)}**")
        b, a = med["before"], med["after"]
        ratio = (a / b) if (a is not None and b) else None
        hint = ""
        if direction and ratio is not None and med["before_all"]:
            worst_before = min(med["before_all"]) if direction > 0 else max(med["before_all"])
            best_before = max(med["before_all"]) if direction > 0 else min(med["before_all"])
            if (a - worst_before) * direction < 0 and abs(a - worst_before) > margin * abs(worst_before):
                hint = "worse"
            elif (a - best_before) * direction > 0 and abs(a - best_before) > margin * abs(best_before):
                hint = "better"
            else:
                hint = "~"
        elif a is None or b is None:
            hint = "FAIL"
        elif a == b:
            hint = "~"
        name = f"{label} ({unit})" if unit else label
        arrow = {1: " ↑", -1: " ↓", 0: ""}[direction]
        rows.append((name + arrow, cells[0], cells[1],
                     "—" if ratio is None else f"{ratio:.3f}", hint))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for i, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if i == 0:
            print("| " + " | ".join("-" * w for w in widths) + " |")
    print()
    print("↑ higher is better, ↓ lower is better. Ratio = median(after) / median(before). Hint: worse/better")
    print(f"when after's median is beyond before's worst/best run by more than {MARGIN:.0%} ({NOISY_MARGIN:.0%} for")
    print("the saturated fan-out and p99 rows), else ~.")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
