import type { Server } from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { openControlPlane, type ControlPlane } from '../controlplane/index.js';
import { ConfigError, errorMessage, ExitCode } from '../errors/index.js';
import { ensureDirectory, writeFileAtomic } from '../fs/atomic.js';
import { InstanceState } from '../instance/state.js';
import { createRootLogger } from '../log/logger.js';
import { LogPipe } from '../log/pipe.js';
import { trimMemoryPeriodically } from '../process/memory.js';
import { Reaper } from '../process/reaper.js';
import { podNameFor, type InstanceOptions } from '../options/index.js';
import { PostgresInstance } from '../postgres/instance.js';
import { isFenced, phases, Reconciler } from '../reconcile/reconciler.js';
import { RestartCoordinator } from '../rollout/coordinator.js';
import { writeRuntimeFiles } from '../reconcile/runtime-files.js';
import { DivergenceWatch } from '../replication/divergence.js';
import { primaryTimeline } from '../replication/wait-primary.js';
import { Supervisor } from '../supervisor/supervisor.js';
import { certificatePaths } from '../tls/files.js';
import { executableHash, nodeName, packageVersion } from './manager-info.js';
import { loadDesiredState, prepareFilesystem, primaryConninfo, type DesiredState } from './prepare.js';

/** The conninfo a replica clones its primary with (CNPG's `-join` application name, no sender timeout). */
function joinConninfo(desired: DesiredState): string {
  if (!desired.tls) throw new Error('a replica needs the TLS Secrets to join');
  const base = primaryConninfo(desired.topology, desired.tls, desired.layout, `${desired.topology.self}-join`);
  return `${base} connect_timeout=5 options='-c wal_sender_timeout=0s'`;
}

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

/**
 * Reads and validates everything before the disk is touched; on failure, logs why and returns the exit code.
 * `signal` stops a wait for the control plane (Kubernetes mode waits for the API server): that is a clean exit.
 */
