#!/usr/bin/env bash
# The whole test suite, from a fresh clone: dependencies, lint and type checks, build, then every test.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

"$repo/scripts/install-deps.sh"

echo "== lint: tsc --noEmit + eslint (zero warnings)"
npm run --silent lint

echo "== build"
npm run --silent build

echo "== tests (mocha)"
npx mocha "$@"
