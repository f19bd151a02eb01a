#!/usr/bin/env bash
# Build the benchmark's CNPG Cluster preparation helper (bench/cnpg-cluster-prep): CloudNativePG's own Go code
# (github.com/cloudnative-pg/cloudnative-pg v1.30.0, a tagged release, from the Go module proxy) that applies the
# admission webhook's defaults to a Cluster and generates the instance's Role, for the `cnpg` system of
# `npm run bench` (bench/systems/cnpg.ts).
#
# The binary is cached by the hash of the module's go.mod, go.sum and Go sources:
#
#   ${PGIM_CNPG_CLUSTER_PREP_CACHE:-$HOME/.cache/pgim/cnpg-cluster-prep}/<hash>/cnpg-cluster-prep
#
# A cache hit needs no `go`. Progress goes to stderr; the last line of stdout is the binary's path:
#   BIN=$(scripts/build-cnpg-cluster-prep.sh | tail -n1)
set -euo pipefail
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/lib/go-build.sh
. "$script_dir/lib/go-build.sh"
go_build_init build-cnpg-cluster-prep

mod_dir="$script_dir/../bench/cnpg-cluster-prep"
[[ -f "$mod_dir/go.mod" ]] || die "module not found: $mod_dir/go.mod"
hash=$(cd "$mod_dir" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)
out_dir=$(go_cache_dir cnpg-cluster-prep PGIM_CNPG_CLUSTER_PREP_CACHE "$hash")
go_cached "$out_dir" cnpg-cluster-prep && exit 0
go_build_lock "$out_dir"
go_cached "$out_dir" cnpg-cluster-prep && exit 0
go_require "CloudNativePG v1.30.0's code into $out_dir"
go_build "$out_dir/cnpg-cluster-prep" "$mod_dir" .
go_build_done "$out_dir/cnpg-cluster-prep"
