#!/usr/bin/env bash
# Benchmarks: builds Release (the daemon published as deployed: Native AOT, else ReadyToRun), runs bench/Hypercore.Benchmarks,
# prints a table and rewrites docs/benchmarks.md (not with --smoke or --no-docs).
#
# Usage: bash bench/run.sh [--quick | --smoke] [--only boot,api,scale,density,coldstart,images,snapshot,watch,pipeline] [other runner flags]
#   --help    this text and the runner's flags (builds the runner only)
#   --quick   3 density VMs and shorter API runs (minutes instead of ~15 min)
#   --smoke   tiny sizes, no docs rewrite (what CI runs through the NUnit smoke test)
# Environment:
#   HYPERCORE_BENCH_SETTLE  seconds to wait after the builds for the load average to fall to the core count (150)
#   HYPERCORE_BENCH_LOAD_GENERATOR  native (default: Api/NativeLoadGenerator/grpc-load.c, C on libnghttp2, one thread)
#                    or dotnet (the runner's own Grpc.Net.Client load generator, as before issue 15's nineteenth pass)
#   HYPERCORE_IMAGE  guest image directory (vmlinuz + initrd.img); default /var/lib/hypercore/images/default,
#                    built with scripts/build-image.sh when missing.
#
# Everything the run starts (daemons, QEMU guests, bare QEMU) has the run's scratch directory in its command line;
# on exit, failure or Ctrl+C those processes are killed by pid and the directory is removed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source "$root/bench/common.sh"

for arg in "$@"; do
    if [[ "$arg" == "-h" || "$arg" == "--help" ]]; then
        # The header above, then the runner's own flags (a build of the runner, not the publish and the image a run needs).
        sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
        echo
        DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 dotnet run -c Release --project bench/Hypercore.Benchmarks -v q -- --help
        exit 0
    fi
done
scratch="$(mktemp -d /tmp/hcb.XXXXXX)" # short: QMP socket paths must fit in sockaddr_un
work="$scratch/w"
runner_pid=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$runner_pid" ]] && kill -0 "$runner_pid" 2>/dev/null; then
        kill -TERM "$runner_pid" 2>/dev/null || true
        for _ in $(seq 1 300); do kill -0 "$runner_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$runner_pid" 2>/dev/null || true
    fi
    bench_reap "$work" # processes of this run only: their command line contains the scratch directory
    rm -rf "$scratch"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

image="${HYPERCORE_IMAGE:-/var/lib/hypercore/images/default}"
if [[ ! -s "$image/vmlinuz" || ! -s "$image/initrd.img" ]]; then
    echo "bench: no guest image at $image; building one into $scratch/image" >&2
    if bash scripts/build-image.sh "$scratch/image" >&2; then
        image="$scratch/image"
    else
        echo "bench: could not build the guest image; the boot and density benchmarks will be skipped" >&2
    fi
fi

echo "bench: publishing vistarad (Native AOT, else ReadyToRun), the benchmark node (the same), vis (Native AOT and JIT) and the runner (ReadyToRun)" >&2
bash scripts/publish-vistarad.sh "$scratch/daemon" >/dev/null
# The benchmark-only node (bench/Hypercore.BenchNode: vistarad's composition and settings, a no-op driver in place of the
# hypervisors) for goal 2's Running load in a process of its own, Native AOT as vistarad; when that publish falls back to
# the JIT build, the script says so here and the node and its rows say "JIT benchmark node".
bench_node=$(bash bench/publish-bench-node.sh "$scratch/bench-node")
# vis as it ships (Native AOT: scripts/publish-vis.sh) and its JIT build as the baseline of the vis rows.
vis=$(bash scripts/publish-vis.sh "$scratch/vis")
dotnet publish src/Hypercore.Cli -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
    -o "$scratch/vis-jit" -nologo -v q >&2
# The runner hosts the in-process benchmarks (api, scale, watch, pipeline: the daemon's own code), so it is published
# ReadyToRun like vistarad (scripts/publish-vistarad.sh): they then measure the code as it ships, not the JIT's
# compilation of it in a fresh process (issue 15).
bench_runner_publish_args
dotnet publish bench/Hypercore.Benchmarks -c Release "${runner_r2r[@]}" -o "$scratch/runner" -nologo -v q >&2

# The builds above are this script's own load: the 1-minute load average they leave (2-3 on 2 cores) decays within
# about a minute once they are done. Wait for it (at most HYPERCORE_BENCH_SETTLE seconds, default 150) so the runner's
# validity check, which compares the load at its start with the core count, judges other work on the machine and not
# our own publish. If the load stays high, the runner starts anyway and says the run is NOT VALID.
cores=$(nproc)
settle="${HYPERCORE_BENCH_SETTLE:-150}"
for ((waited = 0; waited < settle; waited += 5)); do
    read -r one _ </proc/loadavg
    awk -v l="$one" -v c="$cores" 'BEGIN { exit !(l <= c) }' && break
    ((waited % 30 == 0)) && echo "bench: waiting for the builds' load to settle: 1-minute load $one on $cores cores" >&2
    sleep 5
done

mkdir -p "$work"
"$scratch/runner/Hypercore.Benchmarks" \
    --daemon "$scratch/daemon/vistarad" --bench-node "$bench_node" --vis "$vis" --vis-jit "$scratch/vis-jit/vis" --image "$image" --work-dir "$work" \
    --docs "$root/docs/benchmarks.md" --notes "$root/bench/NOTES.md" "$@" &
runner_pid=$!
wait "$runner_pid"
