# syntax=docker/dockerfile:1
# pgim as PID 1 of a PostgreSQL 15 container (the image CloudNativePG's operator or Docker Compose runs).
#
#   docker build -t pgim:0.1.0 .
#
# Stage "build" has the dev dependencies and a C compiler: it compiles and bundles the TypeScript, the native addon
# (scripts/build-native.sh against Node's own headers) and the SBOM, then prunes to production dependencies. The
# runtime stage is the PostgreSQL image plus Node's binary and pgim's production files, owned by root and read-only
# to the uid pgim runs as. Checked in CI without an engine (scripts/security-checks.sh): dockerfilelint,
# dockerfile-utils and test/static/dockerfile.test.ts; see docs/security.md for the image scans where an engine exists.
#
# The base images are build arguments whose defaults are the official images, pinned by version (the static checks
# read these defaults); bump them together and deliberately: the tests run PostgreSQL 15 and Node 20. The build and
# runtime stages share Debian bookworm's glibc. Where those images cannot be pulled (this project's CI),
# scripts/image.sh builds stand-ins from Debian's packages and Node's release binary and passes them here, so the
# same Dockerfile serves both.
ARG NODE_IMAGE=node:20.19.5-bookworm
ARG NODE_SLIM_IMAGE=node:20.19.5-bookworm-slim
ARG POSTGRES_IMAGE=postgres:15.14-bookworm

FROM ${NODE_IMAGE} AS build
# A path to extra CA certificates for npm, for builders behind a TLS-inspecting proxy: scripts/image.sh mounts the
# host's bundle read-only for the build and names it here. A path, not a secret; the build stage's settings never
# reach the runtime image.
ARG NODE_EXTRA_CA_CERTS
WORKDIR /src
COPY package.json package-lock.json ./
# Integrity-checked install from the lockfile; no lifecycle scripts run (none is allowed: see
# scripts/install-scripts.allow).
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY cmd ./cmd
COPY src ./src
COPY native ./native
COPY scripts/build-native.sh scripts/bundle.ts ./scripts/
# tsc, then esbuild bundles the CLI into dist/cmd (scripts/bundle.ts: a faster start for PID 1).
RUN npx tsc -p tsconfig.json \
 && node dist/scripts/bundle.js \
 && scripts/build-native.sh \
 && npm sbom --sbom-format cyclonedx --omit dev >dist/sbom.cdx.json \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_SLIM_IMAGE} AS node

FROM ${POSTGRES_IMAGE}
ARG POSTGRES_IMAGE
ARG PGIM_VERSION=0.1.0
ARG PGIM_REVISION=unknown
LABEL org.opencontainers.image.title="pgim" \
      org.opencontainers.image.description="PostgreSQL instance manager: PID 1 supervisor, CloudNativePG-compatible" \
      org.opencontainers.image.version="${PGIM_VERSION}" \
      org.opencontainers.image.revision="${PGIM_REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${POSTGRES_IMAGE}"
# The postgres account becomes uid/gid 26, as in CloudNativePG's images, so volumes move between the two (the base
# images use 999). Debian gives gid 26 to the group "tape", unused in a container: it goes first. Files of the old
# ids (now without an owner) follow the account. The upstream entrypoint scripts and gosu (a tool to switch users)
# are never used here and go; no file keeps a setuid or setgid bit. The account's ~/.pgpass is pgim's passfile in the
# runtime dir, so psql in a shell in the container authenticates as pgim does (an ENV PGPASSFILE would work too, but
# image scanners take any variable named *PASS* for a stored credential). /controller is 1777 like /tmp: podman
# gives a tmpfs mounted there this mode with root as owner, and pgim uses such a sticky folder as it is (it tightens
# the mode only where it owns the folder); what it creates inside is 0700/0600.
RUN if getent group tape >/dev/null; then groupdel tape; fi \
 && groupmod -g 26 postgres \
 && usermod -u 26 -g 26 postgres \
 && find / -xdev \( -nouser -o -nogroup \) -exec chown -h postgres:postgres {} + \
 && install -d -o 26 -g 26 -m 0700 /etc/pgim /var/lib/postgresql/data \
 && install -d -o 26 -g 26 -m 1777 /controller \
 && ln -s /controller/pgpass /var/lib/postgresql/.pgpass \
 && chown -R 26:26 /var/lib/postgresql /var/run/postgresql \
 && rm -f /usr/local/bin/gosu /usr/local/bin/docker-entrypoint.sh /usr/local/bin/docker-ensure-initdb.sh \
      /usr/local/bin/docker-enforce-initdb.sh \
 && rm -rf /docker-entrypoint-initdb.d /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && find / -xdev -type f -perm /6000 -exec chmod a-s {} +
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=build /src/package.json /opt/pgim/package.json
COPY --from=build /src/node_modules /opt/pgim/node_modules
COPY --from=build /src/dist/cmd /opt/pgim/dist/cmd
COPY --from=build /src/dist/sbom.cdx.json /opt/pgim/sbom.cdx.json
COPY --from=build /src/native/build /opt/pgim/native/build
# Smoke test at build time: Node runs on this base, and the addon loads (same glibc as the build stage).
RUN chmod 0755 /opt/pgim/dist/cmd/pgim.js \
 && ln -s /opt/pgim/dist/cmd/pgim.js /usr/local/bin/pgim \
 && node -e 'require("/opt/pgim/native/build/pgim_native.node")' \
 && pgim --help >/dev/null
# PGDATA and the runtime dir are CloudNativePG's. With a read-only root filesystem pgim writes only to the PGDATA
# volume (/var/lib/postgresql/data), the runtime dir and TMPDIR (/tmp): mount those writable.
ENV PGDATA=/var/lib/postgresql/data/pgdata \
    PGIM_RUNTIME_DIR=/controller \
    PGIM_CONFIG_DIR=/etc/pgim \
    PGIM_PG_BIN=/usr/lib/postgresql/15/bin
USER 26:26
# 5432 PostgreSQL, 8000 status API (probes), 9187 metrics.
EXPOSE 5432 8000 9187
# The base image stops with SIGINT; pgim's stop (CHECKPOINT, smart, then fast) starts on SIGTERM, as the kubelet sends.
STOPSIGNAL SIGTERM
# Exec form: no shell. Six misses (a minute) before "unhealthy", which covers a bootstrap; --start-period is left to
# compose.yaml because dockerfilelint 1.8 rejects that option.
HEALTHCHECK --interval=10s --timeout=5s --retries=6 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PGIM_STATUS_PORT||8000)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# pgim itself is PID 1 (exec form, no shell, no init wrapper): it reaps orphans and forwards signals.
ENTRYPOINT ["pgim", "run"]
