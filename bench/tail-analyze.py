#!/usr/bin/env python3
"""Which slow Creates overlapped which daemon GC pause or fsync (issue 15, gctail). Input: a bench/tail-trace.sh OUT dir.

For every Create at or above the run's p99: the highest generation of a GC pause inside the call, the share of its
latency spent inside pauses, and the longest stretch inside it in which no call of any client completed (a stall of
the whole daemon), by what filled most of that stretch: a GC pause, one fsync, several fsyncs, or neither (CPU share,
queues). An fsync's time runs from the syscall's entry to its exit, so it includes the writer's wait for a CPU after
the disk answered. Also: pauses per generation, the longest, the pauses of 10 ms or more and the calls they stopped,
and the store writer thread's time on a CPU and waiting for one over the window.
"""
import bisect, collections, json, os, re, statistics, sys

out = sys.argv[1]
pid = int(open(os.path.join(out, "pid")).read())
calls = []
for line in open(os.path.join(out, "lat.create")):
    _, end, lat = map(int, line.split())
    calls.append((end - lat, end, lat))
lats = sorted(c[2] for c in calls)
pct = lambda p: lats[min(len(lats) - 1, max(0, -(-int(p * len(lats) * 1000) // 1000) - 1))]
p99 = pct(0.99)
t0, t1 = min(c[0] for c in calls), max(c[1] for c in calls)

line_rx = re.compile(r"^\s*(.+?)-(\d+)\s+\(\s*(\S+)\)\s+\[\d+\]\s+\S+\s+([\d.]+):\s+(sys_f\w+ ->|sys_\w+\(|\S+:)(.*)$")
open_pause, pauses, open_fsync, fsyncs = {}, [], {}, []
commits, applied, open_ckpt, ckpts, fsync_fd = [], [], {}, [], {}  # the store writer's events (commit7), when traced
pages = []  # 4,096-byte pwrites (ckpt8): (ts, tid, fd)
for line in open(os.path.join(out, "trace")):
    m = line_rx.match(line)
    if not m or not m.group(3).isdigit() or int(m.group(3)) != pid:
        continue
    _, tid, _, ts, ev, rest = m.groups()
    ts, tid, ev = int(round(float(ts) * 1e9)), int(tid), ev.rstrip(":")
    if ev == "susp_in":
        open_pause[tid] = [ts, None]
    elif ev == "mark":  # the generation this (blocking or ephemeral) collection condemned
        for p in open_pause.values():
            p[1] = p[1] if p[1] is not None else int(re.search(r"gen=(-?\d+)", rest).group(1))
    elif ev == "bgmark":  # a background gen2 starts inside this stop (after the ephemeral GC it begins with)
        for p in open_pause.values():
            p[1] = "bgc"
    elif ev == "rest_out" and tid in open_pause:
        s, g = open_pause.pop(tid)
        pauses.append((s, ts, "bgc-end" if g is None else g))
    elif ev == "commit":
        commits.append((ts, tid, int(re.search(r"n=(-?\d+)", rest).group(1))))
    elif ev in ("w_create", "w_status", "w_claim"):
        applied.append((ts, tid, ev[2:]))
    elif ev == "ckpt_in":
        open_ckpt[tid] = ts
    elif ev == "ckpt_out" and tid in open_ckpt:
        ckpts.append((open_ckpt.pop(tid), ts, tid))
    elif ev == "sys_pwrite64(":
        pages.append((ts, tid, int(re.search(r"fd: (?:0x)?([0-9a-f]+)", rest).group(1), 16)))
    elif ev.endswith("("):
        open_fsync[tid] = ts
        fd = re.search(r"fd: (?:0x)?([0-9a-f]+)", rest)
        fsync_fd[tid] = int(fd.group(1), 16) if fd else -1
    elif ev.endswith("->") and tid in open_fsync:
        fsyncs.append((open_fsync.pop(tid), ts, tid, fsync_fd.pop(tid, -1)))
pauses = sorted(p for p in pauses if p[1] >= t0 and p[0] <= t1)
fsyncs = sorted(f for f in fsyncs if f[1] >= t0 and f[0] <= t1)
ms = lambda ns: ns / 1e6

print(f"{len(calls)} Creates in {(t1 - t0) / 1e9:.1f} s: p50 {ms(pct(0.5)):.1f} ms, p99 {ms(p99):.1f} ms, max {ms(lats[-1]):.1f} ms")
by_gen = collections.defaultdict(list)
for s, e, g in pauses:
    by_gen[str(g)].append(ms(e - s))
for g, d in sorted(by_gen.items()):
    print(f"  pauses {g}: {len(d)}, mean {statistics.mean(d):.2f} ms, max {max(d):.2f} ms, total {sum(d):.0f} ms")
print("  longest pauses: " + ", ".join(f"{ms(e - s):.1f} ms ({g})" for s, e, g in sorted(pauses, key=lambda p: p[0] - p[1])[:6]))
if fsyncs:
    d = sorted(ms(e - s) for s, e, *_ in fsyncs)
    print(f"  fsyncs: {len(d)}, mean {statistics.mean(d):.2f} ms, p99 {d[int(0.99 * len(d))]:.2f} ms, max {d[-1]:.2f} ms, "
          f"{100 * sum(d) / ms(t1 - t0):.0f} % of the window")

def inside(s, e, spans):
    return [(min(e, b) - max(s, a), x) for a, b, *x in spans if min(e, b) - max(s, a) > 0]

rank = {0: 0, "bgc-end": 0, "bgc": 0.5, 1: 1, 2: 2}
slow = [c for c in calls if c[2] >= p99]
kinds, shares = collections.Counter(), []
for s, e, l in slow:
    o = inside(s, e, pauses)
    kinds["none" if not o else f"gen {max((x[0] for _, x in o), key=lambda g: rank.get(g, -1))}"] += 1
    shares.append(sum(t for t, _ in o) / l)
print(f"{len(slow)} Creates >= p99; the highest pause inside each: " +
      ", ".join(f"{k} {n} ({100 * n / len(slow):.0f} %)" for k, n in kinds.most_common()) +
      f"; share of their latency inside pauses: median {100 * statistics.median(shares):.0f} %")
ends = sorted(c[1] for c in calls)

def longest_gap(s, e):
    i, prev, best = bisect.bisect_right(ends, s), s, (0, s, s)
    while i < len(ends) and ends[i] <= e:
        best, prev, i = max(best, (ends[i] - prev, prev, ends[i])), ends[i], i + 1
    return max(best, (e - prev, prev, e))

causes, gaps = collections.Counter(), []
for s, e, _ in slow:
    g, a, b = longest_gap(s, e)
    gaps.append(g)
    o, f = inside(a, b, pauses), inside(a, b, fsyncs)
    if sum(t for t, _ in o) >= g / 2:
        causes[f"GC {max((x[0] for _, x in o), key=lambda k: rank.get(k, -1))}"] += 1
    elif max([t for t, _ in f] or [0]) >= g / 2:
        causes["one fsync"] += 1
    elif sum(t for t, _ in f) >= g / 2:
        causes["several fsyncs"] += 1
    else:
        causes["neither (CPU share, queues)"] += 1
print(f"their longest stall (no Create of any client completed): median {ms(statistics.median(gaps)):.1f} ms, mostly " +
      ", ".join(f"{k} {n} ({100 * n / len(slow):.0f} %)" for k, n in causes.most_common()))
for s, e, g in pauses:
    if e - s >= 10e6:
        o = [c for c in calls if min(c[1], e) - max(c[0], s) > 0]
        print(f"  pause {ms(e - s):.1f} ms ({g}) at +{(s - t0) / 1e9:.2f} s: {len(o)} Creates in flight, "
              f"{sum(1 for c in o if c[2] >= p99)} of them >= p99")
try:
    rows = open(os.path.join(out, "writer")).read().split("\n")
    offset = int(rows[0].split()[1])
    w = [(int(float(a) * 1e9) - offset, int(c), int(d), int(n)) for a, c, d, n in (r.split() for r in rows[1:] if r.strip())]
    w = [x for x in w if t0 <= x[0] <= t1]
    (ta, ca, da, na), (tb, cb, db, nb) = w[0], w[-1]
    print(f"store writer thread: on a CPU {100 * (cb - ca) / (tb - ta):.0f} %, runnable and waiting for one "
          f"{100 * (db - da) / (tb - ta):.0f} % of the window ({(db - da) / max(1, nb - na) / 1e3:.0f} µs per wake-up)")
except (OSError, IndexError, ValueError):
    pass
r = json.load(open(os.path.join(out, "result.json")))

# ---- the store writer's commits (commit7): what a commit holds, whose writes, checkpoints, and when Creates are done
if commits:
    files = {}
    try:
        for row in open(os.path.join(out, "fds")):
            n, _, target = row.strip().partition(" ")
            if not target:
                continue  # read as the daemon exited
            files[int(n)] = "WAL" if target.endswith("-wal") else "DB" if target.endswith(".db") else target.rsplit("/", 1)[-1]
    except OSError:
        pass
    wt = collections.Counter(t for _, t, _ in commits).most_common(1)[0][0]
    cs = sorted((ts, n) for ts, t, n in commits if t == wt)
    starts = [c[0] for c in cs]
    rows = []  # per commit: start, next start, writes, {kind: n}, checkpoint ns, [(fsync start, end, file)]
    for k, (ts, n) in enumerate(cs):
        nxt = cs[k + 1][0] if k + 1 < len(cs) else ts + 10**9
        kinds = collections.Counter(kd for a, t, kd in applied if t == wt and ts <= a < nxt)
        rows.append((ts, nxt, n, kinds))
    ap = sorted((a, kd) for a, t, kd in applied if t == wt)
    apt = [a for a, _ in ap]
    def kinds_in(a, b):
        return collections.Counter(kd for _, kd in ap[bisect.bisect_left(apt, a):bisect.bisect_left(apt, b)])
    wfs = sorted((a, b, files.get(fd, f"fd {fd}")) for a, b, t, fd in fsyncs if t == wt)
    ofs = [(a, b, t, files.get(fd, f"fd {fd}")) for a, b, t, fd in fsyncs if t != wt]
    win = [r for r in rows if t0 <= r[0] <= t1]
    print(f"store writer: {len(win)} commits in the window, writes per commit mean {statistics.mean(r[2] for r in win):.1f} "
          f"(p50 {statistics.median(r[2] for r in win):.0f}, max {max(r[2] for r in win)})")
    kin = [kinds_in(r[0], r[1]) for r in win]
    tot = sum(kin, collections.Counter())
    only = sum(1 for k in kin if k and not k["create"])
    print(f"  writes by kind: " + ", ".join(f"{kd} {n}" for kd, n in tot.most_common()) +
          f"; commits with no Create (reconciler only): {only} ({100 * only / max(1, len(win)):.0f} %), "
          f"Creates per commit that has one: {statistics.mean([k['create'] for k in kin if k['create']] or [0]):.1f}")
    byfile = collections.defaultdict(list)
    for a, b, f in wfs:
        if t0 <= a <= t1:
            byfile[f].append(ms(b - a))
    for f, d in sorted(byfile.items()):
        d.sort()
        print(f"  writer fsyncs {f}: {len(d)}, mean {statistics.mean(d):.2f} ms, p50 {d[len(d) // 2]:.2f}, "
              f"p99 {d[int(0.99 * len(d))]:.2f}, max {d[-1]:.2f} ms, total {sum(d) / 1e3:.2f} s")
    if ofs:
        print(f"  fsyncs on other threads: {len([1 for a, b, t, f in ofs if t0 <= a <= t1])} in the window, "
              + ", ".join(f"{f} {n}" for f, n in collections.Counter(f for a, b, t, f in ofs if t0 <= a <= t1).items()))
    wc = [c for c in ckpts if t0 <= c[0] <= t1]
    for who, cc in (("writer", [c for c in wc if c[2] == wt]), ("other threads", [c for c in wc if c[2] != wt])):
        if cc:
            d = sorted(ms(b - a) for a, b, _ in cc)
            print(f"  WAL checkpoints on the {who}: {len(cc)}, mean {statistics.mean(d):.2f} ms, max {d[-1]:.2f} ms, "
                  f"total {sum(d):.0f} ms")
            if pages:  # frames each copied into the database file: its 4,096-byte pwrites to the DB's fd (ckpt8)
                pt = sorted((ts, t) for ts, t, fd in pages if files.get(fd) == "DB")
                ptt = [p[0] for p in pt]
                n = sorted(sum(1 for x in pt[bisect.bisect_left(ptt, a):bisect.bisect_right(ptt, b)] if x[1] == t) for a, b, t in cc)
                print(f"    frames copied per checkpoint: mean {statistics.mean(n):.0f}, p50 {n[len(n) // 2]}, max {n[-1]}, total {sum(n)}")
    # A commit is durable at the end of the writer's last fsync before the next commit starts; its callers are completed
    # then (continuations run on pool threads). For each slow Create's longest stall: what the writer did in it.
    durable = []
    for ts, nxt, n, _ in rows:
        f = [b for a, b, fl in wfs if ts <= a < nxt and fl == "WAL"]
        durable.append((f[-1] if f else nxt, kinds_in(ts, nxt)["create"]))
    stall = collections.Counter()
    lag = []
    for s, e, _ in slow:
        g, a, b = longest_gap(s, e)
        inn = [r for r in rows if a <= r[0] < b]
        ck = sum(min(b, y) - max(a, x) for x, y, t in ckpts if t == wt and min(b, y) > max(a, x))
        done = [d for d, c in durable if c and a <= d < b]
        reconciler_only = sum(1 for r in inn if not kinds_in(r[0], r[1])["create"])
        if ck >= g / 4:
            stall["a checkpoint on the writer (>= 1/4 of it)"] += 1
        elif done and b - done[0] >= g / 2:
            stall["Creates committed, their callers not yet answered (>= 1/2 of it)"] += 1
            lag.append(b - done[0])
        elif len(inn) >= 2 and reconciler_only >= len(inn) - 1:
            stall["commits of (nearly) only reconciler writes"] += 1
        elif len(inn) >= 2:
            stall["several commits with Creates"] += 1
        else:
            stall["one commit or less"] += 1
    print(f"  the writer in the slow Creates' longest stalls: " + ", ".join(f"{k} {n} ({100 * n / len(slow):.0f} %)" for k, n in stall.most_common()))
    if lag:
        print(f"  where Creates were committed but not yet answered: from the commit to the next answer median {ms(statistics.median(lag)):.1f} ms")
    gapc = [len([r for r in rows if a <= r[0] < b]) for a, b in ((x[1], x[2]) for x in (longest_gap(s, e) for s, e, _ in slow))]
    print(f"  commits started inside those stalls: median {statistics.median(gapc):.0f}, max {max(gapc)}")
try:  # the WAL file's size, sampled every 0.25 s (ckpt8): largest, and the last sample before the daemon stopped
    ws = [int(r.split()[1]) for r in open(os.path.join(out, "walsize")) if r.strip()]
    print(f"WAL file: largest {max(ws) / 2**20:.1f} MB, last sample {ws[-1] / 2**20:.1f} MB")
except (OSError, ValueError):
    pass
# The ratio against the mean of the baselines before and after the Creates (BaselineBracket), and to the one before alone.
bracket = r['rate'] / ((r['base_rate'] + r['base_after_rate']) / 2) if r.get('base_after_rate') else float('nan')
print(f"child: ratio {bracket:.2f} (to the baseline before alone {r['rate'] / r['base_rate']:.2f}), daemon {r['cpu_us_per']:.0f} µs CPU per Create, " +
      " ".join(f"{k}={r[k]:.4g}" for k in sorted(r) if k.startswith("daemon_window")))
