#!/usr/bin/env bash
# Provisions the real parts the tests and the local quick start run against:
#   etcd (Debian etcd-server), kube-apiserver + kube-controller-manager (built from
#   Debian's `kubernetes` source package with Debian's Go), PostgreSQL (Debian) and
#   kubectl (the machine's, or Debian's kubernetes-client when none is present).
#
# Usage: scripts/control-plane.sh install   # idempotent; cached outside the repo
#        scripts/control-plane.sh env       # prints PREVIEW_* variables for the test kit
#        scripts/control-plane.sh check     # verifies everything is in place, installs nothing
#
# The build is cached in ${PREVIEW_CACHE_DIR:-$HOME/.cache/preview-envs}/control-plane.
set -euo pipefail

CACHE_ROOT="${PREVIEW_CACHE_DIR:-$HOME/.cache/preview-envs}"
CP_DIR="$CACHE_ROOT/control-plane"
BIN_DIR="$CP_DIR/bin"
STAMP="$CP_DIR/.built-v1"

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

ensure_deb_src() {
  if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null; then
    return 0
  fi
  say "adding a deb-src entry for bookworm (/etc/apt/sources.list.d/preview-envs-src.sources)"
  as_root tee /etc/apt/sources.list.d/preview-envs-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  APT_UPDATED=0
}

pg_bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

install_packages() {
  apt_install golang-go etcd-server rsync jq golang-github-modern-go-reflect2-dev postgresql ca-certificates openssl
  if ! command -v kubectl >/dev/null 2>&1; then
    say "no kubectl on PATH: installing Debian's kubernetes-client"
    apt_install kubernetes-client
  fi
  [ -n "$(pg_bin_dir)" ] || die "PostgreSQL server binaries (initdb) not found under /usr/lib/postgresql/*/bin"
}

build_control_plane() {
  if [ -f "$STAMP" ] && [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kube-controller-manager" ]; then
    say "kube-apiserver and kube-controller-manager cached in $BIN_DIR"
    return 0
  fi
  ensure_deb_src
  apt_update_once
  local work="$CP_DIR/build"
  rm -rf "$work"; mkdir -p "$work"
  say "downloading Debian's kubernetes source package into $work"
  ( cd "$work" && apt-get source --download-only -qq kubernetes >/dev/null ) \
    || die "apt-get source kubernetes failed: is a bookworm deb-src entry configured?"
  local orig
  orig=$(ls "$work"/kubernetes_*.orig.tar.* 2>/dev/null | head -n1)
  [ -n "$orig" ] || die "no kubernetes_*.orig.tar.* in $work after apt-get source"
  say "unpacking $(basename "$orig")"
  mkdir -p "$work/src"
  tar -xf "$orig" -C "$work/src" --strip-components=1 || die "unpacking $orig failed"
  local src="$work/src"
  [ -d "$src/vendor/github.com/modern-go/reflect2" ] || die "unexpected source layout: $src/vendor/github.com/modern-go/reflect2 missing"
  say "replacing vendored modern-go/reflect2 v1.0.1 with Debian's v1.0.2 (v1.0.1 crashes under Go >= 1.18)"
  rm -rf "$src/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/reflect2"
  rm -f "$src/vendor/github.com/modern-go/reflect2/go.mod"
  mkdir -p "$src/.go/src/k8s.io"
  ln -sfn ../../.. "$src/.go/src/k8s.io/kubernetes"
  say "building kube-apiserver and kube-controller-manager with $(go version) (several minutes)"
  local start=$SECONDS
  ( cd "$src" && GOPATH="$src/.go" GOFLAGS=-mod=vendor GO111MODULE=off CGO_ENABLED=0 \
      make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1 ) \
    || { tail -n 30 "$work/build.log" >&2; die "go build failed (full log: $work/build.log)"; }
  mkdir -p "$BIN_DIR"
  cp "$src/_output/local/bin/linux/amd64/kube-apiserver" "$src/_output/local/bin/linux/amd64/kube-controller-manager" "$BIN_DIR/"
  say "built in $((SECONDS - start)) s; binaries in $BIN_DIR"
  rm -rf "$work"
  touch "$STAMP"
}

print_env() {
  local etcd kubectl_bin pg
  etcd=$(command -v etcd || true)
  kubectl_bin=$(command -v kubectl || true)
  pg=$(pg_bin_dir || true)
  echo "PREVIEW_KUBE_BIN_DIR=$BIN_DIR"
  echo "PREVIEW_ETCD=$etcd"
  echo "PREVIEW_KUBECTL=$kubectl_bin"
  echo "PREVIEW_PG_BIN_DIR=$pg"
}

check() {
  local ok=1
  [ -x "$BIN_DIR/kube-apiserver" ] || { say "missing: $BIN_DIR/kube-apiserver (run: scripts/control-plane.sh install)"; ok=0; }
  [ -x "$BIN_DIR/kube-controller-manager" ] || { say "missing: $BIN_DIR/kube-controller-manager (run: scripts/control-plane.sh install)"; ok=0; }
  command -v etcd >/dev/null || { say "missing: etcd (apt-get install etcd-server)"; ok=0; }
  command -v kubectl >/dev/null || { say "missing: kubectl (apt-get install kubernetes-client)"; ok=0; }
  command -v openssl >/dev/null || { say "missing: openssl (apt-get install openssl)"; ok=0; }
  [ -n "$(pg_bin_dir)" ] || { say "missing: PostgreSQL server (apt-get install postgresql)"; ok=0; }
  [ "$ok" -eq 1 ] || die "control plane is not provisioned"
  say "all parts present"
}

case "${1:-}" in
  install) install_packages; build_control_plane; check ;;
  env) print_env ;;
  check) check ;;
  *) echo "usage: $0 install|env|check" >&2; exit 2 ;;
esac
