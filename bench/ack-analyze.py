#!/usr/bin/env python3
"""The way back from a durable commit to the answer (issue 15, cpu8). Input: a bench/ack-trace.sh OUT dir.

An answer is a send(2) of 100 bytes or more on one of the daemon's connections (a unary gRPC answer goes out as one
send: HEADERS, DATA and trailers; the smaller sends are PING, SETTINGS and WINDOW_UPDATE frames). Each client has one
connection and one call in flight, so per connection every request is followed by its answer. A commit is durable at
the end of the store writer's first fsync after CommitBatch. Prints, over the measured window (its first and last half
second left out):
  - the daemon's own time per Create: the first receive of data on a connection after its previous answer, to the next
    answer (the request's bytes were there; the client's own time and the network are not in it);
  - answer minus the last durable commit with Creates before it: a lower bound of each answer's time since its commit
    (exact when the answer's commit is that one), and needs no matching;
  - commit durable -> answer, matching durable Creates and answers first in, first out (approximate: an answer is
    taken for the oldest committed Create not yet answered);
  - the writer between a commit's fsync and its next CommitBatch (events published, callers completed, checkpoints,
    and the wait for the next writes).
"""
import bisect, collections, json, os, re, statistics, sys

out = sys.argv[1]
pid = int(open(os.path.join(out, "pid")).read())
calls = []
for line in open(os.path.join(out, "lat.create")):
    _, end, lat = map(int, line.split())
    calls.append((end - lat, end, lat))
t0, t1 = min(c[0] for c in calls), max(c[1] for c in calls)
a0, a1 = t0 + 500_000_000, t1 - 500_000_000
rx = re.compile(r"^\s*(.+?)-(\d+)\s+\(\s*(\S+)\)\s+\[\d+\]\s+\S+\s+([\d.]+):\s+(sys_\w+ ->|sys_\w+\(|\S+:)(.*)$")
commits, creates, fsx, evs, open_f = [], [], [], [], {}
for line in open(os.path.join(out, "trace")):
    m = rx.match(line)
    if not m or not m.group(3).isdigit() or int(m.group(3)) != pid:
        continue
    _, tid, _, ts, ev, rest = m.groups()
    ts, tid, ev = int(round(float(ts) * 1e9)), int(tid), ev.rstrip(":")
    if ev == "commit":
        commits.append((ts, tid))
    elif ev == "w_create":
        creates.append((ts, tid))
    elif ev.startswith(("sys_fsync(", "sys_fdatasync(")):
        open_f[tid] = ts
    elif ev.startswith(("sys_fsync ->", "sys_fdatasync ->")) and tid in open_f:
        fsx.append((open_f.pop(tid), ts, tid))
    elif ev.endswith("("):
        fd = re.search(r"fd: (?:0x)?([0-9a-f]+)", rest)
        if not fd:
            continue
        kind = "send" if ("send" in ev or "writev" in ev) else "recv"
        ln = re.search(r"(?:len|size): (?:0x)?([0-9a-f]+)", rest)
        n = int(ln.group(1), 16) if ln else 1 << 20
        if kind == "send" and n < 100 or kind == "recv" and n <= 1:
            continue  # control frames; Kestrel's zero-byte wait for data and the socket engine's one-byte peek
        evs.append((ts, kind, int(fd.group(1), 16)))
if not commits:
    sys.exit("ack-analyze: no commits traced")
ms = lambda ns: ns / 1e6
q = lambda xs, f: xs[min(len(xs) - 1, int(f * len(xs)))]
dist = lambda xs: (f"mean {ms(statistics.mean(xs)):.2f} ms, p50 {ms(q(xs, .5)):.2f}, p90 {ms(q(xs, .9)):.2f}, "
                   f"p99 {ms(q(xs, .99)):.2f}, max {ms(xs[-1]):.2f} ({len(xs)})")

wt = collections.Counter(t for _, t in commits).most_common(1)[0][0]
cs = sorted(ts for ts, t in commits if t == wt)
crt = sorted(ts for ts, t in creates if t == wt)
wfs = sorted((a, b) for a, b, t in fsx if t == wt)
durable = []  # (durable at, Creates in the commit)
for k, ts in enumerate(cs):
    nxt = cs[k + 1] if k + 1 < len(cs) else ts + 10**9
    n = bisect.bisect_left(crt, nxt) - bisect.bisect_left(crt, ts)
    fi = bisect.bisect_left(wfs, (ts, 0))
    if n and fi < len(wfs) and wfs[fi][0] < nxt:
        durable.append((wfs[fi][1], n))

