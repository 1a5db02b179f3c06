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
bin=$(readlink -f "$daemon")
T=/sys/kernel/tracing
g=idletrace$$ i=$T/instances/idletrace$$
[[ -e $T/uprobe_events ]] || mount -t tracefs nodev $T
[[ -f $bin.dbg ]] || { echo "idle-trace: no $bin.dbg (the Native AOT publish's symbols)" >&2; exit 1; }
mkdir -p "$out"; out=$(cd "$out" && pwd)
ev=""
cleanup() {
  echo 0 > $i/tracing_on 2>/dev/null || true
  for e in $ev; do echo 0 > $i/events/$g/$e/enable 2>/dev/null || true; done
  rmdir $i 2>/dev/null || true
  for e in $ev; do echo "-:$g/$e" >> $T/uprobe_events 2>/dev/null || true; done
}
trap cleanup EXIT
probe() {  # p|r NAME SYMBOL [FETCHARGS]
  local a; a=$(nm "$bin.dbg" 2>/dev/null | grep -E " [tT] $3\$" | head -1 | cut -d' ' -f1) || true
  [[ -n $a ]] || { echo "idle-trace: no $3, not traced" >&2; return 0; }
  echo "$1:$g/$2 $bin:0x$a ${4:-}" >> $T/uprobe_events && ev+=" $2"
}
s=Hypercore_Store_Sqlite_Hypercore_Store_Sqlite_
w=${s}SqliteMicroVmStore__
probe p commit ${w}CommitBatch 'n=+16(%si):s32'
probe p enq ${w}Enqueue
probe p reqq ${s}BackgroundWriteWait__RequestQueued
probe p bgw_in ${s}BackgroundWriteWait__WaitForRequest
probe p idle_in ${w}WaitForWrites
probe p w_create ${w}ApplyCreate
probe p complete ${w}Complete 'req=%cx:u8'
probe p defer ${w}Defer
probe p reldef ${w}ReleaseDeferred
gcoff() { nm -C "$bin.dbg" | grep -F " $1" | head -1 | cut -d' ' -f1; }
a=$(gcoff 'GCToEEInterface::SuspendEE(') && [[ -n $a ]] && echo "p:$g/susp_in $bin:0x$a" >> $T/uprobe_events && ev+=" susp_in"
a=$(gcoff 'GCToEEInterface::RestartEE(') && [[ -n $a ]] && echo "r:$g/rest_out $bin:0x$a" >> $T/uprobe_events && ev+=" rest_out"
mkdir $i
echo mono > $i/trace_clock
echo 1 > $i/options/record-tgid
echo 262144 > $i/buffer_size_kb
for e in $ev; do echo 1 > $i/events/$g/$e/enable; done
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
