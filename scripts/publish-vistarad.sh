#!/usr/bin/env bash
# Publishes vistarad into DIR (default artifacts/vistarad) the way it is deployed, and prints the path of the binary:
# Release, framework-dependent, ReadyToRun for this machine's architecture (precompiled code: about half the CPU
# from process start to the first answered call; docs/benchmarks.md, "Cold start"). Native AOT is not possible yet
# (bench/NOTES.md lists what blocks it).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/vistarad}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

case "$(uname -m)" in
  x86_64) r2r=(-r linux-x64 --self-contained false -p:PublishReadyToRun=true) ;;
  aarch64) r2r=(-r linux-arm64 --self-contained false -p:PublishReadyToRun=true) ;;
  *) echo "publish-vistarad: no ReadyToRun for $(uname -m); publishing for the JIT only" >&2; r2r=() ;;
esac
dotnet publish src/Hypercore.Daemon -c Release "${r2r[@]}" -o "$out" -nologo -v q >&2
echo "$(cd "$out" && pwd)/vistarad"
