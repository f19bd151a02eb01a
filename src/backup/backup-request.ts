import { chmod, rm } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { isObjectName } from '../cluster/names.js';
import { errorMessage } from '../errors/index.js';
import { ensureDirectory } from '../fs/atomic.js';

/**
 * CloudNativePG's `/controller/manager backup <name>`, which its operator runs in the chosen pod (pods/exec) once it
 * has marked the Backup object `started` for that pod: CNPG's command asks its local web server (localhost:8010) to
 * start that Backup and returns at once. pgim's equivalent is a local socket (0600, in the runtime folder, so no
 * port and no network: pods may share one), on which the daemon is asked to take the Backup object now; the
 * Backup's status then moves through its phases as for any Backup object (backup-objects.ts).
 *
 * Protocol: one JSON line each way. Request `{"backup": "<name>"}`; reply `{"accepted": true}` or `{"error": "..."}`.
 */
export function backupRequestSocket(runtimeDir: string): string {
  return join(runtimeDir, 'wal-archive', 'backup.sock');
}

/** The daemon's side: `take(name)` starts the Backup object (it must not wait for the backup to finish). */
export async function serveBackupRequests(runtimeDir: string, take: (name: string) => Promise<string | undefined>): Promise<Server> {
  const path = backupRequestSocket(runtimeDir);
  await ensureDirectory(join(runtimeDir, 'wal-archive'), 0o700);
  await rm(path, { force: true });
  const server = createServer((socket) => {
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > 1024) return void socket.destroy();
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      socket.removeAllListeners('data');
      let name: unknown;
      try {
        name = (JSON.parse(buffered.slice(0, newline)) as { backup?: unknown }).backup;
      } catch {
        name = undefined;
      }
      if (typeof name !== 'string' || !isObjectName(name)) return void socket.end(`${JSON.stringify({ error: 'bad request: a Backup object name is expected' })}\n`);
      void take(name)
        .catch((err: unknown) => errorMessage(err))
        .then((error) => socket.end(`${JSON.stringify(error === undefined ? { accepted: true } : { error })}\n`));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => { resolve(); });
  });
  await chmod(path, 0o600);
  server.unref();
  return server;
}

/** The command's side: asks the daemon to take Backup `name`; resolves to an error message, or undefined. */
export function requestBackup(runtimeDir: string, name: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect(backupRequestSocket(runtimeDir));
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify({ backup: name })}\n`));
    socket.on('data', (chunk: string) => (reply += chunk));
    socket.on('error', (err) => {
      socket.destroy();
      resolve(`cannot reach the instance manager: ${err.message}`);
    });
    socket.on('close', () => {
      try {
        const parsed = JSON.parse(reply) as { accepted?: boolean; error?: string };
        resolve(parsed.accepted === true ? undefined : (parsed.error ?? 'refused'));
      } catch {
        resolve('the instance manager gave no answer');
      }
    });
  });
}
