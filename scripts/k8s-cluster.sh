#!/bin/sh
# Boots, inspects and removes a real single-node Kubernetes on this machine (issue 16): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd and kubelet, upstream's own programs installed by
# scripts/install-k8s.sh. The test machines are containers on cgroup v1 without a registry, so:
#
#   - the whole node lives in its own network namespace ($NETNS: lo + a veth pair holding $NODE_IP, the CNI
#     bridge, the pods' veths): no packet, route, iptables rule or link of the cluster is in the host netns;
#   - containerd and kubelet share one private mount namespace ($STATE/ns/mnt, slave of the host's), where
#     the kernel tunables kubelet insists on setting (vm.overcommit_memory, kernel.panic, ...) are files of
#     ours bound over /proc/sys, so the machine's real settings are never changed; pod mounts stay in it;
#   - kube-proxy (iptables mode) gives Service VIPs inside the node netns; CoreDNS runs as a node process
#     on $NODE_IP:53, kubelet's clusterDNS;
#   - every process runs under the cgroup $CGROOT (beneath the caller's memory cgroup, in every v1
#     hierarchy); kubelet's cgroupRoot is the same, so pods sit beneath it too;
#   - the sandbox ("pause") image and a busybox image are built here (gcc -static, Debian's busybox-static)
#     as OCI archives and imported with `ctr -n k8s.io images import`.
#
#   scripts/k8s-cluster.sh up       boot (reuses a running cluster of its own); prints the kubectl to use
#   scripts/k8s-cluster.sh status   exit 0 when every process runs and the node is Ready
#   scripts/k8s-cluster.sh down     stop everything and remove all it made (processes, mounts, netns,
#                                   cgroups, state dir)
#   scripts/k8s-cluster.sh env      print `export PATH=...` putting its kubectl wrapper first
#   scripts/k8s-cluster.sh import-image NAME OCI_LAYOUT_DIR_OR_ARCHIVE   import an image into containerd
#
# kubectl: $STATE/bin/kubectl enters the node netns and uses the admin kubeconfig; after `eval "$(k8s-cluster.sh
# env)"` a plain `kubectl ...` talks to this cluster.
# Env: NSM_K8S_STATE (/var/lib/nsm-ts-k8s), NSM_K8S_BOOT_TIMEOUT (seconds, 1..600, default 180).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${NSM_K8S_STATE:-/var/lib/nsm-ts-k8s}
NETNS=nsm-ts-k8s
NETNS_PATH=/run/netns/$NETNS
NODE_NAME=nsm-ts-node
NODE_IP=10.250.0.1
POD_CIDR=10.244.0.0/24
SVC_CIDR=10.96.0.0/24
SVC_IP=10.96.0.1
PAUSE_IMAGE=nsm-ts.local/pause:v1
BUSYBOX_IMAGE=nsm-ts.local/busybox:v1
BOOT_TIMEOUT=${NSM_K8S_BOOT_TIMEOUT:-180}
# Host paths private to the node (see make_namespaces): containerd's fixed ones and libcni's cache, and the
# DirectoryOrCreate hostPaths of deployments/ (SPIRE agent socket dir, NSM's socket dir).
NODE_PRIVATE_DIRS="/run/containerd /var/lib/cni /run/spire /var/lib/networkservicemesh"
DAEMONS="etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns"

log() { echo "k8s-cluster: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

case "$BOOT_TIMEOUT" in '' | *[!0-9]*) fail "NSM_K8S_BOOT_TIMEOUT='$BOOT_TIMEOUT': not a whole number of seconds" ;; esac
[ "$BOOT_TIMEOUT" -ge 1 ] && [ "$BOOT_TIMEOUT" -le 600 ] || fail "NSM_K8S_BOOT_TIMEOUT=$BOOT_TIMEOUT: must be 1..600"

# ---------------------------------------------------------------------------------------------- cgroups
# The hierarchies mounted under /sys/fs/cgroup: the v1 ones (cpu, memory, ..., name=systemd) and the hybrid
# unified one, where runc makes each container's cgroup too.
cgroup_mounts() { awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts; }

