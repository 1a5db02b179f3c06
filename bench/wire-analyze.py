#!/usr/bin/env python3
"""Where the slowest Creates' time goes, from both ends of each connection (issue 15, tail12). Input: a
bench/ack-trace.sh OUT dir (its trace records the syscalls of every process, the load generator's included, the exits
of recvfrom, and OUT/ss pairs the two ends of each loopback connection).

Each client has one connection and one call in flight. Per connection and call, four points on the wire:
  c1 the load generator sends the request (a sendto of 256 bytes or more: HEADERS + DATA in one write)
  s1 the daemon's first recvfrom after c1 that returns data on its end of that connection
  s2 the daemon's first send of 256 bytes or more after s1 (the answer: HEADERS, DATA and trailers in one write)
  c2 the load generator's first recvfrom after s2 that returns data
so c2 - c1 is the call as the wire sees it; the load generator's own time before c1 and after c2 is the rest of its
latency (OUT/lat.create, paired per call below). The daemon's part s1 -> s2 is
split at the store writer's commits: the Create's write is in a commit that starts after s1 and is durable before s2;
"first" takes the earliest such commit (the most time after durability), "last" the last one (the least).
Prints, over the measured window (its first and last half second left out): the distributions; for the slowest 1 % and
5 % by c2 - c1 and the daemon's slowest 1 % by s1 -> s2, the mean of each part; each measured call end to end (the
client's index in lat.create paired with its connection: c0 the call starts, c3 it returns) by client latency; with
ack-trace.sh's sched and GC events, who had the two CPUs and who waited for one over the slowest calls, the GC pauses'
share, and the store writer's time between a commit's fsync and its next CommitBatch (asleep, waiting for a CPU,
running). Usage: python3 bench/wire-analyze.py OUT [create|health]   (OUT from `ACK_TRACE_CHILD=api-node bash bench/ack-trace.sh ...`)
"""
import bisect, collections, os, re, statistics, sys

out = sys.argv[1]
call = sys.argv[2] if len(sys.argv) > 2 else "create"  # or "health": the baseline's empty calls (lat.health)
# Smallest request the client sends and smallest answer the daemon sends (a Create: ~330 and ~290 bytes; an empty
# call: 227 and 38; control frames: PING 17, WINDOW_UPDATE 13, SETTINGS 9 bytes).
req_min, ans_min = (256, 256) if call == "create" else (200, 32)
pid = int(open(os.path.join(out, "pid")).read())
calls = []
for line in open(os.path.join(out, f"lat.{call}")):
    _, end, lat = map(int, line.split())
    calls.append((end - lat, end, lat))
t0, t1 = min(c[0] for c in calls), max(c[1] for c in calls)
a0, a1 = t0 + 500_000_000, t1 - 500_000_000

# Connections: (pid, fd) of the daemon's end -> (pid, fd) of the client's end.
ends = {}
for line in open(os.path.join(out, "ss")):
    f = line.split()
    m = re.search(r'pid=(\d+),fd=(\d+)', line)
    if len(f) >= 4 and m:
        v4 = lambda a: a.replace("[::ffff:", "").replace("]", "")
        ends[(v4(f[2]), v4(f[3]))] = (int(m.group(1)), int(m.group(2)))
pairs = {}  # (client end) -> daemon end; the daemon's fd numbers are reused (the baseline's connections, then the Creates')
for (loc, peer), who in ends.items():
    other = ends.get((peer, loc))
    if other and who[0] == pid and other[0] != pid:
        pairs[other] = who
if not pairs:
    sys.exit("wire-analyze: no connection pairs in OUT/ss")

