#!/usr/bin/env bash
# Runs a command inside the fresh network + mount namespace that scripts/test.sh and
# scripts/demo.sh create (`unshare --net --mount --fork -- bash scripts/in-namespace.sh
# NAME RUN_DIR COMMAND...`): brings loopback up, runs COMMAND, then stops every daemon
# still named in a pidfile under RUN_DIR (by PID) and unmounts what is mounted below it.
# It keeps going on Ctrl-C so that sweep always runs.
trap : INT TERM
name="$1" run_dir="$2"
shift 2
if command -v ip >/dev/null; then ip link set lo up; else busybox ip link set lo up; fi || {
  echo "$name: cannot bring up loopback in the new network namespace" >&2; exit 1; }
status=0
"$@" || status=$?
for pidfile in "$run_dir"/*/*.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "$name: stopping leftover process $pid ($pidfile)" >&2
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
done
# Deepest mount points first (exec-root/netns/default and the like).
awk -v root="$run_dir" "index(\$5, root) == 1 { print \$5 }" /proc/self/mountinfo |
  sort -r | while read -r point; do umount -l "$point" 2>/dev/null || true; done
exit "$status"
