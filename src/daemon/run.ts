import type { Server } from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { openControlPlane, type ControlPlane } from '../controlplane/index.js';
import { ConfigError, errorMessage, ExitCode } from '../errors/index.js';
import { ensureDirectory, writeFileAtomic } from '../fs/atomic.js';
import { InstanceState } from '../instance/state.js';
import { createRootLogger } from '../log/logger.js';
import { createMetricsApp } from '../metrics/server.js';
import { podNameFor, type InstanceOptions } from '../options/index.js';
import { PostgresInstance } from '../postgres/instance.js';
import { Reconciler } from '../reconcile/reconciler.js';
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

interface Loaded {
  controlPlane: ControlPlane;
  desired: DesiredState;
  logger: Logger;
}

/** Reads and validates everything before the disk is touched; on failure, logs why and returns the exit code. */
async function load(options: InstanceOptions): Promise<Loaded | number> {
  const bootLogger = createRootLogger({ pod: options.podName ?? '' });
  try {
    const controlPlane = openControlPlane({ configDir: options.configDir });
    const desired = await loadDesiredState(options, controlPlane);
    return { controlPlane, desired, logger: createRootLogger({ pod: podNameFor(options, desired.cluster.name) }) };
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
    passfile: desired.layout.pgpassFile,
    logger,
  });
}

/**
 * After the privilege drop: reads the config again as the user pgim now runs as (proof it can read what it will
 * watch) and has PostgreSQL check the settings. Throws ConfigError.
 */
async function confirmDesiredState(options: InstanceOptions, loaded: Loaded, instance: PostgresInstance, droppedRoot: boolean): Promise<DesiredState> {
  const desired = droppedRoot ? await loadDesiredState(options, loaded.controlPlane) : loaded.desired;
  const refused = await instance.checkSettings(desired.rendered, desired.layout.tmpDir);
  if (refused.length > 0) {
    throw new ConfigError(loaded.controlPlane.clusterSource, 'spec.postgresql.parameters', `PostgreSQL refuses them: ${refused.join('; ')}`);
  }
  return desired;
}

/** `pgim init`: bootstrap an empty PGDATA and exit. A PGDATA that already holds a cluster is left as it is. */
export async function initCommand(options: InstanceOptions): Promise<number> {
  const loaded = await load(options);
  if (typeof loaded === 'number') return loaded;
  const { logger } = loaded;
  const abort = new AbortController();
  const onSignal = (): void => {
    abort.abort();
  };
  process.on('SIGTERM', onSignal).on('SIGINT', onSignal);
  try {
    const droppedRoot = await prepareFilesystem(options, loaded.desired.layout);
    const instance = openInstance(options, loaded.desired, logger);
    const desired = await confirmDesiredState(options, loaded, instance, droppedRoot);
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
  const { controlPlane, logger } = loaded;
  const { cluster } = loaded.desired;
  const state = new InstanceState(cluster.name, podNameFor(options, cluster.name));
  const servers: Server[] = [];
  let stopWatching = (): void => undefined;
  try {
    const droppedRoot = await prepareFilesystem(options, loaded.desired.layout);
    const instance = openInstance(options, loaded.desired, logger);
    const desired = await confirmDesiredState(options, loaded, instance, droppedRoot);
    const reconciler: Reconciler = new Reconciler(
      {
        instance,
        state,
        logger,
        load: () => loadDesiredState(options, controlPlane),
        restartInPlace: (reason) => supervisor?.requestRestart(reason) ?? Promise.resolve(),
        reportPhase: (phase, phaseReason) => controlPlane.reportStatus({ phase, phaseReason }),
      },
      desired,
    );
    const running = new Supervisor({
      instance,
      state,
      logger,
      onPostgresExit: options.onPostgresExit,
      shutdownPlan: () => ({
        smartSeconds: reconciler.desired.cluster.smartShutdownTimeoutSeconds,
        fastSeconds: reconciler.desired.cluster.stopDelaySeconds,
      }),
      onAccepting: (isPrimary) => reconciler.onPostgresAccepting(isPrimary),
    });
    supervisor = running;
    if (early.signal !== undefined) running.requestStop(early.signal);
    logger.info(
      { controlPlane: controlPlane.description, pgdata: options.pgdata, runtimeDir: desired.layout.root, osUser: desired.osUser },
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
      await instance.bootstrap(cluster, desired.credentials, desired.rendered, running.stopSignal);
      reconciler.markCredentialsApplied();
    }
    await instance.writeConfiguration(desired.rendered);
    await reconciler.writePassfile();
    state.renderedConfigHash = desired.rendered.configHash;
    stopWatching = controlPlane.watch(() => {
      void reconciler.trigger('desired state changed');
    });
    const code = await running.run();
    logger.info({ exitCode: code }, 'pgim exiting');
    return code;
  } catch (err) {
    state.phase = 'failed';
    return failStartup(logger, err);
  } finally {
    stopWatching();
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
    for (const warning of desired.rendered.warnings) logger.warn(warning);
    logger.info({ outDir, files: files.map(([name]) => name), configHash: desired.rendered.configHash }, 'rendered');
    return ExitCode.ok;
  } catch (err) {
    return failStartup(logger, err);
  }
}
