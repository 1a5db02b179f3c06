#!/usr/bin/env bash
# Profile one in-process API child in BOTH of goal 2's windows: the empty-call baseline before the Creates and the
# Creates (issue 15, s30; bench/NOTES.md). Where bench/inproc-profile.sh gives the Create's cost by activity, this gives
# what a Create costs beyond an empty call on the same server in the same run, by activity and by thread, user and kernel.
#
#   bash bench/window-profile.sh RUNNER OUTDIR [perf frequency] [mode]
#
# RUNNER is a published Hypercore.Benchmarks (bench/run.sh publishes one); mode is api (the goal's Running load,
# default) or api-stopped. Runs `RUNNER --child MODE --child-size 64 --api-seconds 6` with the JIT's symbols in
# /tmp/perf-PID.map and records the inner (daemon-runtime) process for 4 s from 3.5 s after each window's load
# generator starts (its warm-up is 3 s). Writes OUTDIR/child.out (the RESULT line), OUTDIR/{base,create}.{data,script}.
# Summarise with bench/window-profile.py OUTDIR. Needs root for perf.
set -euo pipefail
runner=$1; out=$(mkdir -p "$2" && cd "$2" && pwd); freq=${3:-999}; mode=${4:-api}
work=$(mktemp -d /tmp/hcb.window.XXXX); cwd=$(mktemp -d /tmp/hcb.cwd.XXXX)
trap 'rm -rf "$work" "$cwd"' EXIT
cd "$cwd"
DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 "$runner" --child "$mode" --child-size 64 --api-seconds 6 \
    --work-dir "$work" > "$out/child.out" 2>&1 &
child=$!
inner=

# The first load generator of the inner process whose command line has CALL (health: the baseline; create: the Creates).
loadgen() {
    local c
    for c in $(pgrep -P "$inner" || true); do
        if tr '\0' ' ' < "/proc/$c/cmdline" 2>/dev/null | grep -q -- "--call $1"; then echo "$c"; return; fi
    done
}

record() {
    local call=$1 name=$2 lg=
    for _ in $(seq 1 2400); do
        [ -z "$inner" ] && inner=$(pgrep -f -- "--runtimeconfig .*--child $mode .*$work" | head -1 || true)
        [ -n "$inner" ] && lg=$(loadgen "$call")
        [ -n "$lg" ] && break
        sleep 0.05
    done
    [ -n "$lg" ] || { echo "no $call load generator seen" >&2; kill "$child"; exit 1; }
    sleep 3.5
    perf record -F "$freq" -g -p "$inner" -o "$out/$name.data" -- sleep 4 2> "$out/$name.err"
}

record health base
record create create
perf script -i "$out/base.data" --pid "$inner" > "$out/base.script" 2>/dev/null
perf script -i "$out/create.data" --pid "$inner" > "$out/create.script" 2>/dev/null
wait "$child"
