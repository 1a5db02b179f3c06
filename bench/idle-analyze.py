#!/usr/bin/env python3
"""Where the Running load's idle CPU comes from (issue 15, thirteenth pass, idle13). Input: a bench/idle-trace.sh OUT dir.

Sweeps every context switch and wake-up of the machine with the store writer's steps and both ends of every call, and
at each moment takes:
  - the machine's idle CPUs (an idle task on the CPU), and "our deficit": 2 minus the threads of the daemon and the load
    generators that are runnable (running or waiting for a CPU), floored at 0. On a quiet 2-core machine the two are the
    same; on a shared one the deficit is what would be idle if the other processes were not there.
  - the store writer's state, first that applies: the daemon in a GC pause; the writer runnable (running or waiting for
    a CPU) inside a commit (CommitBatch until its request callers are released) or between commits; in fsync; in the
    bounded wait for a request write (BackgroundWriteWait) or asleep with nothing queued (WaitForWrites) -- the trace
    has entry probes only, so a wait lasts until the writer's next commit; blocked elsewhere.
  - where the 64 Create calls are: in the load generator (answer read -> next request sent), on the way to the daemon,
    in the daemon before their write is queued, queued for the writer, in the commit being applied, committed and not
    yet answered, on the way back; and how many reconciler callers of the last commit the writer holds (ack11's
    deferred release).
and sums the idle and the deficit by the writer's state, with the mean position of the 64 calls in each.
Usage: python3 bench/idle-analyze.py OUT
"""
import collections, os, re, sys

out = sys.argv[1]
pid = int(open(os.path.join(out, "pid")).read())

# Connections (daemon end <-> client end), as bench/wire-analyze.py.
ends = {}
for line in open(os.path.join(out, "ss")):
    f = line.split()
    m = re.search(r'pid=(\d+),fd=(\d+)', line)
    if len(f) >= 4 and m:
        v4 = lambda a: a.replace("[::ffff:", "").replace("]", "")
        ends[(v4(f[2]), v4(f[3]))] = (int(m.group(1)), int(m.group(2)))
pairs = {}  # client end (pid, fd) -> daemon end (pid, fd)
for (loc, peer), who in ends.items():
    other = ends.get((peer, loc))
    if other and who[0] == pid and other[0] != pid:
        pairs[other] = who
lgp = {p for p, _ in pairs}
if not lgp:
    sys.exit("idle-analyze: no connection pairs in OUT/ss")
# The daemon reuses fd numbers between the baseline's connections and the Creates'; key the daemon end by (client pid, fd).
d2c = collections.defaultdict(list)
for c, d in pairs.items():
    d2c[d[1]].append(c)

rx = re.compile(r"^\s*(.+?)-(\d+)\s+\(\s*(\S+)\)\s+\[(\d+)\]\s+\S+\s+([\d.]+):\s+(sys_\w+ ->|sys_\w+\(|\S+:)(.*)$")
ev = []  # (ts, kind, tid, pid, cpu, rest)
tgid = {}
for line in open(os.path.join(out, "trace")):
    m = rx.match(line)
    if not m or not m.group(3).isdigit():
        continue
    tid, p = int(m.group(2)), int(m.group(3))
    tgid[tid] = p
    ev.append((int(round(float(m.group(5)) * 1e9)), m.group(6).rstrip(":"), tid, p, int(m.group(4)), m.group(7)))
ev.sort(key=lambda e: e[0])

# The measured windows: from the latency traces when there, else from the load generators' sends.
def window(name):
    path = os.path.join(out, f"lat.{name}")
    if not os.path.exists(path):
        return None
    xs = [tuple(map(int, l.split())) for l in open(path) if l.strip()]
    a, b = min(e - l for _, e, l in xs), max(e for _, e, _ in xs)
    return a + 500_000_000, b - 500_000_000