# Our cgroup path, the same in every hierarchy: beneath the caller's memory cgroup, so whatever tracks the
# caller's processes tracks the cluster's too. Fixed at `up` and kept in $STATE/cgroup-root.
cgroup_root() {
  if [ -f "$STATE/cgroup-root" ]; then cat "$STATE/cgroup-root"; return; fi
  base=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
  echo "${base%/}/nsm-ts-k8s"
}

make_cgroups() {
  for m in $(cgroup_mounts); do
    for d in "$m$CGROOT" "$m$CGROOT/daemons"; do
      mkdir -p "$d"
      # A new cpuset cgroup has no CPUs or memory nodes until given its parent's.
      if [ -f "$d/cpuset.cpus" ] && [ -z "$(cat "$d/cpuset.cpus")" ]; then
        cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus"
        cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"
      fi
    done
  done
}

# Every pid in our cgroups (pids hierarchy holds them all, as every hierarchy does).
cgroup_pids() {
  for m in $(cgroup_mounts); do
    [ -d "$m$CGROOT" ] && find "$m$CGROOT" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -un
}

remove_cgroups() {
  for m in $(cgroup_mounts); do
    [ -d "$m$CGROOT" ] || continue
    find "$m$CGROOT" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [ -d "$m$CGROOT" ] && log "warning: could not remove cgroup $m$CGROOT"
  done
  return 0
}

# ---------------------------------------------------------------------------------------------- processes
# Starts a daemon in our cgroup, the node netns and (containerd, kubelet) the node mount namespace; its pid
# (the program's own: sh and nsenter exec it) goes to $STATE/run/NAME.pid.
start_daemon() {
  name=$1 ns=$2
  shift 2
  enter="--net=$NETNS_PATH"
  [ "$ns" = node ] && enter="$enter --mount=$STATE/ns/mnt"
  procs=""
  for m in $(cgroup_mounts); do procs="$procs $m$CGROOT/daemons/cgroup.procs"; done
  # shellcheck disable=SC2016
  setsid sh -c 'for f in $0; do echo $$ >"$f"; done; exec nsenter '"$enter"' "$@"' "$procs" "$@" \
    >"$STATE/log/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/run/$name.pid"
  log "started $name (pid $!, log $STATE/log/$name.log)"
}

daemon_running() {
  [ -f "$STATE/run/$1.pid" ] || return 1
  pid=$(cat "$STATE/run/$1.pid")
  kill -0 "$pid" 2>/dev/null && grep -q "$CGROOT/daemons" "/proc/$pid/cgroup" 2>/dev/null
}

# wait_until DESCRIPTION SECONDS COMMAND...: polls every 0.5 s; on time-out shows the daemon's log tail.
wait_until() {
  what=$1 secs=$2
  shift 2
  t=$(now)
  end=$(($(date +%s) + secs))
  while ! "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then
      log "timed out after $secs s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
  log "$what after $(since "$t")"
}

in_node() { nsenter --net="$NETNS_PATH" "$@"; }
kubectl_() { "$STATE/bin/kubectl" "$@"; }

# ---------------------------------------------------------------------------------------------- certificates
# cert NAME CN ORG SANS: a key and a certificate signed by our CA (SANS: "" or "IP:..,DNS:..").
cert() {
  name=$1 cn=$2 org=$3 sans=$4
  p=$STATE/pki
  subj="/CN=$cn"
  [ -n "$org" ] && subj="$subj/O=$org"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } >"$p/$name.ext"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$p/$name.key" -out "$p/$name.csr" -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$p/$name.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 3650 \
    -extfile "$p/$name.ext" -out "$p/$name.crt" 2>/dev/null
  rm -f "$p/$name.csr" "$p/$name.ext"
}

# kubeconfig NAME: $STATE/pki/NAME.kubeconfig using NAME.crt/.key.
kubeconfig() {
  p=$STATE/pki
  cat >"$p/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: nsm-ts-k8s
  cluster:
    certificate-authority: $p/ca.crt
    server: https://$NODE_IP:6443
users:
- name: $1
  user:
    client-certificate: $p/$1.crt
    client-key: $p/$1.key
contexts:
- name: nsm-ts-k8s
  context: {cluster: nsm-ts-k8s, user: $1, namespace: default}
current-context: nsm-ts-k8s
EOF
}

