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
