#!/usr/bin/env python3
"""What a Create costs beyond an empty call, from bench/window-profile.sh's two profiles (issue 15, s30; bench/NOTES.md).

    python3 bench/window-profile.py OUTDIR [N]

µs per call in each window = the share of the window's samples × the server CPU per call the child measured in it
(base_cpu_us_per for the empty calls, cpu_us_per for the Creates). A sample counts for the OUTERMOST frame that names an
activity (the thread pool's dispatch loop is not one, so a pool thread's sample goes to what it runs), else for its thread.
Then the same by thread, user and kernel apart (by the leaf frame), and the N leaf symbols with the most µs per Create.
"""
import collections, json, re, sys

ACTIVITIES = [(n, re.compile(p)) for n, p in [
    ('store writer (managed)', r'SqliteMicroVmStore::RunWriter|StartWriterThread'),
    ('checkpointer', r'WalCheckpointer'),
    ('informer (and the pass it runs inline)', r'MicroVmInformer|WatchStream'),
    ('poll timer / work queue', r'WorkQueue`1\[.*\]::FireDue|PollSpreading'),
    ('reconcile pass', r'ReconcilerHost|Reconciler\+|Reconciler::'),
    ('API Create (after its await)', r'VmServiceImpl|StoreExceptionInterceptor|MicroVmOperations'),
    ('health check (after its await)', r'Health'),
    ('Kestrel/gRPC (with the handler until its first await)', r'\[Microsoft\.AspNetCore|\[Grpc'),
    ('sockets', r'\[System\.Net\.Sockets'),
    ('pipelines', r'Pipelines'),
    ('telemetry', r'PhaseCounter|NodeGauges|OpenTelemetry|\[Hypercore\.Telemetry\]'),
]]


def load(path):
    acts, threads, leaves, n = collections.Counter(), collections.Counter(), collections.Counter(), 0
    for block in open(path, errors='replace').read().split('\n\n'):
        lines = [l for l in block.split('\n') if l.strip()]
        if len(lines) < 2:
            continue
        n += 1
        m = re.match(r'^(.*?)\s+\d+(/\d+)?\s', lines[0])
        comm = re.sub(r'\d+', '#', m.group(1).strip() if m else '')
        frames = [l.strip() for l in lines[1:]]
        act = next((name for f in reversed(frames) for name, rx in ACTIVITIES if rx.search(f)), None)
        acts[act or 'other, thread ' + comm] += 1
        kernel = '[kernel.kallsyms]' in frames[0]
        threads[comm + (' kernel' if kernel else ' user')] += 1
        sym = re.search(r'\s[0-9a-f]+\s(.*)$', frames[0])
        leaves[('K ' if kernel else 'U ') + re.sub(r'\+0x[0-9a-f]+', '', sym.group(1) if sym else frames[0])[:100]] += 1
    return n, acts, threads, leaves


d = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 20
r = json.loads(re.search(r'RESULT (.*)', open(f'{d}/child.out').read()).group(1))
B, C = load(f'{d}/base.script'), load(f'{d}/create.script')
pb, pc = r['base_cpu_us_per'] / B[0], r['cpu_us_per'] / C[0]
print(f"empty calls {r['base_rate']:,.0f}/s at {r['base_cpu_us_per']:.1f} µs per call ({B[0]} samples); "
      f"Creates {r['rate']:,.0f}/s at {r['cpu_us_per']:.1f} µs per Create ({C[0]} samples); ratio to this baseline {r['rate'] / r['base_rate']:.3f}")
for title, i in (('activity', 1), ('thread', 2)):
    print(f"{'µs per call, by ' + title:58s} {'empty':>7s} {'Create':>7s} {'diff':>7s}")
    for k in sorted(set(B[i]) | set(C[i]), key=lambda k: -(C[i][k] * pc - B[i][k] * pb)):
        if max(C[i][k] * pc, B[i][k] * pb) >= 0.5:
            print(f"  {k[:56]:56s} {B[i][k] * pb:7.1f} {C[i][k] * pc:7.1f} {C[i][k] * pc - B[i][k] * pb:+7.1f}")
print(f"leaf symbols, µs per Create (and per empty call)")
for k, v in C[3].most_common(top):
    print(f"  {v * pc:6.2f} {B[3][k] * pb:6.2f}  {k}")