make_pki() {
  p=$STATE/pki
  [ -f "$p/done" ] && return 0
  mkdir -p "$p"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$p/ca.key" -out "$p/ca.crt" -days 3650 \
    -subj "/CN=nsm-ts-k8s-ca" 2>/dev/null
  cert apiserver kube-apiserver "" "IP:$NODE_IP,IP:$SVC_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters ""
  cert admin admin system:masters ""
  cert controller-manager system:kube-controller-manager "" ""
  cert scheduler system:kube-scheduler "" ""
  cert kubelet "system:node:$NODE_NAME" system:nodes ""
  cert kube-proxy system:kube-proxy "" ""
  cert coredns system:coredns "" ""
  cert kubelet-serving "$NODE_NAME" "" "IP:$NODE_IP,DNS:$NODE_NAME"
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  for k in admin controller-manager scheduler kubelet kube-proxy coredns; do kubeconfig "$k"; done
  touch "$p/done"
}

# ---------------------------------------------------------------------------------------------- images
# oci_archive NAME ROOTFS ENTRYPOINT_JSON OUT: a one-layer OCI image archive that containerd imports under
# NAME (annotation io.containerd.image.name).
oci_archive() {
  name=$1 rootfs=$2 entrypoint=$3 out=$4
  d=$(mktemp -d "$STATE/tmp/oci.XXXXXX")
  mkdir -p "$d/blobs/sha256"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf "$d/layer" .
  blob() { s=$(sha256sum "$1" | cut -c1-64); mv "$1" "$d/blobs/sha256/$s"; echo "$s $(stat -c %s "$d/blobs/sha256/$s")"; }
  set -- $(blob "$d/layer")
  layer=$1 layer_size=$2
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":%s,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$entrypoint" "$layer" >"$d/config"
  set -- $(blob "$d/config")
  config=$1 config_size=$2
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config" "$config_size" "$layer" "$layer_size" >"$d/manifest"
  set -- $(blob "$d/manifest")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$1" "$2" "$name" "${name##*:}" >"$d/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$d/oci-layout"
  tar -C "$d" -cf "$out" oci-layout index.json blobs
  rm -rf "$d"
}

build_images() {
  img=$STATE/images
  mkdir -p "$img"
  if [ ! -f "$img/pause.tar" ]; then
    r=$(mktemp -d "$STATE/tmp/pause.XXXXXX")
    gcc -static -O2 -o "$r/pause" "$ROOT/scripts/k8s/pause.c" || fail "gcc -static scripts/k8s/pause.c"
    oci_archive "$PAUSE_IMAGE" "$r" '["/pause"]' "$img/pause.tar"
    rm -rf "$r"
  fi
  if [ ! -f "$img/busybox.tar" ]; then
    r=$(mktemp -d "$STATE/tmp/busybox.XXXXXX")
    mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/root" "$r/proc" "$r/sys" "$r/dev"
    chmod 1777 "$r/tmp"
    cp /bin/busybox "$r/bin/busybox"
    for a in $(/bin/busybox --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' >"$r/etc/group"
    oci_archive "$BUSYBOX_IMAGE" "$r" '["/bin/sh"]' "$img/busybox.tar"
    rm -rf "$r"
  fi
}

ctr_() { ctr --address "$STATE/containerd/containerd.sock" --namespace k8s.io "$@"; }

# import_image NAME PATH: an OCI archive (tar) or an OCI layout directory (as umoci writes it) → containerd.
import_image() {
  name=$1 src=$2
  if [ -d "$src" ]; then
    d=$(mktemp -d "$STATE/tmp/layout.XXXXXX")
    cp -a "$src/." "$d/"
    # Name the layout's (single) manifest so containerd imports it as NAME.
    node -e '
      const fs = require("fs"); const f = process.argv[1]; const ix = JSON.parse(fs.readFileSync(f, "utf8"));
      if (!Array.isArray(ix.manifests) || ix.manifests.length !== 1) { console.error("index.json: want exactly 1 manifest, got " + (ix.manifests || []).length); process.exit(1); }
      ix.manifests[0].annotations = { ...(ix.manifests[0].annotations || {}), "io.containerd.image.name": process.argv[2] };
      fs.writeFileSync(f, JSON.stringify(ix));' "$d/index.json" "$name" || fail "rewriting $src/index.json"
    tar -C "$d" -cf "$d.tar" . && rm -rf "$d"
    src=$d.tar
  fi
  ctr_ images import --snapshotter overlayfs "$src" >/dev/null 2>"$STATE/tmp/import.err" ||
    fail "ctr images import $src: $(cat "$STATE/tmp/import.err")"
  ctr_ images check "name==$name" 2>/dev/null | grep -q complete || fail "ctr images import $src: $name not there after it"
  case "$src" in "$STATE/tmp/"*) rm -f "$src" ;; esac
  log "image $name imported"
}

# ---------------------------------------------------------------------------------------------- configs
write_configs() {
  mkdir -p "$STATE/containerd" "$STATE/cni/net.d" "$STATE/kubelet" "$STATE/sysctl"
  cat >"$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
[grpc]
  address = "$STATE/containerd/containerd.sock"
[ttrpc]
  address = "$STATE/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
  cat >"$STATE/cni/net.d/10-nsm-ts-k8s.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "nsm-ts-k8s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{ "subnet": "$POD_CIDR" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    }
  ]
}
EOF
  cat >"$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: $CGROOT
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
failCgroupV1: false
failSwapOn: false
protectKernelDefaults: false
containerRuntimeEndpoint: unix://$STATE/containerd/containerd.sock
podLogsDir: $STATE/pod-logs
staticPodPath: ""
address: $NODE_IP
healthzBindAddress: 127.0.0.1
tlsCertFile: $STATE/pki/kubelet-serving.crt
tlsPrivateKeyFile: $STATE/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: /etc/resolv.conf
podCIDR: $POD_CIDR
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
serializeImagePulls: false
EOF
  # Cluster DNS: CoreDNS as a node process on NODE_IP:53 (pods reach it through the bridge's gateway).
  cat >"$STATE/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $STATE/pki/coredns.kubeconfig nsm-ts-k8s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
  # The kernel tunables kubelet sets at start (pkg/kubelet/cm setupKernelTunables), as files bound over
  # /proc/sys inside the node mount namespace only.
  printf '1\n' >"$STATE/sysctl/vm.overcommit_memory"
  printf '0\n' >"$STATE/sysctl/vm.panic_on_oom"
  printf '10\n' >"$STATE/sysctl/kernel.panic"
  printf '1\n' >"$STATE/sysctl/kernel.panic_on_oops"
}

