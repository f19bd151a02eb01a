import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BarmanObjectStore } from '../cluster/backup.js';
import type { StoreCredentials } from './credentials.js';
import type { Cluster } from '../cluster/schema.js';
import { ensureDirectory, writeFileAtomic } from '../fs/atomic.js';
import { shellWord, storeEnvironment, type BackupState } from './runtime.js';
import { restorePaths, type RestoreSettings } from './wal-restore-settings.js';

/**
 * CNPG's restore_command shape (`/controller/manager wal-restore --log-destination ... %f %p`): this very pgim, run
 * by the same Node.js, in its `wal-restore` command; it reads the store from the runtime dir's settings.
 */
export function restoreCommand(runtimeDir: string, executable: readonly string[] = [process.execPath, process.argv[1] ?? 'pgim']): string {
  return [...executable, 'wal-restore', '--runtime-dir', runtimeDir].map(shellWord).join(' ').concat(' %f %p');
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
    await ensureDirectory(paths.dir, 0o700);
    const settings: RestoreSettings = { version: 1, store, env, streamingAvailable: false };
    await writeFileAtomic(paths.settings, JSON.stringify(settings), 0o600);
    return;
  }
  const store = options.cluster.backup.barmanObjectStore;
  if (store === undefined) {
    await rm(paths.settings, { force: true });
    return;
  }
  await ensureDirectory(paths.dir, 0o700);
  const settings: RestoreSettings = { version: 1, store, env: storeEnvironment(options.runtimeDir, options.backup), streamingAvailable: !options.isPrimary };
  await writeFileAtomic(paths.settings, JSON.stringify(settings), 0o600);
}
