#!/usr/bin/env bash
# Where a GC pause of the Native AOT benchmark node goes (issue 15, heap11; bench/NOTES.md): one api-node run (goal 2's
# Running load, 64 clients, 6 s) with uprobes on the runtime's own GC functions of a copy of NODE: the stop
# (SuspendEE → RestartEE), gc1 (with the condemned generation, the trigger reason and the card-efficiency ratio read
# from the GC's globals), the stack/handle roots, mark, the card scans of gen2 (mark_through_cards_for_segments) and of
# the large-object heap (mark_through_cards_for_uoh_objects; both run in the mark phase and again in the relocate
# phase), plan (which contains relocate and compact), make_free_lists (a sweeping collection) and background marking.
#
#   bash bench/gc-phases.sh RUNNER NODE OUT        (root: tracefs, uprobes; NODE.dbg beside NODE)
#   python3 bench/gc-phases.py OUT [-v]           per generation: n, mean/p90/max pause, mean ms per phase; -v each GC
#
# The globals' offsets (gc_mechanisms: condemned_generation at +8, reason at +60) are those of .NET 10's gc.cpp; the
# reading checks the first against the generation it traces. The probes slow the node a little (~16 events per GC).
set -euo pipefail
runner=$1 node=$2 out=$3
source "$(cd "$(dirname "$0")" && pwd)/uprobes.sh"
mkdir -p "$out"; out=$(cd "$out" && pwd)
uprobes_init gcph
i=$UPROBES_INSTANCE
bin=$(uprobes_copy "$node" "$out/bin")
sym() { uprobe_cxx_addr "$bin" "$1"; }
add() { uprobe_at "$1" "$2" "$bin" "$3" "${4:-}"; }
S=$(sym 'WKS::gc_heap::settings'); K=$(sym 'WKS::gc_heap::generation_skip_ratio')
at() { printf '@+0x%x' $((S + $1)); }
uprobe_gc_pauses "$bin"
add p gc1_in "$(sym 'WKS::gc_heap::gc1()')" "gen=$(at 8):s32 reason=$(at 60):s32 skip=@+$K:s32"
add r gc1_out "$(sym 'WKS::gc_heap::gc1()')" "skip=@+$K:s32"
for ph in mark_phase plan_phase relocate_phase compact_phase make_free_lists mark_through_cards_for_segments \
    mark_through_cards_for_uoh_objects background_mark_phase; do
  a=$(sym "WKS::gc_heap::$ph("); add p "${ph}_in" "$a"; add r "${ph}_out" "$a"
done
a=$(sym 'GCToEEInterface::GcScanRoots('); add p roots_in "$a"; add r roots_out "$a"
uprobes_start 16384
echo > $i/trace; echo 1 > $i/tracing_on
load=$(cut -d' ' -f1 /proc/loadavg)
( cd "$(mktemp -d)" && HYPERCORE_BENCH_LATENCY_TRACE=$out/lat HYPERCORE_BENCH_DAEMON_PID_FILE=$out/pid \
    "$runner" --child api-node --bench-node "$bin" --child-size 64 --api-seconds 6 --work-dir "$out/work" > "$out/stdout" 2> "$out/stderr" ) || true
echo 0 > $i/tracing_on; cp $i/trace "$out/trace"; rm -rf "$out/work" "$out/bin"
echo "load=$load $(grep '^RESULT ' "$out/stdout" | sed 's/^RESULT //')" > "$out/result"
python3 "$(dirname "$0")/gc-phases.py" "$out"
