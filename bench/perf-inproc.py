#!/usr/bin/env python3
"""CPU per Create of an in-process API child by activity, from perf profiles (issue 15, running8; bench/NOTES.md).

    python3 bench/perf-inproc.py A_DIR[,A_DIR...] [B_DIR[,B_DIR...]] [N]

Each DIR is an output of bench/inproc-profile.sh (child.out with the RESULT line, perf.script of the JIT process with
perf-map symbols). A sample counts for the OUTERMOST frame (root -> leaf) that names an activity: the writer thread's
commit, the informer/watch fan-out, a reconcile pass, the poll timers, the API's Create, gRPC/Kestrel; else the JIT or GC
thread; else "unattributed: <thread>" (mostly ReadyToRun framework code, which the perf map does not name, and glibc
without frame pointers). µs per Create = the activity's share of the samples × the child's cpu_us_per (utime + stime
of the server over the measured window ÷ Creates), averaged over the DIRs of a set. With two sets, A − B per activity,
then the N largest differences in inclusive time of Hypercore frames.
"""
import collections, json, re, sys

ACTIVITIES = [(n, re.compile(p)) for n, p in [
    ('writer thread (commit)', r'SqliteMicroVmStore::RunWriter|StartWriterThread'),
    ('checkpointer', r'WalCheckpointer'),
    ('informer/watch fan-out', r'MicroVmInformer|WatchStream'),
    ('poll timer / work queue', r'WorkQueue`1\[.*\]::FireDue|PollSpreading'),
    ('reconcile pass', r'ReconcilerHost|Reconciler\+|Reconciler::'),
    ('API Create', r'VmServiceImpl|StoreExceptionInterceptor|MicroVmOperations'),
    ('gRPC/Kestrel/HTTP2', r'\[Grpc|\[Microsoft\.AspNetCore|\[System\.Net\.Sockets|Pipelines'),
    ('telemetry', r'PhaseCounter|NodeGauges|OpenTelemetry|\[Hypercore\.Telemetry\]'),
    ('bench harness', r'\[Hypercore\.Benchmarks\]'),
]]


def frame_name(line):
    m = re.search(r'\[[^\]]+\] ([^(\[]+)\(', line)
    return m.group(1) if m else None


def load(d):
    result = json.loads(re.search(r'RESULT (.*)', open(f'{d}/child.out').read()).group(1))
    acts, incl = collections.Counter(), collections.Counter()
    n = 0
    for block in open(f'{d}/perf.script', errors='replace').read().split('\n\n'):
        lines = [l for l in block.split('\n') if l.strip()]
        if len(lines) < 2:
            continue
        n += 1
        comm = re.match(r'^(.*?)\s+\d+(/\d+)?\s', lines[0])
        comm = comm.group(1) if comm else ''
        frames = [l.strip() for l in lines[1:]]
        act = 'JIT (tiering thread)' if 'Tiered Com' in comm else 'GC thread' if 'BGC' in comm else None
        for f in reversed(frames):
            if act:
                break
            act = next((name for name, rx in ACTIVITIES if rx.search(f)), None)
        acts[act or 'unattributed: ' + re.sub(r'\d+', '', comm)] += 1
        for name in {frame_name(f) for f in frames if 'Hypercore' in f and 'MethodBuilder' not in f} - {None}:
            incl[name] += 1
    per = result['cpu_us_per'] / n
    return result, {k: v * per for k, v in acts.items()}, {k: v * per for k, v in incl.items()}


def mean(sets, i, k):
    return sum(s[i].get(k, 0) for s in sets) / len(sets)


A = [load(d) for d in sys.argv[1].split(',')]
B = [load(d) for d in sys.argv[2].split(',')] if len(sys.argv) > 2 else []
top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
for name, s in (('A', A), ('B', B)):
    if s:
        r = [x[0] for x in s]
        print(f"{name}: cpu µs/Create {[round(x['cpu_us_per']) for x in r]}, alloc KB/Create {[round(x['alloc_kb_per'], 1) for x in r]}, "
              f"writes/Create {[round(x['commits_per_s'] * x['writes_per_commit'] * x['seconds'] / x['count'], 2) for x in r]}")
keys = set(k for s in A + B for k in s[1])
order = sorted(keys, key=lambda k: -(mean(A, 1, k) - (mean(B, 1, k) if B else 0)))
print(f"{'activity (µs per Create)':36s} {'A':>7s}" + (f" {'B':>7s} {'A-B':>7s}" if B else ''))
for k in order:
    print(f"  {k:34s} {mean(A, 1, k):7.1f}" + (f" {mean(B, 1, k):7.1f} {mean(A, 1, k) - mean(B, 1, k):7.1f}" if B else ''))
keys = set(k for s in A + B for k in s[2])
print('Hypercore frames, inclusive µs per Create' + (' (largest A-B)' if B else ''))
for k in sorted(keys, key=lambda k: -(mean(A, 2, k) - (mean(B, 2, k) if B else 0)))[:top]:
    print(f"  {mean(A, 2, k):6.1f}" + (f" {mean(B, 2, k):6.1f} {mean(A, 2, k) - mean(B, 2, k):6.1f}" if B else '') + f"  {k[:120]}")
