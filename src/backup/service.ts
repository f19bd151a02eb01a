import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from 'pino';
import type { Cluster } from '../cluster/schema.js';
import type { ClusterCondition, ControlPlane } from '../controlplane/index.js';
import { errorMessage } from '../errors/index.js';
import { ensureDirectory } from '../fs/atomic.js';
import type { LocalConnection } from '../postgres/sql.js';
import { withLocalClient } from '../postgres/sql.js';
import { backupArgs, backupDeleteArgs, backupListArgs, isDone, parseBackupList, recoverabilityTimes, type CatalogEntry } from './barman.js';
import { barmanRetentionPolicy, type BarmanObjectStore } from '../cluster/backup.js';
import { storeEnvironment, type BackupState } from './runtime.js';
import { archivePaths, readArchiveResult, type ArchiveResult } from './settings.js';
import { runTool, toolError } from './tools.js';
import { archiveWal } from './wal-archive.js';

/** CNPG's Backup phases this instance writes. */
export type BackupPhase = 'running' | 'walArchivingFailing' | 'completed' | 'failed';

/** One base backup as this instance ran it: the fields of CNPG's Backup status it fills. */
export interface BackupRun {
  backupName: string;
  phase: BackupPhase;
  error?: string;
  backupId?: string;
  startedAt?: string;
  stoppedAt?: string;
  beginWal?: string;
  endWal?: string;
  beginLSN?: string;
  endLSN?: string;
  destinationPath: string;
  serverName: string;
  endpointURL?: string;
  instanceID: { podName: string; sessionID: string };
}

/** What /pg/status, `pgim status` and the metrics show about archiving and backups. */
export interface BackupStatus {
  configured: boolean;
  archiving?: { lastAttemptAt: string; walName: string; ok: boolean; error?: string };
  firstRecoverabilityPoint?: string | undefined;
  lastSuccessfulBackup?: string | undefined;
  lastFailedBackup?: string;
  lastBackup?: BackupRun;
  backups?: number;
}

export interface BackupServiceDeps {
  /** The latest desired state. */
  readonly desired: () => { cluster: Cluster; backup: BackupState; isPrimary: boolean };
  readonly controlPlane: ControlPlane;
  readonly logger: Logger;
  readonly runtimeDir: string;
  readonly tmpDir: string;
  readonly pgdata: string;
  readonly connection: LocalConnection;
  readonly podName: string;
  readonly sessionID: string;
}

/** CNPG's backup-<YYYYMMDDhhmmss> (machinery ToCompactISO8601). */
export function defaultBackupName(now = new Date()): string {
  return `backup-${now.toISOString().replace(/[-:T]/g, '').slice(0, 14)}`;
}

const continuousArchiving = 'ContinuousArchiving';

/** CNPG's ContinuousArchiving condition for the outcome of the latest archive_command. */
export function archivingCondition(result: ArchiveResult): ClusterCondition {
  return result.error === ''
    ? { type: continuousArchiving, status: 'True', reason: 'ContinuousArchivingSuccess', message: 'Continuous archiving is working' }
    : { type: continuousArchiving, status: 'False', reason: 'ContinuousArchivingFailing', message: result.error };
}

export class BackupInProgressError extends Error {}

/**
 * The instance's side of backups: follows archive_command's outcomes (condition, log), takes base backups with
 * barman-cloud-backup, applies the retention policy and keeps the recoverability times from the catalog.
 */
export class BackupService {
  private status: BackupStatus = { configured: false };
  private running: Promise<BackupRun> | undefined;
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private reportedArchiving: string | undefined;
  /** The catalog as last listed (after the latest backup's retention). */
  lastCatalog: CatalogEntry[] | undefined;

  constructor(private readonly deps: BackupServiceDeps) {}

  /** Whether archive results are followed by inotify (the poll behind it is then a slow safety net). */
  get watchingArchiveResults(): boolean {
    return this.watcher !== undefined;
  }

  get store(): BarmanObjectStore | undefined {
    return this.deps.desired().cluster.backup.barmanObjectStore;
  }

  snapshotIdentity(): { podName: string; sessionID: string } {
    return { podName: this.deps.podName, sessionID: this.deps.sessionID };
  }

  snapshot(): BackupStatus {
    return { ...this.status, configured: this.store !== undefined };
  }

  private env(): Record<string, string> {
    return storeEnvironment(this.deps.runtimeDir, this.deps.desired().backup);
  }

  /** Follows the archive results (inotify on the folder, and a slow poll behind it), and reads the catalog once. */
  start(): void {
    const paths = archivePaths(this.deps.runtimeDir);
    const check = (): void => void this.checkArchiving();
    const arm = (): boolean => {
      try {
        this.watcher = watch(paths.dir, { persistent: false }, check);
        this.watcher.on('error', () => this.watcher?.close());
        return true;
      } catch {
        // not there yet (a first start writes the folder with the archive settings, after this), or no inotify
        return false;
      }
    };
    // Behind a working inotify watch the poll is only a safety net: slow, as an idle pgim's wake-ups cost CPU.
    const slow = (): void => {
      this.poll = setInterval(check, 30_000);
      this.poll.unref();
    };
    if (arm()) slow();
    else {
      // Until the watch is armed, the poll looks every 5 s and tries again (on a first start it stayed at 5 s for
      // the process's whole life, because the folder did not exist yet when this ran).
      this.poll = setInterval(() => {
        check();
        if (!arm()) return;
        clearInterval(this.poll);
        slow();
      }, 5000);
      this.poll.unref();
    }
    if (this.store !== undefined) void this.refreshCatalog().catch(() => undefined);
  }

