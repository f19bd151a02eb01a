import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stderrLogger } from './command-side.js';
import { askJsonLine } from './local-socket.js';
import type { RestoreReply } from './wal-restorer.js';
import { endOfWalStreamFlag, restorePaths } from './wal-restore-settings.js';

/**
 * `pgim wal-restore <%f> <%p>`: PostgreSQL's restore_command (CNPG's `manager wal-restore`,
 * internal/cmd/manager/walrestore). Runs once per file PostgreSQL asks for, so it loads only this file's imports
 * until it knows it must download itself.
 *
 * - First it asks the long-lived pgim of this runtime dir (the daemon, or `pgim restore`) over its socket
 *   (wal-restore-server.ts): that process keeps a warm S3 client and reads `wal.maxParallel - 1` segments ahead.
 * - With nobody listening, it does the work itself (wal-restorer.ts, one-shot mode: CNPG's batch of `maxParallel`
 *   segments into the spool, the end-of-wal-stream flag file).
 * - Exit 0 once the file is at `<%p>`; 1 otherwise. PostgreSQL reads any exit below 126 as "not there": a recovery
 *   then ends (and promotes), a standby tries streaming and asks again later. Nothing here exits above 125, which
 *   PostgreSQL would take as fatal.
 * - Credentials come from the settings file (0600), never from argv.
 */

export interface WalRestoreOptions {
  readonly walName: string;
  /** `%p`: where PostgreSQL wants the file (relative to PGDATA, where PostgreSQL runs the command). */
  readonly destination: string;
  readonly runtimeDir: string;
}

const log = stderrLogger('wal-restore');

/** Restores one file; resolves true once it is at the destination. */
export async function restoreWal(options: WalRestoreOptions): Promise<boolean> {
  const paths = restorePaths(options.runtimeDir);
  const destination = resolve(options.destination);
  let reply = await askJsonLine<RestoreReply>(paths.socket, { walName: options.walName, destination }, (message) => ({
    outcome: 'failed',
    error: `the pgim WAL restore server failed: ${message}`,
  }));
  if (reply === undefined) {
    const { WalRestorer } = await import('./wal-restorer.js');
    const restorer = new WalRestorer({ runtimeDir: options.runtimeDir, log, mode: 'one-shot' });
    try {
      reply = await restorer.restore(options.walName, destination);
      await restorer.settle();
      if (reply.outcome === 'restored' && restorer.endOfStreamAhead()) {
        log('info', 'Set end-of-wal-stream flag as one of the WAL files to be prefetched was not found');
        await (await open(join(paths.spool, endOfWalStreamFlag), 'w', 0o600)).close();
      }
    } finally {
      restorer.close();
    }
  } else if (reply.outcome === 'failed') {
    log('warn', 'Failed restoring WAL file (PostgreSQL might retry)', { walName: options.walName, error: reply.error });
  }
  return reply.outcome === 'restored';
}

/** The command: 0 when the file is in place, 1 otherwise (after 100 ms, as CNPG, so a retry loop is not a spin). */
export async function walRestoreCommand(options: WalRestoreOptions): Promise<number> {
  let ok: boolean;
  try {
    ok = await restoreWal(options);
  } catch (err) {
    log('warn', 'wal-restore failed', { walName: options.walName, error: (err as Error).message });
    ok = false;
  }
  if (ok) return 0;
  await new Promise((resolvePromise) => setTimeout(resolvePromise, 100));
  return 1;
}
