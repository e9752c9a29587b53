#!/bin/sh
# Idempotent setup for a fresh Debian machine (run as root): system packages, npm dependencies, build.
# Called by `npm test`, `npm start` and ./nsm; cheap when everything is already in place.
# `setup.sh test` (what `npm test` runs) also installs the upstream Go programs the end-to-end tests run
# beside nsm-ts (SPIRE) with scripts/install-peers.sh, into a cache outside the repository: a few minutes
# the first time, milliseconds when cached.
set -eu
cd "$(dirname "$0")/.."

need=""
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v nsenter >/dev/null 2>&1 || need="$need util-linux"
dpkg -s iputils-ping >/dev/null 2>&1 || need="$need iputils-ping"
command -v fping >/dev/null 2>&1 || need="$need fping"
command -v busybox >/dev/null 2>&1 || need="$need busybox"
# Remote mechanisms and their benchmark: userspace WireGuard (this kernel has no wireguard module), the
# VXLAN offload cure (ethtool) and iperf3 for throughput.
command -v wireguard-go >/dev/null 2>&1 || need="$need wireguard-go"
command -v ethtool >/dev/null 2>&1 || need="$need ethtool"
command -v iperf3 >/dev/null 2>&1 || need="$need iperf3"
if [ -n "$need" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing system packages:$need — run as root, or: sudo apt-get install -y$need" >&2
    exit 1
  fi
  echo "setup: installing system packages:$need" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends $need >&2
fi

if [ -L node_modules ]; then
  : # a link to another checkout's node_modules (a git worktree): never reinstall through it
elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

node node_modules/tsc-native/bin/tsc -p tsconfig.json >&2
chmod +x dist/src/cli/main.js 2>/dev/null || true

if [ "${1-}" = test ]; then
  rc=0
  sh scripts/install-peers.sh >/dev/null || rc=$?
  case $rc in
    0) ;;
    3) echo "setup: no Go peers (go is not installed): the SPIRE end-to-end tests will skip, saying so" >&2 ;;
    *) echo "setup: WARNING: installing the Go peers FAILED (exit $rc, output above): the SPIRE end-to-end tests will fail" >&2 ;;
  esac
fi
