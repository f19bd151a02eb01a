import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, ExitCode } from '../errors/index.js';
import { ensureDirectory, writeFileAtomic } from '../fs/atomic.js';
import { LogPipe } from '../log/pipe.js';
import type { InstanceOptions } from '../options/index.js';
import { checkRenderedSettings } from '../postgres/config-check.js';
import type { PostgresInstance } from '../postgres/instance.js';
import { isRoot, lookupUser } from '../process/privileges.js';
import type { Logger } from 'pino';
import type { DesiredState } from '../desired/state.js';
import { writeRuntimeFiles } from '../reconcile/runtime-files.js';
import { reportSecurityWarnings } from '../reconcile/security-warnings.js';
import { Daemon } from './daemon.js';
import { bootstrapOrRestore } from './bootstrap.js';
import { prepareFilesystem } from './prepare.js';
import { cloneExternalCluster, cloneSource } from './clone.js';
import { cloneWhenPrimaryAnswers, confirmDesiredState, failStartup, load, openInstance, refuseUnlessPostgresAccepts, type Loaded } from './startup.js';
import { readPostInitScripts } from '../desired/post-init-sql.js';
import { noPostInitScripts } from '../postgres/post-init.js';

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
  controlPlane: Loaded['controlPlane'];
}

/**
 * The frame of the one-shot commands (init, join): load and validate, prepare the filesystem (dropping root),
 * confirm the desired state, run `body`; SIGTERM/SIGINT abort the tool it runs; failures become exit codes.
 */
async function oneShot(options: InstanceOptions, body: (context: OneShot) => Promise<number>, refuse?: (desired: DesiredState) => void): Promise<number> {
  const loaded = await load(options);
  if (typeof loaded === 'number') return loaded;
  const { logger } = loaded;
  const abort = abortOnTermination();
  try {
    // Before anything is written.
    refuse?.(loaded.desired);
    const droppedRoot = await prepareFilesystem(options, loaded.desired.layout, loaded.desired.cluster.tablespaces);
    const instance = openInstance(options, loaded.desired, logger);
    const desired = await confirmDesiredState(options, loaded, instance, droppedRoot);
    return await body({ desired, instance, logger, signal: abort.signal, controlPlane: loaded.controlPlane });
  } catch (err) {
    return failStartup(logger, err);
  } finally {
    abort.dispose();
  }
}

/**
 * `pgim init`: bootstrap an empty PGDATA and exit (initdb, or a clone of an external cluster for
 * `bootstrap.pg_basebackup` and a replica cluster, CNPG's `instance pgbasebackup`). A PGDATA that already holds a
 * cluster is left as it is.
 */
export function initCommand(options: InstanceOptions): Promise<number> {
  return oneShot(options, async ({ desired, instance, logger, signal, controlPlane }) => {
    if ((await instance.inspectDataDirectory()) === 'initialized') {
      logger.info({ pgdata: options.pgdata }, 'PGDATA already holds a cluster; nothing to initialise');
      return ExitCode.ok;
    }
    const clone = cloneSource(desired) !== undefined;
    const { external } = desired.cluster;
    const restoresReplica = external.replica?.archiveOnly === true && desired.topology.isPrimary;
    if (!clone && !restoresReplica && (external.clone ?? external.replica) !== undefined) {
      // Never an initdb for a manifest that asks for a clone: another instance is the one that clones.
      throw new Error(`${desired.topology.self} is not the target primary: it does not clone the external cluster (use pgim join)`);
    }
    if (!clone) logger.info({ pgdata: options.pgdata }, 'bootstrapping a new cluster');
    // Certificates first, as in `run`: with TLS Secrets the bootstrap's own start already has ssl on.
    await writeRuntimeFiles(desired, logger);
    const scripts = await readPostInitScripts(desired.cluster, controlPlane, options.postInitRefsFolders);
    const logPipe = new LogPipe(desired.layout.logDir, logger);
    await logPipe.start();
    try {
      if (clone) {
        await cloneExternalCluster(instance, desired, logger, signal);
        await instance.writeConfiguration(desired.rendered);
      } else await bootstrapOrRestore(desired, instance, logger, scripts, signal);
    } finally {
      logPipe.stop();
    }
    logger.info(clone ? 'clone complete' : 'bootstrap complete');
    return ExitCode.ok;
  });
}

/**
 * `pgim restore` (CNPG's `instance restore`): restore spec.bootstrap.recovery into an empty PGDATA, then exit.
 * A manifest without spec.bootstrap.recovery is refused: this command never initdb's.
 */
export function restoreCommand(options: InstanceOptions): Promise<number> {
  const refuse = (desired: DesiredState): void => {
    if (desired.cluster.bootstrap.recovery === undefined) {
      throw new ConfigError(desired.controlPlane.clusterSource, 'spec.bootstrap.recovery', 'is required by pgim restore (it restores a backup; pgim init creates an empty cluster)');
    }
  };
  return oneShot(options, async ({ desired, instance, logger, signal }) => {
    if ((await instance.inspectDataDirectory()) === 'initialized') {
      logger.info({ pgdata: options.pgdata }, 'PGDATA already holds a cluster; nothing to restore');
      return ExitCode.ok;
    }
    await writeRuntimeFiles(desired, logger);
    const logPipe = new LogPipe(desired.layout.logDir, logger);
    await logPipe.start();
    try {
      await bootstrapOrRestore(desired, instance, logger, noPostInitScripts, signal);
    } finally {
      logPipe.stop();
    }
    return ExitCode.ok;
  }, refuse);
}

/** `pgim run`: the long-lived supervisor, normally PID 1 of the container. */
export function runCommand(options: InstanceOptions): Promise<number> {
  return new Daemon(options).run();
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
    await cloneWhenPrimaryAnswers(instance, desired, logger, signal);
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
    // The checks `run` makes before it writes, PostgreSQL's own included: a render that exits 0 would start.
    if (options.pgBinDir === '') {
      logger.warn("PostgreSQL's binaries were not found (PGIM_PG_BIN): its own check of the parameters was skipped");
    } else {
      const user = isRoot() ? lookupUser(options.user) : undefined;
      const runAs = user === undefined ? undefined : { uid: user.uid, gid: user.gid };
      refuseUnlessPostgresAccepts(loaded.controlPlane, await checkRenderedSettings(options.pgBinDir, tmpdir(), desired.rendered, logger, runAs));
    }
    await ensureDirectory(outDir, 0o700);
    const files: [string, string][] = [
      ['custom.conf', desired.rendered.customConf],
      ['override.conf', desired.rendered.overrideConf],
      ['pg_hba.conf', desired.rendered.pgHba],
      ['pg_ident.conf', desired.rendered.pgIdent],
    ];
    for (const [name, text] of files) await writeFileAtomic(join(outDir, name), text, 0o600);
    reportSecurityWarnings(desired.rendered.securityWarnings, logger);
    logger.info({ outDir, files: files.map(([name]) => name), configHash: desired.rendered.configHash }, 'rendered');
    return ExitCode.ok;
  } catch (err) {
    return failStartup(logger, err);
  }
}