  stop(): void {
    this.watcher?.close();
    clearInterval(this.poll);
  }

  private async checkArchiving(): Promise<void> {
    const result = await readArchiveResult(archivePaths(this.deps.runtimeDir));
    if (result === undefined) return;
    this.status.archiving = { lastAttemptAt: result.at, walName: result.walName, ok: result.error === '', ...(result.error === '' ? {} : { error: result.error }) };
    const condition = archivingCondition(result);
    const key = `${condition.status}:${condition.message}`;
    if (key === this.reportedArchiving) return;
    this.reportedArchiving = key;
    if (result.error === '') this.deps.logger.info({ walName: result.walName }, 'continuous archiving is working');
    else this.deps.logger.error({ walName: result.walName, error: result.error }, 'WAL archiving is failing; the segments wait in pg_wal');
    await this.deps.controlPlane.reportStatus({ conditions: [condition] }).catch(() => undefined);
  }

  /** Archives a file pgim chose (a former primary's partial segment, `POST /pg/archive/partial`), bypassing the gate. */
  async archiveNow(walPath: string): Promise<void> {
    const error = await archiveWal({ walPath, pgdata: this.deps.pgdata, runtimeDir: this.deps.runtimeDir, force: true });
    if (error !== '') throw new Error(error);
  }

