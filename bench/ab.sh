#!/usr/bin/env bash
# A/B of goal 2 (issue 15) between two commits: the same runner and load generator against each commit's server,
# rotated (A B B A …), a fresh server and state per run, one "RESULT" line per run kept, then the medians and ranges.
# What earlier passes ran from throw-away scripts in /tmp (bench/NOTES.md: "ab2"), kept here so the next pass has it.
#
# Usage: bash bench/ab.sh [--server node|daemon] [--rounds N] [--clients N] [--seconds S] [--out DIR] A B
#   A, B       commits (anything git rev-parse takes); each is checked out in a worktree and its server published there
#   --server   node: hypercore-bench-node, Running load (default; bench/publish-bench-node.sh, Native AOT)
#              daemon: vistarad, Stopped load (scripts/publish-vistarad.sh)
#   --rounds   runs per commit (default 6); the order alternates per round, so each side runs first half the time
#   --clients  gRPC clients of the load generator (default 64)
#   --seconds  measured window of each run (default 6)
#   --out      where the RESULT lines go (default a new /tmp/hcab.* directory, kept)
# The runner (and with it the load generator: HYPERCORE_BENCH_LOAD_GENERATOR, native by default) is published once
# from this checkout, so only the server differs between the sides. Nothing is written to docs/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source "$root/bench/common.sh"

server=node rounds=6 clients=64 seconds=6 out=""
while [[ $# -gt 0 && $1 == --* ]]; do
    case "$1" in
        --server) server=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --clients) clients=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "ab: unknown flag $1 (see the header of bench/ab.sh)" >&2; exit 2 ;;
    esac
done
[[ $# -eq 2 ]] || { echo "usage: bash bench/ab.sh [--server node|daemon] [--rounds N] [--clients N] [--seconds S] [--out DIR] A B" >&2; exit 2; }
case "$server" in
    node) kind=api-node flag=--bench-node ;;
    daemon) kind=api-daemon flag=--daemon ;;
    *) echo "ab: --server is node or daemon, not $server" >&2; exit 2 ;;
esac
a=$(git rev-parse --verify "$1^{commit}") b=$(git rev-parse --verify "$2^{commit}")
out=${out:-$(mktemp -d /tmp/hcab.XXXXXX)}
mkdir -p "$out"
scratch="$(mktemp -d /tmp/hcabw.XXXXXX)" # short: the runs' socket paths must fit in sockaddr_un
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    bench_reap "$scratch" # processes of this A/B only: their command line holds the scratch directory
    git -C "$root" worktree remove --force "$scratch/src-a" 2>/dev/null || true
    git -C "$root" worktree remove --force "$scratch/src-b" 2>/dev/null || true
    git -C "$root" worktree prune
    rm -rf "$scratch"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

publish() { # side commit
    git worktree add -q --detach "$scratch/src-$1" "$2"
    if [[ $server == node ]]; then
        HYPERCORE_BENCH_NODE_REQUIRE_AOT=${HYPERCORE_BENCH_NODE_REQUIRE_AOT:-1} \
            bash "$scratch/src-$1/bench/publish-bench-node.sh" "$scratch/server-$1" >/dev/null
        echo "$scratch/server-$1/hypercore-bench-node"
    else
        bash "$scratch/src-$1/scripts/publish-vistarad.sh" "$scratch/server-$1" >/dev/null
        echo "$scratch/server-$1/vistarad"
    fi
}
echo "ab: publishing the $server of A ($a) and of B ($b), and the runner from this checkout" >&2
bin_a=$(publish a "$a")
bin_b=$(publish b "$b")
bench_runner_publish_args # as bench/run.sh publishes the runner
dotnet publish bench/Hypercore.Benchmarks -c Release "${runner_r2r[@]}" -o "$scratch/runner" -nologo -v q >&2
printf 'A %s %s\nB %s %s\nserver %s, %s clients, %s s, %s rounds\n' "$a" "$bin_a" "$b" "$bin_b" "$server" "$clients" "$seconds" "$rounds" >"$out/sides.txt"

run() { # side binary round
    local work="$scratch/w-$1-$3" line
    mkdir -p "$work"
    read -r load _ </proc/loadavg
    line=$("$scratch/runner/Hypercore.Benchmarks" --child "$kind" --child-size "$clients" --work-dir "$work" \
        --api-seconds "$seconds" "$flag" "$2" --qemu-bin "$(command -v qemu-system-x86_64 || echo qemu-system-x86_64)" \
        2>"$out/$1-$3.err" | grep '^RESULT ' || true)
    rm -rf "$work"
    if [[ -z $line ]]; then
        echo "ab: run $1 $3 gave no RESULT line (stderr in $out/$1-$3.err)" >&2
        return 1
    fi
    echo "$1 $3 $load ${line#RESULT }" >>"$out/results.txt"
    echo "ab: $(date +%T) $1 round $3 (load $load) done" >&2
}
for ((r = 1; r <= rounds; r++)); do
    if ((r % 2)); then run A "$bin_a" "$r"; run B "$bin_b" "$r"; else run B "$bin_b" "$r"; run A "$bin_a" "$r"; fi
done

python3 - "$out/results.txt" <<'EOF' | tee "$out/summary.txt"
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    side, rnd, load, payload = line.split(" ", 3)
    r = json.loads(payload)
    r["load"] = float(load)
    rows.setdefault(side, []).append(r)
keys = [("ratio", "ratio", "{:.3f}"), ("rate", "Creates/s", "{:,.0f}"), ("p99_ms", "Create p99 ms", "{:.1f}"),
        ("cpu_us_per", "CPU/Create µs", "{:.0f}"), ("base_cpu_us_per", "CPU/empty call µs", "{:.0f}"),
        ("daemon_gc_pause_ms", "GC paused ms", "{:.0f}"), ("daemon_alloc_kb_per", "KB/Create", "{:.1f}"), ("load", "load at start", "{:.1f}")]
print("| side (runs) | " + " | ".join(k[1] for k in keys) + " |")
print("| --- |" + " --- |" * len(keys))
for side in sorted(rows):
    cells = []
    for key, _, fmt in keys:
        values = [r[key] for r in rows[side] if key in r]
        cells.append("" if not values else f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}–{fmt.format(max(values))}]")
    print(f"| {side} ({len(rows[side])}) | " + " | ".join(cells) + " |")
print("medians [ranges]; A and B as in sides.txt")
EOF
echo "ab: results in $out" >&2
