#!/usr/bin/env bash
# Build CloudNativePG's manager (the operator is its `controller` subcommand) for the operator end-to-end tests
# (test/operator-e2e): github.com/cloudnative-pg/cloudnative-pg/cmd/manager at a tagged release, from the Go module
# proxy. test/cnpg-operator-bin is a wrapper module that requires only that release (so every dependency is at the
# version CNPG's own go.mod pins) and names cmd/manager as a tool. (`go install pkg@version` cannot be used: it asks
# the proxy for the module's version list, which the proxy here refuses.) Cached by version (scripts/lib/go-build.sh):
#
#   ${PGIM_CNPG_OPERATOR_CACHE:-${PGIM_CACHE_DIR:-$HOME/.cache/pgim}/cnpg-operator}/<version>/manager
#
# Next to it go the release's own manifests the harness applies (from the same module, never copied into the
# project): rbac-role.yaml (config/rbac/role.yaml, the operator's ClusterRole) and webhook-manifests.yaml
# (config/webhook/manifests.yaml, its admission webhooks).
#
# The last line of stdout is the binary's path:  BIN=$(scripts/build-cnpg-operator.sh | tail -n1)
set -euo pipefail
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/lib/go-build.sh
. "$script_dir/lib/go-build.sh"
go_build_init build-cnpg-operator

mod_dir="$script_dir/../test/cnpg-operator-bin"
[[ -f "$mod_dir/go.mod" ]] || die "module not found: $mod_dir/go.mod"
module=github.com/cloudnative-pg/cloudnative-pg
version=$(awk -v m="$module" '$1 == m && $2 ~ /^v[0-9]/ { print $2; exit }' "$mod_dir/go.mod")
[[ -n "$version" ]] || die "$module is not required in $mod_dir/go.mod"
out_dir=$(go_cache_dir cnpg-operator PGIM_CNPG_OPERATOR_CACHE "$version")
go_cached "$out_dir" manager rbac-role.yaml webhook-manifests.yaml >/dev/null && { printf '%s\n' "$out_dir/manager"; exit 0; }
go_build_lock "$out_dir"
go_cached "$out_dir" manager rbac-role.yaml webhook-manifests.yaml >/dev/null && { printf '%s\n' "$out_dir/manager"; exit 0; }
go_require "CloudNativePG $version's manager into $out_dir"
src_dir=$(cd "$mod_dir" && go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d "$src_dir/config" ]] || die "cannot find $module $version's source in the Go module cache"
cp -f -- "$src_dir/config/rbac/role.yaml" "$out_dir/rbac-role.yaml"
cp -f -- "$src_dir/config/webhook/manifests.yaml" "$out_dir/webhook-manifests.yaml"
# The version stamp CNPG's Makefile sets, so `manager version` and the operator's logs name the release.
go_build "$out_dir/manager" "$mod_dir" "$module/cmd/manager" "-X $module/pkg/versions.buildVersion=${version#v}"
go_build_done "$out_dir/manager"
