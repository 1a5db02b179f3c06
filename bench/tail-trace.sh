#!/usr/bin/env bash
# Goal 2's tail, lined up (issue 15, gctail; bench/NOTES.md): runs the api-daemon child once against a Native AOT
# vistarad while the kernel traces the daemon's GC pauses and fsyncs, then says which slow Creates overlapped what.
#
#   sudo bash bench/tail-trace.sh RUNNER DAEMON OUT [more runner args]
#   sudo TAIL_TRACE_CHILD=api-node bash bench/tail-trace.sh RUNNER BENCH_NODE OUT   (the Running load, on the benchmark node)
#
# RUNNER: the built Hypercore.Benchmarks; DAEMON: a vistarad from scripts/publish-vistarad.sh, with its vistarad.dbg
# beside it (or a script that execs one: the probes sit on the binary, the pid stays the same). Needs root (tracefs,
# uprobes). The Native AOT daemon has no EventPipe, so its GC is traced with uprobes on the runtime's own functions
# (symbols from vistarad.dbg): GCToEEInterface::SuspendEE (entry) to RestartEE (return) is one pause, mark_phase's
# argument its generation, background_mark_phase a background collection. Calls: the load generator's
# HYPERCORE_BENCH_LATENCY_TRACE (end and latency of each measured Create, CLOCK_MONOTONIC), which is the clock of the
# trace instance here (trace_clock mono). Also sampled: the store writer thread's schedstat every 0.25 s.
# Leaves OUT/{lat.create,trace,writer,walsize,fds,pid,result.json,analysis}; removes its probes and trace instance on exit.
set -euo pipefail
runner=$1 daemon=$2 out=$3; shift 3
here=$(cd "$(dirname "$0")" && pwd)
source "$here/uprobes.sh"
uprobes_init tailtrace
bin=$(uprobes_binary "$daemon")
i=$UPROBES_INSTANCE
mkdir -p "$out"; out=$(cd "$out" && pwd)
uprobe_gc_pauses "$bin"
uprobe_cxx p mark "$bin" 'WKS::gc_heap::mark_phase(int)' 'gen=%di:s32'
uprobe_cxx p bgmark "$bin" 'WKS::gc_heap::background_mark_phase()'
# The store writer (commit7): each commit's start and its number of writes (the List's _size, at +16 in a Native AOT
# object), each write it applies by kind, and SQLite's WAL checkpoint (entry and return, in libe_sqlite3.so, whose
# local symbols are there; a return probe is safe in native code: the GC walks no frame below the P/Invoke).
w=Hypercore_Store_Sqlite_Hypercore_Store_Sqlite_SqliteMicroVmStore__
lib=$(dirname "$bin")/libe_sqlite3.so
uprobe_sym p commit "$bin.dbg" ${w}CommitBatch "$bin" 'n=+16(%si):s32'
uprobe_sym p w_create "$bin.dbg" ${w}ApplyCreate "$bin"
uprobe_sym p w_status "$bin.dbg" ${w}ApplyUpdateStatus "$bin"
uprobe_sym p w_claim "$bin.dbg" ${w}ApplyClaim "$bin"
uprobe_sym p ckpt_in "$lib" sqlite3WalCheckpoint
uprobe_sym r ckpt_out "$lib" sqlite3WalCheckpoint
uprobes_start 65536
for e in sys_enter_fsync sys_exit_fsync sys_enter_fdatasync sys_exit_fdatasync; do echo 1 > $i/events/syscalls/$e/enable; done
# Page writes (ckpt8): SQLite writes a WAL frame as a 24-byte header and a 4,096-byte page, and a checkpoint copies each
# page into the database file with one 4,096-byte pwrite; counted per checkpoint by fd and thread (frames copied).
echo 'count == 4096' > $i/events/syscalls/sys_enter_pwrite64/filter && echo 1 > $i/events/syscalls/sys_enter_pwrite64/enable
echo 1 > $i/tracing_on
rm -f "$out/pid" "$out/writer" "$out/walsize"
(
  for _ in $(seq 600); do [[ -s $out/pid ]] && break; sleep 0.1; done
  p=$(cat "$out/pid" 2>/dev/null) || exit 0; w="" k=0
  python3 -c 'import time; print("offset", time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC))' > "$out/writer"
  while [[ -d /proc/$p ]]; do
    if [[ -z $w ]]; then for t in /proc/$p/task/*; do grep -q "sqlite store wr" "$t/comm" 2>/dev/null && w=$t; done
      [[ -n $w ]] && { sleep 1; for f in /proc/$p/fd/*; do echo "${f##*/} $(readlink "$f")"; done > "$out/fds" 2>/dev/null; }; fi
    [[ -n $w ]] && read -r a b c < "$w/schedstat" 2>/dev/null && echo "$EPOCHREALTIME $a $b $c" >> "$out/writer"
    # Files opened later (the checkpointer's connection, ckpt8): the fd table again every second, appended.
    [[ -n $w ]] && (( ++k % 4 == 0 )) && for f in /proc/$p/fd/*; do echo "${f##*/} $(readlink "$f")"; done >> "$out/fds" 2>/dev/null
    # The WAL file's size (ckpt8): how large it grows and what it is left at after the load.
    [[ -z ${wal:-} && -s $out/fds ]] && wal=$(grep -o '/.*-wal$' "$out/fds" | head -1)
    [[ -n ${wal:-} ]] && s=$(stat -c %s "$wal" 2>/dev/null) && echo "$EPOCHREALTIME $s" >> "$out/walsize"
    sleep 0.25
  done
) &
# TAIL_TRACE_CHILD=api-node: DAEMON is a hypercore-bench-node (bench/publish-bench-node.sh, its .dbg beside it) and the
# load is goal 2's Running load (ninth pass); the default is api-daemon against vistarad (the Stopped load).
if [[ ${TAIL_TRACE_CHILD:-api-daemon} == api-node ]]; then server=(--child api-node --bench-node "$daemon"); else server=(--child api-daemon --daemon "$daemon"); fi
HYPERCORE_BENCH_LATENCY_TRACE=$out/lat HYPERCORE_BENCH_DAEMON_PID_FILE=$out/pid \
  "$runner" "${server[@]}" --child-size 64 --api-seconds 6 --work-dir "$out/work" "$@" > "$out/stdout"
wait
echo 0 > $i/tracing_on
cp $i/trace "$out/trace"
rm -rf "$out/work"
grep '^RESULT ' "$out/stdout" | sed 's/^RESULT //' > "$out/result.json"
python3 "$here/tail-analyze.py" "$out" | tee "$out/analysis"
