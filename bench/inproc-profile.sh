#!/usr/bin/env bash
# Profile an in-process API child (--child api | api-stopped) in its Create window (issue 15, running8; bench/NOTES.md).
#
#   bash bench/inproc-profile.sh RUNNER MODE OUTDIR [perf frequency]
#
# Runs `RUNNER --child MODE --child-size 64 --api-seconds 6` with DOTNET_PerfMapEnabled=1 (JIT symbols in
# /tmp/perf-PID.map) and DOTNET_EnableWriteXorExecute=0 (with W^X the JIT's code sits in a memfd mapping that perf does
# not look up in the perf map), from an empty working directory (until bench9 the in-process node's host watched the
# working directory recursively; runners built before it still do). The child starts itself again under the daemon's
# runtimeconfig and, since bench9, with every method compiled optimized (Runner/DaemonRuntime.cs, JitSettings): the
# process profiled is that inner one, from 3.5 s after it starts the Create load generator (after the 3 s warm-up) for
# 5 s: inside the measured window. Writes OUTDIR/child.out (the RESULT line), OUTDIR/perf.data, OUTDIR/perf.script (the
# inner pid only) and OUTDIR/pids. Extra environment reaches the inner process (DOTNET_TieredCompilation=1
# DOTNET_ReadyToRun=1: the JIT's defaults, as before bench9). Needs root for perf.
# Summarise with bench/perf-inproc.py.
set -euo pipefail
runner=$1; mode=$2; out=$(mkdir -p "$3" && cd "$3" && pwd); freq=${4:-999}
work=$(mktemp -d /tmp/hcb.inproc.XXXX); cwd=$(mktemp -d /tmp/hcb.cwd.XXXX)
cd "$cwd"
DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 "$runner" --child "$mode" --child-size 64 --api-seconds 6 \
    --work-dir "$work" > "$out/child.out" 2>&1 &
child=$!
inner=; lg=
for _ in $(seq 1 1200); do
    [ -z "$inner" ] && inner=$(pgrep -f -- "--runtimeconfig .*--child $mode .*$work" | head -1 || true)
    if [ -n "$inner" ]; then
        for c in $(pgrep -P "$inner" || true); do
            tr '\0' ' ' < "/proc/$c/cmdline" 2>/dev/null | grep -q -- '--call create' && lg=$c
        done
    fi
    [ -n "$lg" ] && break
    sleep 0.1
done
[ -n "$lg" ] || { echo "no Create load generator seen" >&2; kill "$child"; exit 1; }
echo "inner=$inner loadgen=$lg" > "$out/pids"
sleep 3.5
perf record -F "$freq" -g -p "$inner" -o "$out/perf.data" -- sleep 5 2> "$out/perf.err"
perf script -i "$out/perf.data" --pid "$inner" > "$out/perf.script" 2>/dev/null
wait "$child"
uptime >> "$out/pids"
rm -rf "$work" "$cwd"