rx = re.compile(r"^\s*(.+?)-(\d+)\s+\(\s*(\S+)\)\s+\[(\d+)\]\s+\S+\s+([\d.]+):\s+(sys_\w+ ->|sys_\w+\(|\S+:)(.*)$")
want = set(pairs) | set(pairs.values())  # both ends
pids = {p for p, _ in want}
sends = collections.defaultdict(list)  # (pid, fd) -> [ts] of sends >= 256 bytes
recvs = collections.defaultdict(list)  # (pid, fd) -> [ts] of recvfrom exits that returned data
open_r = {}
commits, creates, fsx, open_f, writes_at = [], [], [], {}, {}
tgid = {}  # tid -> process, from every line
switches = collections.defaultdict(list)  # cpu -> [(ts, next tid)]
sched = []  # (ts, 0 woken | 1 switched out | 2 switched in, tid, still runnable)
pauses, open_p = [], None
for line in open(os.path.join(out, "trace")):
    m = rx.match(line)
    if not m or not m.group(3).isdigit():
        continue
    tgid[int(m.group(2))] = int(m.group(3))
    if m.group(6) == "sched_switch:":
        n = re.search(r"prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=.* next_pid=(\d+)", m.group(7))
        if n:
            t = int(round(float(m.group(5)) * 1e9))
            switches[int(m.group(4))].append((t, int(n.group(3))))
            sched.append((t, 1, int(n.group(1)), n.group(2).startswith("R")))  # switched out: runnable or asleep
            sched.append((t, 2, int(n.group(3)), None))  # switched in
        continue
    if m.group(6) == "sched_wakeup:":
        n = re.search(r" pid=(\d+)", m.group(7))
        if n:
            sched.append((int(round(float(m.group(5)) * 1e9)), 0, int(n.group(1)), None))
        continue
    if int(m.group(3)) not in pids:
        continue
    _, tid, p, _, ts, ev, rest = m.groups()
    ts, tid, p, ev = int(round(float(ts) * 1e9)), int(tid), int(p), ev.rstrip(":")
    if ev == "susp_in" and p == pid:
        open_p = ts
    elif ev == "rest_out" and p == pid and open_p:
        pauses.append((open_p, ts)); open_p = None
    elif ev == "commit" and p == pid:
        commits.append((ts, tid))
        nw = re.search(r"n=(-?\d+)", rest)
        writes_at[ts] = int(nw.group(1)) if nw else 0
    elif ev == "w_create" and p == pid:
        creates.append((ts, tid))
    elif ev.startswith(("sys_fsync(", "sys_fdatasync(")):
        open_f[tid] = ts
    elif ev.startswith(("sys_fsync ->", "sys_fdatasync ->")) and tid in open_f:
        fsx.append((open_f.pop(tid), ts, tid))
    elif ev == "sys_recvfrom(":
        fd = re.search(r"fd: (?:0x)?([0-9a-f]+)", rest)
        fl = re.search(r"flags: (\S+?),", rest)
        if fd and not (fl and int(fl.group(1), 16) & 2):  # not MSG_PEEK
            open_r[tid] = (p, int(fd.group(1), 16))
    elif ev == "sys_recvfrom ->":
        k = open_r.pop(tid, None)
        r = re.search(r"0x([0-9a-f]+)", rest)
        if k and r and 0 < int(r.group(1), 16) < 1 << 31:
            recvs[k].append(ts)
    elif ev in ("sys_sendto(", "sys_sendmsg(", "sys_writev("):
        fd = re.search(r"fd: (?:0x)?([0-9a-f]+)", rest)
        ln = re.search(r"len: (?:0x)?([0-9a-f]+)", rest)
        n = int(ln.group(1), 16) if ln else 1 << 20
        if fd and n >= (ans_min if p == pid else req_min):
            sends[(p, int(fd.group(1), 16))].append(ts)

ms = lambda ns: ns / 1e6
q = lambda xs, f: xs[min(len(xs) - 1, int(f * len(xs)))]
def dist(xs):
    xs = sorted(xs)
    return (f"mean {ms(statistics.mean(xs)):.2f} ms, p50 {ms(q(xs, .5)):.2f}, p90 {ms(q(xs, .9)):.2f}, "
            f"p99 {ms(q(xs, .99)):.2f}, max {ms(xs[-1]):.2f} ({len(xs)})")
