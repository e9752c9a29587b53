#!/bin/sh
# Installs the parts of a real single-node Kubernetes that scripts/k8s-cluster.sh boots (issue 16):
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and kubectl built from upstream's own
# k8s.io/kubernetes module through the Go module proxy, CoreDNS from github.com/coredns/coredns, and containerd, runc, the CNI plugins, etcd and
# busybox-static from Debian. Nothing of it lives in the repository.
#
#   scripts/install-k8s.sh [--print-bin]
#
# The build: k8s.io/kubernetes is not meant to be a dependency — its go.mod points every k8s.io/* staging
# module (k8s.io/api, apimachinery, client-go, ...) at ./staging and requires them at v0.0.0. A throwaway
# module under $CACHE/src requires k8s.io/kubernetes $K8S_VERSION, `replace`s each staging module named in
# that go.mod with its published $STAGING_VERSION, lists the five commands as `tool`s and builds them with
# the version stamped in (-X k8s.io/component-base/version..., as upstream's build does).
#
# Cache: ${NSM_K8S_CACHE:-/var/cache/nsm-ts/k8s}: bin/ (the binaries), src/ (the throwaway module),
# go-build/ (GOCACHE), stamp (what bin/ was built from), build-seconds (how long the last build took: 547 s cold on 2 shared cores, 33 s adding one command).
# Modules: GOMODCACHE=${NSM_GOMODCACHE:-/var/cache/nsm-ts/gomod} (the project's module cache).
# A bin/ whose stamp matches is reused without calling `go` (fast path). Builds run under `nice -n 19`.
# Progress goes to stderr; with --print-bin, stdout gets the bin directory.
#
# Exit codes: 0 installed; 1 a step failed (the message names it); 2 bad usage; 3 no `go`.
set -eu

K8S_VERSION=v1.34.4
STAGING_VERSION=v0.34.4
COREDNS_VERSION=v1.14.7
COMMANDS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl"
DEBIAN_PACKAGES="containerd runc containernetworking-plugins etcd-server busybox-static iptables conntrack socat"

CACHE=${NSM_K8S_CACHE:-/var/cache/nsm-ts/k8s}
MODCACHE=${NSM_GOMODCACHE:-/var/cache/nsm-ts/gomod}
GO=${NSM_K8S_GO:-go}
if [ -z "${NSM_K8S_GO-}" ] && ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; fi

PRINT_BIN=0
for a in "$@"; do
  case "$a" in
    --print-bin) PRINT_BIN=1 ;;
    *) echo "install-k8s: unknown argument '$a' (usage: install-k8s.sh [--print-bin])" >&2; exit 2 ;;
  esac
done