creates_ts = [e[0] for e in ev if e[1] == "w_create" and e[3] == pid]
win = {"create": window("create"), "health": window("health")}
if win["create"] is None and creates_ts:
    win["create"] = (creates_ts[-1] - 6_000_000_000 + 500_000_000, creates_ts[-1] - 500_000_000)
lg_create = collections.Counter(e[3] for e in ev if e[3] in lgp and win["create"] and win["create"][0] <= e[0] <= win["create"][1]).most_common(1)
lg_create = lg_create[0][0] if lg_create else None
writer = collections.Counter(e[2] for e in ev if e[1] == "commit" and e[3] == pid).most_common(1)[0][0]

ncpu = 1 + max(e[4] for e in ev)
oncpu = [None] * ncpu  # tid on each CPU (0 = idle)
runnable = set()  # our threads (daemon, load generators) that are running or waiting for a CPU
conn = {}  # client end -> 0 client, 1 to daemon, 2 daemon, 3 back
writer_state = "run"
in_commit = False
in_gc = False
in_fsync = False
commit_creates = 0
reqq = taken = done = answers = 0
enq = bg_taken = 0
held = 0  # reconciler writes whose callers are deferred
cur_bg = 0
open_r = {}

def classify():
    if in_gc:
        return "gc pause"
    if writer in runnable:
        return "writer runs: in a commit" if in_commit else "writer runs: between commits"
    if in_fsync:
        return "writer in fsync"
    if writer_state == "bgwait":
        return "writer waits for a request write (<= 1 ms)"
    if writer_state == "idle":
        return "writer asleep, nothing queued"
    return "writer blocked elsewhere" + (" (in a commit)" if in_commit else "")

acc = {w: collections.defaultdict(lambda: [0, 0, 0, [0.0] * 8]) for w in win}  # cause -> [deficit, idle, time, call states]
tot = {w: [0, 0, 0, 0] for w in win}  # deficit, idle, span, our runnable * dt
hist = {w: collections.Counter() for w in win}
last = ev[0][0]
STATES = ["in the load generator", "to the daemon", "daemon: before its write is queued", "queued for the writer",
          "in the commit", "committed, not answered", "to the client"]

