import type { Server } from 'node:net';
import { join } from 'node:path';
import { isObjectName } from '../cluster/names.js';
import { errorMessage } from '../errors/index.js';
import { askJsonLine, serveJsonLines } from './local-socket.js';

/**
 * CloudNativePG's `/controller/manager backup <name>`, which its operator runs in the chosen pod (pods/exec) once it
 * has marked the Backup object `started` for that pod: CNPG's command asks its local web server (localhost:8010) to
 * start that Backup and returns at once. pgim's equivalent is a local socket (0600, in the runtime folder, so no
 * port and no network: pods may share one), on which the daemon is asked to take the Backup object now; the
 * Backup's status then moves through its phases as for any Backup object (backup-objects.ts).
 *
 * Protocol: one JSON line each way. Request `{"backup": "<name>"}`; reply `{"accepted": true}` or `{"error": "..."}`.
 */
interface BackupReply {
  readonly accepted?: boolean;
  readonly error?: string;
}

export function backupRequestSocket(runtimeDir: string): string {
  return join(runtimeDir, 'wal-archive', 'backup.sock');
}

/** The daemon's side: `take(name)` starts the Backup object (it must not wait for the backup to finish). */
export function serveBackupRequests(runtimeDir: string, take: (name: string) => Promise<string | undefined>): Promise<Server> {
  return serveJsonLines<BackupReply>(
    backupRequestSocket(runtimeDir),
    async (request) => {
      const name = (request as { backup?: unknown } | null)?.backup;
      if (typeof name !== 'string' || !isObjectName(name)) throw new Error('a Backup object name is expected');
      const error = await take(name).catch((err: unknown) => errorMessage(err));
      return error === undefined ? { accepted: true } : { error };
    },
    (message) => ({ error: `bad request: ${message}` }),
  );
}

/** The command's side: asks the daemon to take Backup `name`; resolves to an error message, or undefined. */
export async function requestBackup(runtimeDir: string, name: string): Promise<string | undefined> {
  const reply = await askJsonLine<BackupReply>(backupRequestSocket(runtimeDir), { backup: name }, (message) => ({ error: `the instance manager gave no answer: ${message}` }));
  if (reply === undefined) return 'cannot reach the instance manager (no daemon listening)';
  return reply.accepted === true ? undefined : (reply.error ?? 'refused');
}
