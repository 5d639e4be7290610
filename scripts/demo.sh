#!/usr/bin/env bash
# The demo: builds ckpt, starts a sample program, checkpoints it (which
# kills it), restores it with the same pid, and shows it carrying on.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "scripts/demo.sh: run as root" >&2; exit 1; fi
scripts/build.sh >/dev/null
B=${BUILD_DIR:-build}
work=$(mktemp -d /tmp/ckpt-demo.XXXXXX)
log=$work/counter.log

echo "== starting the sample program (output goes to $log)"
setsid "$B"/test/demo/ckpt-demo-counter >"$log" 2>&1 </dev/null &
pid=$!
disown "$pid"   # bash still reaps it, silently
sleep 2.2
tail -n 3 "$log"

echo "== ckpt dump -t $pid -D $work/img"
"$B"/ckpt dump -t "$pid" -D "$work/img" -o dump.log
for _ in $(seq 100); do [ -e /proc/$pid ] || break; sleep 0.05; done
echo "   images: $(du -sh "$work/img" | cut -f1) in $work/img"
if kill -0 "$pid" 2>/dev/null; then echo "process still there?!"; exit 1; fi
echo "   pid $pid is gone; its last line was:"
tail -n 1 "$log"
sleep 1

echo "== ckpt restore -D $work/img -d"
"$B"/ckpt restore -D "$work/img" -d -o restore.log
sleep 2.2
echo "   it runs again as pid $pid and continues counting with the same checksum chain:"
tail -n 5 "$log"
kill "$pid"; sleep 0.2
echo "== done (images and logs kept in $work)"
