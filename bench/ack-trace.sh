#!/usr/bin/env bash
# Goal 2's way back from a durable commit to the answer (issue 15, cpu8; bench/NOTES.md): runs the api-daemon child once
# against a Native AOT vistarad while the kernel traces the store writer's commits (uprobes on CommitBatch and
# ApplyCreate, symbols from vistarad.dbg), its fsyncs, and the daemon's socket sends and receives; then
# bench/ack-analyze.py says how long answers took after their commit was durable and the daemon's own time per Create.
#
#   sudo bash bench/ack-trace.sh RUNNER DAEMON OUT [more runner args]
#   sudo ACK_TRACE_CHILD=api-node bash bench/ack-trace.sh RUNNER BENCH_NODE OUT   (the Running load, on the benchmark node)
#
# Also traced (eleventh pass, ack11), where the symbols are there: every thread-pool enqueue (the work item's type and
# whether it went to the global queue), MicroVmOperations.CreateAsync's start and its resumptions (the caller's
# continuation after the durable commit), Kestrel's socket I/O queue (the send's work item), the HTTP/2 output loop,
# the informer's watch loop and the reconcile passes; ack-analyze.py then splits commit -> answer into stages.
#
# Also (twelfth pass, tail12): the GC pauses, every context switch and wake-up on the machine, recvfrom's return and the
# loopback connections' two ends (OUT/ss), for bench/wire-analyze.py OUT (the slowest calls from both ends of the wire).
#
# Leaves OUT/{lat.create,trace,pid,ss,result.json,analysis}; removes its probes and trace instance on exit.
set -euo pipefail
runner=$1 daemon=$2 out=$3; shift 3
here=$(cd "$(dirname "$0")" && pwd)
source "$here/uprobes.sh"
uprobes_init acktrace
bin=$(uprobes_binary "$daemon")
i=$UPROBES_INSTANCE
mkdir -p "$out"; out=$(cd "$out" && pwd)
w=Hypercore_Store_Sqlite_Hypercore_Store_Sqlite_SqliteMicroVmStore__
uprobe_sym p commit "$bin.dbg" ${w}CommitBatch "$bin" 'n=+16(%si):s32'
uprobe_sym p w_create "$bin.dbg" ${w}ApplyCreate "$bin"
tp=S_P_CoreLib_System_Threading_ThreadPoolWorkQueue__
op=Hypercore_Core_Hypercore_Operations_MicroVmOperations__CreateAsync_d__12
ks=Microsoft_AspNetCore_Server_Kestrel_
uprobe_sym p q_in "$bin.dbg" ${tp}Enqueue "$bin" 'mt=+0(%si):u64 g=%dx:u8'
uprobe_sym p c_start "$bin.dbg" "S_P_CoreLib_System_Runtime_CompilerServices_AsyncMethodBuilderCore__Start<${op}>" "$bin"
uprobe_sym p c_move "$bin.dbg" "${op}__MoveNext" "$bin"
uprobe_sym p ioq "$bin.dbg" ${ks}Transport_Sockets_${ks}Transport_Sockets_Internal_IOQueue__System_Threading_IThreadPoolWorkItem_Execute "$bin"
uprobe_sym p h2out "$bin.dbg" ${ks}Core_${ks}Core_Internal_Http2_Http2FrameWriter__WriteToOutputPipe_d__36__MoveNext "$bin"
uprobe_sym p follow "$bin.dbg" Hypercore_Core_Hypercore_Informers_MicroVmInformer__FollowAsync_d__30__MoveNext "$bin"
uprobe_sym p pass "$bin.dbg" Hypercore_Core_Hypercore_Reconciliation_Reconciler__ReconcilePassAsync_d__33__MoveNext "$bin"
uprobe_sym p work "$bin.dbg" Hypercore_Core_Hypercore_Reconciliation_ReconcilerHost__WorkAsync_d__25__MoveNext "$bin"
uprobe_gc_pauses "$bin" # GC pauses (tail12), as bench/tail-trace.sh
uprobes_start 131072
for e in sys_enter_fsync sys_exit_fsync sys_enter_fdatasync sys_exit_fdatasync sys_enter_sendto sys_enter_sendmsg sys_enter_recvfrom sys_enter_recvmsg sys_enter_writev sys_enter_readv sys_exit_recvfrom; do echo 1 > $i/events/syscalls/$e/enable; done
# Who had the CPUs (tail12): every context switch and wake-up on the machine, so wire-analyze.py can say how much of
# the two cores the daemon, the load generator and everything else got, and who waited for one, while the slowest
# calls waited.
echo 1 > $i/events/sched/sched_switch/enable
echo 1 > $i/events/sched/sched_wakeup/enable
rm -f "$out/pid"
(
  for _ in $(seq 600); do [[ -s $out/pid ]] && break; sleep 0.1; done
  p=$(cat "$out/pid")
  echo 1 > $i/tracing_on
  sleep 1; cat /proc/$p/maps > "$out/maps" 2>/dev/null || true
  # Both ends of every loopback connection with their processes and fds (tail12): wire-analyze.py pairs the load
  # generator's socket with the daemon's. Taken again later: the Create phase's load generator starts after the baseline.
  for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do ss -tnpH state established >> "$out/ss" 2>/dev/null || true; sleep 1; [[ -d /proc/$p ]] || break; done
) &
if [[ ${ACK_TRACE_CHILD:-api-daemon} == api-node ]]; then server=(--child api-node --bench-node "$daemon"); else server=(--child api-daemon --daemon "$daemon"); fi
HYPERCORE_BENCH_LATENCY_TRACE=$out/lat HYPERCORE_BENCH_DAEMON_PID_FILE=$out/pid \
  "$runner" "${server[@]}" --child-size 64 --api-seconds 6 --work-dir "$out/work" "$@" > "$out/stdout" 2> "$out/stderr"
wait
echo 0 > $i/tracing_on
cp $i/trace "$out/trace"
rm -rf "$out/work"
grep '^RESULT ' "$out/stdout" | sed 's/^RESULT //' > "$out/result.json"
nm "$bin.dbg" | grep ' _ZTV' > "$out/types" || true
python3 "$here/ack-analyze.py" "$out" | tee "$out/analysis"
