#!/usr/bin/env bash
# Build versitygw, the S3-compatible object store server the backup tests, the demo and the benchmarks use
# (github.com/versity/versitygw, Apache-2.0; its `posix` backend serves a local folder over S3).
#
# Fetched from the Go module proxy by the ordinary `go install`, at an exact version, into a cache folder keyed
# by that version:
#
#   ${PGIM_VERSITYGW_CACHE:-$HOME/.cache/pgim/versitygw}/<version>/versitygw
#
# When the binary is already there the build is skipped (and `go` is not needed). Progress goes to stderr; the
# last line of stdout is the binary's path:  VERSITYGW=$(scripts/build-versitygw.sh | tail -n1)
set -euo pipefail

version=v1.8.0
log() { printf '[build-versitygw] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cache_root="${PGIM_VERSITYGW_CACHE:-${HOME:?HOME is not set}/.cache/pgim/versitygw}"
out_dir="$cache_root/$version"
bin="$out_dir/versitygw"

if [[ -x "$bin" ]]; then
  log "cached: versitygw $version in $out_dir (skipping build)"
  printf '%s\n' "$bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "'go' is not on PATH; Go is needed to build versitygw $version (or put a prebuilt binary at $bin)"

log "using $(go version); building versitygw $version into $out_dir"
mkdir -p "$out_dir"
# Install into a private folder, then rename into place: an interrupted build never leaves a binary that a later
# run would take for a cache hit.
tmp=$(mktemp -d "$out_dir/.build.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
start=$SECONDS
CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-trimpath go install -ldflags "-s -w" \
  "github.com/versity/versitygw/cmd/versitygw@$version" >&2 || die "go install versitygw@$version failed"
mv -f -- "$tmp/versitygw" "$bin"
log "built versitygw in $((SECONDS - start)) s"
printf '%s\n' "$bin"