for ts, kind, tid, p, cpu, rest in ev:
    dt = ts - last
    if dt > 0:
        for w, span in win.items():
            if span and span[0] <= last and ts <= span[1]:
                r = len(runnable)
                deficit = max(0, ncpu - r) * dt
                idle = sum(1 for x in oncpu if x == 0) * dt
                c = classify()
                a = acc[w][c]
                a[0] += deficit; a[1] += idle; a[2] += dt
                tot[w][0] += deficit; tot[w][1] += idle; tot[w][2] += dt; tot[w][3] += r * dt
                hist[w][min(r, 4)] += dt
                if deficit and w == "create":
                    st = [0] * 8
                    for cl, s in conn.items():
                        if cl[0] == lg_create:
                            st[(0, 1, 2, 6)[s]] += 1
                    queued = max(0, reqq - taken)
                    incommit = commit_creates if in_commit else 0
                    unanswered = max(0, done - answers)
                    st[2] = max(0, st[2] - queued - incommit - unanswered)
                    st[3], st[4], st[5] = queued, incommit, unanswered
                    st[7] = held
                    for k in range(8):
                        a[3][k] += st[k] * deficit
    last = ts
    if kind == "sched_switch":
        n = re.search(r"prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=.* next_pid=(\d+)", rest)
        if n:
            pt, nt = int(n.group(1)), int(n.group(3))
            oncpu[cpu] = nt
            if not n.group(2).startswith("R"):
                runnable.discard(pt)
            if nt and tgid.get(nt) in lgp | {pid}:
                runnable.add(nt)
        continue
    if kind == "sched_wakeup":
        n = re.search(r" pid=(\d+)", rest)
        if n and tgid.get(int(n.group(1))) in lgp | {pid}:
            runnable.add(int(n.group(1)))
        continue
    if p == pid:
        if kind == "susp_in":
            in_gc = True
        elif kind == "rest_out":
            in_gc = False
        elif tid == writer:
            if kind == "commit":
                in_commit, commit_creates, writer_state = True, 0, "run"
                nw = re.search(r"n=(-?\d+)", rest)
                cur_bg = int(nw.group(1)) if nw else 0
            elif kind == "w_create":
                commit_creates += 1; taken += 1
            elif kind == "complete" and "req=1" in rest and in_commit:  # durable and published: callers released now
                in_commit = False; done += commit_creates
                cur_bg -= commit_creates
            elif kind == "defer":
                held += max(0, cur_bg)
            elif kind == "reldef":
                held = 0
            elif kind == "bgw_in":
                writer_state = "bgwait"
            elif kind == "idle_in":
                writer_state = "idle"
            elif kind.startswith(("sys_fsync(", "sys_fdatasync(")):
                in_fsync = True
            elif kind.startswith(("sys_fsync ->", "sys_fdatasync ->")):
                in_fsync = False
        if kind == "reqq":
            reqq += 1
        elif kind == "enq":
            enq += 1
    if p in lgp or p == pid:
        if kind == "sys_recvfrom(":
            fd = re.search(r"fd: (?:0x)?([0-9a-f]+)", rest)
            fl = re.search(r"flags: (\S+?),", rest)
            if fd and not (fl and int(fl.group(1), 16) & 2):
                open_r[tid] = int(fd.group(1), 16)
        elif kind == "sys_recvfrom ->":
            fd = open_r.pop(tid, None)
            r = re.search(r"0x([0-9a-f]+)", rest)
            if fd is not None and r and 0 < int(r.group(1), 16) < 1 << 31:
                if p == pid:
                    for cl in d2c.get(fd, []):
                        if conn.get(cl) == 1:
                            conn[cl] = 2
                elif conn.get((p, fd)) == 3:
                    conn[(p, fd)] = 0
        elif kind in ("sys_sendto(", "sys_sendmsg(", "sys_writev("):
            fd = re.search(r"fd: (?:0x)?([0-9a-f]+)", rest)
            ln = re.search(r"len: (?:0x)?([0-9a-f]+)", rest)
            nb = int(ln.group(1), 16) if ln else 1 << 20
            if fd and nb >= 256:
                fd = int(fd.group(1), 16)
                if p == pid:
                    answers += 1  # a Create's answer (an empty call's is ~40 bytes), on any connection (the warm-up's too)
                    for cl in d2c.get(fd, []):
                        if conn.get(cl) == 2:
                            conn[cl] = 3
                elif (p, fd) in pairs:
                    conn[(p, fd)] = 1

ms = lambda ns: ns / 1e6
print(f"counters over the trace: writes queued {enq}, request writes {reqq}, Creates applied {taken}, answers sent {answers}")
for w, span in win.items():
    if not span or not tot[w][2]:
        continue
    d, i, s, rs = tot[w]
    print(f"{w} window {ms(s):.0f} ms: machine idle {i / s:.3f} of a core (of {ncpu}), our deficit {d / s:.3f} of a core "
          f"(runnable threads of the daemon + load generators: mean {rs / s:.2f})")
    print("  our runnable threads, share of the window: " + ", ".join(f"{k}{'+' if k == 4 else ''}: {100 * v / s:.1f} %" for k, v in sorted(hist[w].items())))
    if w != "create":
        continue
    print(f"  {'writer state':48s} {'time %':>7s} {'deficit':>8s} {'idle':>6s}   calls during the deficit: " + " / ".join(STATES) + " / reconciler callers held")
    for c, (dd, ii, tt, st) in sorted(acc[w].items(), key=lambda kv: -kv[1][0]):
        pos = " ".join(f"{x / dd:5.1f}" if dd else "    -" for x in st)
        print(f"  {c:48s} {100 * tt / s:6.1f}% {dd / s:8.3f} {ii / s:6.3f}   {pos}")
