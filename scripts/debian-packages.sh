# Sourced by scripts/test.sh and scripts/demo.sh: the Debian packages the real parts
# need, installed when missing (as root, before any network namespace: apt hangs inside
# one), and the reasons Docker cannot run here. The caller sets DEBIAN_PACKAGES.

# The packages named (default: DEBIAN_PACKAGES) that are not installed, one a line.
missing_packages() {
  local pkg
  local -a wanted=("$@")
  ((${#wanted[@]} > 0)) || wanted=("${DEBIAN_PACKAGES[@]}")
  for pkg in "${wanted[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
      printf '%s\n' "$pkg"
    fi
  done
}

# $1: a prefix for the one line said before installing (e.g. "test.sh"); then the packages
# to install when missing (default: DEBIAN_PACKAGES).
install_debian_packages() {
  local -a missing
  mapfile -t missing < <(missing_packages "${@:2}")
  ((${#missing[@]} == 0)) && return 0
  echo "$1: installing ${missing[*]} (apt-get)" >&2
  # Installing docker.io must not start the system's dockerd/containerd on the shared
  # network: a policy-rc.d answering 101 tells invoke-rc.d to start nothing.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
  fi
  local status=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  } >&2 || status=$?
  ((created_policy)) && rm -f "$policy"
  return "$status"
}

# Why Docker cannot run here, one reason per line; empty when it can.
docker_blockers() {
  [[ "$(id -u)" == 0 ]] || echo "not running as root (a private dockerd and network namespace need root)"
  command -v unshare >/dev/null || echo "unshare (util-linux) not found"
  local bin
  for bin in dockerd docker docker-compose docker-registry; do
    command -v "$bin" >/dev/null || echo "$bin not found (Debian packages: ${DEBIAN_PACKAGES[*]})"
  done
  [[ -x /bin/busybox ]] || echo "/bin/busybox not found (Debian package busybox-static)"
}
