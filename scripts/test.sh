#!/usr/bin/env bash
# `npm test`: the whole test suite, the same on a laptop, a fresh CI machine and here.
#
# 1. npm ci when node_modules is missing (before the namespace: npm hangs inside it).
# 2. As root, apt-get install the Debian packages the Docker tests use, when missing.
# 3. vitest inside a fresh network + mount namespace (only loopback), so the private
#    dockerd, the registry and every test that talks to them never touch the shared
#    network. The vitest JSON report always goes to test-results/vitest.json.
#
# Extra arguments go to vitest (`npm test -- agent/compose.docker.test.ts`).
# FLOTILLA_SKIP_DOCKER=1 runs only the unit project, with a loud banner, where Docker
# cannot run (not root, no unshare). Without it, a missing prerequisite is a failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

REPORT=test-results/vitest.json
# age: the real age CLI the secrets interop test checks Flotilla's age files against.
DEBIAN_PACKAGES=(docker.io docker-compose docker-registry busybox-static chromium age)

banner() {
  local line='!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!'
  printf '\n%s\n' "$line" >&2
  local text
  for text in "$@"; do printf '!! %s\n' "$text" >&2; done
  printf '%s\n\n' "$line" >&2
}

# A report from an earlier run must never be mistaken for this one's.
mkdir -p test-results
rm -f "$REPORT"

if [[ ! -x node_modules/.bin/vitest ]]; then
  echo "test.sh: node_modules missing, running npm ci" >&2
  npm ci --no-audit --no-fund
fi

source scripts/debian-packages.sh

vitest_args=(run --reporter=default --reporter=json "--outputFile.json=$REPORT" "$@")

if [[ "${FLOTILLA_SKIP_DOCKER:-}" == 1 ]]; then
  banner "FLOTILLA_SKIP_DOCKER=1: Docker tests (*.docker.test.ts) are SKIPPED." \
    "Only the unit project runs; nothing here proves compose, pulls or rollbacks."
  # The unit project's one real part from Debian: the age CLI (agent/secrets.age-interop.test.ts).
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    install_debian_packages test.sh age || banner "apt-get could not install age (the age CLI interop test needs it)"
  fi
  status=0
  node_modules/.bin/vitest "${vitest_args[@]}" --project unit || status=$?
  banner "Docker tests were SKIPPED (FLOTILLA_SKIP_DOCKER=1); vitest exit code $status."
  exit "$status"
fi

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
  install_debian_packages test.sh || banner "apt-get could not install ${DEBIAN_PACKAGES[*]}"
fi

mapfile -t blockers < <(docker_blockers)
if ((${#blockers[@]} > 0)); then
  banner "The Docker tests cannot run:" "${blockers[@]}" \
    "Fix the above, or set FLOTILLA_SKIP_DOCKER=1 to run the unit tests only."
  exit 1
fi

# Engines, registries and images of this run live under one folder, so a run that
# crashed can still be cleaned up below, by the PIDs in their pidfiles.
run_dir="$(mktemp -d /tmp/flotilla-test.XXXXXX)"
export FLOTILLA_TEST_RUN_DIR="$run_dir"

status=0
trap : INT TERM
unshare --net --mount --fork -- bash scripts/in-namespace.sh test.sh "$FLOTILLA_TEST_RUN_DIR" node_modules/.bin/vitest "${vitest_args[@]}" || status=$?
trap - INT TERM
rm -rf "$run_dir"

if [[ ! -s "$REPORT" ]]; then
  banner "vitest wrote no report to $REPORT (exit code $status)."
  ((status != 0)) || status=1
fi
exit "$status"
