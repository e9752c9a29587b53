#!/bin/sh
# Installs upstream Go programs ("peers": SPIRE, upstream NSM's cmd-*) that the end-to-end tests run beside
# nsm-ts, built from the Go module proxy into a cache OUTSIDE the repository, so nothing of them is ever
# committed. A peer already built at the wanted version (binary + stamp file) is reused without calling
# `go`, so a warm run takes milliseconds.
#
#   scripts/install-peers.sh [--list] [NAME...]      (no NAME: spire-server spire-agent)
#
# Cache: ${NSM_PEERS_CACHE:-/var/cache/nsm-ts/peers}, holding bin/ (the binaries), stamps/<name>@<version>,
# go/ (GOMODCACHE, GOCACHE, GOPATH) and scratch/ (scratch modules for tool-only peers). Builds run under
# `nice -n 10` (the machine is shared). Progress and timings go to stderr; stdout gets one line
# "<name> <binary path>" per requested peer, for callers (test/peers.ts). NSM_PEERS_GO names the go
# command (default: `go` on PATH, else /usr/local/go/bin/go).
#
# Exit codes: 0 all installed; 1 an install failed (the message names the peer); 2 bad usage (unknown
# peer); 3 `go` is not installed (callers skip with the printed reason; CI machines have Go).
set -u

EXIT_FAILED=1
EXIT_USAGE=2
EXIT_NO_GO=3

CACHE=${NSM_PEERS_CACHE:-/var/cache/nsm-ts/peers}
# The go command: NSM_PEERS_GO, else `go` on PATH, else the official tarball's place.
GO=${NSM_PEERS_GO:-go}
if [ -z "${NSM_PEERS_GO-}" ] && ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; fi
DEFAULT_PEERS="spire-server spire-agent"

# name → "method module version package cgo"
#   tool:    the module is served only as a tool dependency (SPIRE refuses `go install pkg@version`):
#            `go get -tool pkg@version` in a scratch module, then `go install pkg` there.
#   install: `go install pkg@version`.
peer_spec() {
  case "$1" in
    spire-server) echo "tool github.com/spiffe/spire v1.13.3 github.com/spiffe/spire/cmd/spire-server cgo" ;;
    spire-agent) echo "tool github.com/spiffe/spire v1.13.3 github.com/spiffe/spire/cmd/spire-agent cgo" ;;
    cmd-nsmgr) echo "install github.com/networkservicemesh/cmd-nsmgr v1.18.0 github.com/networkservicemesh/cmd-nsmgr nocgo" ;;
    cmd-nsc) echo "install github.com/networkservicemesh/cmd-nsc v1.18.0 github.com/networkservicemesh/cmd-nsc nocgo" ;;
    cmd-nse-icmp-responder) echo "install github.com/networkservicemesh/cmd-nse-icmp-responder v1.18.0 github.com/networkservicemesh/cmd-nse-icmp-responder nocgo" ;;
    cmd-registry-memory) echo "install github.com/networkservicemesh/cmd-registry-memory v1.18.0 github.com/networkservicemesh/cmd-registry-memory nocgo" ;;
    *) return 1 ;;
  esac
}
KNOWN_PEERS="spire-server spire-agent cmd-nsmgr cmd-nsc cmd-nse-icmp-responder cmd-registry-memory"

