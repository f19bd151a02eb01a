import type { Server } from 'node:http';
import type { Logger } from 'pino';
import type { Cluster } from '../cluster/schema.js';
import type { ControlPlane } from '../controlplane/index.js';
import { errorMessage } from '../errors/index.js';
import type { InstanceState } from '../instance/state.js';
import { MetricsCache } from '../metrics/cache.js';
import { Collector } from '../metrics/collector.js';
import { loadQueries } from '../metrics/custom-queries.js';
import { createMetricsApp } from '../metrics/server.js';
import type { InstanceOptions } from '../options/index.js';
import type { PostgresInstance } from '../postgres/instance.js';
import { connectSocket, withLocalClient } from '../postgres/sql.js';
import { checkStreaming, countReadyWalFiles, pingLocal } from '../postgres/status.js';
import type { ManagerInfo } from './document.js';
import { BackupMode } from './backup-mode.js';
import { Probes } from './probes.js';
import { createStatusHandler, serveApp } from './server.js';
import { SpecWatcher } from './spec.js';
import { ServerCertificate } from './tls.js';

/** `--status-tls` / `--metrics-tls` (proposed as InstanceOptions fields; optional until that lands). */
export interface ServerTlsOptions {
  readonly statusTls?: boolean;
  readonly metricsTls?: boolean;
}

export interface ObservabilityDeps {
  readonly options: Pick<InstanceOptions, 'statusPort' | 'metricsPort'> & ServerTlsOptions;
  readonly bind: string | undefined;
  readonly controlPlane: ControlPlane;
  readonly state: InstanceState;
  readonly instance: PostgresInstance;
  readonly info: ManagerInfo;
  readonly cluster: Cluster;
  readonly logger: Logger;
}

/**
 * Starts the status (:8000) and metrics (:9187) servers and everything they read: the observability spec (watched),
 * the server certificate (reloaded in place), the probes and the scheduled metrics collection. Both servers only
 * read the instance's state; closing the status server stops the watchers and the schedule.
 */
export async function startStatusAndMetrics(deps: ObservabilityDeps): Promise<Server[]> {
  const { controlPlane, state, instance, logger, cluster } = deps;
  const spec = await SpecWatcher.open(
    controlPlane,
    (err) => {
      logger.error({ error: errorMessage(err) }, 'monitoring and probe settings refused; keeping the previous ones');
    },
    cluster.name,
  );
  const statusTls = deps.options.statusTls === true;
  const metricsTls = deps.options.metricsTls === true || spec.current.monitoring.tlsEnabled;
  const certificate = statusTls || metricsTls ? new ServerCertificate(controlPlane, spec, logger) : undefined;
  await certificate?.refresh();

  const connection = instance.connection;
  const probes = new Probes(state, {
    ping: () => pingLocal(connection, 2000),
    query: () =>
      withLocalClient(connection, async (client) => {
        await client.query('SELECT 1');
      }),
    streaming: (maximumLag) => withLocalClient(connection, (client) => checkStreaming(client, maximumLag)),
  });
  const backupMode = new BackupMode(
    () => connectSocket(connection, { user: 'postgres', database: 'postgres', applicationName: 'pgim_backup', timeoutMs: 5000, settings: '' }),
    logger,
  );
  const statusApp = createStatusHandler(
    {
      state,
      info: deps.info,
      spec: () => spec.current,
      probes,
      queryPostgres: () => instance.status(cluster.name),
      readyWalFiles: () => countReadyWalFiles(instance.pgdata),
      isPrimaryFromFiles: async () => !(await instance.isStandby()),
      isPgRewindRunning: () => instance.isPgRewindRunning,
      backupMode,
      controlData: async () => {
        const data = await instance.controlData();
        if (!data) throw new Error('pg_controldata could not read the control file');
        return data.raw;
      },
    },
    logger,
  );

  const collector = new Collector({
    state,
    connection,
    pgdata: instance.pgdata,
    defaultDatabase: cluster.bootstrap.database,
    clusterFacts: () => spec.current.clusterFacts,
    logger,
  });
  const cache = new MetricsCache({
    collector,
    state,
    monitoring: () => spec.current.monitoring,
    loadQueries: (monitoring) => loadQueries(controlPlane, monitoring),
    logger,
  });
  spec.onChange(() => {
    void cache.reload().catch((err: unknown) => {
      logger.error({ error: errorMessage(err) }, 'could not reload monitoring queries');
    });
  });

  const servers: Server[] = [];
  const tls = (enabled: boolean): { material: () => ServerCertificate['material'] } | undefined =>
    enabled && certificate ? { material: () => certificate.material } : undefined;
  const status = await serveApp(statusApp, { port: deps.options.statusPort, host: deps.bind, tls: tls(statusTls), name: 'status server' }, logger);
  servers.push(status);
  const metrics = await serveApp(
    createMetricsApp(collector, cache),
    { port: deps.options.metricsPort, host: deps.bind, tls: tls(metricsTls), name: 'metrics server' },
    logger,
  );
  servers.push(metrics);
  if (statusTls) certificate?.attach(status);
  if (metricsTls) certificate?.attach(metrics);
  status.once('close', () => {
    spec.stop();
    cache.stop();
    void backupMode.close();
  });
  await cache.start();
  return servers;
}