async function load(options: InstanceOptions, signal?: AbortSignal): Promise<Loaded | number> {
  const bootLogger = createRootLogger({ pod: options.podName ?? '' });
  try {
    const controlPlane = await openControlPlane({
      configDir: options.configDir,
      kubernetes: options.kubernetes,
      podName: options.podName,
      logger: bootLogger,
      signal,
    });
    if (signal?.aborted === true) {
      bootLogger.info('stop requested before the control plane answered; nothing was started');
      return ExitCode.ok;
    }
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
    runtimeDir: desired.layout.root,
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

/** Rewinds this replica in process (stop, pg_rewind, start) when its history forked from the primary's. */
function watchForDivergence(reconciler: Reconciler, supervisor: Supervisor, instance: PostgresInstance, state: InstanceState, logger: Logger): DivergenceWatch {
  const watch = new DivergenceWatch(
    {
      replica: () => (reconciler.desired.topology.isPrimary || !state.accepting || state.phase !== 'running' ? Promise.resolve(undefined) : instance.replicaState()),
      primaryTimeline: () => {
        const { topology, layout } = reconciler.desired;
        const address = topology.addresses.get(topology.primary);
        return address === undefined ? Promise.resolve(undefined) : primaryTimeline(address, certificatePaths(layout.certificatesDir));
      },
    },
    (timelines) => {
      logger.warn(
        { timeline: timelines.replica, primaryTimeline: timelines.primary },
        "this replica has not streamed while its primary runs on a later timeline: its history forked from the primary's; rewinding onto it",
      );
      const plan = { smartSeconds: 0, fastSeconds: reconciler.desired.cluster.switchoverDelaySeconds };
      void supervisor.requestRestart('replica history forked from the primary', {
        plan,
        beforeStart: () => reconciler.rejoinAsReplica(reconciler.desired, supervisor.stopSignal),
      });
    },
  );
  watch.start();
  return watch;
}

/** For one-shot commands: SIGTERM or SIGINT aborts the running tool (initdb, pg_basebackup), which cleans up. */
function abortOnTermination(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = (): void => {
    controller.abort();
  };
  process.on('SIGTERM', onSignal).on('SIGINT', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGTERM', onSignal).off('SIGINT', onSignal);
    },
  };
}

interface OneShot {
  desired: DesiredState;
  instance: PostgresInstance;
  logger: Logger;
  signal: AbortSignal;
}

/**
 * The frame of the one-shot commands (init, join): load and validate, prepare the filesystem (dropping root),
 * confirm the desired state, run `body`; SIGTERM/SIGINT abort the tool it runs; failures become exit codes.
 */
async function oneShot(options: InstanceOptions, body: (context: OneShot) => Promise<number>): Promise<number> {
  const loaded = await load(options);
  if (typeof loaded === 'number') return loaded;
  const { logger } = loaded;
  const abort = abortOnTermination();
  try {
    const droppedRoot = await prepareFilesystem(options, loaded.desired.layout);
    const instance = openInstance(options, loaded.desired, logger);
    const desired = await confirmDesiredState(options, loaded, instance, droppedRoot);
    return await body({ desired, instance, logger, signal: abort.signal });
  } catch (err) {
    return failStartup(logger, err);
  } finally {
    abort.dispose();
  }
}

/** `pgim init`: bootstrap an empty PGDATA and exit. A PGDATA that already holds a cluster is left as it is. */
export function initCommand(options: InstanceOptions): Promise<number> {
  return oneShot(options, async ({ desired, instance, logger, signal }) => {
    if ((await instance.inspectDataDirectory()) === 'initialized') {
      logger.info({ pgdata: options.pgdata }, 'PGDATA already holds a cluster; nothing to initialise');
      return ExitCode.ok;
    }
    logger.info({ pgdata: options.pgdata }, 'bootstrapping a new cluster');
    // Certificates first, as in `run`: with TLS Secrets the bootstrap's own start already has ssl on.
    await writeRuntimeFiles(desired, logger);
    const logPipe = new LogPipe(desired.layout.logDir, logger);
    await logPipe.start();
    try {
      await instance.bootstrap(desired.cluster, desired.credentials, desired.rendered, signal);
    } finally {
      logPipe.stop();
    }
    logger.info('bootstrap complete');
    return ExitCode.ok;
  });
}

/** `pgim run`: the long-lived supervisor, normally PID 1 of the container. */
export async function runCommand(options: InstanceOptions): Promise<number> {
  // Handlers first: Node as PID 1 would otherwise ignore SIGTERM until they exist.
  let supervisor: Supervisor | undefined;
  const early: { signal?: NodeJS.Signals } = {};
  // A stop while the control plane is still being opened (waiting for the API server) ends that wait.
  const opening = new AbortController();
  const onStop = (signal: NodeJS.Signals): void => {
    early.signal = signal;
    opening.abort();
    supervisor?.requestStop(signal);
  };
  const onReload = (): void => {
    supervisor?.reload();
  };
  process.on('SIGTERM', onStop).on('SIGINT', onStop).on('SIGHUP', onReload);

  const loaded = await load(options, opening.signal);
  if (typeof loaded === 'number') return loaded;
  const { controlPlane, logger } = loaded;
  const { cluster } = loaded.desired;
  const state = new InstanceState(cluster.name, podNameFor(options, cluster.name));
  const servers: Server[] = [];
  let stopWatching = (): void => undefined;
  let stopLogPipe = (): void => undefined;
  let stopReaper = (): void => undefined;
  let stopDivergenceWatch = (): void => undefined;
  let stopRestartChecks = (): void => undefined;
  const stopTrimming = trimMemoryPeriodically();
  try {
    const droppedRoot = await prepareFilesystem(options, loaded.desired.layout);
    const instance = openInstance(options, loaded.desired, logger);
    const desired = await confirmDesiredState(options, loaded, instance, droppedRoot);
    const reportPhase = (phase: string, phaseReason: string): Promise<void> => controlPlane.reportStatus({ phase, phaseReason });
    const restarts = new RestartCoordinator({
      instance,
      state,
      logger,
      desired: () => reconciler.desired,
      restartInPlace: (reason) => supervisor?.requestRestart(reason) ?? Promise.resolve(),
      reportPhase,
      phases,
    });
    stopRestartChecks = () => {
      restarts.stop();
    };
    const reconciler: Reconciler = new Reconciler(
      {
        instance,
        state,
        logger,
        load: () => loadDesiredState(options, controlPlane),
        checkRestart: (next) => restarts.check(next),
        demote: (plan, beforeStart) => supervisor?.requestRestart('demotion', { plan, beforeStart }) ?? Promise.resolve(),
        setFenced: (fenced, plan) => {
          supervisor?.setFenced(fenced, plan);
        },
        reportPrimary: (name) => controlPlane.reportStatus({ currentPrimary: name, currentPrimaryTimestamp: new Date().toISOString() }),
        reportPhase,
        acquirePrimaryLease: (holder) => controlPlane.acquirePrimaryLease(holder),
        releasePrimaryLease: (holder) => controlPlane.releasePrimaryLease(holder),
      },
      desired,
    );
    const reaper = new Reaper(logger);
    reaper.start();
    stopReaper = () => {
      reaper.stop();
    };
    const logPipe = new LogPipe(desired.layout.logDir, logger);
    await logPipe.start();
    stopLogPipe = () => {
      logPipe.stop();
    };
    const running = new Supervisor({
      reaper,
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
    const divergence = watchForDivergence(reconciler, running, instance, state, logger);
    stopDivergenceWatch = () => {
      divergence.stop();
    };
    running.setFenced(isFenced(desired), { smartSeconds: 0, fastSeconds: cluster.switchoverDelaySeconds });
    if (early.signal !== undefined) running.requestStop(early.signal);
    logger.info(
      { controlPlane: controlPlane.description, pgdata: options.pgdata, runtimeDir: desired.layout.root, osUser: desired.osUser },
      'pgim starting',
    );

    // Loaded on demand: the HTTP, metrics and probe modules are most of pgim's start-up time, and on a normal start
    // they load while PostgreSQL starts instead of before it.
    const startServers = async (): Promise<void> => {
      const { startStatusAndMetrics } = await import('../status/start.js');
      const info = { version: await packageVersion(), executableHash: await executableHash(), arch: process.arch, node: nodeName() };
      const bind = httpBindAddress(options.listenAddress);
      servers.push(...(await startStatusAndMetrics({ options, bind, controlPlane, state, instance, info, cluster, logger })));
    };

    // Certificates first: a bootstrap starts postgres with ssl on, and a replica joins with its client certificate.
    await reconciler.writeRuntimeFiles();
    const dataDirectory = await instance.inspectDataDirectory();
    const formerPrimary = dataDirectory !== 'empty' && !desired.topology.isPrimary && !(await instance.isStandby());
    // A bootstrap, a clone or a rewind takes long: the probes must answer all along.
    if (dataDirectory === 'empty' || formerPrimary) await startServers();
    if (dataDirectory === 'empty') {
      state.phase = 'bootstrapping';
      if (desired.topology.isPrimary) {
        logger.info({ pgdata: options.pgdata }, 'PGDATA is empty: bootstrapping a new cluster');
        await instance.bootstrap(cluster, desired.credentials, desired.rendered, running.stopSignal);
        reconciler.markCredentialsApplied();
        await controlPlane.reportStatus({ currentPrimary: state.podName, currentPrimaryTimestamp: new Date().toISOString() });
      } else {
        logger.info({ pgdata: options.pgdata, primary: desired.topology.primary }, 'PGDATA is empty: cloning the primary (pg_basebackup)');
        await instance.basebackup(joinConninfo(desired), running.stopSignal);
      }
    } else if (formerPrimary) {
      // A former primary (after a failover it missed): rewind onto the new primary before starting as its replica.
      state.phase = 'demoting';
      logger.info({ primary: desired.topology.primary }, 'PGDATA was a primary; another instance is the target: rewinding');
      await reconciler.rejoinAsReplica(desired, running.stopSignal);
    }
    await instance.writeConfiguration(desired.rendered);
    state.renderedConfigHash = desired.rendered.configHash;
    stopWatching = controlPlane.watch(() => {
      void reconciler.trigger('desired state changed');
    });
    const supervised = running.run();
    restarts.start();
    if (servers.length === 0 && (await running.firstSpawn)) {
      await startServers().catch(async (err: unknown) => {
        running.requestStop('status or metrics server failed to start');
        await supervised;
        throw err;
      });
    }
    const code = await supervised;
    reconciler.close();
    // The postmaster is gone: a primary's Lease can go now, so the next primary need not wait for it to run out.
    await controlPlane.releasePrimaryLease(state.podName);
    logger.info({ exitCode: code }, 'pgim exiting');
    return code;
  } catch (err) {
    state.phase = 'failed';
    return failStartup(logger, err);
  } finally {
    stopWatching();
    stopDivergenceWatch();
    stopRestartChecks();
    stopLogPipe();
    stopReaper();
    stopTrimming();
    for (const server of servers) server.closeAllConnections();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    process.off('SIGTERM', onStop).off('SIGINT', onStop).off('SIGHUP', onReload);
  }
}

/** `pgim join`: clone the primary into an empty PGDATA as a replica (pg_basebackup over TLS), then exit. */
export function joinCommand(options: InstanceOptions): Promise<number> {
  return oneShot(options, async ({ desired, instance, logger, signal }) => {
    if (desired.topology.isPrimary) throw new Error(`${desired.topology.self} is the target primary; it does not join (use pgim init or pgim run)`);
    if ((await instance.inspectDataDirectory()) === 'initialized') {
      logger.info({ pgdata: options.pgdata }, 'PGDATA already holds a cluster; nothing to join');
      return ExitCode.ok;
    }
    await writeRuntimeFiles(desired, logger);
    await instance.basebackup(joinConninfo(desired), signal);
    await instance.writeConfiguration(desired.rendered);
    logger.info({ primary: desired.topology.primary }, 'joined: PGDATA holds a replica of the primary');
    return ExitCode.ok;
  });
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