# The node netns (lo, veth k8s0 with NODE_IP, default route on it) and the node mount namespace.
make_namespaces() {
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up
  # The kernel has no dummy links (no modules): a veth pair with both ends in the netns holds NODE_IP.
  ip -n "$NETNS" link add k8s0 type veth peer name k8s0-end
  ip -n "$NETNS" addr add "$NODE_IP/24" dev k8s0
  ip -n "$NETNS" link set k8s0-end up
  ip -n "$NETNS" link set k8s0 up
  ip -n "$NETNS" route add default dev k8s0
  in_node sysctl -qw net.ipv4.ip_forward=1
  mkdir -p "$STATE/ns"
  mount --bind "$STATE/ns" "$STATE/ns"
  mount --make-private "$STATE/ns"
  touch "$STATE/ns/mnt"
  unshare --mount="$STATE/ns/mnt" --propagation slave true
  for t in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops; do
    nsenter --mount="$STATE/ns/mnt" mount --bind "$STATE/sysctl/$t" "/proc/sys/$(echo "$t" | tr . /)"
  done
  # Host directories the node writes (shim sockets and runc state, libcni's cache, the manifests'
  # DirectoryOrCreate hostPaths): a tmpfs over each inside the node mount namespace, so what the node makes
  # there vanishes with it. A mount point that did not exist is made and listed in made-dirs for `down`.
  for d in $NODE_PRIVATE_DIRS; do
    top=$d
    while [ ! -e "$(dirname "$top")" ]; do top=$(dirname "$top"); done
    if [ ! -e "$d" ]; then
      mkdir -p "$d"
      echo "$top" >>"$STATE/made-dirs"
    fi
    nsenter --mount="$STATE/ns/mnt" mount -t tmpfs -o mode=0755 nsm-ts-k8s "$d"
  done
}

