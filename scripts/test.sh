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
  # CloudNativePG's operator (test/integration/cnpg-operator-e2e.test.ts) is built alongside: its Kubernetes libraries
  # are other versions than kube-apiserver's, so the two builds share nothing and overlap their link steps.
  echo "== CloudNativePG operator (v1.30.0), in the background"
  cnpg_operator_out=$(mktemp)
  "$repo/scripts/build-cnpg-operator.sh" >"$cnpg_operator_out" &
  cnpg_operator_pid=$!
  echo "== Kubernetes test binaries (kube-apiserver, etcd, kube-controller-manager, kube-scheduler)"
  k8s_bin_dir=$("$repo/scripts/build-k8s-test-binaries.sh" | tail -n1)
  export PGIM_K8S_BIN_DIR="$k8s_bin_dir"
  # CloudNativePG's own Go code run against pgim (test/integration/cnpg-conformance.test.ts): about 3 min on 2 cores
  # after the build above (Go's cache then holds the k8s libraries), 10 min with empty Go caches, 0.02 s when cached.
  echo "== CNPG conformance program (CloudNativePG v1.30.0's Go code)"
  cnpg_conformance_bin=$("$repo/scripts/build-cnpg-conformance.sh" | tail -n1)
  export PGIM_CNPG_CONFORMANCE_BIN="$cnpg_conformance_bin"
  # The benchmark's `cnpg` system (bench/smoke.test.ts runs it once): CNPG's Cluster defaults and Role from its own Go
  # code; the same libraries as the conformance program, so seconds after it, 0.02 s when cached.
  echo "== CNPG Cluster preparation helper (bench/cnpg-cluster-prep)"
  PGIM_CNPG_CLUSTER_PREP_BIN=$("$repo/scripts/build-cnpg-cluster-prep.sh" | tail -n1)
  export PGIM_CNPG_CLUSTER_PREP_BIN
  wait "$cnpg_operator_pid" || { echo "scripts/build-cnpg-operator.sh failed" >&2; exit 1; }
  PGIM_CNPG_OPERATOR_BIN=$(tail -n1 "$cnpg_operator_out")
  rm -f -- "$cnpg_operator_out"
  export PGIM_CNPG_OPERATOR_BIN
fi

# The backup tests, demo and benchmarks use a real S3 server: versitygw, built from the Go module proxy and cached
# by version (about 4 min cold, instant when cached). Without Go and without a cached binary those tests skip
# themselves loudly (they fail under CI=true).
if command -v go >/dev/null 2>&1 || [ -x "${PGIM_VERSITYGW_CACHE:-$HOME/.cache/pgim/versitygw}/v1.8.0/versitygw" ]; then
  echo "== S3 test server (versitygw)"
  PGIM_VERSITYGW=$("$repo/scripts/build-versitygw.sh" | tail -n1)
  export PGIM_VERSITYGW
fi

echo "== tests (mocha)"
npx mocha "$@"
