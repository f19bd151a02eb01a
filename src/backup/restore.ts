import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { BarmanObjectStore, SecretKeyRef } from '../cluster/backup.js';
import { parseLsn, type RecoveryConfiguration, type RecoveryTarget } from '../cluster/recovery.js';
import type { ControlPlane } from '../controlplane/index.js';
import type { Cluster } from '../cluster/schema.js';
import type { Credentials } from '../credentials/index.js';
import type { RenderedConfiguration } from '../render/index.js';
import { ConfigError } from '../errors/index.js';
import { ensureDirectory, writeFileAtomic } from '../fs/atomic.js';
import type { PostgresInstance } from '../postgres/instance.js';
import { checkEmptyWalArchiveFlag } from '../postgres/datadir.js';
import { isDone, sortCatalog, cloudArgs, type CatalogEntry } from './barman.js';
import { catalogEntry, type BackupInfo } from './backup-info.js';
import { BackupStoreError, openBackupStore } from './s3-backup-restore.js';
import { resolveStoreCredentials } from './credentials.js';
import { storeEnvironment, type BackupState } from './runtime.js';
import { runTool, toolError } from './tools.js';
import { restorePaths, type RestoreSettings } from './wal-restore-settings.js';
import { restoreCommand } from './restore-runtime.js';
import { acquireWalRestoreServer, pinoLog } from './wal-restore-server.js';

/**
 * `spec.bootstrap.recovery` (CNPG's `instance restore`, pkg/management/postgres/restore.go): pick the backup in the
 * source's catalog, barman-cloud-restore it into PGDATA, replay the archived WAL with `pgim wal-restore` as
 * restore_command up to the recovery target, promote onto a new timeline, then give the cluster its own roles and
 * passwords. Any failure leaves PGDATA empty or moved aside and is reported naming the field; pgim never initdb's
 * instead.
 */

/** The barman-cloud-backup-list entry to restore (CNPG's FindBackupInfo); undefined when none fits. */
export function chooseBackup(catalog: readonly CatalogEntry[], target: RecoveryTarget): CatalogEntry | undefined {
  if (target.backupID !== undefined) return catalog.find((entry) => entry.backupId === target.backupID);
  const tli = target.targetTLI;
  const onTimeline = (entry: CatalogEntry): boolean => tli === undefined || tli === 'latest' || tli === 'current' || String(entry.timeline) === tli;
  const candidates = catalog.filter((entry) => isDone(entry) && onTimeline(entry)).reverse();
  if (target.targetTimeParsed !== undefined) {
    const time = target.targetTimeParsed.getTime();
    return candidates.find((entry) => entry.endTime !== undefined && entry.endTime.getTime() <= time);
  }
  if (target.targetLSN !== undefined) {
    const lsn = parseLsn(target.targetLSN) ?? 0n;
    return candidates.find((entry) => entry.endLSN !== undefined && (parseLsn(entry.endLSN) ?? lsn) < lsn);
  }
  return candidates[0];
}

/** CNPG's ConvertToPostgresFormat: `2026-12-05 04:00:00.123+00` (PostgreSQL refuses RFC 3339's `T...Z` here). */
function postgresTime(time: Date | undefined): string | undefined {
  return time === undefined ? undefined : `${time.toISOString().replace('T', ' ').replace('Z', '')}+00`;
}

/** PostgreSQL's recovery settings for `target` (CNPG's BuildPostgresOptions and getRestoreWalConfig). */
export function recoverySettings(target: RecoveryTarget, command: string): Record<string, string> {
  const settings: Record<string, string> = {
    restore_command: command,
    recovery_target_action: 'promote',
    recovery_target_timeline: target.targetTLI === undefined ? 'latest' : target.targetTLI,
    recovery_target_inclusive: target.exclusive ? 'false' : 'true',
    // The restored cluster archives nothing until it runs with its own settings (CNPG: archive_command = 'false');
    // what its new timeline writes meanwhile waits in pg_wal as .ready.
    archive_command: 'false',
    primary_conninfo: '',
  };
  if (target.targetXID !== undefined) settings.recovery_target_xid = target.targetXID;
  if (target.targetName !== undefined) settings.recovery_target_name = target.targetName;
  if (target.targetLSN !== undefined) settings.recovery_target_lsn = target.targetLSN;
  if (target.targetTime !== undefined) settings.recovery_target_time = postgresTime(target.targetTimeParsed) ?? target.targetTime;
  if (target.targetImmediate) settings.recovery_target = 'immediate';
  return settings;
}

