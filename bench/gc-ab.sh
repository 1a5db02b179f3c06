#!/usr/bin/env bash
# GC settings A/B on one published Native AOT benchmark node (issue 15, gc10; bench/NOTES.md): the api-node child
# (goal 2's Running load, 64 clients, 6 s) against the same binary with different DOTNET_GC* variables, interleaved
# (the order rotates each round), every GC pause of the node traced by uprobes on the runtime's own functions.
#
#   sudo bash bench/gc-ab.sh RUNNER NODE OUT ROUNDS NAME=VAR=value[,VAR=value...] ...      (NAME=- : no variable)
#   e.g. sudo bash bench/gc-ab.sh R /tmp/n/hypercore-bench-node /tmp/gcab 6 b6=- b12=DOTNET_GCGen0MaxBudget=C00000
#
# The Native AOT runtime reads a DOTNET_<name> variable before the value embedded with --runtimeopt, with the GC's own
# (case-sensitive) name: DOTNET_GCGen0MaxBudget (hex) replaces vistarad.runtime.props' 6 MB; DOTNET_GCgen0MaxBudget is
# ignored. So one publish serves every value; the node reports the budget it runs with (runtime_gen0_budget). The probes
# sit on a copy of the binary in OUT, so no other process running the same file is probed. Needs root (tracefs,
# uprobes) and NODE.dbg beside NODE. Leaves OUT/NAME-ROUND/{result.json,gc.json} and OUT/runs.log;
# python3 bench/gc-ab.py OUT/runs.log prints the medians per setting. GC_AB_SECONDS: the Create window (6 s).
# A setting may name another published node instead of NODE with NODE=path among its variables (svgc11: base against a
# new publish in the same loop, e.g. base=NODE=/tmp/p10-new-node/hypercore-bench-node); each node's copy gets its own
# probes. Server GC (a node linked with it, DOTNET_gcServer=1) is traced too: its collections run SVR::gc_heap's members,
# whose condemned generation is the second argument (%si; the first is the heap).
set -euo pipefail
runner=$1 node=$2 out=$3 rounds=$4; shift 4
here=$(cd "$(dirname "$0")" && pwd)
source "$here/uprobes.sh"
mkdir -p "$out"; out=$(cd "$out" && pwd)
uprobes_init gcab
i=$UPROBES_INSTANCE
declare -A copies=()
# probe NODE K: copies NODE's directory to OUT/binK and sets uprobes on the copy (event names end in K).
probe() {
  local src=$1 k=$2 dir=$out/bin$2 bin a
  [[ $k == 0 ]] && dir=$out/bin
  bin=$(uprobes_copy "$src" "$dir")
  uprobe_cxx p susp_in$k "$bin" 'GCToEEInterface::SuspendEE('
  uprobe_cxx r rest_out$k "$bin" 'GCToEEInterface::RestartEE('
  uprobe_cxx p mark$k "$bin" 'WKS::gc_heap::mark_phase(int)' 'gen=%di:s32'
  uprobe_cxx p bgmark$k "$bin" 'WKS::gc_heap::background_mark_phase()'
  if a=$(uprobe_cxx_addr "$bin" 'SVR::gc_heap::mark_phase(int)'); then
    uprobe_at p smark$k "$bin" "$a" 'gen=%si:s32'
    uprobe_cxx p sbgmark$k "$bin" 'SVR::gc_heap::background_mark_phase()'
  fi
  copies[$src]=$bin
}
probe "$node" 0
for spec in "$@"; do
  for v in $(tr ',' ' ' <<< "${spec#*=}"); do
    if [[ $v == NODE=* && -z ${copies[${v#NODE=}]:-} ]]; then probe "${v#NODE=}" ${#copies[@]}; fi
  done
done
uprobes_start 8192
specs=("$@"); n=${#specs[@]}
for r in $(seq 1 "$rounds"); do
  for k in $(seq 0 $((n - 1))); do
    spec=${specs[$(( (k + r) % n ))]}; name=${spec%%=*}; vars=${spec#*=}; run=$out/$name-$r
    [[ $vars == - ]] && vars=""
    bin=${copies[$node]} env=()
    for v in ${vars//,/ }; do
      if [[ $v == NODE=* ]]; then bin=${copies[${v#NODE=}]}; else env+=("$v"); fi
    done
    mkdir -p "$run"; load=$(cut -d' ' -f1 /proc/loadavg)
    echo > $i/trace; echo 1 > $i/tracing_on
    ( cd "$(mktemp -d)" && env "${env[@]}" HYPERCORE_BENCH_LATENCY_TRACE=$run/lat HYPERCORE_BENCH_DAEMON_PID_FILE=$run/pid \
        "$runner" --child api-node --bench-node "$bin" --child-size 64 --api-seconds "${GC_AB_SECONDS:-6}" --work-dir "$run/work" > "$run/stdout" 2> "$run/stderr" ) || true
    echo 0 > $i/tracing_on; cp $i/trace "$run/trace"; rm -rf "$run/work"
    grep '^RESULT ' "$run/stdout" | sed 's/^RESULT //' > "$run/result.json" || true
    python3 "$here/gc-ab.py" --run "$run" > "$run/gc.json" || true
    echo "$r $name load=$load $(cat "$run/result.json") $(cat "$run/gc.json")" >> "$out/runs.log"
  done
done
python3 "$here/gc-ab.py" "$out/runs.log"
