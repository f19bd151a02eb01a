import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BarmanObjectStore } from '../cluster/backup.js';

/**
 * What `pgim wal-archive` needs, materialised by the daemon in the runtime dir after every reconcile (CNPG's
 * `/cache/wal-archive` and `/cache/cluster`, as a file instead of a local HTTP call: one read, no server, and it
 * works while the daemon restarts). The folder is 0700 and the file 0600 (it holds the S3 credentials), like the
 * passfile next to it.
 */
export interface ArchiveSettings {
  readonly version: 1;
  readonly clusterName: string;
  readonly podName: string;
  /** This instance is the target primary: the only one that archives (CNPG's `currentPrimary == POD_NAME` gate). */
  readonly archiver: boolean;
  /** Undefined: no object store configured; every segment is "archived" as CNPG does (nothing is uploaded). */
  readonly store: BarmanObjectStore | undefined;
  /** Credentials and AWS_CA_BUNDLE for the barman-cloud children. */
  readonly env: Readonly<Record<string, string>>;
}

/** The outcome of the latest `wal-archive` run, for /pg/status, the log and the ContinuousArchiving condition. */
export interface ArchiveResult {
  readonly at: string;
  readonly walName: string;
  /** Empty on success (CNPG's condition handler convention). */
  readonly error: string;
}

export interface ArchivePaths {
  readonly dir: string;
  readonly settings: string;
  readonly result: string;
  /** CNPG's `/controller/wal-archive-spool`: markers of segments already uploaded in parallel. */
  readonly spool: string;
  /** Where the endpoint CA lands (CNPG's `backup-barman-ca.crt`). */
  readonly endpointCA: string;
  /** The daemon's archiver socket (wal-archiver.ts), 0600. */
  readonly socket: string;
  /**
   * Markers only the daemon writes (wal-archiver.ts): `<segment>` once its upload is in the store, `<segment>.uploading`
   * while it is under way. archive_command's shell fast path (runtime.ts) answers from them without starting Node.
   */
  readonly uploaded: string;
}

export function archivePaths(runtimeDir: string): ArchivePaths {
  const dir = join(runtimeDir, 'wal-archive');
  return {
    dir,
    settings: join(dir, 'settings.json'),
    result: join(dir, 'result.json'),
    spool: join(runtimeDir, 'wal-archive-spool'),
    endpointCA: join(runtimeDir, 'certificates', 'backup-barman-ca.crt'),
    socket: join(dir, 'archiver.sock'),
    uploaded: join(dir, 'uploaded'),
  };
}

export { checkEmptyWalArchiveFlag } from '../postgres/datadir.js';

export async function readArchiveSettings(paths: ArchivePaths): Promise<ArchiveSettings> {
  const parsed = JSON.parse(await readFile(paths.settings, 'utf8')) as Partial<ArchiveSettings> & { version?: unknown };
  if (parsed.version !== 1 || parsed.env === undefined) throw new Error(`${paths.settings}: unknown version`);
  return parsed as ArchiveSettings;
}

export async function readArchiveResult(paths: ArchivePaths): Promise<ArchiveResult | undefined> {
  try {
    return JSON.parse(await readFile(paths.result, 'utf8')) as ArchiveResult;
  } catch {
    return undefined;
  }
}
