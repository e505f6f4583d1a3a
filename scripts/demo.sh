#!/usr/bin/env bash
# `npm start`: the Flotilla demo (scripts/demo.ts), on a fresh machine too.
#
# 1. npm ci when node_modules is missing; as root, apt-get install the Debian packages
#    the real stacks need, when missing (before the namespace: npm and apt hang inside it).
# 2. With root, unshare and those packages: the demo runs inside a fresh network + mount
#    namespace (only loopback), where it starts a private dockerd and a loopback registry,
#    so no container address ever reaches the shared network.
# 3. Otherwise, or with FLOTILLA_DEMO_DRY_RUN=1: a labelled dry run that prints the compose
#    commands it would run and starts no container.
# Ctrl-C stops the demo; the demo stops what it started, and this script then stops any
# daemon still named in a pidfile under the run folder and removes the folder.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEBIAN_PACKAGES=(docker.io docker-compose docker-registry busybox-static)

say() { printf 'demo: %s\n' "$*" >&2; }

if [[ ! -x node_modules/.bin/tsx ]]; then
  say "node_modules missing, running npm ci"
  npm ci --no-audit --no-fund
fi

source scripts/debian-packages.sh

run_dir="$(mktemp -d /tmp/flotilla-demo.XXXXXX)"
export FLOTILLA_DEMO_RUN_DIR="$run_dir"

# Second line of defence: whatever the demo left (a crash, a second Ctrl-C), stopped by
# the PIDs in the pidfiles under the run folder, then the folder and .demo/ removed.
stop_leftovers() {
  local pidfile pid
  for pidfile in "$run_dir"/*/*.pid; do
    [[ -f "$pidfile" ]] || continue
    pid="$(cat "$pidfile")"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      say "stopping leftover process $pid ($pidfile)"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}
cleanup() {
  stop_leftovers
  rm -rf "$run_dir" .demo
}
trap cleanup EXIT

status=0
if [[ "${FLOTILLA_DEMO_DRY_RUN:-}" == 1 ]]; then
  trap : INT TERM
  node --import tsx scripts/demo.ts || status=$?
  exit "$status"
fi

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
  install_debian_packages demo || say "apt-get could not install ${DEBIAN_PACKAGES[*]}"
fi

mapfile -t blockers < <(docker_blockers)
if ((${#blockers[@]} > 0)); then
  say "no Docker engine can be started here, so this is a DRY RUN:"
  for reason in "${blockers[@]}"; do say "  - $reason"; done
  export FLOTILLA_DEMO_DRY_RUN=1
  FLOTILLA_DEMO_DRY_RUN_REASONS="$(printf '%s\n' "${blockers[@]}")"
  export FLOTILLA_DEMO_DRY_RUN_REASONS
  trap : INT TERM
  node --import tsx scripts/demo.ts || status=$?
  exit "$status"
fi

trap : INT TERM
unshare --net --mount --fork -- bash scripts/in-namespace.sh demo "$FLOTILLA_DEMO_RUN_DIR" node --import tsx scripts/demo.ts || status=$?
exit "$status"
