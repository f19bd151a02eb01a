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
