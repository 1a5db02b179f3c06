#!/usr/bin/env bash
# WAL pages per Create (issue 15, pages8): one api-daemon run (64 clients, 6 s, Stopped load) against DAEMON; once the
# store's WAL has passed 2 MB and DELAY more seconds, the daemon is stopped (SIGSTOP), its hypercore.db and -wal are
# copied into OUT, and it goes on (SIGCONT). Then: python3 bench/wal-pages.py OUT.
#
#   bash bench/wal-capture.sh RUNNER DAEMON OUT [DELAY=3]
#
# RUNNER: the built Hypercore.Benchmarks. The stop lasts the copy (~0.1 s): the run's own figures are disturbed by it.
set -euo pipefail
R=$1 D=$2 OUT=$3 DELAY=${4:-3}
mkdir -p "$OUT"
w=$(mktemp -d /tmp/wal-capture.XXXX)
trap 'rm -rf "$w"' EXIT
HYPERCORE_BENCH_DAEMON_PID_FILE=$w/pid "$R" --child api-daemon --child-size 64 --api-seconds 6 --work-dir "$w" --daemon "$D" >"$OUT/out" 2>"$OUT/err" &
runner=$!
while [[ ! -s $w/pid ]]; do sleep 0.1; done
pid=$(cat "$w/pid")
db=$w/api-64-daemon/state/hypercore.db
while [[ $(stat -c %s "$db-wal" 2>/dev/null || echo 0) -lt 2000000 ]]; do sleep 0.1; done
sleep "$DELAY"
kill -STOP "$pid"
cp "$db" "$OUT/store.db"
cp "$db-wal" "$OUT/store.db-wal"
kill -CONT "$pid"
wait "$runner"
grep '^RESULT' "$OUT/out" || true
