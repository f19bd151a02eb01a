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

log() { printf '[build-cnpg-cluster-prep] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
mod_dir="$script_dir/../bench/cnpg-cluster-prep"
[[ -f "$mod_dir/go.mod" ]] || die "module not found: $mod_dir/go.mod"

hash=$(cd "$mod_dir" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)
cache_root="${PGIM_CNPG_CLUSTER_PREP_CACHE:-${HOME:?HOME is not set}/.cache/pgim/cnpg-cluster-prep}"
out_dir="$cache_root/$hash"
bin="$out_dir/cnpg-cluster-prep"

if [[ -x "$bin" ]]; then
  log "cached: $bin (skipping build)"
  printf '%s\n' "$bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "'go' is not on PATH; Go >= 1.26 is needed to build the benchmark's CNPG Cluster preparation helper (or put it in $bin)"
log "using $(go version); building CloudNativePG v1.30.0's code into $bin"
mkdir -p "$out_dir"
tmp="$out_dir/.cnpg-cluster-prep.tmp.$$"
trap 'rm -f -- "$tmp"' EXIT
start=$SECONDS
(cd "$mod_dir" && CGO_ENABLED=0 nice go build -trimpath -ldflags "-s -w" -o "$tmp" .) >&2 || die "go build failed"
mv -f -- "$tmp" "$bin"
log "built in $((SECONDS - start)) s"
printf '%s\n' "$bin"
