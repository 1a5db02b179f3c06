#!/usr/bin/env python3
"""bench/gc-ab.sh's reading (issue 15, gc10).

--run DIR: one run's GC pauses inside its Create window (from the uprobe trace and the load generator's latency trace)
as JSON: per generation ("0", "1", "bgc" = the stop that starts a background GC, "bgc-end") count, mean, max, total;
the share of Creates that overlapped a gen1 pause; and p99 with each Create's overlap with every pause taken out of
its latency (p99_nogc): what the pauses themselves add to p99 in that run (queueing after a pause is not taken out).
RUNS.LOG: medians [ranges] per setting of those and of the child's own figures (CPU, allocation, collections, RSS).
--pairs A B RUNS.LOG...: settings A and B compared within each round (svgc11): the median difference and how often B
was lower.
"""
import bisect, collections, json, os, re, statistics as st, sys

RX = re.compile(r"^\s*(.+?)-(\d+)\s+\(\s*(\S+)\)\s+\[\d+\]\s+\S+\s+([\d.]+):\s+(\S+):(.*)$")


def one(run):
    pid = int(open(os.path.join(run, "pid")).read())
    calls = []
    for line in open(os.path.join(run, "lat.create")):
        _, end, lat = map(int, line.split())
        calls.append((end - lat, end, lat))
    t0, t1 = min(c[0] for c in calls), max(c[1] for c in calls)
    open_, pauses, heaps = {}, [], []
    for line in open(os.path.join(run, "trace")):
        m = RX.match(line)
        if not m or not m.group(3).isdigit() or int(m.group(3)) != pid:
            continue
        _, tid, _, ts, ev, rest = m.groups()
        ev = {"smark": "mark", "sbgmark": "bgmark"}.get(ev.rstrip("0123456789"), ev.rstrip("0123456789"))
        ts, tid = int(round(float(ts) * 1e9)), int(tid)
        if ev == "susp_in":
            open_[tid] = [ts, None, set()]
        elif ev == "mark":
            for p in open_.values():
                p[1] = p[1] if p[1] is not None else re.search(r"gen=(-?\d+)", rest).group(1)
                p[2].add(tid)  # server GC: each heap's GC thread marks its heap
        elif ev == "bgmark":
            for p in open_.values():
                p[1] = "bgc"
        elif ev == "rest_out" and tid in open_:
            s, g, markers = open_.pop(tid)
            pauses.append((s, ts, "bgc-end" if g is None else g))
            heaps.append(len(markers))
    pauses = sorted(p for p in pauses if p[1] >= t0 and p[0] <= t1)
    starts = [p[0] for p in pauses]
    lats, adjusted, gen1 = sorted(c[2] for c in calls), [], 0
    for s, e, lat in calls:
        i, overlap, hit = max(0, bisect.bisect_left(starts, s) - 1), 0, False
        while i < len(pauses) and pauses[i][0] < e:
            o = min(e, pauses[i][1]) - max(s, pauses[i][0])
            if o > 0:
                overlap += o
                hit |= pauses[i][2] == "1"
            i += 1
        adjusted.append(lat - overlap)
        gen1 += hit
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] / 1e6
    r = {"creates": len(calls), "p50_ms": q(lats, 0.5), "p99_ms": q(lats, 0.99), "p99_nogc_ms": q(adjusted, 0.99),
         "share_in_gen1": gen1 / len(calls), "heaps_max": max(heaps, default=0),
         "heaps_mean": st.mean([h for h in heaps if h]) if any(heaps) else 0, "pause_total_ms": sum(e - s for s, e, _ in pauses) / 1e6}
    r["gc_adds_to_p99_ms"] = r["p99_ms"] - r["p99_nogc_ms"]
    for g in ["0", "1", "2", "bgc", "bgc-end"]:
        d = [(e - s) / 1e6 for s, e, x in pauses if x == g]
        r[f"n_{g}"], r[f"mean_{g}"], r[f"max_{g}"] = len(d), st.mean(d) if d else 0, max(d, default=0)
    return r


def summary(log):
    rows = collections.defaultdict(list)
    for line in open(log):
        m = re.match(r"(\d+) (\S+) load=(\S+) (\{.*?\}) (\{.*\})$", line.strip())
        if not m:
            continue
        d, g = json.loads(m.group(4)), json.loads(m.group(5))
        d.update({"trace_" + k: v for k, v in g.items()}, load=float(m.group(3)))
        d["gen0_per_1000"] = d["daemon_window_gen0"] * 1000 / d["count"]
        d["gen1_per_1000"] = d["daemon_window_gen1"] * 1000 / d["count"]
        d["pause_us_per_create"] = d["trace_pause_total_ms"] * 1000 / d["trace_creates"]
        rows[m.group(2)].append(d)
    cols = ["load", "node_runtime_gen0_budget", "node_runtime_gc_server", "p99_ms", "p50_ms", "trace_gc_adds_to_p99_ms",
            "cpu_us_per", "cpu_us_per_drained", "ctxsw_per", "daemon_alloc_kb_per", "daemon_window_gen0",
            "daemon_window_gen1", "daemon_window_gen2", "daemon_window_pause_ms_per_gc", "gen0_per_1000", "gen1_per_1000",
            "trace_mean_0", "trace_max_0", "trace_mean_1", "trace_max_1", "trace_n_bgc", "trace_mean_bgc",
            "trace_share_in_gen1", "trace_heaps_mean", "trace_heaps_max", "pause_us_per_create", "rss_mb", "heap_kb_per_record", "count"]
    names = list(rows)
    print(f"{'':26s}" + "".join(f"{n:>28s}" for n in names))
    for c in cols:
        line = f"{c:26s}"
        for n in names:
            xs = [r[c] for r in rows[n] if c in r]
            line += (f"{st.median(xs):.4g} [{min(xs):.3g}-{max(xs):.3g}]" if xs else "-").rjust(28)
        print(line)
    print("runs: " + ", ".join(f"{n} {len(rows[n])}" for n in names))


def pairs(a, b, logs):
    """Same-round pairs of settings A and B over one or more runs.log: the median of B - A and in how many pairs B was lower."""
    rounds = collections.defaultdict(dict)
    for log in logs:
        for line in open(log):
            m = re.match(r"(\d+) (\S+) load=(\S+) (\{.*?\}) (\{.*\})$", line.strip())
            if m:
                d = json.loads(m.group(4))
                d.update({"trace_" + k: v for k, v in json.loads(m.group(5)).items()})
                rounds[(log, m.group(1))][m.group(2)] = d
    ps = [r for r in rounds.values() if a in r and b in r]
    print(f"{len(ps)} pairs of {a} and {b}")
    for c in ["trace_mean_1", "trace_max_1", "trace_mean_0", "trace_max_0", "trace_gc_adds_to_p99_ms", "cpu_us_per",
              "ctxsw_per", "daemon_alloc_kb_per", "rss_mb", "p99_ms", "p50_ms"]:
        d = [r[b][c] - r[a][c] for r in ps if c in r[a] and c in r[b]]
        if d:
            print(f"{c:26s} {a} {st.median(r[a][c] for r in ps):9.4g}  {b} {st.median(r[b][c] for r in ps):9.4g}  "
                  f"{b}-{a} {st.median(d):+9.3g}  {b} lower in {sum(x < 0 for x in d)}/{len(d)}")


if __name__ == "__main__":
    if sys.argv[1] == "--run":
        print(json.dumps(one(sys.argv[2])))
    elif sys.argv[1] == "--pairs":
        pairs(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        summary(sys.argv[1])