log() { echo "install-peers: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

# Go settings for every build: everything under the cache; no toolchain download; cgo where needed.
go_env() {
  gobin=$1 cgo_on=$2
  shift 2
  env GOBIN="$gobin" GOPATH="$CACHE/go/path" GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" \
    GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -modcacherw" CGO_ENABLED="$cgo_on" GO111MODULE=on \
    nice -n 10 "$GO" "$@"
}

# The binary carries its module versions (`go version -m`): check the peer's module is the wanted one.
check_built_version() {
  "$GO" version -m "$1" 2>/dev/null | awk -v m="$2" -v v="$3" '($1 == "mod" || $1 == "dep") && $2 == m && $3 == v { ok = 1 } END { exit !ok }'
}

install_one() {
  name=$1
  set -- $(peer_spec "$name")
  method=$1 module=$2 version=$3 pkg=$4 cgo=$5
  bin="$CACHE/bin/$name"
  stamp="$CACHE/stamps/$name@$version"
  if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$pkg@$version" ]; then
    log "$name $version: cached ($bin)"
    return 0
  fi
  t1=$(now)
  cgo_enabled=0
  if [ "$cgo" = cgo ]; then
    cgo_enabled=1
    if ! command -v "${CC:-gcc}" >/dev/null 2>&1; then
      log "FAILED: $name $version needs cgo (sqlite) but no C compiler (${CC:-gcc}) is installed: apt-get install -y gcc"
      return 1
    fi
  fi
  staging="$CACHE/staging/$name"
  rm -rf "$staging" && mkdir -p "$staging" "$CACHE/bin" "$CACHE/stamps" || return 1
  log "$name $version: building $pkg ($method, cgo=$cgo_enabled, nice -n 10) into $CACHE"
  if [ "$method" = tool ]; then
    scratch="$CACHE/scratch/$name@$version"
    rm -rf "$scratch" && mkdir -p "$scratch" || return 1
    (
      cd "$scratch" &&
        go_env "$staging" "$cgo_enabled" mod init "nsm-ts-peers/$name" &&
        go_env "$staging" "$cgo_enabled" get -tool "$pkg@$version" &&
        go_env "$staging" "$cgo_enabled" install "$pkg"
    ) >&2 || { log "FAILED: $name $version: go get -tool / go install $pkg in $scratch"; return 1; }
  else
    (cd "$CACHE" && go_env "$staging" "$cgo_enabled" install "$pkg@$version") >&2 ||
      { log "FAILED: $name $version: go install $pkg@$version"; return 1; }
  fi
  built="$staging/$(basename "$pkg")"
  [ -x "$built" ] || { log "FAILED: $name $version: go install produced no $built"; return 1; }
  check_built_version "$built" "$module" "$version" ||
    { log "FAILED: $name: the built binary does not carry $module $version (go version -m $built)"; return 1; }
  rm -f "$CACHE/stamps/$name@"*
  mv -f "$built" "$bin" && rm -rf "$staging" && echo "$pkg@$version" >"$stamp" || return 1
  log "$name $version: installed $bin in $(since "$t1")"
}

main() {
  if [ "${1-}" = --list ]; then
    for p in $KNOWN_PEERS; do echo "$p $(peer_spec "$p" | cut -d' ' -f2-3)"; done
    return 0
  fi
  case "${1-}" in -h | --help)
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
    return 0
    ;;
  esac
  peers=${*:-$DEFAULT_PEERS}
  for p in $peers; do
    peer_spec "$p" >/dev/null || { log "unknown peer '$p' (known: $KNOWN_PEERS)"; return $EXIT_USAGE; }
  done
  missing=""
  for p in $peers; do
    set -- $(peer_spec "$p")
    if ! [ -x "$CACHE/bin/$p" ] || [ "$(cat "$CACHE/stamps/$p@$3" 2>/dev/null)" != "$4@$3" ]; then missing="$missing $p"; fi
  done
  if [ -n "$missing" ] && ! command -v "$GO" >/dev/null 2>&1; then
    log "SKIP: '$GO' (go) is not installed, so the Go peers$missing cannot be built (install Go >= 1.24 from https://go.dev/dl/ and put it on PATH)"
    return $EXIT_NO_GO
  fi
  if [ -n "$missing" ]; then
    gov=$("$GO" env GOVERSION 2>/dev/null | sed 's/^go//')
    major=${gov%%.*} rest=${gov#*.} minor=${rest%%.*}
    case "$major.$minor" in *[!0-9.]* | .*) minor=0 major=0 ;; esac
    if [ "$major" -lt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -lt 24 ]; }; then
      log "FAILED:$missing: go $gov is too old (go get -tool needs Go >= 1.24)"
      return $EXIT_FAILED
    fi
  fi
  mkdir -p "$CACHE" || { log "FAILED: cannot create the cache $CACHE"; return $EXIT_FAILED; }
  t0=$(now)
  # One installer at a time per cache (setup and a test may race); waits for the other to finish.
  exec 9>"$CACHE/.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  failed=""
  for p in $peers; do install_one "$p" || failed="$failed $p"; done
  rm -rf "$CACHE/staging"
  if [ -n "$failed" ]; then
    log "FAILED to install:$failed (see above; cache $CACHE)"
    return $EXIT_FAILED
  fi
  for p in $peers; do echo "$p $CACHE/bin/$p"; done
  log "peers ready ($peers) in $(since "$t0")"
}

main "$@"
