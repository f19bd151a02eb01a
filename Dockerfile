# syntax=docker/dockerfile:1
# pgim as PID 1 of a PostgreSQL 15 container. First version: the container-hardening issue adds the static checks
# and the read-only-root proof. Build: docker build -t pgim .
ARG NODE_IMAGE=node:20.19.5-bookworm-slim
ARG POSTGRES_IMAGE=postgres:15.14-bookworm

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY cmd ./cmd
COPY src ./src
RUN npx tsc -p tsconfig.json && npm prune --omit=dev --ignore-scripts

FROM ${NODE_IMAGE} AS node

FROM ${POSTGRES_IMAGE}
LABEL org.opencontainers.image.title="pgim" \
      org.opencontainers.image.description="PostgreSQL instance manager: PID 1 supervisor, CloudNativePG-compatible" \
      org.opencontainers.image.licenses="Apache-2.0"
# uid/gid 26 as in CloudNativePG's images, so volumes move between the two.
RUN groupmod -g 26 postgres && usermod -u 26 -g 26 postgres \
 && mkdir -p /controller /var/lib/postgresql/data \
 && chown -R 26:26 /controller /var/lib/postgresql \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=build /src/package.json /opt/pgim/package.json
COPY --from=build /src/node_modules /opt/pgim/node_modules
COPY --from=build /src/dist/cmd /opt/pgim/dist/cmd
COPY --from=build /src/dist/src /opt/pgim/dist/src
RUN chmod 0755 /opt/pgim/dist/cmd/pgim.js && ln -s /opt/pgim/dist/cmd/pgim.js /usr/local/bin/pgim
ENV PGDATA=/var/lib/postgresql/data/pgdata \
    PGIM_RUNTIME_DIR=/controller \
    PGIM_CONFIG_DIR=/etc/pgim \
    PGIM_PG_BIN=/usr/lib/postgresql/15/bin \
    PGPASSFILE=/controller/pgpass
USER 26:26
EXPOSE 5432 8000 9187
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8000/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["pgim", "run"]