/** A recovery that failed, with the field to fix. */
export class RecoveryError extends ConfigError {}

interface ResolvedOrigin {
  readonly store: BarmanObjectStore;
  /** The manifest field that names the store (for messages). */
  readonly field: string;
  readonly env: Record<string, string>;
  readonly endpointCA: string | undefined;
  /** Known from a Backup object's status; otherwise picked from the catalog. */
  readonly backupId: string | undefined;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const ref = (v: unknown): SecretKeyRef | undefined => {
  const r = v as { name?: unknown; key?: unknown } | undefined;
  return typeof r?.name === 'string' && typeof r.key === 'string' ? { name: r.name, key: r.key } : undefined;
};

/** `recovery.backup`: the store, server and backup id a Backup object's status records (CNPG's loadBackupFromReference). */
async function originFromBackupObject(controlPlane: ControlPlane, name: string): Promise<{ store: BarmanObjectStore; backupId: string }> {
  const field = 'spec.bootstrap.recovery.backup.name';
  const backup = (await controlPlane.listBackups()).find((b) => b.name === name);
  if (backup === undefined) throw new RecoveryError(controlPlane.clusterSource, field, `names Backup "${name}", which does not exist`);
  const status = backup.status;
  const destinationPath = str(status.destinationPath);
  const backupId = str(status.backupId);
  if (status.phase !== 'completed' || destinationPath === undefined || backupId === undefined) {
    throw new RecoveryError(controlPlane.clusterSource, field, `Backup "${name}" is not completed (phase ${str(status.phase) ?? 'none'}): nothing to restore`);
  }
  const s3 = (status.s3Credentials ?? {}) as Record<string, unknown>;
  return {
    backupId,
    store: {
      destinationPath,
      endpointURL: str(status.endpointURL),
      endpointCA: ref(status.endpointCA),
      serverName: str(status.serverName) ?? backup.spec.cluster?.name ?? name,
      s3Credentials: {
        accessKeyId: ref(s3.accessKeyId),
        secretAccessKey: ref(s3.secretAccessKey),
        region: ref(s3.region),
        sessionToken: ref(s3.sessionToken),
        inheritFromIAMRole: s3.inheritFromIAMRole === true,
      },
      wal: { compression: undefined, encryption: undefined, maxParallel: 1, archiveAdditionalCommandArgs: [], restoreAdditionalCommandArgs: [] },
      data: { compression: undefined, encryption: undefined, jobs: undefined, immediateCheckpoint: false, additionalCommandArgs: [] },
      tags: {},
      historyTags: {},
    },
  };
}

async function resolveOrigin(controlPlane: ControlPlane, recovery: RecoveryConfiguration): Promise<ResolvedOrigin> {
  const { origin } = recovery;
  const fromObject = origin.kind === 'backup' ? await originFromBackupObject(controlPlane, origin.name) : undefined;
  const store = fromObject?.store ?? (origin.kind === 'externalCluster' ? origin.store : undefined);
  if (store === undefined) throw new Error('unreachable: a recovery origin without a store');
  const field = origin.kind === 'externalCluster' ? origin.field : 'spec.bootstrap.recovery.backup';
  const credentials = await resolveStoreCredentials(controlPlane, store, field);
  return { store, field, env: { ...credentials.env }, endpointCA: credentials.endpointCA, backupId: recovery.target.backupID ?? fromObject?.backupId };
}

/** Bytes under `dir`, for the progress of barman-cloud-restore (which reports none). */
async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  const walk = async (path: string): Promise<void> => {
    for (const entry of await readdir(path, { withFileTypes: true }).catch(() => [])) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) await walk(full);
      else total += await stat(full).then((s) => s.size, () => 0);
    }
  };
  await walk(dir);
  return total;
}

