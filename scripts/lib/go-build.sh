# shellcheck shell=bash
# The one cache shape of the Go-built test tools (scripts/build-*.sh): a binary built from the Go module proxy into
#
#   ${PGIM_CACHE_DIR:-$HOME/.cache/pgim}/<tool>/<version-or-hash>/<binary>
#
# (or <tool>'s own override variable, e.g. PGIM_VERSITYGW_CACHE, which names the <tool> folder). A cache hit needs
# no `go`. Each binary is built to a temporary name beside its final one and renamed into place, so an interrupted
# build never looks like a cache hit; one lock per cache folder (flock) makes a second, concurrent run of the same
# script wait for the first and then find the cache (scripts/test.sh starts the cold builds in the background while
# scripts/image.sh may ask for Dockle).
#
# Use (after `set -euo pipefail`):
#   . "$script_dir/lib/go-build.sh"
#   go_build_init build-foo                       # the log prefix
#   out_dir=$(go_cache_dir foo PGIM_FOO_CACHE "$version")
#   go_cached "$out_dir" foo && exit 0           # prints the path when every named binary is there
#   go_build_lock "$out_dir"; go_cached "$out_dir" foo && exit 0   # again: another run may have built it meanwhile
#   go_require "Foo $version"
#   go_build "$out_dir/foo" "$mod_dir" example.com/foo/cmd/foo "-X main.version=$version"
#   go_build_done "$out_dir/foo"                 # prints the path as the last line of stdout
# Progress goes to stderr; the last line of stdout is the path the caller uses.

go_build_init() {
  go_build_name=$1
  go_build_started=$SECONDS
}

log() { printf '[%s] %s\n' "${go_build_name:-go-build}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# go_cache_dir <tool> <override variable> <version-or-hash>: the tool's versioned cache folder.
go_cache_dir() {
  local tool=$1 override=$2 key=$3 root
  root=${!override:-${PGIM_CACHE_DIR:-${HOME:?HOME is not set}/.cache/pgim}/$tool}
  printf '%s\n' "$root/$key"
}

# go_cached <dir> <file>...: true (and the path printed: the folder for several files, the file for one) when
# every file is there.
go_cached() {
  local dir=$1 b
  shift
  for b in "$@"; do [[ -s "$dir/$b" ]] || return 1; done
  log "cached: $dir (skipping build)"
  if (($# == 1)); then printf '%s\n' "$dir/$1"; else printf '%s\n' "$dir"; fi
}

# go_build_lock <dir>: holds an exclusive lock on <dir> until this script exits.
go_build_lock() {
  mkdir -p "$1"
  exec {go_build_lock_fd}>"$1/.lock"
  if ! flock -n "$go_build_lock_fd"; then
    log "another build of $1 is running: waiting for it"
    flock "$go_build_lock_fd"
  fi
}

go_require() {
  command -v go >/dev/null 2>&1 || die "'go' is not on PATH; Go >= 1.26 is needed to build $1 (or put the prebuilt binaries in the cache folder)"
  log "using $(go version); building $1"
}

# go_build <dest> <module dir> <package> [<extra ldflags>]: CGO off, trimmed paths, stripped, niced (CI and the
# other builds share 2 cores). <module dir> is a wrapper module pinning the versions (go.mod/go.sum); "-" builds
# <package>@<version> with `go install` instead (a tool whose own go.mod pins everything).
go_build() {
  local dest=$1 mod_dir=$2 pkg=$3 extra_ld=${4:-} tmp start
  if [[ -x "$dest" ]]; then
    log "$(basename -- "$dest") already built, skipping"
    return
  fi
  tmp=$(mktemp -d "$(dirname -- "$dest")/.build.XXXXXX")
  # shellcheck disable=SC2064 # expand now: the folder of this build
  trap "rm -rf -- '$tmp'" EXIT
  start=$SECONDS
  log "go build $pkg (many minutes on a cold Go build cache)"
  if [[ "$mod_dir" == - ]]; then
    CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath" nice go install -ldflags "-s -w${extra_ld:+ $extra_ld}" "$pkg" >&2 ||
      die "go install $pkg failed"
    mv -f -- "$tmp/$(basename -- "${pkg%@*}")" "$dest"
  else
    (cd "$mod_dir" && CGO_ENABLED=0 nice go build -trimpath -pgo=off -ldflags "-s -w${extra_ld:+ $extra_ld}" -o "$tmp/out" "$pkg") >&2 ||
      die "go build $pkg failed"
    mv -f -- "$tmp/out" "$dest"
  fi
  rm -rf -- "$tmp"
  trap - EXIT
  log "built $(basename -- "$dest") in $((SECONDS - start)) s"
}

# go_build_done <path>: the total time, and the path as the last line of stdout.
go_build_done() {
  log "done in $((SECONDS - go_build_started)) s: $1"
  printf '%s\n' "$1"
}
