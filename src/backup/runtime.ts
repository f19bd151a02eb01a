import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cluster } from '../cluster/schema.js';
import type { ControlPlane } from '../controlplane/index.js';
import { ensureDirectory, writeFileAtomic } from '../fs/atomic.js';
import { resolveStoreCredentials, type StoreCredentials } from './credentials.js';
import { parseScheduledBackup, type ScheduledBackup } from './scheduled-backups.js';
import { archivePaths, checkEmptyWalArchiveFlag, type ArchiveSettings } from './settings.js';

/** The backup part of the desired state: the configuration and the credentials read from its Secrets. */
export interface BackupState {
  readonly credentials: StoreCredentials | undefined;
  /** Files mode's ScheduledBackup manifests (scheduled-backups.ts); empty in Kubernetes mode. */
  readonly scheduled: readonly ScheduledBackup[];
}

export async function loadBackupState(controlPlane: ControlPlane, cluster: Cluster): Promise<BackupState> {
  const store = cluster.backup.barmanObjectStore;
  const manifests = (await controlPlane.readScheduledBackups?.()) ?? [];
  return {
    credentials: store === undefined ? undefined : await resolveStoreCredentials(controlPlane, store),
    scheduled: manifests.map(({ source, text }) => parseScheduledBackup(text, source, cluster.name)),
  };
}

/** The environment of every barman-cloud child: the credentials, and AWS_CA_BUNDLE when `endpointCA` is set. */
export function storeEnvironment(runtimeDir: string, backup: BackupState): Record<string, string> {
  const env: Record<string, string> = { ...(backup.credentials?.env ?? {}) };
  if (backup.credentials?.endpointCA !== undefined) env.AWS_CA_BUNDLE = archivePaths(runtimeDir).endpointCA;
  return env;
}

/** A word for /bin/sh, quoted only when it needs it. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_./=:@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** How long (in 20 ms steps) the fast path waits for the daemon to take a new segment up: 100 ms. */
const fastPathPickUpPolls = 5;
/** How long (in 20 ms steps) it waits for an upload under way before it starts `pgim wal-archive`: 5 s. */
const fastPathUploadPolls = 250;

/**
 * CNPG's archive_command shape (`/controller/manager wal-archive --log-destination ... %p`): this very pgim, run by
 * the same Node.js, in its `wal-archive` command. PostgreSQL runs it in PGDATA; it reads everything else from the
 * runtime dir's settings.
 *
 * In front of it, a shell fast path (PostgreSQL runs archive_command with /bin/sh). PostgreSQL's archiver and the
 * daemon's ready-watch see a new `.ready` file at the same moment, so while the daemon listens (its socket exists) the
 * shell first gives it up to 100 ms to take the segment up; while the daemon's upload of it is under way
 * (`<segment>.uploading` in the marker folder) it waits, at most 5 s; then, if the daemon has recorded the segment
 * as in the store (`<segment>`, written by the daemon only, after the store acknowledged the upload, in a 0700
 * folder) and the empty-archive check is not pending, it exits 0 without starting Node. Anything else (no marker, a
 * failed upload, no daemon, the check still to run) is `pgim wal-archive`, which uploads, checks, refuses and
 * records failures for /pg/status exactly as before.
 */
export function archiveCommand(runtimeDir: string, executable: readonly string[] = [process.execPath, process.argv[1] ?? 'pgim']): string {
  const paths = archivePaths(runtimeDir);
  const full = [...executable, 'wal-archive', '--runtime-dir', runtimeDir].map(shellWord).join(' ').concat(' %p');
  return [
    `f=%f d=${shellWord(paths.uploaded)} n=0`,
    `while [ ! -e "$d/$f" ] && [ ! -e "$d/$f.uploading" ] && [ -S ${shellWord(paths.socket)} ] && [ $n -lt ${fastPathPickUpPolls} ]; do sleep 0.02; n=$((n+1)); done`,
    `n=0; while [ -e "$d/$f.uploading" ] && [ $n -lt ${fastPathUploadPolls} ]; do sleep 0.02; n=$((n+1)); done`,
    `[ ! -e ${checkEmptyWalArchiveFlag} ] && [ -e "$d/$f" ] && exit 0`,
    `exec ${full}`,
  ].join('; ');
}

/**
 * Writes the wal-archive settings (0600, in a 0700 folder) and the endpoint CA. Written on every pass, so a
 * rotated credential or a switchover reaches the next archive_command call.
 */
export async function writeArchiveSettings(options: {
  runtimeDir: string;
  cluster: Cluster;
  podName: string;
  archiver: boolean;
  backup: BackupState;
}): Promise<void> {
  const paths = archivePaths(options.runtimeDir);
  await ensureDirectory(paths.dir, 0o700);
  const store = options.cluster.backup.barmanObjectStore;
  if (options.backup.credentials?.endpointCA !== undefined) {
    await ensureDirectory(join(options.runtimeDir, 'certificates'), 0o700);
    await writeFileAtomic(paths.endpointCA, options.backup.credentials.endpointCA, 0o600);
  } else {
    await rm(paths.endpointCA, { force: true });
  }
  const env = storeEnvironment(options.runtimeDir, options.backup);
  const settings: ArchiveSettings = {
    version: 1,
    clusterName: options.cluster.name,
    podName: options.podName,
    archiver: options.archiver,
    store,
    env,
  };
  await writeFileAtomic(paths.settings, JSON.stringify(settings), 0o600);
}