log() { echo "install-k8s: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }
now() { date +%s; }

# Debian parts: installed only when one of their commands is missing.
debian_missing() {
  for f in /usr/bin/containerd /usr/sbin/runc /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback \
    /usr/bin/etcd /bin/busybox /usr/sbin/iptables /usr/sbin/conntrack /usr/bin/socat; do
    [ -e "$f" ] || { echo "$f"; return 0; }
  done
  return 1
}

install_debian() {
  missing=$(debian_missing) || { log "Debian parts present (containerd $(containerd --version | awk '{print $3}'), etcd $(etcd --version | awk '/etcd Version/ {print $3}'))"; return 0; }
  log "installing Debian packages ($missing missing): $DEBIAN_PACKAGES"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 || fail "apt-get update"
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $DEBIAN_PACKAGES >&2 || fail "apt-get install $DEBIAN_PACKAGES"
  # Debian starts the services it installs where it can; the cluster script runs its own, so stop them.
  for s in containerd etcd; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$s" 2>/dev/null; then systemctl disable --now "$s" >&2 || true; fi
  done
}

stamp_text() { echo "k8s.io/kubernetes@$K8S_VERSION staging@$STAGING_VERSION $COMMANDS"; }

binaries_ok() {
  [ -f "$CACHE/stamp" ] && [ "$(cat "$CACHE/stamp")" = "$(stamp_text)" ] || return 1
  for c in $COMMANDS; do [ -x "$CACHE/bin/$c" ] || return 1; done
}

go_env() {
  env GOMODCACHE="$MODCACHE" GOCACHE="$CACHE/go-build" GOPATH="$CACHE/gopath" GOTOOLCHAIN=local \
    GOFLAGS="-buildvcs=false -modcacherw" CGO_ENABLED=0 GO111MODULE=on GOWORK=off "$@"
}

# The throwaway module: require kubernetes, replace each staging module it points at ./staging.
write_module() {
  src=$CACHE/src
  mkdir -p "$src"
  log "fetching k8s.io/kubernetes@$K8S_VERSION"
  gomod=$(cd "$src" && go_env nice -n 19 "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
    awk -F'"' '$2 == "GoMod" { print $4 }') || fail "go mod download k8s.io/kubernetes@$K8S_VERSION"
  [ -f "$gomod" ] || fail "no go.mod for k8s.io/kubernetes@$K8S_VERSION (got '$gomod')"
  staging=$(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$gomod" | sort -u)
  [ -n "$staging" ] || fail "found no ./staging replace in $gomod"
  {
    echo "// Throwaway module made by nsm-ts scripts/install-k8s.sh: builds upstream Kubernetes commands."
    echo "module nsm-ts.local/k8s-build"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    for c in $COMMANDS; do echo "tool k8s.io/kubernetes/cmd/$c"; done
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
    echo ")"
  } >"$src/go.mod"
  log "$(echo "$staging" | wc -l) staging modules replaced with $STAGING_VERSION"
  log "resolving dependencies (go mod tidy)"
  (cd "$src" && go_env nice -n 19 "$GO" mod tidy >&2) || fail "go mod tidy in $src"
}

build_binaries() {
  t0=$(now)
  write_module
  # As upstream's hack/lib/version.sh stamps it, so `kubectl version` and the node's kubeletVersion are real.
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
    ldflags="$ldflags -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  pkgs=""
  for c in $COMMANDS; do pkgs="$pkgs k8s.io/kubernetes/cmd/$c"; done
  mkdir -p "$CACHE/bin.new"
  log "building$pkgs (nice -n 19; cold with an empty go-build cache)"
  # shellcheck disable=SC2086
  (cd "$CACHE/src" && go_env nice -n 19 "$GO" build -trimpath -ldflags "$ldflags" -o "$CACHE/bin.new/" $pkgs >&2) ||
    fail "go build of$pkgs in $CACHE/src"
  rm -rf "$CACHE/bin"
  mv "$CACHE/bin.new" "$CACHE/bin"
  stamp_text >"$CACHE/stamp"
  secs=$(($(now) - t0))
  echo "$secs" >"$CACHE/build-seconds"
  log "built in $secs s into $CACHE/bin"
}

# Cluster DNS: CoreDNS from its own module (`go install`, no replace needed), into the same bin/.
install_coredns() {
  stamp="$CACHE/coredns-stamp"
  if [ -x "$CACHE/bin/coredns" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "coredns@$COREDNS_VERSION" ]; then return 0; fi
  t0=$(now)
  log "building github.com/coredns/coredns@$COREDNS_VERSION (nice -n 19)"
  mkdir -p "$CACHE/coredns-bin"
  go_env GOBIN="$CACHE/coredns-bin" nice -n 19 "$GO" install "github.com/coredns/coredns@$COREDNS_VERSION" >&2 ||
    fail "go install github.com/coredns/coredns@$COREDNS_VERSION"
  cp "$CACHE/coredns-bin/coredns" "$CACHE/bin/coredns"
  echo "coredns@$COREDNS_VERSION" >"$stamp"
  log "coredns built in $(($(now) - t0)) s"
}

command -v "$GO" >/dev/null 2>&1 || { log "no go command (set NSM_K8S_GO)"; exit 3; }
install_debian
if binaries_ok; then
  log "Kubernetes $K8S_VERSION: cached in $CACHE/bin (last build took $(cat "$CACHE/build-seconds" 2>/dev/null || echo "?") s)"
else
  build_binaries
fi
install_coredns
[ "$PRINT_BIN" = 1 ] && echo "$CACHE/bin"
exit 0
