#!/bin/sh
# Proves the local cluster of scripts/k8s-cluster.sh works as a cluster (issue 16): the node is Ready, two
# pods from the locally built busybox image are scheduled, started by kubelet/containerd/runc, get an IP
# from the CNI bridge, `kubectl exec` reaches them, they ping each other and reach the API server
# through its Service VIP (kube-proxy) and its DNS name (CoreDNS); then their namespace is deleted.
#
#   scripts/k8s-smoke.sh            (the cluster must be up: scripts/k8s-cluster.sh up)
#
# Prints one line per step with its duration; exits 0 only if every step passed.
# Env: NSM_K8S_STATE (/var/lib/nsm-ts-k8s).
set -eu

STATE=${NSM_K8S_STATE:-/var/lib/nsm-ts-k8s}
KUBECTL=$STATE/bin/kubectl
NS=nsm-ts-smoke
IMAGE=nsm-ts.local/busybox:v1

[ -x "$KUBECTL" ] || { echo "k8s-smoke: no cluster ($KUBECTL missing): run scripts/k8s-cluster.sh up" >&2; exit 1; }

now() { date +%s.%N; }
passed=0
failed=0
# step NAME COMMAND...: runs it, prints "ok|FAIL NAME (duration)" and its output on failure.
step() {
  name=$1
  shift
  t=$(now)
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
    echo "ok   $name ($(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'))"
    [ -n "$out" ] && echo "$out" | sed 's/^/     /'
  else
    failed=$((failed + 1))
    echo "FAIL $name ($(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'))"
    echo "$out" | sed 's/^/     /'
  fi
  return 0
}

pods_yaml() {
  cat <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $NS}
EOF
  for p in alpha beta; do
    cat <<EOF
---
apiVersion: v1
kind: Pod
metadata: {name: $p, namespace: $NS}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: busybox
      image: $IMAGE
      imagePullPolicy: Never
      command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
      securityContext:
        capabilities: {add: ["NET_RAW"]}
EOF
  done
}

apply_pods() { pods_yaml | "$KUBECTL" apply -f -; }
pod_ip() { "$KUBECTL" get pod -n "$NS" "$1" -o 'jsonpath={.status.podIP}'; }
ping_from() {
  ip=$(pod_ip "$2")
  [ -n "$ip" ] || { echo "pod $2 has no IP"; return 1; }
  "$KUBECTL" exec -n "$NS" "$1" -- ping -c 2 -W 2 "$ip"
}

step "node Ready" "$KUBECTL" wait --for=condition=Ready node --all --timeout=60s
step "kubectl get nodes" "$KUBECTL" get nodes -o wide
step "apply two busybox pods" apply_pods
step "pods Ready" "$KUBECTL" wait --for=condition=Ready pod --all -n "$NS" --timeout=120s
step "pod IPs" "$KUBECTL" get pods -n "$NS" -o 'custom-columns=NAME:.metadata.name,IP:.status.podIP,NODE:.spec.nodeName'
step "kubectl exec alpha -- uname -a; ip addr" "$KUBECTL" exec -n "$NS" alpha -- sh -c 'uname -a; ip -4 addr show eth0'
step "alpha pings beta" ping_from alpha beta
step "beta pings alpha" ping_from beta alpha
step "alpha reaches the API server through Service kubernetes (kube-proxy)" \
  "$KUBECTL" exec -n "$NS" alpha -- sh -c 'wget -q -O- --no-check-certificate "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/version" | grep gitVersion'
step "alpha resolves kubernetes.default (CoreDNS)" \
  "$KUBECTL" exec -n "$NS" alpha -- nslookup kubernetes.default.svc.cluster.local
step "delete namespace" "$KUBECTL" delete namespace "$NS" --timeout=120s
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