nxt = lambda xs, t: xs[bisect.bisect_right(xs, t)] if bisect.bisect_right(xs, t) < len(xs) else None

# Durable commits with Creates (the writer thread's): (CommitBatch, durable at).
wt = collections.Counter(t for _, t in commits).most_common(1)[0][0] if commits else None
cs = sorted(ts for ts, t in commits if t == wt)
crt = sorted(ts for ts, t in creates if t == wt)
wfs = sorted((a, b) for a, b, t in fsx if t == wt)
cb, cd, cn = [], [], []
for k, ts in enumerate(cs):
    end = cs[k + 1] if k + 1 < len(cs) else ts + 10**9
    n = bisect.bisect_left(crt, end) - bisect.bisect_left(crt, ts)
    fi = bisect.bisect_left(wfs, (ts, 0))
    if n and fi < len(wfs) and wfs[fi][0] < end:
        cb.append(ts); cd.append(wfs[fi][1]); cn.append((n, writes_at.get(ts, 0)))
cs_all = cs

rows = []  # (c1, s1, s2, c2, first commit (start, durable, n, reconciler-only commits ahead), last commit)
for cli, srv in pairs.items():
    cS, sR, sS, cR = sorted(sends[cli]), sorted(recvs[srv]), sorted(sends[srv]), sorted(recvs[cli])
    for c1 in cS:
        if not a0 <= c1 <= a1:
            continue
        s1 = nxt(sR, c1 - 1)
        s2 = s1 and nxt(sS, s1)
        c2 = s2 and nxt(cR, s2)
        if not c2 or c2 - c1 > 10**9:
            continue
        i = bisect.bisect_left(cb, s1)  # commits with Creates that started after s1
        j = bisect.bisect_right(cd, s2) - 1  # ... and were durable before s2
        first = (cb[i], cd[i], cn[i]) if i < len(cb) and cd[i] <= s2 else None
        last = (cb[j], cd[j], cn[j]) if j >= 0 and cb[j] >= s1 else None
        rows.append((c1, s1, s2, c2, first, last, cli))

if not rows:
    sys.exit("wire-analyze: no calls matched")
lat = sorted(c[2] for c in calls if a0 <= c[1] <= a1)
wire = sorted(r[3] - r[0] for r in rows)
print(f"{len({r[6] for r in rows})} connections carried the calls; {len(rows)} calls seen on the wire in the window, {len(lat)} by the client")
print(f"client latency (lat.{call}):        {dist(lat)}")
print(f"on the wire (c2 - c1):              {dist(wire)}")
print(f"  c1 -> s1 (request sent -> daemon reads it): {dist([r[1] - r[0] for r in rows])}")
print(f"  s1 -> s2 (daemon: read -> answer sent):     {dist([r[2] - r[1] for r in rows])}")
print(f"  s2 -> c2 (answer sent -> client reads it):  {dist([r[3] - r[2] for r in rows])}")
print(f"client's own time (latency - wire), as distributions: p50 {ms(q(lat, .5) - q(wire, .5)):.2f} ms, "
      f"p99 {ms(q(lat, .99) - q(wire, .99)):.2f} ms")
withc = [r for r in rows if r[4]]
print(f"calls whose daemon part holds a commit with Creates: {len(withc)} of {len(rows)}")

