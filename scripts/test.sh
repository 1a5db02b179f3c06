#!/usr/bin/env bash
# The one test command: installs what a fresh Debian 12 machine lacks (scripts/setup.sh), then runs every test
# in the solution and prints a closing "N passed, N failed" line. Exit code is non-zero if any test failed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build HypercoreController.sln -c Release -nologo -v q
log=$(mktemp)
set +e
dotnet test HypercoreController.sln -c Release --no-build -nologo -v q \
  --logger "console;verbosity=normal" -- NUnit.NumberOfTestWorkers=1 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
count() { awk -v k="$1" '$1 == k":" && $2 ~ /^[0-9]+$/ { s += $2 } END { print s + 0 }' "$log"; }
passed=$(count Passed)
failed=$(count Failed)
skipped=$(count Skipped)
# CI shows only the end of this output: repeat each failed test with its message and the first lines of its
# stack trace here, so a failure can be read from the tail.
if [ "$failed" -ne 0 ]; then
  echo "=== failed tests ==="
  awk '/^[[:space:]]+Failed [^:]/ { show = 1; n = 0 }
       /^[[:space:]]+(Passed|Skipped) / || /^Total tests:/ || /^Test Run/ { show = 0 }
       show && n < 40 { print; n++ }' "$log"
  echo "=== end of failed tests ==="
fi
rm -f "$log"
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
  exit 1
fi
