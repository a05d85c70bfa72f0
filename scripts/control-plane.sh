#!/usr/bin/env bash
# Provisions the real parts the tests and the local quick start run against:
#   kube-apiserver, kube-controller-manager, kube-scheduler and kubectl v1.37,
#     built from the Kubernetes project's Go module `k8s.io/kubernetes`
#     (crates/testkit/control-plane/go.mod, go.sum committed);
#   etcd v3.6, built from the `go.etcd.io/etcd` modules
#     (crates/testkit/control-plane/etcd/go.mod);
#   the cert-manager controller v1.20, built from the cert-manager modules
#     (crates/testkit/control-plane/cert-manager/, when present);
#   PostgreSQL and openssl from Debian's packages.
#
# Usage: scripts/control-plane.sh install   # idempotent; cached outside the repo
#        scripts/control-plane.sh env       # prints PREVIEW_* variables for the test kit
#        scripts/control-plane.sh check     # verifies everything is in place, installs nothing
#
# Builds are cached in ${PREVIEW_CACHE_DIR:-$HOME/.cache/preview-envs}/control-plane,
# one directory per version and go.sum (e.g. k8s-v1.37.2-<hash>/), and
# control-plane/bin holds symlinks to the current ones (where the test kit looks).
# Go's module and build caches stay in their usual places (outside the repo).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
MODULES="$REPO/crates/testkit/control-plane"
CACHE_ROOT="${PREVIEW_CACHE_DIR:-$HOME/.cache/preview-envs}"
CP_DIR="$CACHE_ROOT/control-plane"
BIN_DIR="$CP_DIR/bin"
# Go 1.26 is what the machines have; the modules ask for it (go.mod `go 1.26.0`).
MIN_GO_MINOR=26

say() { printf '[control-plane] %s\n' "$*" >&2; }
die() { printf '[control-plane] error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1; then sudo "$@";
  else die "need root to run '$*' (run as root or install sudo)"; fi
}

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    as_root apt-get update -qq || die "apt-get update failed: check the Debian mirror in /etc/apt/sources.list.d/"
    APT_UPDATED=1
  fi
}

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_update_once
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

pg_bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

install_packages() {
  # iproute2: `ip netns` and `tc` for the network-partition fault test (testkit netcut.rs).
  apt_install postgresql ca-certificates openssl jq iproute2
  [ -n "$(pg_bin_dir)" ] || die "PostgreSQL server binaries (initdb) not found under /usr/lib/postgresql/*/bin"
}