def parts(rs, key):
    """Mean of each part over rs; key picks the commit (4 = first, 5 = last)."""
    rs = [r for r in rs if r[key]]
    if not rs:
        return "no calls"
    m = lambda f: ms(statistics.mean(f(r) for r in rs))
    # Commits of any kind between s1 and the Create's commit: the batches ahead of it.
    ahead = statistics.mean(bisect.bisect_left(cs_all, r[key][0]) - bisect.bisect_left(cs_all, r[1]) for r in rs)
    return (f"c1->s1 {m(lambda r: r[1] - r[0]):.2f}, s1->its commit starts {m(lambda r: r[key][0] - r[1]):.2f}, "
            f"commit -> durable {m(lambda r: r[key][1] - r[key][0]):.2f}, durable -> s2 {m(lambda r: r[2] - r[key][1]):.2f}, "
            f"s2->c2 {m(lambda r: r[3] - r[2]):.2f} ms; commits ahead of it after s1 {ahead:.2f}, "
            f"its commit: Creates {statistics.mean(r[key][2][0] for r in rs):.1f} of {statistics.mean(r[key][2][1] for r in rs):.1f} writes ({len(rs)} calls)")

by = sorted(rows, key=lambda r: r[3] - r[0])
for name, sel in (("all", by), ("p50-p90", by[len(by) // 2:int(len(by) * .9)]),
                  ("slowest 5 %", by[int(len(by) * .95):]), ("slowest 1 %", by[int(len(by) * .99):])):
    w = ms(statistics.mean(r[3] - r[0] for r in sel))
    print(f"{name:12s} wire mean {w:.2f} ms")
    print(f"   first commit: {parts(sel, 4)}")
    print(f"   last commit:  {parts(sel, 5)}")
# The daemon's own spread: its slowest 1 % by s1 -> s2.
bys = sorted(rows, key=lambda r: r[2] - r[1])
sel = bys[int(len(bys) * .99):]
print(f"the daemon's slowest 1 % (by s1 -> s2, mean {ms(statistics.mean(r[2] - r[1] for r in sel)):.2f} ms)")
print(f"   first commit: {parts(sel, 4)}")
print(f"   last commit:  {parts(sel, 5)}")
dsel = sel
# Which connections hold the slowest 1 %: a straggler connection would hold many.
slow = by[int(len(by) * .99):]
byconn = collections.Counter()
for r in slow:
    byconn[r[6]] += 1
print(f"slowest 1 % by connection: {len(byconn)} connections, most on one {byconn.most_common(1)[0][1]}, "
      f"expected if even ~{len(slow) / max(1, len({r[6] for r in rows})):.1f}")
# Are the slow calls clustered in time (a stall that hits everyone) or spread?
slow_t = sorted(r[0] for r in slow)
gaps = [b - a for a, b in zip(slow_t, slow_t[1:])]
clusters = 1 + sum(1 for g in gaps if g > 5_000_000)
print(f"slowest 1 %: {len(slow)} calls in {clusters} clusters (calls sent within 5 ms of the previous slow one join it)")


# ---- Who had the CPUs, and the GC's pauses, over the slowest calls' time on the wire against the whole window.
def union(iv):
    res = []
    for a, b in sorted(iv):
        if res and a <= res[-1][1]:
            res[-1][1] = max(res[-1][1], b)
        else:
            res.append([a, b])
    return res
def overlap(iv, pts):
    """Time of the union iv covered by the intervals pts (sorted, disjoint)."""
    tot = 0
    for a, b in iv:
        for x, y in pts:
            if y > a and x < b:
                tot += min(b, y) - max(a, x)
    return tot
lgp = {p for p, _ in pairs}
def who(t):
    if t == 0:
        return "idle"
    g = tgid.get(t)
    return "daemon" if g == pid else "load generator" if g in lgp else "other"
def shares(iv):
    tot = collections.Counter()
    for cpu, sw in switches.items():
        sw.sort()
        for (x, t), (y, _) in zip(sw, sw[1:]):
            for a, b in iv:
                if y > a and x < b:
                    tot[who(t)] += min(b, y) - max(a, x)
    span = sum(b - a for a, b in iv) * max(1, len(switches))
    return ", ".join(f"{k} {100 * v / span:.0f} %" for k, v in sorted(tot.items(), key=lambda kv: -kv[1]))
slow_iv = union([(r[0], r[3]) for r in slow])
dsel_iv = union([(r[1], r[2]) for r in dsel])
if switches:
    print(f"CPUs ({len(switches)}) over the whole window: {shares([(a0, a1)])}")
    print(f"CPUs over the slowest 1 %'s time on the wire ({ms(sum(b - a for a, b in slow_iv)):.0f} ms): {shares(slow_iv)}")
    print(f"CPUs over the daemon's slowest 1 % (s1 -> s2, {ms(sum(b - a for a, b in dsel_iv)):.0f} ms): {shares(dsel_iv)}")
if pauses:
    gp = union(pauses)
    allw = union([(r[0], r[3]) for r in rows])
    print(f"GC pauses: {len(pauses)}, {ms(sum(b - a for a, b in gp)):.0f} ms in all; share of the slowest 1 %'s wire time "
          f"in a pause {100 * overlap(slow_iv, gp) / max(1, sum(b - a for a, b in slow_iv)):.0f} %, of the window's "
          f"{100 * overlap([(a0, a1)], gp) / (a1 - a0):.0f} %")
    hit = sum(1 for r in slow if overlap([(r[0], r[3])], gp) > 0)
    print(f"slowest 1 % calls that overlap a pause: {hit} of {len(slow)}; their mean pause time "
          f"{ms(statistics.mean(overlap([(r[0], r[3])], gp) for r in slow)):.2f} ms")

# Waiting for a CPU: a thread woken, or preempted while runnable, until it is switched in.
if sched:
    sched.sort()
    ready, waits = {}, collections.defaultdict(list)  # tid -> since; tid -> [(from, to)]
    for t, kind, tid, runnable in sched:
        if kind == 0 or (kind == 1 and runnable):
            ready.setdefault(tid, t)
        elif kind == 1:
            ready.pop(tid, None)
        elif kind == 2 and tid in ready:
            waits[tid].append((ready.pop(tid), t))
    def runq(iv, sel):
        """Mean number of sel's threads waiting for a CPU over the union iv."""
        span = sum(b - a for a, b in iv)
        tot = 0
        for tid, ws in waits.items():
            if sel(tid):
                for x, y in ws:
                    for a, b in iv:
                        if y > a and x < b:
                            tot += min(b, y) - max(a, x)
        return tot / max(1, span)
    groups = (("daemon", lambda t: tgid.get(t) == pid), ("load generator", lambda t: tgid.get(t) in lgp),
              ("other", lambda t: t and tgid.get(t) not in lgp | {pid}))
    for name, iv in (("whole window", [(a0, a1)]), ("slowest 1 %'s wire time", slow_iv)):
        print(f"threads waiting for a CPU (mean number) over the {name}: " +
              ", ".join(f"{g} {runq(iv, f):.2f}" for g, f in groups))
    if wt:
        ws = [(x, y) for x, y in waits.get(wt, []) if a0 <= x <= a1]
        if ws:
            d = sorted(y - x for x, y in ws)
            print(f"the store writer: waited for a CPU {100 * sum(d) / (a1 - a0):.0f} % of the window, {len(d)} times: {dist(d)}")

# ---- Per call, end to end: lat.create's first column is the client, one connection each; a client is paired with the
# connection whose calls on the wire fall inside its calls most often. Then each measured call has six points:
# c0 (the client starts the call) c1 s1 s2 c2 c3 (the call returns to the client's loop).
calls_by = collections.defaultdict(list)
for line in open(os.path.join(out, f"lat.{call}")):
    c, end, l = map(int, line.split())
    calls_by[c].append((end - l, end))
wire_by = collections.defaultdict(list)
for r in rows:
    wire_by[r[6]].append(r)
for v in wire_by.values():
    v.sort()
conn_of = {}
for c, cl in calls_by.items():
    votes = collections.Counter()
    for st, en in cl[::max(1, len(cl) // 20)]:
        for srv, rs in wire_by.items():
            k = bisect.bisect_left(rs, (st,))
            if k < len(rs) and rs[k][3] <= en:
                votes[srv] += 1
    if votes:
        conn_of[c] = votes.most_common(1)[0][0]
full = []  # (c0, c1, s1, s2, c2, c3, first commit, last commit)
for c, cl in calls_by.items():
    rs = wire_by.get(conn_of.get(c), [])
    for st, en in cl:
        if not a0 <= en <= a1:
            continue
        k = bisect.bisect_left(rs, (st,))
        if k < len(rs) and rs[k][3] <= en:
            r = rs[k]
            full.append((st, r[0], r[1], r[2], r[3], en, r[4], r[5]))
if full:
    print(f"end to end: {len(conn_of)} clients paired with a connection, {len(full)} calls with all six points")
    full.sort(key=lambda f: f[5] - f[0])
    names = ("c0->c1 client before send", "c1->s1 to the daemon's read", "s1->s2 daemon", "s2->c2 to the client's read",
             "c2->c3 client after read")
    def row(sel):
        parts = [statistics.mean(f[i + 1] - f[i] for f in sel) for i in range(5)]
        tot = statistics.mean(f[5] - f[0] for f in sel)
        fc = [f for f in sel if f[6]]
        d = statistics.mean(f[3] - f[6][1] for f in fc) if fc else 0
        b = statistics.mean(f[6][0] - f[2] for f in fc) if fc else 0
        return tot, parts, b, d
    print(f"  {'calls':22s} {'latency':>8s} " + " ".join(f"{n.split()[0]:>7s}" for n in names) + "  (s1->commit, durable->s2: its first possible commit)")
    n = len(full)
    for name, sel in (("all", full), ("p50-p90", full[n // 2:int(n * .9)]), ("p90-p99", full[int(n * .9):int(n * .99)]),
                      ("slowest 1 %", full[int(n * .99):])):
        tot, parts, b, d = row(sel)
        print(f"  {name:22s} {ms(tot):8.2f} " + " ".join(f"{ms(p):7.2f}" for p in parts) + f"  ({ms(b):.2f}, {ms(d):.2f}) ms")
    print("  " + "; ".join(names))

# ---- The writer between a commit's fsync and its next CommitBatch: asleep (nothing queued, or the bounded wait for a
# request write), waiting for a CPU, or running (publishing, releasing callers, the checkpointer's turn).
if sched and wt:
    sleeps, s_from = [], None
    for t, kind, tid, runnable in sched:
        if tid != wt:
            continue
        if kind == 1 and not runnable:
            s_from = t
        elif kind in (0, 2) and s_from is not None:
            sleeps.append((s_from, t)); s_from = None
    cpuw = waits.get(wt, [])
    gaps = []
    for k, ts in enumerate(cs[:-1]):
        fi = bisect.bisect_left(wfs, (ts, 0))
        if a0 <= ts <= a1 and fi < len(wfs) and wfs[fi][0] < cs[k + 1]:
            gaps.append((wfs[fi][1], cs[k + 1]))
    if gaps:
        gaps.sort(key=lambda g: g[1] - g[0])
        def split(sel):
            tot = sum(b - a for a, b in sel)
            sl = sum(overlap([g], [s for s in sleeps if s[1] > g[0] and s[0] < g[1]]) for g in sel)
            cw = sum(overlap([g], [w for w in cpuw if w[1] > g[0] and w[0] < g[1]]) for g in sel)
            return f"mean {ms(tot / len(sel)):.2f} ms: asleep {100 * sl / tot:.0f} %, waiting for a CPU {100 * cw / tot:.0f} %, running {100 * (tot - sl - cw) / tot:.0f} %"
        print(f"the writer from a commit's fsync to its next CommitBatch, all ({len(gaps)}): {split(gaps)}")
        print(f"   the longest 1 %: {split(gaps[int(len(gaps) * .99):])}")
        top = union(gaps[int(len(gaps) * .99):])
        print(f"   over the longest 1 %: CPUs {shares(top)}; threads waiting for a CPU: " +
              ", ".join(f"{g} {runq(top, f):.2f}" for g, f in groups))
