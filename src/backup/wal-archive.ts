import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { checkWalArchiveArgs, walArchiveArgs } from './barman.js';
import { archivePaths, checkEmptyWalArchiveFlag, readArchiveSettings, type ArchivePaths, type ArchiveResult, type ArchiveSettings } from './settings.js';
import { exists, stderrLogger } from './command-side.js';
import { askJsonLine } from './local-socket.js';
import { runTool, toolError } from './tools.js';
import type { ArchiveReply } from './wal-archiver.js';
import { nativeWalArchiveUnsupported } from './wal-object.js';

/**
 * `pgim wal-archive <%p>`: PostgreSQL's archive_command (CNPG's `manager wal-archive`, `archiver.go`). Runs once
 * per segment, so it loads only this file's imports (no pino, no zod, no pg). It exits 0 only once the segment is
 * in the object store (or no store is configured): on any failure PostgreSQL keeps the segment in pg_wal and asks
 * again.
 */

export interface WalArchiveOptions {
  readonly walPath: string;
  readonly pgdata: string;
  readonly runtimeDir: string;
  /** Skip the "am I the primary" gate: the former primary archiving what it has left, or a partial segment. */
  readonly force?: boolean;
}

const log = stderrLogger('wal-archive');

/** The outcome for the daemon (/pg/status, the condition): written atomically, never failing the caller. */
export async function writeResult(paths: ArchivePaths, result: ArchiveResult): Promise<void> {
  const tmp = `${paths.result}.${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, JSON.stringify(result), { mode: 0o600 });
    await rename(tmp, paths.result);
  } catch {
    await rm(tmp, { force: true });
  }
}

/**
 * CNPG's GatherReadyWALFiles: up to `max` other `.ready` segments, in lexical order (oldest first), as paths
 * relative to PGDATA.
 */
export async function gatherReadyWalFiles(pgdata: string, skip: string, max: number): Promise<string[]> {
  if (max <= 0) return [];
  const entries = await readdir(join(pgdata, 'pg_wal', 'archive_status')).catch(() => [] as string[]);
  const out: string[] = [];
  for (const entry of entries.sort()) {
    if (!entry.endsWith('.ready')) continue;
    const name = entry.slice(0, -'.ready'.length);
    if (name === skip) continue;
    out.push(join('pg_wal', name));
    if (out.length >= max) break;
  }
  return out;
}

/** An empty marker file (0600). */
export async function touch(path: string): Promise<void> {
  const handle = await open(path, 'w', 0o600);
  await handle.close();
}

type ArchiveOne = (walPath: string) => Promise<string | undefined>;

/** barman-cloud-wal-archive for one file: the path for stores pgim cannot write byte for byte itself. */
function barmanArchiver(settings: ArchiveSettings, pgdata: string): ArchiveOne {
  return async (walPath) => {
    if (settings.store === undefined) return undefined;
    const result = await runTool('barman-cloud-wal-archive', walArchiveArgs(settings.store, walPath), settings.env, { cwd: pgdata });
    return result.code === 0 ? undefined : `unexpected failure invoking barman-cloud-wal-archive: ${toolError('barman-cloud-wal-archive', result)}`;
  };
}

/**
 * Archives `walPath` (and, with `wal.maxParallel` > 1, the next ready segments alongside). Resolves to the error
 * text, or '' once `walPath` is safely in the store.
 */
export async function archiveWal(options: WalArchiveOptions): Promise<string> {
  const paths = archivePaths(options.runtimeDir);
  const walName = basename(options.walPath);
  let settings: ArchiveSettings;
  try {
    settings = await readArchiveSettings(paths);
  } catch (err) {
    // Without the settings pgim cannot know whether a store is configured: fail, so nothing is marked done unseen.
    return `failed to get the archive settings (is pgim running?): ${(err as Error).message}`;
  }
  if (settings.store === undefined) return '';
  if (!settings.archiver && options.force !== true) return 'switchover in progress, refusing archiving';

  const marker = join(paths.spool, walName);
  if (await exists(marker)) {
    await rm(marker, { force: true });
    log('info', 'WAL file already archived in parallel', { walName });
    return '';
  }

  const flag = join(options.pgdata, checkEmptyWalArchiveFlag);
  if (await exists(flag)) {
    const check = await runTool('barman-cloud-check-wal-archive', checkWalArchiveArgs(settings.store), settings.env);
    if (check.code !== 0) {
      return `the object store destination ${settings.store.destinationPath} (server ${settings.store.serverName}) is not empty: it holds another cluster's WAL; refusing to archive into it (${toolError('barman-cloud-check-wal-archive', check)})`;
    }
  }

  // pgim's own upload when it writes exactly what Barman would: through the daemon (warm client, read-ahead),
  // else in this process. Otherwise barman-cloud-wal-archive, one process per segment.
  let archiveOne: ArchiveOne;
  let uploaderClose = (): void => undefined;
  if (nativeWalArchiveUnsupported(settings.store) === undefined) {
    // Handed to the running daemon (wal-archiver.ts); with no daemon listening this process uploads.
    const reply = await askJsonLine<ArchiveReply>(paths.socket, { walPath: resolve(options.pgdata, options.walPath), force: options.force === true }, (message) => ({
      error: `the pgim daemon's archiver failed: ${message}`,
    }));
    if (reply !== undefined && reply.delegate !== true) {
      if (reply.error === undefined || reply.error === '') await rm(flag, { force: true });
      return reply.error ?? '';
    }
    const { createWalUploader } = await import('./s3-wal-uploader.js');
    const uploader = await createWalUploader(settings.store, settings.env);
    uploaderClose = () => { uploader.close(); };
    archiveOne = async (path) => {
      try {
        await uploader.upload(resolve(options.pgdata, path));
        return undefined;
      } catch (err) {
        return `WAL upload failed: ${basename(path)}: ${(err as Error).message}`;
      }
    };
  } else {
    archiveOne = barmanArchiver(settings, options.pgdata);
  }

  const extras = await gatherReadyWalFiles(options.pgdata, walName, settings.store.wal.maxParallel - 1);
  if (extras.length > 0) await mkdir(paths.spool, { recursive: true, mode: 0o700 });
  const started = Date.now();
  const [first, ...rest] = await Promise.all([options.walPath, ...extras].map((path) => archiveOne(path))).finally(uploaderClose);
  await Promise.all(
    rest.map(async (error, i) => {
      const extra = basename(extras[i] ?? '');
      if (error === undefined) await touch(join(paths.spool, extra));
      else log('warn', 'parallel WAL archiving failed; PostgreSQL will ask for it again', { walName: extra, error });
    }),
  );
  if (first !== undefined) return first;
  await rm(flag, { force: true });
  log('info', 'Archived WAL file', { walName, extraWalNames: extras.map((e) => basename(e)), elapsedMs: Date.now() - started });
  return '';
}

/** The command: exit 0 on success, 1 otherwise, with the outcome recorded for the daemon. */
export async function walArchiveCommand(options: WalArchiveOptions): Promise<number> {
  const pgdata = resolve(options.pgdata);
  let error: string;
  try {
    error = await archiveWal({ ...options, pgdata });
  } catch (err) {
    error = `wal-archive failed: ${(err as Error).message}`;
  }
  const paths = archivePaths(options.runtimeDir);
  await writeResult(paths, { at: new Date().toISOString(), walName: basename(options.walPath), error });
  if (error !== '') log('error', 'failed to archive WAL file', { walName: basename(options.walPath), error });
  return error === '' ? 0 : 1;
}
