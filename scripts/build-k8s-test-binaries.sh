#!/usr/bin/env bash
# Build a real kube-apiserver and etcd for the Kubernetes integration tests, plus kube-controller-manager and
# kube-scheduler (same Kubernetes version) for the operator end-to-end tests (test/operator-e2e).
#
# The versions come from the wrapper Go module in test/k8s-bin (go.mod/go.sum); everything is fetched from the Go
# module proxy by the ordinary `go` client, and cached by version (scripts/lib/go-build.sh):
#
#   ${PGIM_K8S_BIN_CACHE:-${PGIM_CACHE_DIR:-$HOME/.cache/pgim}/k8s-bin}/<k8s-version>-<etcd-version>/
#       kube-apiserver  etcd  kube-controller-manager  kube-scheduler
#
# The last line of stdout is the folder's path:  BIN_DIR=$(scripts/build-k8s-test-binaries.sh | tail -n1)
# A cold build on 2 cores takes several minutes; see test/k8s-bin/README.md.
set -euo pipefail
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/lib/go-build.sh
. "$script_dir/lib/go-build.sh"
go_build_init build-k8s-test-binaries

mod_dir="$script_dir/../test/k8s-bin"
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
out_dir=$(go_cache_dir k8s-bin PGIM_K8S_BIN_CACHE "${k8s_version}-${etcd_version}")
binaries=(kube-apiserver etcd kube-controller-manager kube-scheduler)
go_cached "$out_dir" "${binaries[@]}" && exit 0
go_build_lock "$out_dir"
go_cached "$out_dir" "${binaries[@]}" && exit 0
go_require "kube-apiserver $k8s_version and etcd $etcd_version into $out_dir"

k8s_minor=${k8s_version#v}     # 1.36.3
k8s_major=${k8s_minor%%.*}     # 1
k8s_minor=${k8s_minor#*.}      # 36.3
k8s_minor=${k8s_minor%%.*}     # 36
# Stamp the version so /version reports it (otherwise v0.0.0-master+$Format:%H$).
apiserver_ld="-X k8s.io/component-base/version.gitVersion=$k8s_version"
apiserver_ld+=" -X k8s.io/component-base/version.gitMajor=$k8s_major"
apiserver_ld+=" -X k8s.io/component-base/version.gitMinor=$k8s_minor"
apiserver_ld+=" -X k8s.io/component-base/version.gitTreeState=clean"

go_build "$out_dir/etcd" "$mod_dir" go.etcd.io/etcd/server/v3
go_build "$out_dir/kube-apiserver" "$mod_dir" k8s.io/kubernetes/cmd/kube-apiserver "$apiserver_ld"
# The controller-manager and scheduler share most of their packages with kube-apiserver, so building them after it
# (rather than concurrently) reuses its compiled packages from the Go build cache.
go_build "$out_dir/kube-controller-manager" "$mod_dir" k8s.io/kubernetes/cmd/kube-controller-manager "$apiserver_ld"
go_build "$out_dir/kube-scheduler" "$mod_dir" k8s.io/kubernetes/cmd/kube-scheduler "$apiserver_ld"

go_build_done "$out_dir"
