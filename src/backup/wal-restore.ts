import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BarmanObjectStore } from '../cluster/backup.js';
import { cloudArgs } from './barman.js';
import { exists, stderrLogger } from './command-side.js';
import { runTool } from './tools.js';

/**
 * `pgim wal-restore <%f> <%p>`: PostgreSQL's restore_command (CNPG's `manager wal-restore`,
 * internal/cmd/manager/walrestore and barman-cloud's restorer). Runs once per segment PostgreSQL asks for, so it
 * loads only this file's imports.
 *
 * - The requested segment is fetched with barman-cloud-wal-restore; with `wal.maxParallel` N > 1 the next N-1
 *   segments are fetched alongside into the spool (`<runtime-dir>/wal-restore-spool`, CNPG's
 *   `/controller/wal-restore-spool`), and a later call takes its segment from there without asking the store.
 * - Exit 0 once the file is at `<%p>`; 1 otherwise. PostgreSQL reads any exit below 126 as "not there": a recovery
 *   then ends (and promotes), a standby tries streaming and asks again later. Nothing here exits above 125, which
 *   PostgreSQL would take as fatal.
 * - End of the WAL stream (CNPG): when streaming is possible (a replica), a prefetch that finds a segment missing
 *   sets the `end-of-wal-stream` flag; the next call that misses the spool answers "not there" at once (clearing the
 *   flag) instead of asking the store again, so PostgreSQL turns to streaming without waiting on the store.
 * - Credentials come from the settings file (0600), into the children's environment only.
 */

export interface RestoreSettings {
  readonly version: 1;
  /** Undefined: no object store to restore from (CNPG's ErrNoBackupConfigured: "not there", quietly). */
  readonly store: BarmanObjectStore | undefined;
  /** Credentials and AWS_CA_BUNDLE for barman-cloud-wal-restore. */
  readonly env: Readonly<Record<string, string>>;
  /** A primary to stream from exists (this is a replica): the end-of-wal-stream flag is used. */
  readonly streamingAvailable: boolean;
}

export interface RestorePaths {
  readonly dir: string;
  readonly settings: string;
  readonly spool: string;
}

export function restorePaths(runtimeDir: string): RestorePaths {
  const dir = join(runtimeDir, 'wal-restore');
  return { dir, settings: join(dir, 'settings.json'), spool: join(runtimeDir, 'wal-restore-spool') };
}

export const endOfWalStreamFlag = 'end-of-wal-stream';

export async function readRestoreSettings(paths: RestorePaths): Promise<RestoreSettings> {
  const parsed = JSON.parse(await readFile(paths.settings, 'utf8')) as Partial<RestoreSettings>;
  if (parsed.version !== 1 || parsed.env === undefined) throw new Error(`${paths.settings}: unknown version`);
  return parsed as RestoreSettings;
}

/** barman-cloud-wal-restore's arguments (CNPG's CloudWalRestoreOptions), the segment and destination last. */
export function walRestoreArgs(store: BarmanObjectStore, walName: string, destination: string): string[] {
  const base = [...cloudArgs(store), store.destinationPath, store.serverName];
  const extra = store.wal.restoreAdditionalCommandArgs.filter((arg) => {
    const key = arg.split('=')[0] ?? '';
    return key !== '' && !base.includes(key);
  });
  return [...base, ...extra, walName, destination];
}

const walNamePattern = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;

/**
 * CNPG's NextSegments for 16 MB segments: `walName` and the `count - 1` segments after it on the same timeline.
 * A name that is not a segment (a `.history` file, a `.partial`, a `.backup`) is fetched alone.
 */
export function segmentsToFetch(walName: string, count: number, segmentBytes = 16 * 1024 * 1024): string[] {
  const match = walNamePattern.exec(walName);
  if (!match || count <= 1) return [walName];
  const perLog = Math.floor(0x1_0000_0000 / segmentBytes);
  const tli = match[1] ?? '';
  let log = Number.parseInt(match[2] ?? '0', 16);
  let seg = Number.parseInt(match[3] ?? '0', 16);
  const out = [walName];
  while (out.length < count) {
    seg++;
    if (seg >= perLog) {
      seg = 0;
      log++;
      if (log > 0xffffffff) break;
    }
    out.push(`${tli}${log.toString(16).toUpperCase().padStart(8, '0')}${seg.toString(16).toUpperCase().padStart(8, '0')}`);
  }
  return out;
}

const log = stderrLogger('wal-restore');

/** Moves a spooled segment into place; the spool may be on another filesystem than pg_wal. */
async function moveOut(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(from, to);
    await rm(from, { force: true });
  }
}

type FetchOutcome = 'restored' | 'not-found' | 'failed';