# What CoreDNS's kubernetes plugin reads, for the user of its client certificate.
coredns_rbac() {
  cat <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "nsm-ts-k8s:coredns"}
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "nsm-ts-k8s:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "nsm-ts-k8s:coredns"}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}
EOF
}

# ---------------------------------------------------------------------------------------------- up
node_ready() {
  kubectl_ get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

all_running() {
  for d in $DAEMONS; do daemon_running "$d" || return 1; done
}

up() {
  if [ -f "$STATE/cgroup-root" ] && all_running && node_ready; then
    log "cluster already running (node $NODE_NAME Ready)"
    echo "$STATE/bin/kubectl"
    return 0
  fi
  [ -e "$STATE" ] && { log "leftovers of an earlier cluster in $STATE: removing them first"; down; }
  t0=$(now)
  BIN=$("$ROOT/scripts/install-k8s.sh" --print-bin) || fail "scripts/install-k8s.sh"
  mkdir -p "$STATE/run" "$STATE/log" "$STATE/tmp" "$STATE/bin"
  echo "$CGROOT" >"$STATE/cgroup-root"
  cat >"$STATE/bin/kubectl" <<EOF
#!/bin/sh
# kubectl for the nsm-ts-k8s cluster (made by scripts/k8s-cluster.sh): in the node netns, as admin.
KUBECONFIG=$STATE/pki/admin.kubeconfig exec nsenter --net=$NETNS_PATH $BIN/kubectl "\$@"
EOF
  chmod +x "$STATE/bin/kubectl"
  make_cgroups
  make_pki
  write_configs
  build_images
  make_namespaces
  log "prepared state, certificates, images and namespaces in $(since "$t0")"

  start_daemon etcd net etcd --name nsm-ts-k8s --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster nsm-ts-k8s=http://127.0.0.1:2380
  start_daemon containerd node containerd --config "$STATE/containerd/config.toml"
  wait_until "etcd healthy" 60 in_node curl -sf http://127.0.0.1:2379/health || fail "etcd did not start: $(tail -5 "$STATE/log/etcd.log")"
  p=$STATE/pki
  start_daemon kube-apiserver net "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --advertise-address="$NODE_IP" --secure-port=6443 \
    --service-cluster-ip-range="$SVC_CIDR" --allow-privileged=true \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --client-ca-file="$p/ca.crt" --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --kubelet-client-certificate="$p/apiserver-kubelet-client.crt" --kubelet-client-key="$p/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$p/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local
  wait_until "kube-apiserver ready" "$BOOT_TIMEOUT" kubectl_ get --raw /readyz ||
    fail "kube-apiserver not ready: $(tail -5 "$STATE/log/kube-apiserver.log")"
  start_daemon kube-controller-manager net "$BIN/kube-controller-manager" --kubeconfig="$p/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$p/controller-manager.kubeconfig" --authorization-kubeconfig="$p/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
    --service-cluster-ip-range="$SVC_CIDR"
  start_daemon kube-scheduler net "$BIN/kube-scheduler" --kubeconfig="$p/scheduler.kubeconfig" \
    --authentication-kubeconfig="$p/scheduler.kubeconfig" --authorization-kubeconfig="$p/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false
  wait_until "containerd serving" 60 ctr_ version || fail "containerd did not start: $(tail -5 "$STATE/log/containerd.log")"
  import_image "$PAUSE_IMAGE" "$STATE/images/pause.tar"
  import_image "$BUSYBOX_IMAGE" "$STATE/images/busybox.tar"
  start_daemon kubelet node "$BIN/kubelet" --config="$STATE/kubelet/config.yaml" \
    --kubeconfig="$p/kubelet.kubeconfig" --root-dir="$STATE/kubelet/root" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=2
  # Service VIPs (10.96.0.1 → the API server, ...) as iptables rules in the node netns. conntrack-max-per-core
  # 0: leave the kernel's (global) conntrack table size alone.
  start_daemon kube-proxy net "$BIN/kube-proxy" --kubeconfig="$p/kube-proxy.kubeconfig" \
    --hostname-override="$NODE_NAME" --cluster-cidr="$POD_CIDR" --proxy-mode=iptables \
    --conntrack-max-per-core=0 --bind-address="$NODE_IP" --healthz-bind-address=127.0.0.1:10256 \
    --metrics-bind-address=127.0.0.1:10249
  coredns_rbac | kubectl_ apply -f - >/dev/null || fail "RBAC for coredns"
  start_daemon coredns net "$BIN/coredns" -conf "$STATE/Corefile"
  wait_until "node $NODE_NAME Ready" "$BOOT_TIMEOUT" node_ready ||
    fail "node not Ready: $(tail -5 "$STATE/log/kubelet.log")"
  wait_until "default service account" 60 kubectl_ get serviceaccount default -n default ||
    fail "no default service account"
  log "cluster up in $(since "$t0") (kubectl: $STATE/bin/kubectl)"
  echo "$STATE/bin/kubectl"
}

# ---------------------------------------------------------------------------------------------- down
kill_pids() {
  sig=$1
  shift
  for pid in "$@"; do kill "-$sig" "$pid" 2>/dev/null || true; done
}

down() {
  t0=$(now)
  # kubelet first (so it restarts nothing), then every container and daemon in our cgroups.
  if [ -f "$STATE/run/kubelet.pid" ]; then kill_pids TERM "$(cat "$STATE/run/kubelet.pid")"; fi
  for d in $DAEMONS; do [ -f "$STATE/run/$d.pid" ] && kill_pids TERM "$(cat "$STATE/run/$d.pid")"; done
  i=0
  while [ -n "$(cgroup_pids)" ] && [ $i -lt 20 ]; do sleep 0.25; i=$((i + 1)); done
  i=0
  while [ -n "$(cgroup_pids)" ] && [ $i -lt 40 ]; do
    # shellcheck disable=SC2046
    kill_pids KILL $(cgroup_pids)
    sleep 0.25
    i=$((i + 1))
  done
  [ -z "$(cgroup_pids)" ] || log "warning: processes left in $CGROOT: $(cgroup_pids | tr '\n' ' ')"
  # Mounts under the state dir (the mount namespace file, the sysctl binds live inside it), deepest first.
  for mnt in $(awk -v s="$STATE" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    umount -l "$mnt" 2>/dev/null || log "warning: could not unmount $mnt"
  done
  if [ -e "$NETNS_PATH" ]; then ip netns del "$NETNS" || log "warning: could not delete netns $NETNS"; fi
  remove_cgroups
  if [ -f "$STATE/made-dirs" ]; then
    while read -r d; do rm -rf "$d"; done <"$STATE/made-dirs"
  fi
  rm -rf "$STATE"
  log "down in $(since "$t0")"
}

# ---------------------------------------------------------------------------------------------- status
status() {
  ok=0
  for d in $DAEMONS; do
    if daemon_running "$d"; then echo "$d: running (pid $(cat "$STATE/run/$d.pid"))"; else echo "$d: not running"; ok=1; fi
  done
  if node_ready; then echo "node $NODE_NAME: Ready"; else echo "node $NODE_NAME: not Ready"; ok=1; fi
  return $ok
}

CGROOT=$(cgroup_root)
case "${1-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) echo "export PATH=$STATE/bin:\$PATH" ;;
  import-image)
    [ $# -eq 3 ] || fail "usage: k8s-cluster.sh import-image NAME OCI_LAYOUT_DIR_OR_ARCHIVE"
    [ -e "$3" ] || fail "import-image: '$3' does not exist"
    mkdir -p "$STATE/tmp"
    import_image "$2" "$3"
    ;;
  *) echo "usage: k8s-cluster.sh up|down|status|env|import-image NAME PATH" >&2; exit 2 ;;
esac