answers, served, since = [], [], {}
for ts, kind, fd in sorted(evs):
    if kind == "recv":
        since.setdefault(fd, ts)
    elif fd in since:
        start = since.pop(fd)
        answers.append(ts)
        if a0 <= ts <= a1:
            served.append(ts - start)
served.sort()
win = [n for d, n in durable if a0 <= d <= a1]
print(f"window: {len(calls)} Creates (client), {sum(win)} committed in {len(win)} commits with Creates "
      f"({statistics.mean(win):.1f} each), {sum(1 for a in answers if a0 <= a <= a1)} answers")
print(f"the daemon's time per Create (request received -> answer sent): {dist(served)}")
dts = sorted(d for d, _ in durable)
lb = sorted(a - dts[bisect.bisect_right(dts, a) - 1] for a in answers if a0 <= a <= a1 and bisect.bisect_right(dts, a) > 0)
print(f"answer - the last durable commit before it (lower bound): {dist(lb)}")
D = [d for d, n in durable if a0 <= d <= a1 for _ in range(n)]
A = sorted(a for a in answers if a >= a0)
q0, ci = 0, 0
for j, a in enumerate(A):
    if a > a1:
        break
    while ci < len(D) and D[ci] <= a:
        ci += 1
    q0 = max(q0, j + 1 - ci)
lags = sorted(A[i + q0] - D[i] for i in range(len(D)) if i + q0 < len(A))
if lags:
    print(f"commit durable -> answer, first in first out (approximate; {q0} answers before the first match): {dist(lags)}")
gaps = sorted(b - a for a, b in zip(dts, dts[1:]) if a0 <= a <= a1)
print(f"between durable commits with Creates: {dist(gaps)}")
cw = sum(1 for ts in cs if a0 <= ts <= a1)
print(f"commits in the window: {cw}, per Create {cw / max(1, sum(1 for ts in crt if a0 <= ts <= a1)):.3f} "
      f"(with no Create: {cw - len(win)})")
post = []
for k, ts in enumerate(cs[:-1]):
    fi = bisect.bisect_left(wfs, (ts, 0))
    if a0 <= ts <= a1 and fi < len(wfs) and wfs[fi][0] < cs[k + 1]:
        post.append(cs[k + 1] - wfs[fi][1])
post.sort()
print(f"the writer from a commit's fsync to its next CommitBatch: {dist(post)}")
try:
    r = json.load(open(os.path.join(out, "result.json")))
    print(f"child: {r['rate']:.0f} Creates/s, p99 {r['p99_ms']:.1f} ms, daemon {r['cpu_us_per']:.0f} µs CPU, "
          f"{r['ctxsw_per']:.2f} context switches, {r.get('daemon_alloc_kb_per', 0):.2f} KB allocated per Create")
except (OSError, ValueError, KeyError):
    pass

# ---- Stages (ack11, eleventh pass): present when ack-trace.sh found the symbols for the extra probes.
ex = collections.defaultdict(list)  # name -> [(ts, tid, rest)]
names = ("q_in", "c_start", "c_move", "ioq", "h2out", "follow", "pass", "work")
for line in open(os.path.join(out, "trace")):
    m = rx.match(line)
    if not m or not m.group(3).isdigit() or int(m.group(3)) != pid:
        continue
    ev = m.group(5).rstrip(":")
    if ev in names:
        ex[ev].append((int(round(float(m.group(4)) * 1e9)), int(m.group(2)), m.group(6)))
if not ex.get("c_move"):
    sys.exit(0)


def fifo(xs, ys):
    """Lags ys[i + q0] - xs[i] for sorted xs (in the window) and ys (from the window's start), first in first out."""
    q0, ci = 0, 0
    for j, y in enumerate(ys):
        if y > a1:
            break
        while ci < len(xs) and xs[ci] <= y:
            ci += 1
        q0 = max(q0, j + 1 - ci)
    return sorted(ys[i + q0] - xs[i] for i in range(len(xs)) if i + q0 < len(ys)), q0


