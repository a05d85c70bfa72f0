#!/usr/bin/env bash
# The main job, end to end, on a local control plane:
#   1. installs the real parts (cached) and builds the binaries;
#   2. starts etcd + kube-apiserver + kube-controller-manager + kube-scheduler
#      (v1.37, built from the Kubernetes Go modules) on loopback ports,
#      loads the Gateway API / cert-manager / nginx-gateway-fabric CRDs, runs the
#      real cert-manager controller (v1.20, built from its Go modules) and the
#      node simulator (no kubelet runs here: it writes the status a kubelet would),
#      and starts a PostgreSQL server standing in for the shared database server
#      (the Service db.default.svc.cluster.local leads to it);
#   3. runs the preview lifecycle with the `stacks` binary against that cluster:
#      up preview-base → plan → up preview-pr --pr 123 → a second up that changes
#      nothing → destroy, verified.
# Everything is torn down on exit; state goes to a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/control-plane.sh install
# The kubectl built with the control plane (v1.37), whatever else is on PATH.
kubectl() { "$(scripts/control-plane.sh env | sed -n 's/^PREVIEW_KUBECTL=//p')" "$@"; }
echo "==> building (first time: a few minutes)"
# `--workspace`: the feature set `cargo test --workspace` builds with, so the
# binaries the test suite built are reused as they are.
cargo build --locked -q --workspace --bin local-cluster --bin stacks
bin="${CARGO_TARGET_DIR:-target}/debug"

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

echo "==> starting a local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, CRDs, cert-manager, node simulator, PostgreSQL)"
"$bin/local-cluster" --crds --cert-manager --simulate --kubeconfig-out "$work/kubeconfig" \
  --postgres-url-out "$work/postgres-url" >"$work/cluster.out" 2>"$work/cluster.log" &
cluster_pid=$!
for _ in $(seq 1 900); do
  grep -q '^export KUBECONFIG' "$work/cluster.out" 2>/dev/null && break
  kill -0 "$cluster_pid" 2>/dev/null || { cat "$work/cluster.log" >&2; echo "local cluster failed to start" >&2; exit 1; }
  sleep 0.2
done
grep -q '^export KUBECONFIG' "$work/cluster.out" || { cat "$work/cluster.log" >&2; echo "local cluster did not become ready" >&2; exit 1; }

export KUBECONFIG="$work/kubeconfig"
export PREVIEW_BACKEND="file://$work/state"
# No PREVIEW_POSTGRES_URL: as on a remote cluster, the preview's database is
# created and dropped by Jobs in the database's namespace (their psql runs).
unset PREVIEW_POSTGRES_URL PREVIEW_POSTGRES_URL_FILE
# Demo-only secret values; in CI they come from environment secrets (see SECRETS.md).
PREVIEW_DB_PASSWORD="demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
export PREVIEW_DB_PASSWORD
# preview-pr generates its database role's password and keeps it sealed in the
# stack's state under this passphrase (a CI secret, like the others).
PREVIEW_STATE_PASSPHRASE="demo-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export PREVIEW_STATE_PASSPHRASE
# Let's Encrypt cannot be reached from here: the real cert-manager issues the
# wildcard certificate from a self-signed Issuer instead.
export PREVIEW_TLS_ISSUER=self-signed
# Only read for Let's Encrypt's DNS-01 solver (not used with the self-signed issuer).
export PREVIEW_DIGITALOCEAN_TOKEN="demo-token-not-used-locally"
stacks() { "$bin/stacks" --progress plain "$@"; }
pr=123
images=(--web-image "ghcr.io/aphiria/web@sha256:$(printf 'a%.0s' {1..64})"
        --api-image "ghcr.io/aphiria/api@sha256:$(printf 'b%.0s' {1..64})")

step() { printf '\n==> %s\n' "$*"; }
step "stacks up preview-base   (PostgreSQL service, Gateway, wildcard TLS)"
stacks up preview-base
step "stacks preview preview-pr --pr $pr   (the plan a PR comment shows)"
stacks preview preview-pr --pr "$pr" "${images[@]}"
step "stacks up preview-pr --pr $pr"
stacks up preview-pr --pr "$pr" "${images[@]}"
step "stacks up preview-pr --pr $pr   (again: nothing changes, zero writes)"
stacks up preview-pr --pr "$pr" "${images[@]}"
step "what is on the cluster"
kubectl get namespace "preview-pr-$pr" --show-labels
kubectl -n "preview-pr-$pr" get deployments,services,jobs,configmaps,httproutes
kubectl -n default get jobs -l "preview-envs.io/stack=preview-pr-$pr"   # the database Job
step "stacks destroy preview-pr --pr $pr"
stacks destroy preview-pr --pr "$pr"
if kubectl get namespace "preview-pr-$pr" >/dev/null 2>&1; then
  echo "namespace preview-pr-$pr still exists" >&2; exit 1
fi
echo "namespace preview-pr-$pr: gone (removed by the real namespace controller)"
echo
echo "demo complete: preview-base stays up (it is never destroyed by PR workflows)."
