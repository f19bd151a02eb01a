import { quietInterval, type QuietInterval } from '../async/quiet-interval.js';
import type { Logger } from 'pino';
import type { BarmanObjectStore } from '../cluster/backup.js';
import type { Cluster } from '../cluster/schema.js';
import type { BackupObject, ControlPlane } from '../controlplane/index.js';
import { errorMessage } from '../errors/index.js';
import type { CatalogEntry } from './barman.js';
import { defaultBackupName, type BackupRun, type BackupService } from './service.js';

/** Phases a Backup waits in before an instance takes it (CNPG: the operator sets `started` before the exec). */
const waiting = new Set(['', 'pending', 'started']);

export interface BackupObjectsDeps {
  readonly controlPlane: ControlPlane;
  readonly service: BackupService;
  readonly desired: () => { cluster: Cluster; self: string; primary: string; instances: readonly string[] };
  readonly logger: Logger;
  /** How often the Backup list is read (the Role grants list, not watch). */
  readonly intervalMs?: number;
}

const nowSeconds = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

/**
 * The pod that takes a Backup: the one the operator elected (`status.instanceID.podName`), or, with no operator,
 * CNPG's rule by name: `primary` -> the target primary; `prefer-standby` -> the first other instance by name, or the
 * primary when the cluster has no other instance.
 */
export function electBackupPod(backup: BackupObject, clusterTarget: string, topology: { primary: string; instances: readonly string[] }): string {
  const instanceID = backup.status.instanceID as { podName?: unknown } | undefined;
  if (typeof instanceID?.podName === 'string' && instanceID.podName !== '') return instanceID.podName;
  const target = backup.spec.target ?? clusterTarget;
  if (target === 'primary') return topology.primary;
  return [...topology.instances].sort().find((name) => name !== topology.primary) ?? topology.primary;
}

/**
 * The store's credential references a Backup status records (CNPG's `backupStatus.BarmanCredentials` and
 * `EndpointCA`): Secret names and keys only, never a value. A recovery from the Backup object
 * (`bootstrap.recovery.backup.name`) reads its credentials through them.
 */
function credentialReferences(store: BarmanObjectStore): Record<string, unknown> {
  const { s3Credentials: c } = store;
  const s3Credentials = {
    ...(c.accessKeyId === undefined ? {} : { accessKeyId: c.accessKeyId }),
    ...(c.secretAccessKey === undefined ? {} : { secretAccessKey: c.secretAccessKey }),
    ...(c.region === undefined ? {} : { region: c.region }),
    ...(c.sessionToken === undefined ? {} : { sessionToken: c.sessionToken }),
    ...(c.inheritFromIAMRole ? { inheritFromIAMRole: true } : {}),
  };
  return { s3Credentials, ...(store.endpointCA === undefined ? {} : { endpointCA: store.endpointCA }) };
}

/** The Backup status fields of a run (CNPG's Backup status names), with the store's credential references. */
export function backupStatusFields(run: BackupRun, store?: BarmanObjectStore): Record<string, unknown> {
  const terminal = run.phase === 'completed' || run.phase === 'failed';
  return {
    ...(store === undefined ? {} : credentialReferences(store)),
    phase: run.phase,
    method: 'barmanObjectStore',
    backupName: run.backupName,
    destinationPath: run.destinationPath,
    serverName: run.serverName,
    ...(run.endpointURL === undefined ? {} : { endpointURL: run.endpointURL }),
    instanceID: run.instanceID,
    error: run.error ?? null,
    ...(run.backupId === undefined ? {} : { backupId: run.backupId }),
    ...(run.beginWal === undefined ? {} : { beginWal: run.beginWal }),
    ...(run.endWal === undefined ? {} : { endWal: run.endWal }),
    ...(run.beginLSN === undefined ? {} : { beginLSN: run.beginLSN }),
    ...(run.endLSN === undefined ? {} : { endLSN: run.endLSN }),
    ...(run.startedAt === undefined ? {} : { startedAt: run.startedAt }),
    ...(run.stoppedAt === undefined ? {} : { stoppedAt: run.stoppedAt }),
    ...(terminal ? { reconciliationTerminatedAt: nowSeconds() } : {}),
  };
}

/**
 * Kubernetes mode's Backup objects, as CNPG's instance manager handles them: the Backups of this Cluster (method
 * barmanObjectStore) that elect this pod are taken one at a time, oldest first, with their status patched through
 * every phase; after each, the Backups whose backup the catalog no longer lists are deleted (retention). Another
 * Cluster's Backups are never read further, patched or deleted.
 */
export class BackupObjectReconciler {
  private timer: QuietInterval | undefined;
  private busy = false;
  /** Backups this process already finished (a failed patch must not make it take one twice). */
  private readonly handled = new Set<string>();

