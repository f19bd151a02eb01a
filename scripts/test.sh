#!/usr/bin/env bash
# The whole test suite, from a fresh clone: dependencies, lint and type checks, build, then every test.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

PGIM_TEST_TOOLS=1 "$repo/scripts/install-deps.sh"

# The Go-built test tools (scripts/lib/go-build.sh: kube-apiserver and friends, CloudNativePG's operator and
# conformance program, versitygw, Dockle) start now in the background, cold builds taking many minutes, while lint,
# build, the security checks and the image run; the tests wait for them below. Three chains: the Kubernetes binaries
# share their packages with each other, the operator and the conformance program share CloudNativePG's.
# shellcheck source=scripts/lib/go-builds.sh
. "$repo/scripts/lib/go-builds.sh"
go_builds_start

echo "== lint: tsc --noEmit + eslint (zero warnings)"
npm run --silent lint

echo "== build"
npm run --silent build
# The security gates end with the container image: scripts/image.sh builds it with podman (local Debian bases, cached
# by their inputs' hash) and scans it with Dockle. The container tests (test/container/) run that image once.
"$repo/scripts/security-checks.sh" --after-build
# Where there is no image (podman could not be installed: not root, not CI), those tests skip themselves loudly.
image=localhost/pgim:$(node -p 'require("./package.json").version')
if command -v podman >/dev/null 2>&1; then
  # shellcheck source=scripts/lib/debian.sh
  . "$repo/scripts/lib/debian.sh"
  # shellcheck source=scripts/lib/podman.sh
  . "$repo/scripts/lib/podman.sh"
  podman_containers_conf
  if podman image exists "$image"; then
    PGIM_TEST_IMAGE=$image
    PGIM_PODMAN_COMPOSE=$(podman_compose_install)
    export PGIM_TEST_IMAGE PGIM_PODMAN_COMPOSE
  fi
fi

# Where Go is missing the scripts still find cached binaries; without them the tests skip themselves loudly (they fail
# under CI=true). With Go, a failed build fails the run.
go_builds_wait

echo "== tests (mocha)"
npx mocha "$@"
