#!/usr/bin/env bash
# The whole test suite, from a fresh clone: dependencies, lint and type checks, build, then every test.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

PGIM_TEST_TOOLS=1 "$repo/scripts/install-deps.sh"

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

# The Kubernetes tests run a real kube-apiserver and etcd, built from the Go module proxy (about 4 min cold, 0.01 s
# when cached). Where Go is missing the tests use cached binaries, or skip themselves loudly (they fail under CI=true).
if command -v go >/dev/null 2>&1; then
  echo "== Kubernetes test binaries (kube-apiserver, etcd)"
  k8s_bin_dir=$("$repo/scripts/build-k8s-test-binaries.sh" | tail -n1)
  export PGIM_K8S_BIN_DIR="$k8s_bin_dir"
  # CloudNativePG's own Go code run against pgim (test/integration/cnpg-conformance.test.ts): about 3 min on 2 cores
  # after the build above (Go's cache then holds the k8s libraries), 10 min with empty Go caches, 0.02 s when cached.
  echo "== CNPG conformance program (CloudNativePG v1.30.0's Go code)"
  cnpg_conformance_bin=$("$repo/scripts/build-cnpg-conformance.sh" | tail -n1)
  export PGIM_CNPG_CONFORMANCE_BIN="$cnpg_conformance_bin"
fi

echo "== tests (mocha)"
npx mocha "$@"
