#!/usr/bin/env bash
# The main job, end to end, on a local control plane:
#   1. installs the real parts (cached) and builds the binaries;
#   2. starts etcd + kube-apiserver + kube-controller-manager on loopback ports,
#      loads the Gateway API / cert-manager / nginx-gateway-fabric CRDs and runs the
#      node simulator (no kubelet runs here: it marks pods Running/Ready);
#   3. runs the preview lifecycle with the `stacks` binary against that cluster.
# Everything is torn down on exit; state goes to a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/control-plane.sh install
cargo build --locked -q -p testkit --bin local-cluster -p stacks --bin stacks

work=$(mktemp -d /tmp/preview-demo.XXXXXX)
cluster_pid=""
cleanup() {
  if [ -n "$cluster_pid" ] && kill -0 "$cluster_pid" 2>/dev/null; then
    kill -TERM "$cluster_pid" 2>/dev/null || true
    wait "$cluster_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "==> starting a local control plane (etcd, kube-apiserver, kube-controller-manager, CRDs, node simulator)"
target/debug/local-cluster --crds --simulate --kubeconfig-out "$work/kubeconfig" >"$work/cluster.log" 2>&1 &
cluster_pid=$!
for _ in $(seq 1 600); do
  [ -s "$work/kubeconfig" ] && grep -q ready "$work/cluster.log" 2>/dev/null && break
  kill -0 "$cluster_pid" 2>/dev/null || { cat "$work/cluster.log" >&2; echo "local cluster failed to start" >&2; exit 1; }
  sleep 0.2
done
[ -s "$work/kubeconfig" ] || { cat "$work/cluster.log" >&2; echo "local cluster did not become ready" >&2; exit 1; }
export KUBECONFIG="$work/kubeconfig"
export PREVIEW_BACKEND="file://$work/state"
kubectl get namespaces

echo "==> the engine is not wired into the stacks binary in this build yet; once it is, this runs:"
cat <<'STEPS'
    stacks up preview-base
    stacks preview preview-pr --pr 123 --web-image …@sha256:… --api-image …@sha256:…
    stacks up preview-pr --pr 123 …        # plan, progress, outputs and URLs
    stacks up preview-pr --pr 123 …        # second run: no changes, zero writes
    stacks destroy preview-pr --pr 123     # verified: nothing left
STEPS
