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
 * CNPG's `POST /pg/archive/partial`: a fenced (stopped) former primary archives the segment holding its last
 * checkpoint as `<W>.partial`, so the archive has everything it wrote. Replies `{"data": "<W>"}`.
 */
export async function archivePartialSegment(
  backups: BackupService,
  instance: { fenced: boolean; controlData: () => Promise<string>; pgdata: string | undefined },
): Promise<EndpointReply> {
  const fail = (code: string, message: string): EndpointReply => ({ status: 400, body: { error: { code, message } } });
  if (!instance.fenced) return fail('NOT_FENCED', 'the instance must be fenced (stopped) first');
  if (instance.pgdata === undefined) return fail('NOT_EXPECTED_PRIMARY', 'no data directory');
  let walFile: string | undefined;
  try {
    walFile = /^Latest checkpoint's REDO WAL file:\s*([0-9A-F]{24})\s*$/m.exec(await instance.controlData())?.[1];
  } catch (err) {
    return fail('COULD_NOT_PARSE_REDOWAL_FILE', errorMessage(err));
  }
  if (walFile === undefined) return fail('COULD_NOT_PARSE_REDOWAL_FILE', 'pg_controldata names no REDO WAL file');
  const partial = join('pg_wal', `${walFile}.partial`);
  try {
    await rm(join(instance.pgdata, partial), { force: true });
    await link(join(instance.pgdata, 'pg_wal', walFile), join(instance.pgdata, partial));
  } catch (err) {
    return fail('ERROR_WHILE_CREATING_SYMLINK', errorMessage(err));
  }
  try {
    await backups.archiveNow(partial);
  } catch (err) {
    return fail('ERROR_WHILE_EXECUTING_WAL_ARCHIVE', errorMessage(err));
  } finally {
    await rm(join(instance.pgdata, partial), { force: true });
  }
  return { status: 200, body: { data: walFile } };
}
