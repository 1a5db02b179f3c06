#!/usr/bin/env bash
# WAL pages per write of an in-process API child (issue 15, row9; bench/NOTES.md): bench/wal-capture.sh for
# `--child api` (Running load: create; claim + Provisioning; Running) or `--child api-stopped` instead of the daemon.
# One child run (64 clients, 6 s) from an empty working directory; once the store's WAL has passed 2 MB and DELAY more
# seconds, the child's inner process (it starts itself again under the daemon's runtimeconfig) is stopped (SIGSTOP), its
# hypercore.db and -wal are copied into OUT, and it goes on (SIGCONT). Then: python3 bench/wal-pages.py OUT (its
# "per Create (2 writes)" line assumes the Stopped load; use its frames per write and per b-tree).
#
#   bash bench/wal-capture-inproc.sh RUNNER MODE OUT [DELAY=3]
set -euo pipefail
R=$(readlink -f "$1") MODE=$2 OUT=$(mkdir -p "$3" && cd "$3" && pwd) DELAY=${4:-3}
w=$(mktemp -d /tmp/wal-capture.XXXX); cwd=$(mktemp -d /tmp/wal-capture-cwd.XXXX)
trap 'rm -rf "$w" "$cwd"' EXIT
cd "$cwd"
"$R" --child "$MODE" --child-size 64 --api-seconds 6 --work-dir "$w" >"$OUT/out" 2>"$OUT/err" &
runner=$!
db= inner=
for _ in $(seq 1 600); do
    [ -z "$db" ] && db=$(ls "$w"/api-64-*/hypercore.db 2>/dev/null | head -1 || true)
    [ -z "$inner" ] && inner=$(pgrep -f -- "--runtimeconfig .*--child $MODE .*$w" | head -1 || true)
    [ -n "$db" ] && [ -n "$inner" ] && break
    sleep 0.1
done
[ -n "$db" ] && [ -n "$inner" ] || { echo "no database or inner process seen" >&2; kill "$runner"; exit 1; }
while [[ $(stat -c %s "$db-wal" 2>/dev/null || echo 0) -lt 2000000 ]]; do sleep 0.1; done
sleep "$DELAY"
kill -STOP "$inner"
cp "$db" "$OUT/store.db"
cp "$db-wal" "$OUT/store.db-wal"
kill -CONT "$inner"
wait "$runner"
grep '^RESULT' "$OUT/out" | grep -o '"writes_per_commit":[0-9.]*' || true