# The `go` on PATH, checked: Go >= 1.$MIN_GO_MINOR (older ones cannot build
# Kubernetes v1.37; Debian bookworm's golang-go is 1.19).
check_go() {
  command -v go >/dev/null 2>&1 || die "no 'go' on PATH: install Go >= 1.$MIN_GO_MINOR (https://go.dev/doc/install)"
  local v minor
  v=$(go env GOVERSION 2>/dev/null || true)
  minor=$(printf '%s' "$v" | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
  [ -n "$minor" ] && [ "$minor" -ge "$MIN_GO_MINOR" ] \
    || die "'go' on PATH ($(command -v go)) is ${v:-unknown}; Kubernetes v1.37 needs Go >= 1.$MIN_GO_MINOR"
  say "using $v ($(command -v go))"
}

# required_version MODULE_DIR MODULE → the version go.mod requires (first match).
required_version() {
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1/go.mod"
}

# cache_dir NAME VERSION MODULE_DIR → a directory keyed by version and go.sum.
cache_dir() {
  local sum
  sum=$(cat "$3/go.mod" "$3/go.sum" 2>/dev/null | sha256sum | cut -c1-12)
  echo "$CP_DIR/$1-$2-$sum"
}

# go_build MODULE_DIR OUT_DIR LDFLAGS PACKAGE... — a static, reproducible build.
go_build() {
  local module=$1 out=$2 ldflags=$3; shift 3
  mkdir -p "$out.tmp"
  ( cd "$module" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "$ldflags" -o "$out.tmp/" "$@" ) \
    >"$out.log" 2>&1 || { tail -n 30 "$out.log" >&2; rm -rf "$out.tmp"; die "go build in $module failed (full log: $out.log)"; }
  rm -rf "$out"; mv "$out.tmp" "$out"
}

build_kubernetes() {
  local version dir
  version=$(required_version "$MODULES" k8s.io/kubernetes)
  [ -n "$version" ] || die "no k8s.io/kubernetes requirement in $MODULES/go.mod"
  dir=$(cache_dir k8s "$version" "$MODULES")
  if [ -x "$dir/kube-apiserver" ] && [ -x "$dir/kube-controller-manager" ] && [ -x "$dir/kube-scheduler" ] && [ -x "$dir/kubectl" ]; then
    say "Kubernetes $version cached in $dir"
  else
    local major minor start=$SECONDS
    major=$(printf '%s' "$version" | sed -n 's/^v\([0-9]*\)\..*/\1/p')
    minor=$(printf '%s' "$version" | sed -n 's/^v[0-9]*\.\([0-9]*\)\..*/\1/p')
    # The version the binaries report (/version, `kubectl version`), as the
    # Kubernetes release build stamps it (hack/lib/version.sh).
    local x="-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor"
    x="$x -X k8s.io/client-go/pkg/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    x="$x -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
    say "building kube-apiserver, kube-controller-manager, kube-scheduler and kubectl $version from k8s.io/kubernetes (first time: about 10-15 minutes on 2 cores)"
    go_build "$MODULES" "$dir" "-s -w $x" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
    say "built Kubernetes $version in $((SECONDS - start)) s into $dir"
  fi
  link_into_bin "$dir" kube-apiserver kube-controller-manager kube-scheduler kubectl
}

build_etcd() {
  local module="$MODULES/etcd" version dir
  version=$(required_version "$module" go.etcd.io/etcd/server/v3)
  [ -n "$version" ] || die "no go.etcd.io/etcd/server/v3 requirement in $module/go.mod"
  dir=$(cache_dir etcd "$version" "$module")
  if [ -x "$dir/etcd" ]; then
    say "etcd $version cached in $dir"
  else
    local start=$SECONDS
    say "building etcd $version from go.etcd.io/etcd/server/v3"
    mkdir -p "$dir.tmp"
    ( cd "$module" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" -o "$dir.tmp/etcd" go.etcd.io/etcd/server/v3 ) \
      >"$dir.log" 2>&1 || { tail -n 30 "$dir.log" >&2; rm -rf "$dir.tmp"; die "building etcd failed (full log: $dir.log)"; }
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
    say "built etcd $version in $((SECONDS - start)) s into $dir"
  fi
  link_into_bin "$dir" etcd
}

build_cert_manager() {
  local module="$MODULES/cert-manager" version dir
  [ -f "$module/go.mod" ] || { say "no $module: cert-manager controller not built"; return 0; }
  version=$(required_version "$module" github.com/cert-manager/cert-manager)
  [ -n "$version" ] || die "no github.com/cert-manager/cert-manager requirement in $module/go.mod"
  dir=$(cache_dir cert-manager "$version" "$module")
  if [ -x "$dir/cert-manager-controller" ]; then
    say "cert-manager $version cached in $dir"
  else
    local start=$SECONDS
    say "building the cert-manager controller $version from github.com/cert-manager/cert-manager"
    mkdir -p "$dir.tmp"
    # The version the controller reports (user agent, --version), as upstream's
    # release build stamps it (make/00_mod.mk).
    ( cd "$module" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath \
        -ldflags "-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$version" \
        -o "$dir.tmp/cert-manager-controller" . ) \
      >"$dir.log" 2>&1 || { tail -n 30 "$dir.log" >&2; rm -rf "$dir.tmp"; die "building cert-manager failed (full log: $dir.log)"; }
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
    say "built cert-manager $version in $((SECONDS - start)) s into $dir"
  fi
  link_into_bin "$dir" cert-manager-controller
}

# link_into_bin DIR NAME... — control-plane/bin/NAME → DIR/NAME.
link_into_bin() {
  local dir=$1; shift
  mkdir -p "$BIN_DIR"
  for name in "$@"; do ln -sfn "$dir/$name" "$BIN_DIR/$name"; done
}

print_env() {
  local pg
  pg=$(pg_bin_dir || true)
  echo "PREVIEW_KUBE_BIN_DIR=$BIN_DIR"
  echo "PREVIEW_ETCD=$BIN_DIR/etcd"
  echo "PREVIEW_KUBECTL=$BIN_DIR/kubectl"
  echo "PREVIEW_PG_BIN_DIR=$pg"
}

check() {
  local ok=1
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [ -x "$BIN_DIR/$b" ] || { say "missing: $BIN_DIR/$b (run: scripts/control-plane.sh install)"; ok=0; }
  done
  if [ -f "$MODULES/cert-manager/go.mod" ] && [ ! -x "$BIN_DIR/cert-manager-controller" ]; then
    say "missing: $BIN_DIR/cert-manager-controller (run: scripts/control-plane.sh install)"; ok=0
  fi
  command -v openssl >/dev/null || { say "missing: openssl (apt-get install openssl)"; ok=0; }
  [ -n "$(pg_bin_dir)" ] || { say "missing: PostgreSQL server (apt-get install postgresql)"; ok=0; }
  [ "$ok" -eq 1 ] || die "control plane is not provisioned"
  local cm=""
  [ -x "$BIN_DIR/cert-manager-controller" ] && cm=", $("$BIN_DIR/cert-manager-controller" --version 2>/dev/null)"
  say "all parts present: $("$BIN_DIR/kube-apiserver" --version 2>/dev/null), etcd $("$BIN_DIR/etcd" --version 2>/dev/null | sed -n 's/^etcd Version: //p')$cm"
}

case "${1:-}" in
  install)
    install_packages
    check_go
    t0=$SECONDS; build_kubernetes; t1=$SECONDS; build_etcd; t2=$SECONDS; build_cert_manager; t3=$SECONDS
    say "build phases: kubernetes $((t1 - t0)) s, etcd $((t2 - t1)) s, cert-manager $((t3 - t2)) s"
    check ;;
  env) print_env ;;
  check) check ;;
  *) echo "usage: $0 install|env|check" >&2; exit 2 ;;
esac
