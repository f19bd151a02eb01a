#!/usr/bin/env bash
# Build the CNPG conformance program (test/cnpg-conformance): CloudNativePG's own Go code, from the Go module proxy
# (github.com/cloudnative-pg/cloudnative-pg v1.30.0, a tagged release), run against pgim by
# test/integration/cnpg-conformance.test.ts.
#
# The binary is cached by the hash of the module's go.mod, go.sum and Go sources:
#
#   ${PGIM_CNPG_CONFORMANCE_CACHE:-$HOME/.cache/pgim/cnpg-conformance}/<hash>/cnpg-conformance
#
# A cache hit needs no `go`. Progress goes to stderr; the last line of stdout is the binary's path:
#   BIN=$(scripts/build-cnpg-conformance.sh | tail -n1)
set -euo pipefail

log() { printf '[build-cnpg-conformance] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
mod_dir="$script_dir/../test/cnpg-conformance"
[[ -f "$mod_dir/go.mod" ]] || die "module not found: $mod_dir/go.mod"

hash=$(cd "$mod_dir" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)
cache_root="${PGIM_CNPG_CONFORMANCE_CACHE:-${HOME:?HOME is not set}/.cache/pgim/cnpg-conformance}"
out_dir="$cache_root/$hash"
bin="$out_dir/cnpg-conformance"

if [[ -x "$bin" ]]; then
  log "cached: $bin (skipping build)"
  printf '%s\n' "$bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "'go' is not on PATH; Go >= 1.26 is needed to build the CNPG conformance program (or put it in $bin)"
log "using $(go version); building CloudNativePG v1.30.0's code into $bin"
mkdir -p "$out_dir"
tmp="$out_dir/.cnpg-conformance.tmp.$$"
trap 'rm -f -- "$tmp"' EXIT
start=$SECONDS
(cd "$mod_dir" && CGO_ENABLED=0 nice go build -trimpath -ldflags "-s -w" -o "$tmp" .) >&2 || die "go build failed"
mv -f -- "$tmp" "$bin"
log "built in $((SECONDS - start)) s"
printf '%s\n' "$bin"
