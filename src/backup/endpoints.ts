import { link, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isObjectName } from '../cluster/names.js';
import { errorMessage } from '../errors/index.js';
import { BackupInProgressError, defaultBackupName, type BackupService } from './service.js';

export interface EndpointReply {
  readonly status: number;
  readonly body: unknown;
}

const loopback = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
/** Names barman-cloud-backup refuses: they are how its other tools address backups. */
const barmanReservedNames = new Set(['first', 'last', 'latest', 'oldest', 'last-failed']);

/**
 * `POST /pg/backup[?name=N]`: takes a base backup now and answers once it is over, with the Backup status fields
 * (`phase`, `backupId`, `beginWal`, ...). Only from this machine: CNPG serves its equivalent on localhost only.
 */
export async function backupEndpoint(backups: BackupService, remoteAddress: string | undefined, name: string | undefined): Promise<EndpointReply> {
  if (remoteAddress === undefined || !loopback.has(remoteAddress)) {
    return { status: 403, body: { error: { code: 'LOCAL_ONLY', message: 'backups are requested from the instance\'s own machine (pgim backup)' } } };
  }
  if (name !== undefined && !isObjectName(name)) {
    return { status: 400, body: { error: { code: 'INVALID_NAME', message: 'the backup name must be a Kubernetes object name (lowercase letters, digits, "-", ".")' } } };
  }
  if (name !== undefined && barmanReservedNames.has(name)) {
    return { status: 400, body: { error: { code: 'INVALID_NAME', message: `"${name}" is reserved by Barman (first, last, latest, oldest, last-failed)` } } };
  }
  if (backups.store === undefined) return { status: 409, body: { error: { code: 'NOT_CONFIGURED', message: 'Barman backup not configured in the cluster' } } };
  try {
    const run = await backups.takeBackup(name ?? defaultBackupName());
    return { status: run.phase === 'completed' ? 200 : 500, body: { data: run } };
  } catch (err) {
    if (err instanceof BackupInProgressError) return { status: 409, body: { error: { code: 'ANOTHER_BACKUP_IN_PROGRESS', message: err.message } } };
    return { status: 500, body: { error: { code: 'BACKUP_FAILED', message: errorMessage(err) } } };
  }
}

/**
 * CNPG's `POST /pg/archive/partial` (the webserver checks the operator and the fence): the former primary archives
 * the segment holding its last checkpoint as `<W>.partial` (a hard link, removed afterwards), so the archive has
 * everything it wrote. Resolves to W; throws with the reason otherwise.
 */
export async function archivePartialWal(backups: BackupService, controlData: () => Promise<string>, pgdata: string): Promise<string> {
  const walFile = /^Latest checkpoint's REDO WAL file:\s*([0-9A-F]{24})\s*$/m.exec(await controlData())?.[1];
  if (walFile === undefined) throw new Error("pg_controldata names no REDO WAL file");
  const partial = join('pg_wal', `${walFile}.partial`);
  await rm(join(pgdata, partial), { force: true });
  await link(join(pgdata, 'pg_wal', walFile), join(pgdata, partial));
  try {
    await backups.archiveNow(partial);
  } finally {
    await rm(join(pgdata, partial), { force: true });
  }
  return walFile;
}