/** barman-cloud-restore of the whole backup, the bytes under `pgdata` reported every second (Barman reports none). */
async function restoreWithBarman(store: BarmanObjectStore, env: Record<string, string>, backupId: string, pgdata: string, report: (bytes: number) => void, signal: AbortSignal | undefined): Promise<void> {
  const timer = setInterval(() => {
    void directoryBytes(pgdata).then(report);
  }, 1000);
  try {
    const restore = await runTool('barman-cloud-restore', [...cloudArgs(store), store.destinationPath, store.serverName, backupId, pgdata], env, { signal });
    if (restore.code !== 0) throw new Error(`barman-cloud-restore failed: ${toolError('barman-cloud-restore', restore)}`);
  } finally {
    clearInterval(timer);
  }
}

/** Progress in the log, and on a terminal as one line redrawn in place. */
class Progress {
  private lastLog = 0;
  private readonly tty = process.stderr.isTTY;
  constructor(private readonly logger: Logger) {}

  report(fields: Record<string, unknown>, text: string, force = false): void {
    if (this.tty) process.stderr.write(`\r\x1b[K${text}`);
    if (force || Date.now() - this.lastLog >= 5000) {
      this.lastLog = Date.now();
      this.logger.info(fields, 'restore progress');
    }
  }

  done(): void {
    if (this.tty) process.stderr.write('\n');
  }
}