/** barman-cloud-wal-restore's exit codes: 1 bucket or WAL not found, 2 connectivity, 3 invalid name, 4 other. */
async function fetchOne(settings: RestoreSettings & { store: BarmanObjectStore }, walName: string, destination: string, signal?: AbortSignal): Promise<{ outcome: FetchOutcome; error?: string }> {
  const result = await runTool('barman-cloud-wal-restore', walRestoreArgs(settings.store, walName, destination), settings.env, { signal }).catch((err: unknown) => {
    if (signal?.aborted === true) return { code: 4, stdout: '', stderr: 'prefetch cancelled' };
    throw err;
  });
  if (result.code === 0) return { outcome: 'restored' };
  const last = result.stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '').at(-1) ?? '';
  return { outcome: result.code === 1 ? 'not-found' : 'failed', error: `barman-cloud-wal-restore exited with code ${result.code}${last === '' ? '' : `: ${last.slice(0, 300)}`}` };
}

export interface WalRestoreOptions {
  readonly walName: string;
  /** `%p`: where PostgreSQL wants the file (relative to PGDATA, where PostgreSQL runs the command). */
  readonly destination: string;
  readonly runtimeDir: string;
}

/** Restores one file; resolves true once it is at the destination. */
export async function restoreWal(options: WalRestoreOptions): Promise<boolean> {
  const started = Date.now();
  const paths = restorePaths(options.runtimeDir);
  let settings: RestoreSettings;
  try {
    settings = await readRestoreSettings(paths);
  } catch (err) {
    log('info', 'no WAL restore settings (is pgim running?): nothing restored', { walName: options.walName, error: (err as Error).message });
    return false;
  }
  const store = settings.store;
  if (store === undefined) {
    log('debug', 'tried restoring WALs, but no backup was configured', { walName: options.walName });
    return false;
  }
  const spooled = join(paths.spool, options.walName);
  if (await exists(spooled)) {
    await moveOut(spooled, options.destination);
    log('info', 'Restored WAL file from spool (parallel)', { walName: options.walName });
    return true;
  }
  const flag = join(paths.spool, endOfWalStreamFlag);
  if (settings.streamingAvailable && (await exists(flag))) {
    await rm(flag, { force: true });
    log('info', 'end-of-wal-stream flag found: answering "not there" once to let PostgreSQL switch to streaming replication', { walName: options.walName });
    return false;
  }
  const names = segmentsToFetch(options.walName, store.wal.maxParallel);
  if (names.length > 1) await mkdir(paths.spool, { recursive: true, mode: 0o700 });
  const withStore = { ...settings, store };
  // When the segment PostgreSQL asked for is not there, the ones after it are not either: the prefetches stop
  // (on a loaded machine each barman-cloud-wal-restore costs seconds of CPU).
  const prefetch = new AbortController();
  const results = await Promise.all(
    names.map(async (name, index) => {
      if (index === 0) {
        const result = await fetchOne(withStore, name, options.destination);
        if (result.outcome !== 'restored') prefetch.abort();
        return result;
      }
      // Prefetched into a temporary name first: a concurrent moveOut never sees half a file.
      const tmp = join(paths.spool, `${name}.${randomBytes(4).toString('hex')}.tmp`);
      const result = await fetchOne(withStore, name, tmp, prefetch.signal);
      if (result.outcome === 'restored') await rename(tmp, join(paths.spool, name));
      else await rm(tmp, { force: true });
      return result;
    }),
  );
  const first = results[0] ?? { outcome: 'failed' as const };
  const endOfStream = results.some((r) => r.outcome === 'not-found');
  if (first.outcome === 'not-found') {
    log('info', 'WAL file not found in the recovery object store', { walName: options.walName, destinationPath: store.destinationPath, serverName: store.serverName });
  } else if (first.outcome === 'failed') {
    log('warn', 'Failed restoring WAL file (PostgreSQL might retry)', { walName: options.walName, error: first.error });
  }
  if (first.outcome !== 'restored') return false;
  if (settings.streamingAvailable && endOfStream) {
    log('info', 'Set end-of-wal-stream flag as one of the WAL files to be prefetched was not found');
    await (await open(flag, 'w', 0o600)).close();
  }
  log('info', 'WAL restore command completed (parallel)', {
    walName: options.walName,
    maxParallel: store.wal.maxParallel,
    successfulWalRestore: results.filter((r) => r.outcome === 'restored').length,
    failedWalRestore: results.filter((r) => r.outcome !== 'restored').length,
    endOfWALStream: endOfStream,
    elapsedMs: Date.now() - started,
  });
  return true;
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
  await new Promise((resolve) => setTimeout(resolve, 100));
  return 1;
}
