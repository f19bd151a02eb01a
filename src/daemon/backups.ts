import { join } from 'node:path';
import type { Logger } from 'pino';
import { BackupObjectReconciler } from '../backup/backup-objects.js';
import { BackupService } from '../backup/service.js';
import { BackupScheduler } from '../backup/scheduled-backups.js';
import { WalArchiver } from '../backup/wal-archiver.js';
import { acquireWalRestoreServer, pinoLog } from '../backup/wal-restore-server.js';
import { serveBackupRequests } from '../backup/backup-request.js';
import { errorMessage } from '../errors/index.js';
import type { ControlPlane } from '../controlplane/index.js';
import type { DesiredState } from '../desired/state.js';
import type { InstanceState } from '../instance/state.js';
import type { InstanceOptions } from '../options/index.js';
import type { PostgresInstance } from '../postgres/instance.js';
import type { Reconciler } from '../reconcile/reconciler.js';

/**
 * Archiving outcomes, base backups and, in Kubernetes mode, Backup objects (src/backup), following the reconciler's
 * latest desired state.
 */
export function startBackups(deps: {
  reconciler: Reconciler;
  controlPlane: ControlPlane;
  logger: Logger;
  state: InstanceState;
  instance: PostgresInstance;
  options: InstanceOptions;
  desired: DesiredState;
}): { service: BackupService; wake: () => void; stop: () => void } {
  const { reconciler, controlPlane, logger, state, instance } = deps;
  const service = new BackupService({
    desired: () => ({ cluster: reconciler.desired.cluster, backup: reconciler.desired.backup, isPrimary: reconciler.desired.topology.isPrimary }),
    controlPlane,
    logger,
    runtimeDir: deps.desired.layout.root,
    tmpDir: join(deps.desired.layout.root, 'backup'),
    pgdata: deps.options.pgdata,
    connection: instance.connection,
    podName: state.podName,
    sessionID: state.sessionID,
  });
  const objects = new BackupObjectReconciler({
    controlPlane,
    service,
    desired: () => ({ cluster: reconciler.desired.cluster, ...reconciler.desired.topology }),
    logger,
  });
  // archive_command's fast path; without it `pgim wal-archive` uploads in its own process (slower, same objects).
  const archiver = new WalArchiver({ runtimeDir: deps.desired.layout.root, pgdata: deps.options.pgdata, logger: logger.child({ component: 'wal-archiver' }) });
  archiver.start().catch((err: unknown) => {
    logger.warn({ error: errorMessage(err) }, 'the WAL archiver socket is not available; archive_command uploads in its own process');
  });
  // restore_command's fast path (replicas falling back to the archive, a designated primary following it, a restore).
  let restoreServer: { release: () => void } | undefined;
  let stopped = false;
  acquireWalRestoreServer(deps.desired.layout.root, pinoLog(logger.child({ component: 'wal-restore' }))).then(
    (acquired) => {
      if (stopped) acquired.release();
      else restoreServer = acquired;
    },
    (err: unknown) => {
      logger.warn({ error: errorMessage(err) }, 'the WAL restore socket is not available; restore_command downloads in its own process');
    },
  );
  // CNPG's `backup <name>` (the operator's exec): take that Backup object now.
  const requests = serveBackupRequests(deps.desired.layout.root, (name) => objects.takeNow(name));
  requests.catch((err: unknown) => {
    logger.warn({ error: errorMessage(err) }, 'the backup request socket is not available; Backup objects are still taken within 5 s');
  });
  const scheduler = new BackupScheduler({
    desired: () => ({ scheduled: reconciler.desired.backup.scheduled, clusterTarget: reconciler.desired.cluster.backup.target, ...reconciler.desired.topology }),
    service,
    logger: logger.child({ component: 'scheduled-backups' }),
  });
  service.start();
  objects.start();
  scheduler.start();
  return {
    service,
    // A new desired state: schedules and a configured object store start (or stop) their timers.
    wake: () => {
      scheduler.wake();
      objects.wake();
    },
    stop: () => {
      scheduler.stop();
      archiver.stop();
      stopped = true;
      restoreServer?.release();
      void requests.then((server) => server.close()).catch(() => undefined);
      service.stop();
      objects.stop();
    },
  };
}