const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MiB`;

function targetText(target: RecoveryTarget): string {
  if (target.targetTime !== undefined) return `time ${target.targetTime}`;
  if (target.targetLSN !== undefined) return `LSN ${target.targetLSN}`;
  if (target.targetXID !== undefined) return `xid ${target.targetXID}`;
  if (target.targetName !== undefined) return `restore point ${target.targetName}`;
  if (target.targetImmediate) return 'the end of the backup (immediate)';
  return 'the end of the archived WAL (latest)';
}

/**
 * The restore itself, PGDATA empty. Throws (RecoveryError naming the field for what the manifest can fix) after
 * leaving PGDATA empty or moved aside.
 */
/** What a restore needs of the desired state (src/desired sits above this layer). */
export interface RestoreInputs {
  readonly controlPlane: ControlPlane;
  readonly cluster: Cluster;
  readonly credentials: Credentials;
  readonly rendered: RenderedConfiguration;
  readonly layout: { readonly root: string };
  readonly backup: BackupState;
}

export async function restoreFromBackup(options: {
  desired: RestoreInputs;
  instance: PostgresInstance;
  logger: Logger;
  signal?: AbortSignal | undefined;
  /** The pgim that PostgreSQL runs as restore_command (tests and the bundle pass their own). */
  executable?: readonly string[];
}): Promise<void> {
  const { desired, instance, logger, signal } = options;
  const recovery = desired.cluster.bootstrap.recovery;
  if (recovery === undefined) throw new Error('restoreFromBackup needs spec.bootstrap.recovery');
  const source = desired.controlPlane.clusterSource;
  const origin = await resolveOrigin(desired.controlPlane, recovery);
  const runtimeDir = desired.layout.root;
  // The source's CA beside the own store's (CNPG's BarmanRestoreEndpointCACertificateLocation).
  const env: Record<string, string> = { ...origin.env };
  const caPath = join(runtimeDir, 'certificates', 'restore-barman-ca.crt');
  if (origin.endpointCA !== undefined) {
    await ensureDirectory(join(runtimeDir, 'certificates'), 0o700);
    await writeFileAtomic(caPath, origin.endpointCA, 0o600);
    env.AWS_CA_BUNDLE = caPath;
  }
  const where = `${origin.store.destinationPath} (server ${origin.store.serverName})`;

  // CNPG's checkBackupDestination (barman-cloud-check-wal-archive, read by pgim itself): the new cluster's own
  // archive must be empty before anything is restored.
  const own = desired.cluster.backup.barmanObjectStore;
  if (own !== undefined) {
    const unchecked = (err: unknown): never => {
      throw new RecoveryError(source, 'spec.backup.barmanObjectStore', `cannot check that ${own.destinationPath} (server ${own.serverName}) holds no WAL yet: ${(err as Error).message}`);
    };
    const ownStore = await openBackupStore(own, storeEnvironment(runtimeDir, desired.backup)).catch(unchecked);
    try {
      const empty = await ownStore.walArchiveEmpty(signal).catch(unchecked);
      if (!empty) {
        throw new RecoveryError(source, 'spec.backup.barmanObjectStore', `${own.destinationPath} (server ${own.serverName}) already holds WAL: a restored cluster must archive into an empty folder; set another serverName or destinationPath (WAL archive check failed for server ${own.serverName}: Expected empty archive)`);
      }
    } finally {
      ownStore.close();
    }
  }

  // barman-cloud-backup-list, read by pgim itself: every base/<id>/backup.info of the source's folder.
  const backups = await openBackupStore(origin.store, env).catch((err: unknown) => {
    throw new RecoveryError(source, origin.field, `cannot list the backups in ${where}: ${(err as Error).message}`);
  });
  let catalog: CatalogEntry[];
  const infos = new Map<string, BackupInfo>();
  try {
    const listed = await backups.listBackups(signal);
    for (const { backupId, error } of listed.unreadable) logger.warn({ backupId, error }, `Unable to open backup.info file for ${backupId}`);
    for (const info of listed.backups) infos.set(info.backupId, info);
    catalog = sortCatalog(listed.backups.map(catalogEntry));
  } catch (err) {
    backups.close();
    throw new RecoveryError(source, origin.field, `cannot list the backups in ${where}: ${(err as Error).message} (check the endpoint, the bucket and the credentials)`);
  }
  const chosen = origin.backupId === undefined ? chooseBackup(catalog, recovery.target) : catalog.find((entry) => entry.backupId === origin.backupId);
  if (chosen === undefined) {
    const field = origin.backupId !== undefined ? 'spec.bootstrap.recovery.recoveryTarget.backupID' : recovery.target.targetTime !== undefined || recovery.target.targetLSN !== undefined ? 'spec.bootstrap.recovery.recoveryTarget' : origin.field;
    const what = origin.backupId !== undefined ? `backup ${origin.backupId} is not in ${where}` : `no completed backup in ${where} ends before the recovery target (${targetText(recovery.target)}); ${catalog.length} backup(s) listed`;
    backups.close();
    throw new RecoveryError(source, field, what);
  }
  const info = infos.get(chosen.backupId);
  if (info === undefined) throw new Error('unreachable: a catalog entry without its backup.info');
  logger.info({ backupId: chosen.backupId, backupName: chosen.backupName, beginLSN: chosen.beginLSN, endLSN: chosen.endLSN, endTime: chosen.endTime?.toISOString(), source: where, target: targetText(recovery.target) }, 'Target backup found');

  // wal-restore reads the source store from here while the restored PGDATA replays.
  const paths = restorePaths(runtimeDir);
  await ensureDirectory(paths.dir, 0o700);
  await rm(paths.spool, { recursive: true, force: true });
  const settings: RestoreSettings = { version: 1, store: origin.store, env, streamingAvailable: false };
  await writeFileAtomic(paths.settings, JSON.stringify(settings), 0o600);
  // restore_command asks this process (or the daemon running it) for each file: warm S3 connections, read-ahead.
  const served = await acquireWalRestoreServer(runtimeDir, pinoLog(logger.child({ component: 'wal-restore' }))).catch((err: unknown) => {
    logger.warn({ error: (err as Error).message }, 'the WAL restore socket is not available; restore_command downloads in its own process');
    return undefined;
  });
  // While the base backup downloads: the backup's first WAL segments read ahead into the spool, where
  // restore_command finds them without starting pgim.
  if (chosen.beginWal !== undefined) void served?.server.restorer.readAheadFrom(chosen.beginWal).catch(() => undefined);
  else void served?.server.restorer.warmUp().catch(() => undefined);

  const progress = new Progress(logger);
  const started = Date.now();
  try {
    await instance.fillDataDirectory(async () => {
      const restored = await backups.restore(info, instance.pgdata, {
        signal,
        progress: ({ bytes }) => {
          progress.report({ phase: 'restoring base backup', backupId: chosen.backupId, bytesRestored: bytes }, `restoring backup ${chosen.backupId}: ${mib(bytes)}`);
        },
      }).catch((err: unknown) => {
        if (err instanceof BackupStoreError) throw new RecoveryError(source, origin.field, `the restore of backup ${chosen.backupId} from ${where} failed: ${err.message}`);
        throw err;
      });
      if (typeof restored === 'object') {
        // What Node cannot decode (bzip2, snappy) or a snapshot backup: Barman's own tool.
        logger.info({ backupId: chosen.backupId, compression: restored.delegate }, 'the backup is restored by barman-cloud-restore');
        await restoreWithBarman(origin.store, env, chosen.backupId, instance.pgdata, (bytes) => {
          progress.report({ phase: 'restoring base backup', backupId: chosen.backupId, bytesRestored: bytes }, `restoring backup ${chosen.backupId}: ${mib(bytes)}`);
        }, signal).catch((err: unknown) => {
          throw new RecoveryError(source, origin.field, `${(err as Error).message} (backup ${chosen.backupId} from ${where})`);
        });
      }
      const bytes = await directoryBytes(instance.pgdata);
      progress.report({ phase: 'base backup restored', backupId: chosen.backupId, bytesRestored: bytes, elapsedMs: Date.now() - started }, `restored backup ${chosen.backupId}: ${mib(bytes)}`, true);
    });
    if (desired.cluster.external.replica?.archiveOnly === true) {
      // A replica cluster's designated primary: no replay to a target, no promotion. It starts as a standby whose
      // restore_command follows the source's archive (CNPG's replica cluster from an object store), and the first
      // WAL it archives must find its own store empty, as after a clone.
      await writeFileAtomic(join(instance.pgdata, checkEmptyWalArchiveFlag), '', 0o600);
      await instance.bootstrapDone();
      progress.done();
      logger.info({ backupId: chosen.backupId, source: where, totalMs: Date.now() - started }, 'restored: starting as the designated primary of this replica cluster, following the source from its object store');
      return;
    }
    const replayStarted = Date.now();
    const result = await instance.recoverAndBootstrap({
      cluster: desired.cluster,
      credentials: desired.credentials,
      rendered: desired.rendered,
      recoverySettings: recoverySettings(recovery.target, restoreCommand(runtimeDir, options.executable)),
      // A source that is not a CNPG cluster may lack the owner and database: created, as CNPG does when recovery names them.
      createApplicationDatabase: true,
      signal,
      progress: (replay) => {
        progress.report(
          { phase: 'replaying WAL', replayLSN: replay.lsn, replayTimestamp: replay.time, target: targetText(recovery.target) },
          `replaying WAL: at ${replay.lsn ?? '?'} (${replay.time ?? 'no transaction yet'}), target ${targetText(recovery.target)}`,
        );
      },
    });
    progress.done();
    logger.info({ backupId: chosen.backupId, timeline: result.timeline, replayMs: Date.now() - replayStarted, totalMs: Date.now() - started, target: targetText(recovery.target) }, 'restore complete: promoted onto a new timeline');
  } catch (err) {
    progress.done();
    const movedTo = await instance.discardFailedBootstrap().catch(() => undefined);
    logger.error({ pgdata: instance.pgdata, movedTo }, movedTo === undefined ? 'restore failed: PGDATA emptied' : 'restore failed: the partly restored PGDATA was moved aside');
    if (err instanceof ConfigError) throw err;
    throw new RecoveryError(source, 'spec.bootstrap.recovery', `the restore of backup ${chosen.backupId} from ${where} failed: ${(err as Error).message}`);
  } finally {
    backups.close();
    // From now on wal-restore serves this cluster's own archive (written by the daemon), not the source's.
    served?.release();
    await rm(paths.settings, { force: true });
    await rm(paths.spool, { recursive: true, force: true });
    if (origin.endpointCA !== undefined) await rm(caPath, { force: true });
  }
}
