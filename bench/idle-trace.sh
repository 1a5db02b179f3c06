#!/usr/bin/env bash
# Who waits on whom while the two cores are not both busy in the Running load (issue 15, thirteenth pass, idle13;
# bench/NOTES.md): runs the api-node child once against a Native AOT benchmark node while the kernel records every
# context switch and wake-up on the machine, the store writer's steps (uprobes from the .dbg: CommitBatch entry and
# return, the bounded wait for a request write, the idle wait for any write, each queued write and each request write,
# each Create applied, the release of request callers / reconciler callers / deferred ones), its fsyncs, the GC's
# pauses and both ends of every loopback call (sendto/recvfrom). Entry probes only: a return probe on managed code
# replaces the return address, which the runtime's stack walks (GC, exceptions) cannot read (the node aborts). Fewer probes than ack-trace.sh (no thread-pool
# enqueue probe), so the daemon runs closer to its untraced speed. Then bench/idle-analyze.py OUT.
#
#   sudo bash bench/idle-trace.sh RUNNER BENCH_NODE OUT [more runner args]
#
# Leaves OUT/{trace,pid,ss,lat.*,result.json,stdout}; removes its probes and trace instance on exit.
set -euo pipefail
runner=$1 daemon=$2 out=$3; shift 3
source "$(cd "$(dirname "$0")" && pwd)/uprobes.sh"
uprobes_init idletrace
bin=$(uprobes_binary "$daemon")
i=$UPROBES_INSTANCE
mkdir -p "$out"; out=$(cd "$out" && pwd)
s=Hypercore_Store_Sqlite_Hypercore_Store_Sqlite_
w=${s}SqliteMicroVmStore__
uprobe_sym p commit "$bin.dbg" ${w}CommitBatch "$bin" 'n=+16(%si):s32'
uprobe_sym p enq "$bin.dbg" ${w}Enqueue "$bin"
uprobe_sym p reqq "$bin.dbg" ${s}BackgroundWriteWait__RequestQueued "$bin"
uprobe_sym p bgw_in "$bin.dbg" ${s}BackgroundWriteWait__WaitForRequest "$bin"
uprobe_sym p idle_in "$bin.dbg" ${w}WaitForWrites "$bin"
uprobe_sym p w_create "$bin.dbg" ${w}ApplyCreate "$bin"
uprobe_sym p complete "$bin.dbg" ${w}Complete "$bin" 'req=%cx:u8'
uprobe_sym p defer "$bin.dbg" ${w}Defer "$bin"
uprobe_sym p reldef "$bin.dbg" ${w}ReleaseDeferred "$bin"
uprobe_gc_pauses "$bin"
uprobes_start 262144
for e in sys_enter_fsync sys_exit_fsync sys_enter_fdatasync sys_exit_fdatasync sys_enter_sendto sys_enter_sendmsg sys_enter_recvfrom sys_exit_recvfrom sys_enter_writev; do echo 1 > $i/events/syscalls/$e/enable; done
echo 1 > $i/events/sched/sched_switch/enable
echo 1 > $i/events/sched/sched_wakeup/enable
rm -f "$out/pid"
(
  for _ in $(seq 600); do [[ -s $out/pid ]] && break; sleep 0.1; done
  p=$(cat "$out/pid")
  for _ in $(seq 30); do ss -tnpH state established >> "$out/ss" 2>/dev/null || true; sleep 1; [[ -d /proc/$p ]] || break; done
) &
cd "$(mktemp -d)"
echo 1 > $i/tracing_on
HYPERCORE_BENCH_LATENCY_TRACE=$out/lat HYPERCORE_BENCH_DAEMON_PID_FILE=$out/pid "$runner" --child api-node --bench-node "$daemon" --child-size 64 --api-seconds 6 \
  --work-dir "$out/work" "$@" > "$out/stdout" 2> "$out/stderr" < /dev/null
wait
echo 0 > $i/tracing_on
cp $i/trace "$out/trace"
rm -rf "$out/work"
grep '^RESULT ' "$out/stdout" | sed 's/^RESULT //' > "$out/result.json"