  /**
   * Takes a base backup now (one at a time). `onProgress` sees every phase change (Kubernetes mode patches the
   * Backup object with it). Resolves with the final run, completed or failed.
   */
  takeBackup(name: string, onProgress: (run: BackupRun) => Promise<void> = () => Promise.resolve()): Promise<BackupRun> {
    if (this.running !== undefined) throw new BackupInProgressError('another backup is running on this instance');
    const store = this.store;
    if (store === undefined) throw new Error('spec.backup.barmanObjectStore is not configured');
    const run: BackupRun = {
      backupName: name,
      phase: 'running',
      destinationPath: store.destinationPath,
      serverName: store.serverName,
      ...(store.endpointURL === undefined ? {} : { endpointURL: store.endpointURL }),
      instanceID: { podName: this.deps.podName, sessionID: this.deps.sessionID },
    };
    this.running = this.execute(store, run, onProgress).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async execute(store: BarmanObjectStore, run: BackupRun, onProgress: (run: BackupRun) => Promise<void>): Promise<BackupRun> {
    const { logger } = this.deps;
    await onProgress(run);
    if (this.deps.desired().isPrimary) {
      const problem = await this.ensureWalArchiveIsWorking();
      if (problem !== undefined) {
        run.phase = 'walArchivingFailing';
        run.error = problem;
        return this.finish(run, store);
      }
    }
    logger.info({ backupName: run.backupName, destinationPath: store.destinationPath, serverName: store.serverName }, 'starting a base backup (barman-cloud-backup)');
    await ensureDirectory(this.deps.tmpDir, 0o700);
    const started = Date.now();
    const connection = { host: this.deps.connection.socketDir, port: this.deps.connection.port, user: 'postgres' };
    const result = await runTool('barman-cloud-backup', backupArgs(store, run.backupName, connection), { ...this.env(), TMPDIR: this.deps.tmpDir });
    let catalog: CatalogEntry[] | undefined;
    if (result.code !== 0) {
      run.phase = 'failed';
      run.error = result.code === 3 ? 'invalid arguments for barman-cloud-backup. Ensure that the additionalCommandArgs field is correctly populated' : toolError('barman-cloud-backup', result);
    } else {
      catalog = await this.listCatalog(store);
      const entry = catalog.find((e) => e.backupName === run.backupName);
      if (entry === undefined) {
        run.phase = 'failed';
        run.error = `barman-cloud-backup succeeded but the catalog does not list ${run.backupName}`;
      } else {
        run.phase = 'completed';
        Object.assign(run, catalogFields(entry));
      }
    }
    logger[run.phase === 'completed' ? 'info' : 'error'](
      { backupName: run.backupName, backupId: run.backupId, phase: run.phase, elapsedMs: Date.now() - started, ...(run.error === undefined ? {} : { error: run.error }) },
      run.phase === 'completed' ? 'base backup completed' : 'base backup failed',
    );
    return this.finish(run, store, catalog);
  }

  /** Records the outcome (status, condition, times), then CNPG's maintenance: retention and the catalog. */
  private async finish(run: BackupRun, store: BarmanObjectStore, catalog?: CatalogEntry[]): Promise<BackupRun> {
    // CNPG leaves a backup whose WAL archiving does not work in `walArchivingFailing`; any other problem is `failed`.
    if (run.phase === 'running') run.phase = 'failed';
    if (run.phase !== 'completed') this.status.lastFailedBackup = new Date().toISOString();
    this.status.lastBackup = { ...run };
    const condition: ClusterCondition =
      run.phase === 'completed'
        ? { type: 'LastBackupSucceeded', status: 'True', reason: 'LastBackupSucceeded', message: 'Backup was successful' }
        : { type: 'LastBackupSucceeded', status: 'False', reason: 'LastBackupFailed', message: run.error ?? 'failed' };
    await this.deps.controlPlane
      .reportStatus({ conditions: [condition], ...(run.phase === 'completed' ? {} : { lastFailedBackup: this.status.lastFailedBackup }) })
      .catch(() => undefined);
    await this.maintenance(store, catalog).catch((err: unknown) => {
      this.deps.logger.warn({ error: errorMessage(err) }, 'backup maintenance failed');
    });
    return run;
  }

  /**
   * CNPG's backupMaintenance: retention, then the catalog's recoverability times. `listed`: the catalog as just
   * listed after a backup; without a retention policy nothing changed it since, so it is not listed again (one
   * Python start less per backup).
   */
  async maintenance(store: BarmanObjectStore, listed?: CatalogEntry[]): Promise<CatalogEntry[]> {
    const policy = this.deps.desired().cluster.backup.retentionPolicy;
    if (policy === undefined && listed !== undefined) return this.applyCatalog(listed);
    if (policy !== undefined) {
      const result = await runTool('barman-cloud-backup-delete', backupDeleteArgs(store, barmanRetentionPolicy(policy)), this.env());
      if (result.code !== 0) this.deps.logger.warn({ error: toolError('barman-cloud-backup-delete', result) }, 'Retention policy failed');
      else this.deps.logger.info({ retentionPolicy: policy }, 'retention policy applied');
    }
    return this.refreshCatalog(store);
  }

  async refreshCatalog(store: BarmanObjectStore | undefined = this.store): Promise<CatalogEntry[]> {
    if (store === undefined) return [];
    return this.applyCatalog(await this.listCatalog(store));
  }

  /** The recoverability times and backup count from a catalog listing, into the status. */
  private async applyCatalog(catalog: CatalogEntry[]): Promise<CatalogEntry[]> {
    this.lastCatalog = catalog;
    const times = recoverabilityTimes(catalog);
    this.status.firstRecoverabilityPoint = times.firstRecoverabilityPoint?.toISOString();
    this.status.lastSuccessfulBackup = times.lastSuccessfulBackup?.toISOString();
    this.status.backups = catalog.filter(isDone).length;
    await this.deps.controlPlane
      .reportStatus({ firstRecoverabilityPoint: this.status.firstRecoverabilityPoint ?? '', lastSuccessfulBackup: this.status.lastSuccessfulBackup ?? '' })
      .catch(() => undefined);
    return catalog;
  }

  async listCatalog(store: BarmanObjectStore): Promise<CatalogEntry[]> {
    const result = await runTool('barman-cloud-backup-list', backupListArgs(store), this.env());
    if (result.code !== 0) throw new Error(toolError('barman-cloud-backup-list', result));
    return parseBackupList(result.stdout);
  }

  /**
   * CNPG's ensureWalArchiveIsWorking on the primary: archiving must have succeeded since its last failure; if
   * nothing was ever archived, a CHECKPOINT and a WAL switch give it something to archive. Waits up to a minute.
   */
  private async ensureWalArchiveIsWorking(): Promise<string | undefined> {
    const query = `SELECT COALESCE(last_archived_time,'-infinity') > COALESCE(last_failed_time,'-infinity') AS ok,
                          last_archived_time IS NULL AS never FROM pg_catalog.pg_stat_archiver`;
    let switched = false;
    for (let attempt = 0; attempt < 60; attempt++) {
      const row = await withLocalClient(this.deps.connection, async (client) => (await client.query<{ ok: boolean; never: boolean }>(query)).rows[0]);
      if (row?.ok === true) return undefined;
      if (row?.never === true && !switched) {
        switched = true;
        await withLocalClient(this.deps.connection, async (client) => {
          await client.query('CHECKPOINT');
          await client.query('SELECT pg_catalog.pg_switch_wal()');
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    return `WAL archiving is not working: ${this.status.archiving?.error ?? 'no WAL file was archived'}`;
  }
}

function catalogFields(entry: CatalogEntry): Partial<BackupRun> {
  return {
    backupId: entry.backupId,
    ...(entry.beginTime === undefined ? {} : { startedAt: entry.beginTime.toISOString() }),
    ...(entry.endTime === undefined ? {} : { stoppedAt: entry.endTime.toISOString() }),
    ...(entry.beginWal === undefined ? {} : { beginWal: entry.beginWal }),
    ...(entry.endWal === undefined ? {} : { endWal: entry.endWal }),
    ...(entry.beginLSN === undefined ? {} : { beginLSN: entry.beginLSN }),
    ...(entry.endLSN === undefined ? {} : { endLSN: entry.endLSN }),
  };
}
