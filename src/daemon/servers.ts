import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import type { BackupService } from '../backup/service.js';
import type { ObservabilitySpec } from '../cluster/observability.js';
import type { Cluster } from '../cluster/schema.js';
import type { ControlPlane } from '../controlplane/index.js';
import type { DesiredStateSource } from '../desired/source.js';
import { errorMessage } from '../errors/index.js';
import type { InstanceState } from '../instance/state.js';
import { MetricsCache } from '../metrics/cache.js';
import { Collector } from '../metrics/collector.js';
import { loadQueries } from '../metrics/custom-queries.js';
import { createMetricsApp } from '../metrics/server.js';
import type { InstanceOptions } from '../options/index.js';
import type { PostgresInstance } from '../postgres/instance.js';
import { connectSocket, withLocalClient } from '../postgres/sql.js';
import { checkStreaming, pingLocal } from '../postgres/probes.js';
import { countReadyWalFiles } from '../postgres/status-queries.js';
import { BackupMode } from '../webserver/backup-mode.js';
import type { ManagerInfo } from '../webserver/document.js';
import { Probes } from '../webserver/probes.js';
import { createStatusHandler, serveApp } from '../webserver/server.js';
import { ServerCertificate } from '../webserver/tls.js';
import { registerBackupMetrics } from '../backup/metrics.js';
import { archivePartialWal } from '../backup/endpoints.js';
import { coalesced } from '../async/coalesce.js';
import { certificatePaths } from '../tls/files.js';
import { failsafePeers, livenessWithIsolationCheck } from '../webserver/isolation-check.js';

export interface ObservabilityDeps {
  readonly options: Pick<InstanceOptions, 'statusPort' | 'metricsPort' | 'statusTls' | 'metricsTls'>;
  readonly bind: string | undefined;
  readonly controlPlane: ControlPlane;
  /** The one reader of the Cluster: the servers follow its observability fields. */
  readonly source: DesiredStateSource;
  readonly state: InstanceState;
  readonly instance: PostgresInstance;
  readonly info: ManagerInfo;
  readonly cluster: Cluster;
  readonly logger: Logger;
  /** Archiving and base backups: /pg/status, POST /pg/backup, /pg/archive/partial and the backup metrics. */
  readonly backups?: BackupService;
}

/**
 * Starts the status (:8000) and metrics (:9187) servers and everything they read: the observability spec (from the
 * desired state source), the server certificate (reloaded in place), the probes and the scheduled metrics
 * collection. Both servers only read the instance's state; closing the status server ends the subscription and the
 * schedule.
 */
export async function startStatusAndMetrics(deps: ObservabilityDeps): Promise<Server[]> {
  const { controlPlane, source, state, instance, logger, cluster, backups } = deps;
  // A Cluster that cannot be read keeps the last good spec: monitoring must not go dark over a typo.
  const spec = (): ObservabilitySpec => source.lastCluster.observability;
  const statusTls = deps.options.statusTls === true;
  const metricsTls = deps.options.metricsTls === true || spec().monitoring.tlsEnabled;
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
  const isPrimaryFromFiles = async (): Promise<boolean> => !state.rejoiningAsReplica && !(await instance.isStandby());
  // Concurrent probes share one check; each later probe checks again (CNPG caches nothing here either).
  const liveness = coalesced(
    () =>
      livenessWithIsolationCheck({
        config: () => spec().probes.isolationCheck,
        instances: () => source.lastCluster.instances,
        isPrimary: isPrimaryFromFiles,
        apiServer: controlPlane.checkApiServer?.bind(controlPlane),
        peers: () => failsafePeers(source.current.topology, controlPlane.reportedInstanceIps?.() ?? new Map(), deps.options.statusPort, statusTls),
        serverCa: () => readFile(certificatePaths(source.current.layout.certificatesDir).serverCa),
        logger,
      }),
    0,
  );
  const statusApp = createStatusHandler(
    {
      state,
      info: deps.info,
      spec,
      probes,
      queryPostgres: () => instance.status(cluster.name),
      readyWalFiles: () => countReadyWalFiles(instance.pgdata),
      isPrimaryFromFiles,
      liveness,
      isPgRewindRunning: () => instance.isPgRewindRunning,
      backupMode,
      ...(backups === undefined
        ? {}
        : { backups, archivePartialWal: () => archivePartialWal(backups, () => instance.controlData().then((d) => d?.raw ?? ''), instance.pgdata) }),
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
    clusterFacts: () => spec().clusterFacts,
    logger,
  });
  if (deps.backups !== undefined) registerBackupMetrics(collector.registry, deps.backups);
  const cache = new MetricsCache({
    collector,
    state,
    monitoring: () => spec().monitoring,
    loadQueries: (monitoring) => loadQueries(controlPlane, monitoring),
    logger,
  });
  // After every change, even when the spec is unchanged: the Secrets and ConfigMaps it names may have changed.
  const unsubscribe = source.subscribe((update) => {
    if (update.cluster === undefined) logger.error({ error: errorMessage(update.error) }, 'monitoring and probe settings refused; keeping the previous ones');
    void certificate?.refresh();
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
    unsubscribe();
    cache.stop();
    void backupMode.close();
  });
  await cache.start();
  return servers;
}
