#!/usr/bin/env bash
# Build Dockle (github.com/goodwithtech/dockle, the exact version scripts/image/dockle/go.mod pins), the image linter
# scripts/image.sh runs, from the Go module proxy; cached by version (scripts/lib/go-build.sh):
#
#   ${PGIM_CACHE_DIR:-$HOME/.cache/pgim}/dockle/<version>/dockle
#
# The last line of stdout is the binary's path:  DOCKLE=$(scripts/build-dockle.sh | tail -n1)
set -euo pipefail
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/lib/go-build.sh
. "$script_dir/lib/go-build.sh"
go_build_init build-dockle

mod_dir="$script_dir/image/dockle"
module=github.com/goodwithtech/dockle
version=$(awk -v m="$module" '$1 == m && $2 ~ /^v[0-9]/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$mod_dir/go.mod")
[[ -n "$version" ]] || die "$module is not required in $mod_dir/go.mod"
out_dir=$(go_cache_dir dockle PGIM_DOCKLE_CACHE "$version")
go_cached "$out_dir" dockle && exit 0
go_build_lock "$out_dir"
go_cached "$out_dir" dockle && exit 0
go_require "Dockle $version into $out_dir"
go_build "$out_dir/dockle" "$mod_dir" "$module/cmd/dockle" "-X $module/pkg.version=${version#v}"
go_build_done "$out_dir/dockle"
