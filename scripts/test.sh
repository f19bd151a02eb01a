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
"$repo/scripts/security-checks.sh" --after-build

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