# A resumption of CreateAsync is a MoveNext not run by its Start on the same thread just before.
last = {}
resumes = []
for ts, _, tid, name in sorted([(t, 0, d, "s") for t, d, _ in ex["c_start"]] + [(t, 1, d, "m") for t, d, _ in ex["c_move"]]):
    if name == "m" and not (last.get(tid, (0, ""))[1] == "s" and ts - last[tid][0] < 200_000):
        resumes.append(ts)
    last[tid] = (ts, name)
resumes.sort()
D_all = sorted(d for d, n in durable for _ in range(n))
R_win = [r for r in resumes if r >= a0]
lag_dr, _ = fifo(D, R_win)
Rw = [r for r in resumes if a0 <= r <= a1]
lag_ra, _ = fifo(Rw, A)
print("stages (first in, first out):")
if lag_dr:
    print(f"  commit durable -> the caller's continuation runs (CreateAsync resumes): {dist(lag_dr)}")
if lag_ra:
    print(f"  continuation runs -> answer sent: {dist(lag_ra)}")
# The send's own hop: Kestrel's I/O queue item (ioq) runs the socket send loop.
io = sorted(t for t, _, _ in ex["ioq"])
if io:
    print(f"  Kestrel I/O queue items in the window per Create: {sum(1 for t in io if a0 <= t <= a1) / max(1, len(Rw)):.2f}")
# What the pool ran between each commit with Creates and the moment its last Create's continuation ran.
kinds = {k: sorted(t for t, _, _ in ex[k]) for k in ("pass", "work", "follow", "ioq", "h2out")}
first_runs = sorted(set(t for t, _, _ in ex["c_move"]) - set(resumes))
kinds["new request"] = first_runs
# Little's law: items in each state over time; mean numbers.
def mean_in(starts, ends):
    ev = sorted([(t, 1) for t in starts] + [(t, -1) for t in ends])
    area, cur, prev = 0, 0, None
    for t, dlt in ev:
        if prev is not None and a0 <= t <= a1:
            area += cur * (t - max(prev, a0))
        cur += dlt
        prev = t
    return area / (a1 - a0)
print(f"  mean number of Creates durable, continuation not run yet: {mean_in(D_all, resumes):.1f}")
# Per window second: how many of each kind ran (a MoveNext entry is one step of that work; an IOQueue item one hop).
secs = (a1 - a0) / 1e9
nC = max(1, len(Rw))
print("  pool work in the window, per Create: " + ", ".join(
    f"{k} {sum(1 for t in v if a0 <= t <= a1) / nC:.2f}" for k, v in kinds.items()))
# Enqueues by type and by queue.
base = None
try:
    for line in open(os.path.join(out, "maps")):
        f = line.split()
        if len(f) >= 6 and f[5] == os.path.realpath(f[5]) and "bench-node" in f[5] or "vistarad" in f[-1]:
            if int(f[2], 16) == 0:
                base = int(f[0].split("-")[0], 16)
                break
except OSError:
    pass
types = {}
try:
    for line in open(os.path.join(out, "types")):
        a, _, name = line.split(None, 2)
        types[int(a, 16)] = re.sub(r"^_ZTV\d+", "", name.strip())
except OSError:
    pass
def tname(mt):
    if base is None:
        return hex(mt)
    n = types.get(mt - base, hex(mt - base))
    n = re.sub(r"Microsoft_AspNetCore_Server_Kestrel_|S_P_CoreLib_System_|Hypercore_Core_Hypercore_|Hypercore_Store_Sqlite_Hypercore_Store_Sqlite_|Grpc_AspNetCore_Server_Grpc_AspNetCore_Server_", "", n)
    return n[:150]
byq = collections.Counter()
wr = collections.Counter()
for ts, tid, rest in ex["q_in"]:
    if not (a0 <= ts <= a1):
        continue
    mt = re.search(r"mt=(\d+)", rest); g = re.search(r"g=(\d+)", rest)
    key = (tname(int(mt.group(1))) if mt else "?", "global" if g and int(g.group(1)) else "local?")
    byq[key] += 1
    if tid == wt:
        wr[key] += 1
print(f"  thread-pool enqueues in the window per Create (g: forceGlobal; an enqueue from a non-pool thread is global anyway):")
for (k, g), c in byq.most_common(25):
    print(f"    {c / nC:6.2f}  {g:7s} {k}   (from the writer thread: {wr[(k, g)] / nC:.2f})")
