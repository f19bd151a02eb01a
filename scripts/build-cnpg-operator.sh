#!/usr/bin/env bash
# Build CloudNativePG's manager (the operator is its `controller` subcommand) for the operator end-to-end tests
# (test/operator-e2e): github.com/cloudnative-pg/cloudnative-pg/cmd/manager at a tagged release, from the Go module
# proxy. test/cnpg-operator-bin is a wrapper module that requires only that release (so every dependency is at the
# version CNPG's own go.mod pins) and names cmd/manager as a tool. (`go install pkg@version` cannot be used: it asks
# the proxy for the module's version list, which the proxy here refuses.)
#
# The binary is cached by version:
#
#   ${PGIM_CNPG_OPERATOR_CACHE:-$HOME/.cache/pgim/cnpg-operator}/<version>/manager
#
# Next to it go the release's own manifests the harness applies (from the same module, never copied into the
# project): rbac-role.yaml (config/rbac/role.yaml, the operator's ClusterRole) and webhook-manifests.yaml
# (config/webhook/manifests.yaml, its admission webhooks).
#
# A cache hit needs no `go`. Progress goes to stderr; the last line of stdout is the binary's path:
#   BIN=$(scripts/build-cnpg-operator.sh | tail -n1)
set -euo pipefail

log() { printf '[build-cnpg-operator] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
mod_dir="$script_dir/../test/cnpg-operator-bin"
[[ -f "$mod_dir/go.mod" ]] || die "module not found: $mod_dir/go.mod"
module=github.com/cloudnative-pg/cloudnative-pg
version=$(awk -v m="$module" '$1 == m && $2 ~ /^v[0-9]/ { print $2; exit }' "$mod_dir/go.mod")
[[ -n "$version" ]] || die "$module is not required in $mod_dir/go.mod"
cache_root="${PGIM_CNPG_OPERATOR_CACHE:-${HOME:?HOME is not set}/.cache/pgim/cnpg-operator}"
out_dir="$cache_root/$version"
bin="$out_dir/manager"

if [[ -x "$bin" && -f "$out_dir/rbac-role.yaml" && -f "$out_dir/webhook-manifests.yaml" ]]; then
  log "cached: $bin (skipping build)"
  printf '%s\n' "$bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "'go' is not on PATH; Go >= 1.26 is needed to build CloudNativePG $version's manager (or put it in $bin)"
log "using $(go version); building CloudNativePG $version's manager into $bin"
mkdir -p "$out_dir"
# Build to a temporary name, then rename into place, so an interrupted build never looks like a cache hit.
tmp="$out_dir/.manager.tmp.$$"
trap 'rm -f -- "$tmp"' EXIT
start=$SECONDS
src_dir=$(cd "$mod_dir" && go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d "$src_dir/config" ]] || die "cannot find $module $version's source in the Go module cache"
cp -f -- "$src_dir/config/rbac/role.yaml" "$out_dir/rbac-role.yaml"
cp -f -- "$src_dir/config/webhook/manifests.yaml" "$out_dir/webhook-manifests.yaml"
if [[ -x "$bin" ]]; then
  log "copied the manifests next to the cached binary"
  printf '%s\n' "$bin"
  exit 0
fi
# The version stamp CNPG's Makefile sets, so `manager version` and the operator's logs name the release.
ldflags="-s -w -X $module/pkg/versions.buildVersion=${version#v}"
(cd "$mod_dir" && CGO_ENABLED=0 nice go build -trimpath -ldflags "$ldflags" -o "$tmp" "$module/cmd/manager") >&2 ||
  die "go build $module/cmd/manager ($version) failed"
mv -f -- "$tmp" "$bin"
log "built in $((SECONDS - start)) s"
printf '%s\n' "$bin"
