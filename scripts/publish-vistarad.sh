#!/usr/bin/env bash
# Publishes vistarad into DIR (default artifacts/vistarad) the way it is deployed, and prints the path of the binary.
# Native AOT by default: one self-contained native file, a fraction of the start-up CPU and memory of the JIT build
# (docs/benchmarks.md, "Cold start"). It needs a C toolchain (clang, zlib1g-dev: scripts/setup.sh installs them);
# without one, when the native publish fails, or with HYPERCORE_VISTARAD_JIT=1, vistarad is published for the JIT:
# framework-dependent and ReadyToRun (precompiled code: about half the start CPU of a plain JIT build), which works
# the same but starts several times slower.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/vistarad}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

case "$(uname -m)" in
  x86_64) rid=linux-x64 ;;
  aarch64) rid=linux-arm64 ;;
  *) rid="" ;;
esac

jit() {
  if [[ -n $rid ]]; then
    dotnet publish src/Hypercore.Daemon -c Release -r "$rid" --self-contained false -p:PublishReadyToRun=true \
      -o "$out" -nologo -v q >&2
  else
    echo "publish-vistarad: no ReadyToRun for $(uname -m); publishing for the JIT only" >&2
    dotnet publish src/Hypercore.Daemon -c Release -o "$out" -nologo -v q >&2
  fi
}

# HYPERCORE_VISTARAD_REQUIRE_AOT=1: fail instead of falling back (the test that runs the shipped binary uses it).
fallback() {
  if [[ ${HYPERCORE_VISTARAD_REQUIRE_AOT:-0} == 1 ]]; then
    echo "publish-vistarad: HYPERCORE_VISTARAD_REQUIRE_AOT=1 and no Native AOT build (above); not falling back" >&2
    exit 1
  fi
  jit
}

if [[ ${HYPERCORE_VISTARAD_JIT:-0} == 1 ]]; then
  jit
elif [[ -z $rid ]] || ! command -v clang >/dev/null 2>&1 || [[ ! -e /usr/include/zlib.h ]]; then
  echo "publish-vistarad: no Native AOT toolchain (clang and zlib1g-dev; scripts/setup.sh installs them) or unknown" \
       "architecture $(uname -m): publishing vistarad for the JIT (ReadyToRun, slower start)" >&2
  fallback
# HYPERCORE_VISTARAD_DIAGNOSTICS=1: keep EventPipe in the native binary (dotnet-counters/-trace/-gcdump can attach;
# 1.5 MB larger, ~2 MB more idle RSS: Hypercore.Daemon.csproj).
elif ! dotnet publish src/Hypercore.Daemon -c Release -r "$rid" -p:PublishAot=true \
       -p:EventSourceSupport="$([[ ${HYPERCORE_VISTARAD_DIAGNOSTICS:-0} == 1 ]] && echo true || echo false)" -o "$out" -nologo -v q >&2; then
  # TreatWarningsAsErrors holds here too: a trim or AOT warning (a reflection path that would fail at run time in
  # the native binary) fails this publish and lands here, instead of shipping a daemon that breaks on first use.
  echo "publish-vistarad: the Native AOT publish failed (output above); publishing vistarad for the JIT instead" >&2
  fallback
else
  # A JIT publish into the same directory earlier left its managed files; the native vistarad uses none of them.
  find "$out" -maxdepth 1 -type f \( -name '*.dll' -o -name '*.deps.json' -o -name '*.runtimeconfig.json' \) -delete
fi
echo "$(cd "$out" && pwd)/vistarad"
