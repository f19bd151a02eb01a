import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BarmanObjectStore } from '../cluster/backup.js';
import type { StoreCredentials } from './credentials.js';
import type { Cluster } from '../cluster/schema.js';
import { ensureDirectory, writeFileAtomic } from '../fs/atomic.js';
import { shellWord, storeEnvironment, type BackupState } from './runtime.js';
import { readRestoreSettings, restorePaths, type RestorePaths, type RestoreSettings } from './wal-restore-settings.js';

/**
 * restore_command: CNPG's `wal-restore` step 5 in the shell, then CNPG's command shape
 * (`/controller/manager wal-restore --log-destination ... %f %p`).
 *
 * - A file already in the spool (`<runtime-dir>/wal-restore-spool/%f`, 0700; read ahead by the pgim serving
 *   restore_command, or by an earlier call) is moved to `%p` by the shell itself: no Node.js start, the common case
 *   of a replay. The serving pgim sees it go (inotify) and reads the next one ahead. A spooled file is always
 *   whole (downloaded under a temporary name, then renamed).
 * - Otherwise, or if the move fails, this very pgim, run by the same Node.js, in its `wal-restore` command: it asks
 *   the serving pgim or downloads itself, and keeps every answer's meaning (end of WAL, `.history`, `.partial`,
 *   timelines); it reads the store from the runtime dir's settings. No secret is on this line.
 */
export function restoreCommand(runtimeDir: string, executable: readonly string[] = [process.execPath, process.argv[1] ?? 'pgim']): string {
  const spooled = shellWord(join(restorePaths(runtimeDir).spool, '%f'));
  const pgim = [...executable, 'wal-restore', '--runtime-dir', runtimeDir].map(shellWord).join(' ').concat(' %f %p');
  return `test -f ${spooled} && mv -f ${spooled} %p 2>/dev/null || exec ${pgim}`;
}

/**
 * The wal-restore settings of a running instance (0600 in a 0700 folder): this cluster's own store
 * (`spec.backup.barmanObjectStore`), so a replica that cannot stream catches up from the archive (CNPG's
 * GetRecoverConfiguration). Without a store the file goes: wal-restore then answers "not there".
 */
export async function writeRestoreSettings(options: {
  runtimeDir: string;
  cluster: Cluster;
  isPrimary: boolean;
  backup: BackupState;
  /** A replica cluster's designated primary following its source's object store (no streaming there). */
  follow?: { store: BarmanObjectStore; credentials: StoreCredentials } | undefined;
}): Promise<void> {
  const paths = restorePaths(options.runtimeDir);
  if (options.follow !== undefined) {
    const { store, credentials } = options.follow;
    const env: Record<string, string> = { ...credentials.env };
    const caPath = join(options.runtimeDir, 'certificates', 'replica-source-barman-ca.crt');
    if (credentials.endpointCA !== undefined) {
      await ensureDirectory(join(options.runtimeDir, 'certificates'), 0o700);
      await writeFileAtomic(caPath, credentials.endpointCA, 0o600);
      env.AWS_CA_BUNDLE = caPath;
    }
    await writeSettings(paths, { version: 1, store, env, streamingAvailable: false });
    return;
  }
  const store = options.cluster.backup.barmanObjectStore;
  if (store === undefined) {
    await rm(paths.settings, { force: true });
    return;
  }
  const settings: RestoreSettings = { version: 1, store, env: storeEnvironment(options.runtimeDir, options.backup), streamingAvailable: !options.isPrimary };
  await writeSettings(paths, settings);
}

/**
 * Writes the settings (0600 in a 0700 folder). When they name another archive than before, what the spool holds
 * is another archive's WAL: dropped, since restore_command's shell serves the spool without asking anyone.
 */
async function writeSettings(paths: RestorePaths, settings: RestoreSettings): Promise<void> {
  const archive = (s: RestoreSettings | undefined): string => JSON.stringify([s?.store?.destinationPath, s?.store?.serverName, s?.store?.endpointURL]);
  const before = await readRestoreSettings(paths).catch(() => undefined);
  await ensureDirectory(paths.dir, 0o700);
  await writeFileAtomic(paths.settings, JSON.stringify(settings), 0o600);
  if (before !== undefined && archive(before) !== archive(settings)) await rm(paths.spool, { recursive: true, force: true });
}
