#!/usr/bin/env bash
# Build versitygw, the S3-compatible object store server the backup tests, the demo and the benchmarks use
# (github.com/versity/versitygw, Apache-2.0; its `posix` backend serves a local folder over S3), with the ordinary
# `go install` at an exact version, cached by that version (scripts/lib/go-build.sh):
#
#   ${PGIM_VERSITYGW_CACHE:-${PGIM_CACHE_DIR:-$HOME/.cache/pgim}/versitygw}/<version>/versitygw
#
# The last line of stdout is the binary's path:  VERSITYGW=$(scripts/build-versitygw.sh | tail -n1)
set -euo pipefail
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/lib/go-build.sh
. "$script_dir/lib/go-build.sh"
go_build_init build-versitygw

version=v1.8.0
out_dir=$(go_cache_dir versitygw PGIM_VERSITYGW_CACHE "$version")
go_cached "$out_dir" versitygw && exit 0
go_build_lock "$out_dir"
go_cached "$out_dir" versitygw && exit 0
go_require "versitygw $version into $out_dir"
go_build "$out_dir/versitygw" - "github.com/versity/versitygw/cmd/versitygw@$version"
go_build_done "$out_dir/versitygw"
