import type { Logger } from 'pino';
import { openControlPlane, type ControlPlane } from '../controlplane/index.js';
import { loadDesiredState, primaryConninfo, type DesiredState } from '../desired/state.js';
import { ConfigError, errorMessage, ExitCode } from '../errors/index.js';
import { createRootLogger } from '../log/logger.js';
import { podNameFor, type InstanceOptions } from '../options/index.js';
import { PostgresInstance } from '../postgres/instance.js';
import { asEffectiveUser, isRoot, lookupUser } from '../process/privileges.js';
import { CannotStartError } from '../postgres/start-checks.js';
import { warnIgnoredFields } from '../cluster/field-support.js';
import { checkCnpgExpectations } from './cnpg-expectations.js';
import { waitForPrimary } from '../replication/wait-primary.js';
import { certificatePaths } from '../tls/files.js';

/** The conninfo a replica clones its primary with (CNPG's `-join` application name, no sender timeout). */
export function joinConninfo(desired: DesiredState): string {
  if (!desired.tls) throw new Error('a replica needs the TLS Secrets to join');
  const base = primaryConninfo(desired.topology, desired.tls, desired.layout, `${desired.topology.self}-join`);
  return `${base} connect_timeout=5 options='-c wal_sender_timeout=0s'`;
}

/**
 * A replica's first start: waits until the primary answers as a primary (replicas and primary often start together:
 * Compose on podman before 4.6 ignores `condition: service_healthy`, and a pod's start order is not guaranteed), then
 * clones it. A clone that fails after that is an error.
 */
export async function cloneWhenPrimaryAnswers(instance: PostgresInstance, desired: DesiredState, logger: Logger, signal?: AbortSignal): Promise<void> {
  const conninfo = joinConninfo(desired);
  const primary = desired.topology.addresses.get(desired.topology.primary) ?? { host: desired.topology.primary, port: 5432 };
  logger.info({ pgdata: instance.pgdata, primary: desired.topology.primary }, 'PGDATA is empty: waiting for the primary to answer, then cloning it (pg_basebackup)');
  await waitForPrimary(primary, certificatePaths(desired.layout.certificatesDir), signal, (problem) => {
    logger.warn({ primary: desired.topology.primary, problem }, `the primary does not answer yet: ${problem}`);
  });
  await instance.basebackup(conninfo, signal);
}

/** Bind address for the HTTP servers: PostgreSQL's single listen address, or all interfaces. */
export function httpBindAddress(listenAddress: string): string | undefined {
  const first = listenAddress.split(',')[0]?.trim() ?? '';
  return first === '*' || first === '' || listenAddress.includes(',') ? undefined : first;
}

/** Reports a startup failure as one clear line; ConfigError messages are safe by construction. */
export function failStartup(logger: Logger, err: unknown): number {
  if (err instanceof ConfigError) {
    logger.error({ source: err.source, field: err.field }, `invalid configuration: ${err.message}`);
    return ExitCode.config;
  }
  if (err instanceof CannotStartError) {
    logger.error({ error: err.message, exitCode: err.exitCode }, 'pgim cannot start postgres');
    return err.exitCode;
  }
  logger.error({ error: errorMessage(err) }, 'pgim failed');
  return ExitCode.failure;
}

export interface Loaded {
  controlPlane: ControlPlane;
  desired: DesiredState;
  logger: Logger;
}

/**
 * Reads and validates everything before the disk is touched; on failure, logs why and returns the exit code.
 * `signal` stops a wait for the control plane (Kubernetes mode waits for the API server): that is a clean exit.
 * Started as root, the reads run with the postgres user's effective ids: nothing is ever read as root.
 */
export async function load(options: InstanceOptions, signal?: AbortSignal): Promise<Loaded | number> {
  const bootLogger = createRootLogger({ pod: options.podName ?? '' });
  try {
    const work = (): Promise<Loaded | number> => openAndRead(options, bootLogger, signal);
    return await (isRoot() ? asEffectiveUser(lookupUser(options.user), work) : work());
  } catch (err) {
    return failStartup(bootLogger, err);
  }
}

/** Opens the control plane and reads the desired state (an exit code when a stop came first). */
async function openAndRead(options: InstanceOptions, bootLogger: Logger, signal?: AbortSignal): Promise<Loaded | number> {
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
  checkCnpgExpectations(options.cnpg, desired.cluster, controlPlane.clusterSource);
  const logger = createRootLogger({ pod: podNameFor(options, desired.cluster.name) });
  warnIgnoredFields(desired.cluster.ignoredFields, logger);
  return { controlPlane, desired, logger };
}

export function openInstance(options: InstanceOptions, desired: DesiredState, logger: Logger): PostgresInstance {
  return new PostgresInstance({
    binDir: options.pgBinDir,
    pgdata: options.pgdata,
    socketDir: desired.layout.socketDir,
    port: options.pgPort,
    passfile: desired.layout.pgpassFile,
    runtimeDir: desired.layout.root,
    initdbFlags: options.initdbFlags ?? [],
    logger,
    listenAddresses: options.listenAddress,
  });
}

/**
 * After the privilege drop: reads the config again as the user pgim now runs as (proof it can read what it will
 * watch) and has PostgreSQL check the settings. Throws ConfigError.
 */
export async function confirmDesiredState(options: InstanceOptions, loaded: Loaded, instance: PostgresInstance, droppedRoot: boolean): Promise<DesiredState> {
  const desired = droppedRoot ? await loadDesiredState(options, loaded.controlPlane) : loaded.desired;
  refuseUnlessPostgresAccepts(loaded.controlPlane, await instance.checkSettings(desired.rendered, desired.layout.tmpDir));
  return desired;
}

/** PostgreSQL's own verdict on the parameters (`postgres -C`), as the invalid configuration it is. */
export function refuseUnlessPostgresAccepts(controlPlane: ControlPlane, refused: readonly string[]): void {
  if (refused.length > 0) {
    throw new ConfigError(controlPlane.clusterSource, 'spec.postgresql.parameters', `PostgreSQL refuses them: ${refused.join('; ')}`);
  }
}
