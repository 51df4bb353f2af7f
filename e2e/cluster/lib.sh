# Shared settings and helpers for the e2e/cluster scripts. Source it, do not run it.
# Everything here may be overridden from the environment (ESUP_* variables).

ESUP_E2E_CLUSTER_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ESUP_REPO_ROOT=$(cd "$ESUP_E2E_CLUSTER_SRC/../.." && pwd)

# Versions of what we build. Each lands in its own cache directory.
K8S_VERSION=${ESUP_K8S_VERSION:-v1.34.4}
ETCD_VERSION=${ESUP_ETCD_VERSION:-v3.6.16}
HELM_VERSION=${ESUP_HELM_VERSION:-v3.19.5}
COREDNS_VERSION=${ESUP_COREDNS_VERSION:-v1.12.4}
# GitHub Actions workflow linter (make workflows-lint), not part of the cluster.
ACTIONLINT_VERSION=${ESUP_ACTIONLINT_VERSION:-v1.7.12}
# promtool (Prometheus v3.X.Y is the Go module github.com/prometheus/prometheus v0.3XX.Y).
PROMTOOL_VERSION=${ESUP_PROMTOOL_VERSION:-v3.16.0}

# Caches (kept by `down`) and cluster state (removed by `down`).
ESUP_CACHE_DIR=${ESUP_CACHE_DIR:-$HOME/.cache/esup-runner}
ESUP_CLUSTER_DIR=${ESUP_CLUSTER_DIR:-/var/lib/esup-cluster}
K8S_BIN=$ESUP_CACHE_DIR/k8s-$K8S_VERSION/bin
ETCD_BIN=$ESUP_CACHE_DIR/etcd-$ETCD_VERSION/bin
HELM_BIN=$ESUP_CACHE_DIR/helm-$HELM_VERSION/bin
COREDNS_BIN=$ESUP_CACHE_DIR/coredns-$COREDNS_VERSION/bin
ACTIONLINT_BIN=$ESUP_CACHE_DIR/actionlint-$ACTIONLINT_VERSION/bin
PROMTOOL_BIN=$ESUP_CACHE_DIR/promtool-$PROMTOOL_VERSION/bin
ESUP_BIN=$ESUP_CACHE_DIR/bin            # symlinks to the above, put on PATH by `env`
IMAGES_DIR=$ESUP_CACHE_DIR/images       # image tarballs (OCI archives)

# Cluster shape.
NODE_NAME=${ESUP_NODE_NAME:-esup-node-0}
CLUSTER_DOMAIN=cluster.local
SERVICE_CIDR=10.96.0.0/12
KUBERNETES_SVC_IP=10.96.0.1
DNS_SVC_IP=10.96.0.10
POD_CIDR=${ESUP_POD_CIDR:-10.244.0.0/24}
CNI_BRIDGE=esup-cni0
APISERVER_PORT=6443
ETCD_CLIENT_PORT=${ESUP_ETCD_PORT:-2379}
ETCD_PEER_PORT=${ESUP_ETCD_PEER_PORT:-2380}
CNI_BIN_DIR=/usr/lib/cni

# Simulated GPUs.
GPU_COUNT=${ESUP_GPU_COUNT:-2}
GPU_PRODUCT=${ESUP_GPU_PRODUCT:-NVIDIA-L4}
GPU_MEMORY=${ESUP_GPU_MEMORY:-23034}

# Images built here.
PAUSE_IMAGE=esup.local/pause:3.10.1
COREDNS_IMAGE=esup.local/coredns:$COREDNS_VERSION
SMOKE_IMAGE=esup.local/gpu-smoke:dev

# State layout.
PKI_DIR=$ESUP_CLUSTER_DIR/pki
LOG_DIR=$ESUP_CLUSTER_DIR/logs
RUN_DIR=$ESUP_CLUSTER_DIR/run
CONF_DIR=$ESUP_CLUSTER_DIR/conf
KUBECONFIG_FILE=$ESUP_CLUSTER_DIR/kubeconfig
CONTAINERD_ROOT=$ESUP_CLUSTER_DIR/containerd
CONTAINERD_STATE=/run/esup-containerd
CONTAINERD_SOCK=$CONTAINERD_STATE/containerd.sock
KUBELET_ROOT=$ESUP_CLUSTER_DIR/kubelet
CNI_CONF_DIR=$ESUP_CLUSTER_DIR/cni/net.d
CNI_STATE_DIR=/var/lib/cni/networks/esup-pods

# Order matters: started left to right, stopped right to left.
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go
  elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
  else return 1
  fi
}

host_ip() {
  if [ -n "${ESUP_HOST_IP:-}" ]; then echo "$ESUP_HOST_IP"; return; fi
  local ip
  ip=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1)
  if [ -z "$ip" ]; then ip=$(hostname -I 2>/dev/null | awk '{print $1}'); fi
  [ -n "$ip" ] || ip=127.0.0.1
  echo "$ip"
}

# kubectl against our cluster, whatever PATH holds.
kc() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

pidfile() { echo "$RUN_DIR/$1.pid"; }

# True when the component's recorded pid is alive and is the expected program.
is_running() {
  local f pid
  f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$1" || return 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: retries COMMAND every half second.
wait_for() {
  local timeout=$1 what=$2; shift 2
  local end=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$end" ]; then log "timed out after ${timeout}s waiting for $what"; return 1; fi
    sleep 0.5
  done
}
