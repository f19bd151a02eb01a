#!/usr/bin/env bash
# Build a real kube-apiserver and etcd for the Kubernetes integration tests, plus kube-controller-manager and
# kube-scheduler (same Kubernetes version) for the operator end-to-end tests (test/operator-e2e).
#
# The versions come from the wrapper Go module in test/k8s-bin (go.mod/go.sum);
# everything is fetched from the Go module proxy by the ordinary `go` client.
# The binaries go to a cache folder keyed by version:
#
#   ${PGIM_K8S_BIN_CACHE:-$HOME/.cache/pgim/k8s-bin}/<k8s-version>-<etcd-version>/
#       kube-apiserver
#       etcd
#       kube-controller-manager
#       kube-scheduler
#
# When all binaries are already there the build is skipped entirely (and `go`
# is not needed). Progress goes to stderr; the last line of stdout is the
# folder's path, so callers can do:  BIN_DIR=$(scripts/build-k8s-test-binaries.sh | tail -n1)
#
# A cold build on 2 cores takes several minutes; see test/k8s-bin/README.md.
set -euo pipefail

log() { printf '[build-k8s-test-binaries] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(cd -- "$script_dir/.." && pwd -P)
mod_dir="$repo_root/test/k8s-bin"
go_mod="$mod_dir/go.mod"

[[ -f "$go_mod" ]] || die "wrapper module not found: $go_mod"

# Read a required module's version straight from go.mod (no `go` needed), so a
# cache hit works even where Go is not installed.
mod_version() {
  local v
  v=$(awk -v m="$1" '
    $1 == "require" && $2 == m { print $3; exit }
    $1 == m && $2 ~ /^v[0-9]/ { print $2; exit }
  ' "$go_mod")
  [[ -n "$v" ]] || die "module $1 is not required in $go_mod"
  printf '%s\n' "$v"
}

k8s_version=$(mod_version k8s.io/kubernetes)
etcd_version=$(mod_version go.etcd.io/etcd/server/v3)

cache_root="${PGIM_K8S_BIN_CACHE:-${HOME:?HOME is not set}/.cache/pgim/k8s-bin}"
out_dir="$cache_root/${k8s_version}-${etcd_version}"

binaries=(kube-apiserver etcd kube-controller-manager kube-scheduler)
cached=1
for b in "${binaries[@]}"; do [[ -x "$out_dir/$b" ]] || cached=0; done
if ((cached)); then
  log "cached: Kubernetes $k8s_version binaries and etcd $etcd_version in $out_dir (skipping build)"
  printf '%s\n' "$out_dir"
  exit 0
fi

command -v go >/dev/null 2>&1 ||
  die "'go' is not on PATH; Go >= 1.26 is needed to build kube-apiserver $k8s_version and etcd $etcd_version (or put prebuilt binaries in $out_dir)"

log "using $(go version)"
log "building kube-apiserver $k8s_version and etcd $etcd_version into $out_dir"
mkdir -p "$out_dir"

# Build to a temporary name next to the final one, then rename it into place,
# so an interrupted or concurrent build never leaves a half-written binary that
# a later run would take for a cache hit.
tmp_files=()
cleanup() {
  if ((${#tmp_files[@]})); then rm -f -- "${tmp_files[@]}"; fi
}
trap cleanup EXIT

# build <name> <package> <extra ldflags>
build() {
  local name=$1 pkg=$2 extra_ld=$3 tmp start
  if [[ -x "$out_dir/$name" ]]; then
    log "$name already built, skipping"
    return
  fi
  tmp="$out_dir/.$name.tmp.$$"
  tmp_files+=("$tmp")
  start=$SECONDS
  log "go build $pkg (this can take many minutes on a cold Go build cache)"
  (
    cd "$mod_dir"
    CGO_ENABLED=0 nice go build -trimpath -pgo=off \
      -ldflags "-s -w${extra_ld:+ $extra_ld}" \
      -o "$tmp" "$pkg"
  ) >&2 || die "go build $pkg failed"
  mv -f -- "$tmp" "$out_dir/$name"
  log "built $name in $((SECONDS - start)) s"
}

k8s_minor=${k8s_version#v}     # 1.36.3
k8s_major=${k8s_minor%%.*}     # 1
k8s_minor=${k8s_minor#*.}      # 36.3
k8s_minor=${k8s_minor%%.*}     # 36
# Stamp the version so /version reports it (otherwise v0.0.0-master+$Format:%H$).
apiserver_ld="-X k8s.io/component-base/version.gitVersion=$k8s_version"
apiserver_ld+=" -X k8s.io/component-base/version.gitMajor=$k8s_major"
apiserver_ld+=" -X k8s.io/component-base/version.gitMinor=$k8s_minor"
apiserver_ld+=" -X k8s.io/component-base/version.gitTreeState=clean"

build etcd go.etcd.io/etcd/server/v3 ""
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$apiserver_ld"
# The controller-manager and scheduler share most of their packages with kube-apiserver, so building them after it
# (rather than concurrently) reuses its compiled packages from the Go build cache.
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$apiserver_ld"
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$apiserver_ld"

log "done: $out_dir"
printf '%s\n' "$out_dir"
