#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build, run and test pgim: the PostgreSQL 15 server (Debian
# package, without Debian's auto-created cluster), Barman Cloud (barman-cli-cloud, python3-boto3) and the npm packages; with PGIM_TEST_TOOLS=1 (scripts/test.sh) also
# the test tools: Prometheus, podman, podman-compose, pgBackRest, PgBouncer and OpenLDAP (slapd). Safe to run again: it skips what is there. Debian packages
# are installed waiting for the package lock (scripts/lib/debian.sh); one that cannot be installed ends the run.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pg_bin=${PGIM_PG_BIN:-/usr/lib/postgresql/15/bin}
# shellcheck source=scripts/lib/debian.sh
. "$repo/scripts/lib/debian.sh"
debian_log_tag=install-deps

say() { printf '[install-deps] %s\n' "$*" >&2; }

node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'
}

if ! node_ok; then
  say "Node.js >= 20.19 is required (found: $(node --version 2>/dev/null || echo none)). Install it, e.g. from Debian or nodejs.org."
  exit 1
fi

# Every package here is needed: one that cannot be installed ends the run.
need_packages() { apt_install "$@" || exit 1; }

if [ ! -x "$pg_bin/postgres" ] || [ ! -x "$pg_bin/initdb" ]; then
  # Debian's postgresql-common would create and start a 'main' cluster on 5432; pgim manages its own.
  if [ "$(id -u)" -eq 0 ]; then
    mkdir -p /etc/postgresql-common
    grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf ||
      echo 'create_main_cluster = false' >>/etc/postgresql-common/createcluster.conf
  fi
  need_packages postgresql-15 postgresql-client-15
fi

# The OS account postgres runs as when pgim starts as root (Debian's package creates it).
if [ "$(id -u)" -eq 0 ] && ! getent passwd postgres >/dev/null; then
  say "creating the system user postgres"
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

# Barman Cloud archives WAL and takes base backups (spec.backup.barmanObjectStore): pgim runs it at run time.
if ! command -v barman-cloud-wal-archive >/dev/null 2>&1 || ! python3 -c 'import boto3' >/dev/null 2>&1; then
  need_packages barman-cli-cloud python3-boto3
fi

# The native addon (reaper, FIFO) compiles with the system C compiler against Node's headers.
if ! command -v cc >/dev/null 2>&1; then need_packages gcc libc6-dev; fi
# util-linux's setpriv gives the postmaster its parent-death signal (present on Debian; checked, not assumed).
if ! command -v setpriv >/dev/null 2>&1; then need_packages util-linux; fi

# Test tools only (scripts/test.sh sets PGIM_TEST_TOOLS=1). Where they cannot be installed (not root), the tests
# that need them skip loudly, and fail under CI=true.
if [ "${PGIM_TEST_TOOLS:-0}" = 1 ] && [ "$(id -u)" -eq 0 ]; then
  # promtool and a real Prometheus for the metrics tests.
  if ! { command -v promtool && command -v prometheus; } >/dev/null 2>&1; then need_packages prometheus; fi
  # The container image and its tests (scripts/image.sh, test/container/): podman with runc, netavark and
  # aardvark-dns (names between Compose services), debootstrap for the local base images, and podman-compose.
  missing=()
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  [ -x /usr/lib/podman/netavark ] || missing+=(netavark)
  [ -x /usr/lib/podman/aardvark-dns ] || missing+=(aardvark-dns)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client-15)
  if [ "${#missing[@]}" -gt 0 ]; then need_packages "${missing[@]}"; fi
  # shellcheck source=scripts/lib/podman.sh
  . "$repo/scripts/lib/podman.sh"
  podman_compose_install >/dev/null
fi
# pgBackRest is the peer the backup benchmarks (B17, B18) compare with; only the test and bench runs need it.
if [ "${PGIM_TEST_TOOLS:-0}" = 1 ] && [ "$(id -u)" -eq 0 ] && ! command -v pgbackrest >/dev/null 2>&1; then
  need_packages pgbackrest
fi
# PgBouncer: the pooler integration test (test/integration/pooler-pgbouncer.test.ts) authenticates through it.
if [ "${PGIM_TEST_TOOLS:-0}" = 1 ] && [ "$(id -u)" -eq 0 ] && [ ! -x /usr/sbin/pgbouncer ]; then
  need_packages pgbouncer
fi

# OpenLDAP's slapd and ldap-utils: the LDAP authentication tests (spec.postgresql.ldap) run a real directory on
# 127.0.0.1 with their own temp configuration (the package's own slapd service is not used).
if [ "${PGIM_TEST_TOOLS:-0}" = 1 ] && [ "$(id -u)" -eq 0 ] && ! { [ -x /usr/sbin/slapd ] && command -v ldapwhoami >/dev/null 2>&1; }; then
  need_packages slapd ldap-utils
fi

# iproute2's `ip`: the bench's cnpg system (bench/systems/cnpg-plane.ts) gives each CloudNativePG instance manager its
# own network namespace (its ports are fixed at 5432, 8000 and 9187); the bench smoke test runs it.
if [ "${PGIM_TEST_TOOLS:-0}" = 1 ] && [ "$(id -u)" -eq 0 ] && ! command -v ip >/dev/null 2>&1; then
  need_packages iproute2
fi

cd "$repo"
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
"$repo/scripts/build-native.sh"
