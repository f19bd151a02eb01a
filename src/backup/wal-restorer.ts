import { randomBytes } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BarmanObjectStore } from '../cluster/backup.js';
import { exists } from './command-side.js';
import { createWalFetcher, type WalFetcher } from './s3-wal-fetcher.js';
import { runTool } from './tools.js';
import { isAnyXlogFile } from './wal-object.js';
import { endOfWalStreamFlag, readRestoreSettings, restorePaths, segmentsToFetch, walRestoreArgs, type RestorePaths, type RestoreSettings } from './wal-restore-settings.js';

/**
 * The work behind `pgim wal-restore` (CNPG's `manager wal-restore` and barman-cloud's restorer): one WAL file to
 * where PostgreSQL wants it, with `wal.maxParallel - 1` segments read ahead into the spool
 * (`<runtime-dir>/wal-restore-spool`, CNPG's `/controller/wal-restore-spool`).
 *
 * - Fetched by pgim's own S3 client (s3-wal-fetcher.ts) for uncompressed and gzip objects; bzip2 and snappy objects,
 *   and stores with `wal.restoreAdditionalCommandArgs` (only Barman knows what they mean), by
 *   barman-cloud-wal-restore.
 * - `server` mode (a long-lived pgim: the daemon, or `pgim restore`, serving the restore_command over a socket):
 *   a sliding window; every segment served from the spool starts the next one, so `maxParallel - 1` downloads are
 *   always ahead of replay. `one-shot` mode (`pgim wal-restore` with nobody to ask): CNPG's batches, the requested
 *   segment and the next ones fetched together, the process waiting for all of them before it exits.
 * - End of the WAL stream: when streaming is possible (a replica), a segment found missing ahead is answered "not
 *   there" at once when PostgreSQL asks for it, so PostgreSQL turns to streaming without waiting on the store
 *   (CNPG's end-of-wal-stream flag; the one-shot command keeps the flag file).
 * - Settings are re-read for every request (a restore hands over to the cluster's own store, credentials rotate);
 *   when they change, what was read ahead is dropped.
 */

export type Log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface RestoreReply {
  readonly outcome: 'restored' | 'not-found' | 'failed';
  readonly error?: string;
}

