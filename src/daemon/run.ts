import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { join } from 'node:path';
import { ConfigError, errorMessage, ExitCode } from '../errors/index.js';
import { ensureDirectory, writeFileAtomic } from '../fs/atomic.js';
import { InstanceState } from '../instance/state.js';
import { createRootLogger } from '../log/logger.js';
import { createMetricsApp } from '../metrics/server.js';
import { podNameFor, type InstanceOptions } from '../options/index.js';
import { PostgresInstance } from '../postgres/instance.js';
import { createStatusApp, listen } from '../status/server.js';
import { Supervisor } from '../supervisor/supervisor.js';
import { executableHash, nodeName, packageVersion } from './manager-info.js';
import { loadDesiredState, prepareFilesystem, type DesiredState } from './prepare.js';

/** Bind address for the HTTP servers: PostgreSQL's single listen address, or all interfaces. */
function httpBindAddress(listenAddress: string): string | undefined {
  const first = listenAddress.split(',')[0]?.trim() ?? '';
  return first === '*' || first === '' || listenAddress.includes(',') ? undefined : first;
}

/** Reports a startup failure as one clear line; ConfigError messages are safe by construction. */
function failStartup(logger: Logger, err: unknown): number {
  if (err instanceof ConfigError) {
    logger.error({ source: err.source, field: err.field }, `invalid configuration: ${err.message}`);
    return ExitCode.config;
  }
  logger.error({ error: errorMessage(err) }, 'pgim failed');
  return ExitCode.failure;
}

async function load(options: InstanceOptions): Promise<{ desired: DesiredState; logger: Logger } | number> {
  const bootLogger = createRootLogger({ pod: options.podName ?? '' });
  try {
    const desired = await loadDesiredState(options);
    const logger = createRootLogger({ pod: podNameFor(options, desired.cluster.name) });
    return { desired, logger };
  } catch (err) {
    return failStartup(bootLogger, err);
  }
}

function openInstance(options: InstanceOptions, desired: DesiredState, logger: Logger): PostgresInstance {
  return new PostgresInstance({
    binDir: options.pgBinDir,
    pgdata: options.pgdata,
    socketDir: desired.layout.socketDir,
    port: options.pgPort,
    logger,
  });
}

/** `pgim init`: bootstrap an empty PGDATA and exit. A PGDATA that already holds a cluster is left as it is. */
export async function initCommand(options: InstanceOptions): Promise<number> {
  const loaded = await load(options);
  if (typeof loaded === 'number') return loaded;
  const { desired, logger } = loaded;
  const abort = new AbortController();
  const onSignal = (): void => {
    abort.abort();
  };
  process.on('SIGTERM', onSignal).on('SIGINT', onSignal);
  try {
    await prepareFilesystem(options, desired.layout);
    const instance = openInstance(options, desired, logger);
    if ((await instance.inspectDataDirectory()) === 'initialized') {
      logger.info({ pgdata: options.pgdata }, 'PGDATA already holds a cluster; nothing to initialise');
      return ExitCode.ok;
    }
    logger.info({ pgdata: options.pgdata }, 'bootstrapping a new cluster');
    await instance.bootstrap(desired.cluster, desired.credentials, desired.rendered, abort.signal);
    logger.info('bootstrap complete');
    return ExitCode.ok;
  } catch (err) {
    return failStartup(logger, err);
  } finally {
    process.off('SIGTERM', onSignal).off('SIGINT', onSignal);
  }
}

/** `pgim run`: the long-lived supervisor, normally PID 1 of the container. */
export async function runCommand(options: InstanceOptions): Promise<number> {
  // Handlers first: Node as PID 1 would otherwise ignore SIGTERM until they exist.
  let supervisor: Supervisor | undefined;
  const early: { signal?: NodeJS.Signals } = {};
  const onStop = (signal: NodeJS.Signals): void => {
    early.signal = signal;
    supervisor?.requestStop(signal);
  };
  const onReload = (): void => {
    supervisor?.reload();
  };
  process.on('SIGTERM', onStop).on('SIGINT', onStop).on('SIGHUP', onReload);

  const loaded = await load(options);
  if (typeof loaded === 'number') return loaded;
  const { desired, logger } = loaded;
  const { cluster } = desired;
  const state = new InstanceState(cluster.name, podNameFor(options, cluster.name));
  const servers: Server[] = [];
  try {
    await prepareFilesystem(options, desired.layout);
    const instance = openInstance(options, desired, logger);
    supervisor = new Supervisor({
      instance,
      state,
      logger,
      onPostgresExit: options.onPostgresExit,
      shutdownPlan: () => ({ smartSeconds: cluster.smartShutdownTimeoutSeconds, fastSeconds: cluster.stopDelaySeconds }),
      credentials: () => desired.credentials,
    });
    if (early.signal !== undefined) supervisor.requestStop(early.signal);
    logger.info(
      { controlPlane: desired.controlPlane.description, pgdata: options.pgdata, runtimeDir: desired.layout.root, osUser: desired.osUser },
      'pgim starting',
    );

    const info = { version: await packageVersion(), executableHash: await executableHash(), arch: process.arch, node: nodeName() };
    const bind = httpBindAddress(options.listenAddress);
    const statusApp = createStatusApp(
      { state, info, isReady: () => instance.isReady(), queryPostgres: () => instance.status(cluster.name) },
      logger,
    );
    servers.push(await listen(statusApp, options.statusPort, bind, logger, 'status server'));
    servers.push(await listen(createMetricsApp(state), options.metricsPort, bind, logger, 'metrics server'));

    if ((await instance.inspectDataDirectory()) === 'empty') {
      state.phase = 'bootstrapping';
      logger.info({ pgdata: options.pgdata }, 'PGDATA is empty: bootstrapping a new cluster');
      await instance.bootstrap(cluster, desired.credentials, desired.rendered, supervisor.stopSignal);
    }
    await instance.writeConfiguration(desired.rendered);
    state.renderedConfigHash = desired.rendered.configHash;
    const code = await supervisor.run();
    logger.info({ exitCode: code }, 'pgim exiting');
    return code;
  } catch (err) {
    state.phase = 'failed';
    return failStartup(logger, err);
  } finally {
    for (const server of servers) server.closeAllConnections();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    process.off('SIGTERM', onStop).off('SIGINT', onStop).off('SIGHUP', onReload);
  }
}

/** `pgim render`: write every file pgim would write into `outDir`; start nothing. */
export async function renderCommand(options: InstanceOptions, outDir: string): Promise<number> {
  const loaded = await load(options);
  if (typeof loaded === 'number') return loaded;
  const { desired, logger } = loaded;
  try {
    await ensureDirectory(outDir, 0o700);
    const files: [string, string][] = [
      ['custom.conf', desired.rendered.customConf],
      ['override.conf', desired.rendered.overrideConf],
      ['pg_hba.conf', desired.rendered.pgHba],
      ['pg_ident.conf', desired.rendered.pgIdent],
    ];
    for (const [name, text] of files) await writeFileAtomic(join(outDir, name), text, 0o600);
    logger.info({ outDir, files: files.map(([name]) => name), configHash: desired.rendered.configHash }, 'rendered');
    return ExitCode.ok;
  } catch (err) {
    return failStartup(logger, err);
  }
}
