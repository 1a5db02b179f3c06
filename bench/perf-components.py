#!/usr/bin/env python3
"""The AOT daemon's CPU by component (issue 15, cpu8; bench/NOTES.md). Usage:

    perf record -F 4999 -g -p <vistarad> -o perf.data -- sleep 6   # during the api-daemon child's Create window
    perf script -i perf.data | python3 bench/perf-components.py [N]

Each sample goes to the first component whose pattern matches a frame of its stack, walking from the leaf towards the
root and skipping kernel frames (so a syscall counts for the managed code that made it, and a runtime helper such as
an allocation or a write barrier for its caller's component, unless the GC itself is running). Samples with no managed
frame (glibc has no frame pointers: a futex wait or wake under pthread, a socket send) are put by their thread and
kernel stack. Prints the share per component, the kernel leaves, and the top N stacks left as "other".
"""
import sys, re, collections
comps = [
 ('GC', re.compile(r'gc_heap|WKS::|GCToEE|SVR::|RhpNew|RhpGcAlloc|RhAllocateNew|GcAlloc|AllocateObject|RhpCollect|background_|gc_')),
 ('threadpool', re.compile(r'PortableThreadPool|LowLevelLifoSemaphore|LowLevelSpinWaiter|ThreadPoolWorkQueue|ThreadPool__|ThreadPoolBoundHandle|WorkerThread|IThreadPoolWorkItem|ThreadPoolTypedWorkItemQueue|QueueUserWorkItem|UnsafeQueueUserWorkItem|LowLevelMonitor|WaitSubsystem|Thread__Yield|ExecutionContext__RunInternal|ThreadPoolWorkQueue__Dispatch')),
 ('telemetry', re.compile(r'Hypercore_Telemetry|Microsoft_Extensions_Logging|System_Diagnostics_Metrics|System_Diagnostics_DiagnosticSource|Activity|HostingApplicationDiagnostics|HostingMetrics|KestrelMetrics|Meter|Instrument|Histogram|Counter_|OpenTelemetry|LoggerMessage|EventSource')),
 ('store', re.compile(r'Hypercore_Store|sqlite3|SQLitePCL|Microsoft_Data_Sqlite|^wal|pcache|btree|Btree|Vdbe|Pager|pager|e_sqlite3|libe_sqlite3')),
 ('reconciler', re.compile(r'Hypercore_Core|Hypercore_Drivers|Polly|Hypercore_Networking|Hypercore_Images')),
 ('api', re.compile(r'Hypercore_Api|Hypercore_Contracts')),
 ('grpc', re.compile(r'Grpc_|Google_Protobuf')),
 ('kestrel/http2', re.compile(r'Kestrel|Microsoft_AspNetCore|System_IO_Pipelines|System_Net_Sockets|Http2|HPack|System_Net_Http')),
]
def classify(frames):
    # frames: list of (sym, dso) leaf first
    for sym, dso in frames:
        s = sym + ' ' + dso
        for name, rx in comps:
            if rx.search(s):
                return name
    return 'other'
tot = collections.Counter(); kern = collections.Counter(); leafk = collections.Counter()
other = collections.Counter(); comm = collections.Counter()
cur = None; frames = []
def flush():
    global frames, cur
    if cur is None: return
    if frames:
        c = classify([f for f in frames if '[kernel' not in f[1]])
        if c == 'other':
            ks = ';'.join(f[0] for f in frames)
            if cur.startswith('sqlite store'): c = 'store(writer,unattributed)'
            elif 'futex' in ks or 'sched_yield' in ks: c = 'threadpool?(futex,no managed frame)'
            elif 'tcp_' in ks or 'sock_' in ks: c = 'socket(no managed frame)'
        tot[c] += 1
        if '[kernel' in frames[0][1]:
            kern[c] += 1
            leafk[(c, frames[0][0])] += 1
        if c == 'other': other[frames[0][0] + ' <' + ';'.join(f[0] for f in frames[1:4])] += 1
    comm[cur] += 1
    frames = []
for line in sys.stdin:
    if not line.strip():
        flush(); cur = None; continue
    if not line.startswith((' ', '\t')):
        flush(); m2 = re.match(r'^(.*?)\s+\d+(/\d+)?\s', line); cur = (m2.group(1) if m2 else line.split()[0]); frames = []; continue
    parts = line.strip().split(None, 1)
    if len(parts) < 2: continue
    rest = parts[1]
    m = re.match(r'(.*) \((.*)\)$', rest)
    sym, dso = (m.group(1), m.group(2)) if m else (rest, '')
    sym = re.sub(r'\+0x[0-9a-f]+$', '', sym)
    frames.append((sym, dso))
flush()
N = sum(tot.values())
print(f"samples {N}")
for c, n in tot.most_common():
    print(f"  {c:16s} {100*n/N:5.1f} %   (kernel leaf {100*kern[c]/N:4.1f} %)")
print("threads:", ', '.join(f"{k} {100*v/N:.1f}%" for k, v in comm.most_common(8)))
print("top kernel leaves by component:")
for (c, s), n in leafk.most_common(15): print(f"  {100*n/N:5.1f} % {c:12s} {s}")
print("other:")
for s, n in other.most_common(int(sys.argv[1]) if len(sys.argv) > 1 else 12): print(f"  {100*n/N:5.1f} % {s[:200]}")