interface ReadAhead {
  readonly file: string;
  readonly abort: AbortController;
  done: Promise<RestoreReply>;
  /** In the spool under its own name (where restore_command's shell may take it). */
  spooled: boolean;
}

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

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class WalRestorer {
  private readonly paths: RestorePaths;
  private source: { key: string; fetcher: Promise<WalFetcher> | undefined } | undefined;
  private readonly ahead = new Map<string, ReadAhead>();
  private missingAhead = false;
  private streamingAvailable = false;
  /** The settings of the last request: what a segment taken by restore_command's shell slides the window with. */
  private current: (RestoreSettings & { store: BarmanObjectStore }) | undefined;
  private watcher: FSWatcher | undefined;
  /** `fromShell`: segments restore_command's shell moved out of the spool itself (no pgim started). */
  readonly stats = { requests: 0, fromSpool: 0, fromShell: 0, fetched: 0, delegated: 0 };

  constructor(private readonly deps: { runtimeDir: string; log: Log; mode: 'server' | 'one-shot' }) {
    this.paths = restorePaths(deps.runtimeDir);
  }

  /** Restores `walName` at `destination` (absolute). */
  async restore(walName: string, destination: string): Promise<RestoreReply> {
    this.stats.requests++;
    const { log } = this.deps;
    let settings: RestoreSettings;
    try {
      settings = await readRestoreSettings(this.paths);
    } catch (err) {
      log('info', 'no WAL restore settings (is pgim running?): nothing restored', { walName, error: errorText(err) });
      return { outcome: 'not-found' };
    }
    const store = settings.store;
    if (store === undefined) {
      log('debug', 'tried restoring WALs, but no backup was configured', { walName });
      return { outcome: 'not-found' };
    }
    if (!isAnyXlogFile(walName)) return { outcome: 'failed', error: `${walName} is an invalid name for a WAL file` };
    await this.adopt(settings);
    const started = Date.now();
    const withStore = { ...settings, store };
    this.current = withStore;

    const early = this.ahead.get(walName);
    if (early !== undefined) {
      this.ahead.delete(walName);
      const read = await early.done;
      if (read.outcome === 'restored' && (await this.takeSpooled(early.file, destination))) {
        this.stats.fromSpool++;
        if (this.deps.mode === 'server') this.readAhead(withStore, segmentsToFetch(walName, store.wal.maxParallel).slice(1));
        log('info', 'Restored WAL file from spool (parallel)', { walName, elapsedMs: Date.now() - started });
        return read;
      }
      if (read.outcome === 'not-found' && settings.streamingAvailable) {
        log('info', 'end of the WAL stream: a WAL file read ahead was not found; answering "not there" to let PostgreSQL switch to streaming replication', { walName });
        return read;
      }
    } else if (await this.takeSpooled(join(this.paths.spool, walName), destination)) {
      this.stats.fromSpool++;
      log('info', 'Restored WAL file from spool (parallel)', { walName });
      return { outcome: 'restored' };
    } else if (settings.streamingAvailable && (await exists(join(this.paths.spool, endOfWalStreamFlag)))) {
      // The one-shot command's flag: an earlier call found a segment after its own missing.
      await rm(join(this.paths.spool, endOfWalStreamFlag), { force: true });
      log('info', 'end-of-wal-stream flag found: answering "not there" once to let PostgreSQL switch to streaming replication', { walName });
      return { outcome: 'not-found' };
    }

    // Only segments have a next one (a history file or a .partial is fetched alone, the window left as it is).
    const window = segmentsToFetch(walName, store.wal.maxParallel).slice(1);
    if (window.length > 0) this.readAhead(withStore, window);
    const result = await this.fetchInto(withStore, walName, destination);
    if (result.outcome !== 'restored') {
      // The segment asked for is not there: the ones after it are not either.
      for (const name of window) this.drop(name);
      if (result.outcome === 'not-found') log('info', 'WAL file not found in the recovery object store', { walName, destinationPath: store.destinationPath, serverName: store.serverName });
      else log('warn', 'Failed restoring WAL file (PostgreSQL might retry)', { walName, error: result.error });
      return result;
    }
    log('info', 'WAL restore command completed (parallel)', { walName, maxParallel: store.wal.maxParallel, readAhead: window.length, elapsedMs: Date.now() - started });
    return result;
  }

  /**
   * Loads the S3 client and checks the bucket before PostgreSQL's first call (a restore does it while the base
   * backup downloads): the SDK's import and the first TLS handshake then cost the replay nothing. Errors are left
   * for the first real request to report.
   */
  async warmUp(): Promise<void> {
    const settings = await readRestoreSettings(this.paths).catch(() => undefined);
    const store = settings?.store;
    if (settings === undefined || store === undefined || store.wal.restoreAdditionalCommandArgs.length > 0) return;
    await this.adopt(settings);
    const fetcher = await this.fetcher({ ...settings, store }).catch(() => undefined);
    await fetcher?.checkBucket().catch(() => undefined);
  }

  /**
   * Server mode: starts reading `walName` and the segments after it into the spool before PostgreSQL asks (a
   * restore knows its backup's first segment while the base backup still downloads): restore_command's shell then
   * finds even the first one in place.
   */
  async readAheadFrom(walName: string): Promise<void> {
    if (this.deps.mode !== 'server') return;
    const settings = await readRestoreSettings(this.paths).catch(() => undefined);
    const store = settings?.store;
    if (settings === undefined || store === undefined) return;
    await this.adopt(settings);
    this.current = { ...settings, store };
    this.readAhead(this.current, segmentsToFetch(walName, store.wal.maxParallel));
  }

  /** Waits for every read-ahead (one-shot mode: the process exits after it). */
  async settle(): Promise<void> {
    await Promise.all([...this.ahead.values()].map((entry) => entry.done));
  }

  /** A segment read ahead was missing and PostgreSQL can stream (one-shot mode: the caller sets the flag file). */
  endOfStreamAhead(): boolean {
    return this.missingAhead && this.streamingAvailable;
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
    this.current = undefined;
    // What a one-shot call read ahead stays in the spool for the next call.
    if (this.deps.mode === 'server') for (const name of [...this.ahead.keys()]) this.drop(name);
    else this.ahead.clear();
    const fetcher = this.source?.fetcher;
    this.source = undefined;
    void fetcher?.then((f) => { f.close(); }).catch(() => undefined);
  }

  /** New settings (another store, new credentials, primary <-> replica): what was read ahead is dropped. */
  private async adopt(settings: RestoreSettings): Promise<void> {
    const key = JSON.stringify(settings);
    if (this.source?.key === key) return;
    const first = this.source === undefined;
    this.close();
    this.source = { key, fetcher: undefined };
    this.streamingAvailable = settings.streamingAvailable;
    // A long-lived server starts from an empty spool (what an earlier process left may be another store's);
    // the one-shot command reuses what the previous call read ahead.
    if (this.deps.mode === 'server' || !first) await rm(this.paths.spool, { recursive: true, force: true });
  }

  private async takeSpooled(file: string, destination: string): Promise<boolean> {
    if (!(await exists(file))) return false;
    try {
      await moveOut(file, destination);
      return true;
    } catch (err) {
      this.deps.log('warn', 'could not move a WAL file out of the spool; fetching it again', { file, error: errorText(err) });
      return false;
    }
  }

  private drop(name: string): void {
    const entry = this.ahead.get(name);
    if (entry === undefined) return;
    this.ahead.delete(name);
    entry.abort.abort();
    void entry.done.finally(() => rm(entry.file, { force: true })).catch(() => undefined);
  }

  /** Starts the read-ahead of `names` (not yet spooled or under way); in server mode, drops what is outside them. */
  private readAhead(settings: RestoreSettings & { store: BarmanObjectStore }, names: readonly string[]): void {
    if (this.deps.mode === 'server') for (const name of [...this.ahead.keys()]) if (!names.includes(name)) this.drop(name);
    for (const name of names) {
      if (this.ahead.has(name)) continue;
      const file = join(this.paths.spool, name);
      const abort = new AbortController();
      const entry: ReadAhead = { file, abort, done: Promise.resolve({ outcome: 'failed' }), spooled: false };
      entry.done = (async (): Promise<RestoreReply> => {
        if (await exists(file)) {
          entry.spooled = true;
          return { outcome: 'restored' };
        }
        // A spool created now (first use, or removed since: new settings) gets a new watch.
        const created = await mkdir(this.paths.spool, { recursive: true, mode: 0o700 });
        // Into a temporary name first: nobody ever takes half a file.
        const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
        this.watchSpool(created !== undefined);
        const result = await this.fetchInto(settings, name, tmp, abort.signal);
        if (result.outcome === 'restored' && !abort.signal.aborted) {
          await rename(tmp, file);
          entry.spooled = true;
          // Taken by the shell before the watcher's event could find it spooled.
          this.spoolChanged(name);
        } else await rm(tmp, { force: true });
        if (result.outcome === 'not-found') this.missingAhead = true;
        return abort.signal.aborted ? { outcome: 'failed', error: 'read-ahead cancelled' } : result;
      })().catch((err: unknown): RestoreReply => ({ outcome: 'failed', error: errorText(err) }));
      this.ahead.set(name, entry);
    }
  }

  /**
   * Server mode: restore_command's shell moves a spooled segment into place itself, without starting pgim
   * (restore-runtime.ts). The spool is watched (inotify) so that a segment taken that way slides the read-ahead
   * window as a request served from the spool does.
   */
  private watchSpool(renew: boolean): void {
    if (this.deps.mode !== 'server' || (this.watcher !== undefined && !renew)) return;
    this.watcher?.close();
    this.watcher = undefined;
    try {
      const watcher = watch(this.paths.spool, { persistent: false }, (_event, name) => {
        if (name !== null) this.spoolChanged(name);
      });
      watcher.on('error', () => {
        watcher.close();
        if (this.watcher === watcher) this.watcher = undefined;
      });
      this.watcher = watcher;
    } catch (err) {
      this.deps.log('debug', 'the WAL restore spool cannot be watched: segments taken by restore_command itself slide the read-ahead on the next request', { error: errorText(err) });
    }
  }

  /** A spool entry changed: a spooled read-ahead that is gone was taken by restore_command's shell. */
  private spoolChanged(name: string): void {
    const entry = this.ahead.get(name);
    if (entry?.spooled !== true) return;
    void exists(entry.file).then((present) => {
      if (present || this.ahead.get(name) !== entry) return;
      this.ahead.delete(name);
      this.stats.fromSpool++;
      this.stats.fromShell++;
      this.deps.log('info', 'Restored WAL file from spool (parallel, moved by restore_command)', { walName: name });
      const current = this.current;
      if (current !== undefined) this.readAhead(current, segmentsToFetch(name, current.store.wal.maxParallel).slice(1));
    });
  }

  private fetcher(settings: RestoreSettings & { store: BarmanObjectStore }): Promise<WalFetcher> {
    if (this.source === undefined) throw new Error('no store adopted');
    const created = (this.source.fetcher ??= createWalFetcher(settings.store, settings.env));
    created.catch(() => {
      if (this.source?.fetcher === created) this.source.fetcher = undefined;
    });
    return created;
  }

  private async fetchInto(settings: RestoreSettings & { store: BarmanObjectStore }, walName: string, destination: string, signal?: AbortSignal): Promise<RestoreReply> {
    if (settings.store.wal.restoreAdditionalCommandArgs.length > 0) return this.barman(settings, walName, destination, signal);
    let result;
    try {
      result = await (await this.fetcher(settings)).fetch(walName, destination, signal);
    } catch (err) {
      return { outcome: 'failed', error: `WAL download failed: ${walName}: ${errorText(err)}` };
    }
    if (typeof result === 'object') return this.barman(settings, walName, destination, signal);
    if (result === 'restored') this.stats.fetched++;
    return { outcome: result };
  }

  /** barman-cloud-wal-restore's exit codes: 1 bucket or WAL not found, 2 connectivity, 3 invalid name, 4 other. */
  private async barman(settings: RestoreSettings & { store: BarmanObjectStore }, walName: string, destination: string, signal?: AbortSignal): Promise<RestoreReply> {
    this.stats.delegated++;
    const result = await runTool('barman-cloud-wal-restore', walRestoreArgs(settings.store, walName, destination), settings.env, { signal }).catch((err: unknown) => {
      if (signal?.aborted === true) return { code: 4, stdout: '', stderr: 'read-ahead cancelled' };
      throw err;
    });
    if (result.code === 0) return { outcome: 'restored' };
    const last = result.stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '').at(-1) ?? '';
    return { outcome: result.code === 1 ? 'not-found' : 'failed', error: `barman-cloud-wal-restore exited with code ${result.code}${last === '' ? '' : `: ${last.slice(0, 300)}`}` };
  }
}
