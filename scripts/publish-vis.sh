#!/usr/bin/env bash
# Publishes the `vis` CLI into DIR (default artifacts/vis) and prints the path of the binary.
# Native AOT by default: one self-contained native file that starts in a few ms (vis runs in shell loops; see
# docs/benchmarks.md, "vis cold start"). It needs a C toolchain (clang, zlib1g-dev: scripts/setup.sh installs them);
# without one, or with HYPERCORE_VIS_JIT=1, vis is published for the JIT (framework-dependent, ReadyToRun), which
# works the same but starts ~10x slower.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/vis}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

case "$(uname -m)" in
  x86_64) rid=linux-x64 ;;
  aarch64) rid=linux-arm64 ;;
  *) rid="" ;;
esac

jit() {
  dotnet publish src/Hypercore.Cli -c Release ${rid:+-r "$rid"} --self-contained false -p:PublishReadyToRun=true \
    -o "$out" -nologo -v q >&2
}

if [[ ${HYPERCORE_VIS_JIT:-0} == 1 ]]; then
  jit
elif [[ -z $rid ]] || ! command -v clang >/dev/null 2>&1 || [[ ! -e /usr/include/zlib.h ]]; then
  echo "publish-vis: no Native AOT toolchain (clang and zlib1g-dev; scripts/setup.sh installs them) or unknown" \
       "architecture $(uname -m): publishing vis for the JIT (slower start)" >&2
  jit
elif ! dotnet publish src/Hypercore.Cli -c Release -r "$rid" -p:PublishAot=true -o "$out" -nologo -v q >&2; then
  echo "publish-vis: the Native AOT publish failed (output above); publishing vis for the JIT instead" >&2
  jit
else
  # A JIT publish into the same directory earlier left its managed files; the native vis does not use them.
  rm -f "$out/vis.dll" "$out/vis.deps.json" "$out/vis.runtimeconfig.json"
fi
echo "$(cd "$out" && pwd)/vis"
