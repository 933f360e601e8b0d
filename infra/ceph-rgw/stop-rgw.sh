#!/bin/bash
# Stop the daemons that start-rgw.sh started (only the PIDs it recorded), then wipe its data.
# The cluster is throwaway (memstore), so SIGKILL is used: a graceful TERM costs ~2 s a daemon.
# KEEP_DATA=1 keeps the folder (logs) for a post-mortem.
BASE=${CEPH_BASE:-/tmp/yrd-ceph-rgw}
RUN=$BASE/run
[ -d "$RUN/pids" ] || exit 0
pids=()
for f in "$RUN"/pids/*; do
  [ -f "$f" ] || continue
  pid=$(cat "$f"); rm -f "$f"
  kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; pids+=("$pid"); }
done
for _ in $(seq 1 50); do            # wait up to 5 s for them to be gone
  alive=0   # a killed-but-unreaped (zombie) process counts as gone
  for p in "${pids[@]}"; do
    st=$(ps -o stat= -p "$p" 2>/dev/null)
    [ -n "$st" ] && [ "${st#Z}" = "$st" ] && alive=1
  done
  [ $alive = 0 ] && break; sleep 0.1
done
[ "${KEEP_DATA:-0}" = 1 ] || { rm -rf "$RUN" "$BASE/credentials.json"; rmdir "$BASE" 2>/dev/null; }
echo STOPPED
