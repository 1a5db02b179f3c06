#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (root): install what is missing, build, start vistarad in the
# background, boot the demo microVM with `vis run --name demo`, and show its serial console.
# Run it again at any time: it reuses a running daemon and an existing demo VM.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state=${HYPERCORE_STATE_DIR:-/var/lib/hypercore}
grpc=${HYPERCORE_GRPC:-localhost:9090}
http=${HYPERCORE_HTTP:-localhost:9091}

bash scripts/setup.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
vistarad=$(bash scripts/publish-vistarad.sh "$root/artifacts/vistarad")   # Native AOT, else ReadyToRun
vis=$(bash scripts/publish-vis.sh "$root/artifacts/vis")   # Native AOT (JIT if the toolchain is missing)

mkdir -p "$state"
if ! "$vis" --host "$grpc" list >/dev/null 2>&1; then
  echo "starting vistarad (log: $state/vistarad.log)"
  setsid nohup "$vistarad" run --state-dir "$state" --grpc-endpoint "$grpc" --http-endpoint "$http" \
    >"$state/vistarad.log" 2>&1 < /dev/null &
  echo $! > "$state/vistarad.pid"
  for _ in $(seq 1 100); do
    grep -q "vistarad ready" "$state/vistarad.log" 2>/dev/null && break
    if ! kill -0 "$(cat "$state/vistarad.pid")" 2>/dev/null; then cat "$state/vistarad.log"; exit 1; fi
    sleep 0.2
  done
fi

if "$vis" --host "$grpc" get demo >/dev/null 2>&1; then
  "$vis" --host "$grpc" start demo --wait >/dev/null
  "$vis" --host "$grpc" get demo
else
  "$vis" --host "$grpc" run --name demo
fi
echo
echo "--- serial console of demo (waiting for the guest's line) ---"
for _ in $(seq 1 120); do
  if "$vis" --host "$grpc" logs demo | grep -q HYPERCORE-GUEST-READY; then break; fi
  sleep 0.5
done
"$vis" --host "$grpc" logs demo --tail 25
echo "---"
echo "daemon: $vistarad (pid $(cat "$state/vistarad.pid" 2>/dev/null || echo '?'), log $state/vistarad.log)"
echo "try:    $vis list | $vis pause demo | $vis resume demo | $vis logs -f demo | $vis delete demo"
echo "stop the daemon with: kill \$(cat $state/vistarad.pid)   (VMs keep running and are adopted on the next start)"