  constructor(private readonly deps: BackupObjectsDeps) {}

  /** Looks every 5 s while a Barman object store is configured; without one it sleeps until `wake()`. */
  start(): void {
    this.timer = quietInterval(() => this.reconcile(), this.deps.intervalMs ?? 5000, () => this.deps.service.store !== undefined);
  }

  /** A new desired state: a store configured now starts the look, one removed stops it. */
  wake(): void {
    this.timer?.wake();
  }

  stop(): void {
    this.timer?.stop();
  }

  private mine(list: readonly BackupObject[]): BackupObject[] {
    const { cluster } = this.deps.desired();
    return list.filter((b) => b.spec.cluster?.name === cluster.name && (b.spec.method ?? 'barmanObjectStore') === 'barmanObjectStore');
  }

  async reconcile(): Promise<void> {
    if (this.busy || this.deps.service.store === undefined) return;
    this.busy = true;
    try {
      const desired = this.deps.desired();
      const list = this.mine(await this.deps.controlPlane.listBackups());
      const next = list
        .filter((b) => waiting.has(typeof b.status.phase === 'string' ? b.status.phase : '') && !this.handled.has(b.name))
        .sort((a, b) => a.creationTimestamp.localeCompare(b.creationTimestamp) || a.name.localeCompare(b.name))[0];
      if (next === undefined || electBackupPod(next, desired.cluster.backup.target, desired) !== desired.self) return;
      await this.take(next);
    } catch (err) {
      this.deps.logger.warn({ error: errorMessage(err) }, 'could not reconcile Backup objects; will retry');
    } finally {
      this.busy = false;
    }
  }

  /**
   * CNPG's `backup <name>` (the operator's exec into the pod it chose): the Backup must exist, belong to this
   * Cluster and be elected to this pod; it is then taken now (not awaited). Resolves to why not, or undefined.
   */
  async takeNow(name: string): Promise<string | undefined> {
    if (this.deps.service.store === undefined) return 'Barman backup not configured in the cluster (spec.backup.barmanObjectStore)';
    const backup = this.mine(await this.deps.controlPlane.listBackups()).find((b) => b.name === name);
    if (backup === undefined) return `no Backup ${name} of this Cluster with method barmanObjectStore`;
    const desired = this.deps.desired();
    const elected = electBackupPod(backup, desired.cluster.backup.target, desired);
    if (elected !== desired.self) return `Backup ${name} is for ${elected}, not ${desired.self}`;
    this.deps.logger.info({ backup: name }, 'backup requested (backup command)');
    void this.reconcile();
    return undefined;
  }

  private async take(backup: BackupObject): Promise<void> {
    const { controlPlane, service, logger } = this.deps;
    this.handled.add(backup.name);
    logger.info({ backup: backup.name }, 'taking the base backup a Backup object asks for');
    const patch = async (status: Record<string, unknown>): Promise<void> => {
      await controlPlane.patchBackupStatus(backup.name, status).catch((err: unknown) => {
        logger.warn({ backup: backup.name, error: errorMessage(err) }, 'could not patch the Backup status');
      });
    };
    const { podName, sessionID } = service.snapshotIdentity();
    await patch({ phase: 'started', method: 'barmanObjectStore', instanceID: { podName, sessionID }, reconciliationStartedAt: nowSeconds(), error: null });
    // Barman's name is CNPG's `backup-<YYYYMMDDhhmmss>`, not the object's: Barman reserves some names (`latest`...).
    const store = service.store;
    const run = await service.takeBackup(defaultBackupName(), (progress) => patch(backupStatusFields(progress, store)));
    await patch(backupStatusFields(run, store));
    await this.deleteOrphans(service.lastCatalog);
  }

  /**
   * CNPG's deleteBackupsNotInCatalog: completed Backups of this Cluster, at this store's location, whose backup id the
   * catalog no longer lists.
   */
  async deleteOrphans(catalog: readonly CatalogEntry[] | undefined): Promise<string[]> {
    const store = this.deps.service.store;
    if (catalog === undefined || store === undefined) return [];
    const ids = new Set(catalog.map((e) => e.backupId));
    const deleted: string[] = [];
    for (const backup of this.mine(await this.deps.controlPlane.listBackups())) {
      const s = backup.status;
      const sameLocation = s.destinationPath === store.destinationPath && (s.endpointURL ?? undefined) === store.endpointURL && s.serverName === store.serverName;
      if (s.phase !== 'completed' || !sameLocation || typeof s.backupId !== 'string' || ids.has(s.backupId)) continue;
      await this.deps.controlPlane.deleteBackup(backup.name);
      this.deps.logger.info({ backup: backup.name, backupId: s.backupId }, 'deleted a Backup whose backup is no longer in the object store');
      deleted.push(backup.name);
    }
    return deleted;
  }
}
