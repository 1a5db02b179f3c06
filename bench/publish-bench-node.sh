#!/usr/bin/env bash
# Publishes hypercore-bench-node (bench/Hypercore.BenchNode: vistarad's composition with the benchmark's no-op driver)
# into DIR the way scripts/publish-vistarad.sh publishes vistarad, and prints the path of the binary. A benchmark tool:
# bench/run.sh runs it for the Running load of goal 2; it is never shipped.
# Native AOT with vistarad's own settings (src/Hypercore.Daemon/vistarad.runtime.props); without the toolchain, or when
# the native publish fails, the JIT build (ReadyToRun), said on stderr and reported by the node itself (its first line
# and the runner's row say "JIT"). HYPERCORE_BENCH_NODE_REQUIRE_AOT=1: fail instead; HYPERCORE_BENCH_NODE_JIT=1: the JIT
# build only.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bench/publish-bench-node.sh DIR}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
project=bench/Hypercore.BenchNode

case "$(uname -m)" in
  x86_64) rid=linux-x64 ;;
  aarch64) rid=linux-arm64 ;;
  *) rid="" ;;
esac

jit() {
  echo "publish-bench-node: publishing the benchmark node for the JIT (ReadyToRun): its rows measure JIT code, not vistarad's native code" >&2
  if [[ -n $rid ]]; then
    dotnet publish "$project" -c Release -r "$rid" --self-contained false -p:PublishReadyToRun=true -o "$out" -nologo -v q >&2
  else
    dotnet publish "$project" -c Release -o "$out" -nologo -v q >&2
  fi
}

fallback() {
  if [[ ${HYPERCORE_BENCH_NODE_REQUIRE_AOT:-0} == 1 ]]; then
    echo "publish-bench-node: HYPERCORE_BENCH_NODE_REQUIRE_AOT=1 and no Native AOT build (above); not falling back" >&2
    exit 1
  fi
  jit
}

if [[ ${HYPERCORE_BENCH_NODE_JIT:-0} == 1 ]]; then
  jit
elif [[ -z $rid ]] || ! command -v clang >/dev/null 2>&1 || [[ ! -e /usr/include/zlib.h ]]; then
  echo "publish-bench-node: no Native AOT toolchain (clang and zlib1g-dev) or unknown architecture $(uname -m)" >&2
  fallback
elif ! dotnet publish "$project" -c Release -r "$rid" -p:PublishAot=true -p:EventSourceSupport=false -o "$out" -nologo -v q >&2; then
  echo "publish-bench-node: the Native AOT publish failed (output above)" >&2
  fallback
else
  # Managed files of an earlier JIT publish into the same directory; the native binary uses none of them.
  find "$out" -maxdepth 1 -type f \( -name '*.dll' -o -name '*.deps.json' -o -name '*.runtimeconfig.json' \) -delete
fi
# The daemon's project is a reference: its apphost and files land beside the node. Only the node runs from here, so no
# runnable vistarad may sit in a benchmark node's directory. The JIT build keeps vistarad.dll: the node's own code
# loads it (the daemon's composition is in that assembly).
rm -f "$out/vistarad" "$out/vistarad.dbg" "$out/vistarad.pdb" "$out/vistarad.deps.json" "$out/vistarad.runtimeconfig.json" \
  "$out/vistarad.staticwebassets.endpoints.json"
echo "$(cd "$out" && pwd)/hypercore-bench-node"
