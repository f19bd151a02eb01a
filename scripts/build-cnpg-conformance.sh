#!/usr/bin/env bash
# Build the CNPG conformance program (test/cnpg-conformance): CloudNativePG's own Go code, from the Go module proxy
# (github.com/cloudnative-pg/cloudnative-pg v1.30.0, a tagged release), run against pgim by
# test/integration/cnpg-conformance.test.ts. Cached by the hash of the module's go.mod, go.sum and Go sources
# (scripts/lib/go-build.sh):
#
#   ${PGIM_CNPG_CONFORMANCE_CACHE:-${PGIM_CACHE_DIR:-$HOME/.cache/pgim}/cnpg-conformance}/<hash>/cnpg-conformance
#
# The last line of stdout is the binary's path:  BIN=$(scripts/build-cnpg-conformance.sh | tail -n1)
set -euo pipefail
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/lib/go-build.sh
. "$script_dir/lib/go-build.sh"
go_build_init build-cnpg-conformance

mod_dir="$script_dir/../test/cnpg-conformance"
[[ -f "$mod_dir/go.mod" ]] || die "module not found: $mod_dir/go.mod"
hash=$(cd "$mod_dir" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)
out_dir=$(go_cache_dir cnpg-conformance PGIM_CNPG_CONFORMANCE_CACHE "$hash")
go_cached "$out_dir" cnpg-conformance && exit 0
go_build_lock "$out_dir"
go_cached "$out_dir" cnpg-conformance && exit 0
go_require "CloudNativePG v1.30.0's code into $out_dir"
go_build "$out_dir/cnpg-conformance" "$mod_dir" .
go_build_done "$out_dir/cnpg-conformance"
