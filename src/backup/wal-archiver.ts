import { watch, type FSWatcher } from 'node:fs';
import { access, open, readdir, rename, rm } from 'node:fs/promises';
import type { Server } from 'node:net';
import { basename, isAbsolute, join } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage } from '../errors/index.js';
import { ensureDirectory } from '../fs/atomic.js';
import { gatherReadyWalFiles, touch, writeResult } from './wal-archive.js';
import { serveJsonLines } from './local-socket.js';
import { createWalUploader, type WalUploader } from './s3-wal-uploader.js';
import { archivePaths, checkEmptyWalArchiveFlag, readArchiveSettings, type ArchiveSettings } from './settings.js';
import { nativeWalArchiveUnsupported } from './wal-object.js';

/**
 * The daemon's side of `pgim wal-archive`: a local socket (0600, in the 0700 runtime folder) on which the
 * archive_command hands over one segment and waits for the answer. The daemon keeps one S3 client with warm
 * connections, and while PostgreSQL asks for segment N it already uploads the next `maxParallel - 1` ready ones
 * (CNPG's parallel archiving), so the next asks are answered at once.
 *
 * Ready-watch: once PostgreSQL has called archive_command, the daemon also watches `pg_wal/archive_status` (inotify)
 * and starts uploading a segment the moment its `.ready` file appears, while PostgreSQL's archiver is still starting
 * the `pgim wal-archive` process for it (most of a second on a loaded machine): the ask then finds the upload under
 * way or done. In-flight uploads stay within `wal.maxParallel`; PostgreSQL still marks the segment done itself
 * (the daemon never renames a status file PostgreSQL may be archiving right now).
 *
 * Upload markers (`wal-archive/uploaded/`, 0700, written by this daemon only): `<segment>.uploading` while a
 * read-ahead upload runs, then `<segment>` once the store has acknowledged it, while its `.ready` file exists and
 * this instance still archives to that store. archive_command's shell fast path (runtime.ts) waits while the first
 * exists and exits 0 on the second, so a segment the daemon already uploaded costs PostgreSQL a shell, not a Node
 * start; anything else (no marker, a failed upload, no daemon) runs `pgim wal-archive` as before. The markers are
 * cleared when the daemon starts, when the ready-watch (re)starts, when the store or the archiver role changes, and
 * each one goes with its `.ready` file.
 *
 * Protocol: one JSON line each way. Request `{"walPath": abs, "force": bool}`; reply `{"error": ""}` (archived),
 * `{"error": "..."}` (failed; PostgreSQL keeps the segment and asks again) or `{"delegate": true}` (this store
 * needs barman-cloud-wal-archive: the caller runs it).
 */

export interface ArchiveRequest {
  readonly walPath: string;
  readonly force?: boolean;
}

export interface ArchiveReply {
  readonly error?: string;
  readonly delegate?: boolean;
}

/** A read-ahead upload not yet asked for; forgotten after this long (PostgreSQL took another path). */
const readAheadTtlMs = 10 * 60_000;
/** How long an archived segment is remembered (PostgreSQL renames its status file within moments of the answer). */
const archivedMemoryMs = 60_000;

interface ReadAhead {
  done: Promise<string | undefined>;
  at: number;
  /** PostgreSQL's own call for it came (it renames the status file itself). */
  asked: boolean;
  /** In the store, not yet marked done. */
  uploaded: boolean;
}

/** One segment's way through the daemon, for the benchmark's per-segment timeline (bench/wal-archiver-host.ts). */
export type ArchiveTraceEvent = 'ready-seen' | 'upload-start' | 'upload-end' | 'upload-failed' | 'asked' | 'answered' | 'marker' | 'marked-done';

export class WalArchiver {
  private server: Server | undefined;
  private uploader: { key: string; uploader: Promise<WalUploader> } | undefined;
  /** Uploads started ahead of PostgreSQL's ask, by segment name. */
  private readonly ahead = new Map<string, ReadAhead>();

  /** Segments PostgreSQL is asking for right now (served directly, never read ahead). */
  private readonly asking = new Set<string>();
  /**
   * Segments archived lately (answered, or marked done here), by when: a refill or a ready-watch event that read the
   * folder just before PostgreSQL renamed the status file must not upload them again.
   */
  private readonly archived = new Map<string, number>();
  /** Uploads for asked segments that no read-ahead had started (they count against maxParallel too). */
  private direct = 0;
  private readyWatch: FSWatcher | undefined;
  /**
   * Requests answered, how many of them by a read-ahead upload, and how many read-aheads the ready-watch started
   * (tests and the bench read them).
   */
  readonly stats = { requests: 0, readAhead: 0, markedDone: 0, watchStarted: 0, markers: 0 };

  /**
   * `readyWatch: false`: uploads start only when PostgreSQL asks (the benchmark's reference for the ready-watch).
   * `trace`: called at each step of a segment (the benchmark's timeline).
   */
  constructor(
    private readonly deps: {
      runtimeDir: string;
      pgdata: string;
      logger: Logger;
      readyWatch?: boolean;
      trace?: (walName: string, event: ArchiveTraceEvent) => void;
    },
  ) {}

  private get markers(): string {
    return archivePaths(this.deps.runtimeDir).uploaded;
  }

  /** Set when a marker is written; cleared with the folder (an idle daemon's ready events then cost no rm). */
  private markersWritten = true;

  /** Forgets every upload marker (they are hints for the shell fast path: a missing one only costs a Node start). */
  private async clearMarkers(): Promise<void> {
    if (!this.markersWritten) return;
    this.markersWritten = false;
    await rm(this.markers, { recursive: true, force: true });
    await ensureDirectory(this.markers, 0o700);
  }

  async start(): Promise<void> {
    await this.clearMarkers();
    this.server = await serveJsonLines<ArchiveReply>(
      archivePaths(this.deps.runtimeDir).socket,
      (raw) => {
        const request = raw as ArchiveRequest;
        if (typeof request.walPath !== 'string' || !isAbsolute(request.walPath)) throw new Error('walPath must be absolute');
        return this.archive(request);
      },
      (message) => ({ error: `bad request: ${message}` }),
    );
  }

  stop(): void {
    this.server?.close();
    this.server = undefined;
    this.readyWatch?.close();
    this.readyWatch = undefined;
    void this.uploader?.uploader
      .then((u) => {
        u.close();
      })
      .catch(() => undefined);
    this.uploader = undefined;
  }

  private uploaderFor(settings: ArchiveSettings & { store: NonNullable<ArchiveSettings['store']> }): Promise<WalUploader> {
    const key = JSON.stringify([settings.store, settings.env]);
    if (this.uploader?.key !== key) {
      const previous = this.uploader?.uploader;
      void previous
        ?.then((u) => {
          u.close();
        })
        .catch(() => undefined);
      this.ahead.clear();
      if (previous !== undefined) void this.clearMarkers().catch(() => undefined);
      this.uploader = { key, uploader: createWalUploader(settings.store, settings.env) };
    }
    return this.uploader.uploader;
  }

  /** The upload of one file through `uploader`: undefined when it is in the store, else the error text. */
  private uploadWith(uploader: Promise<WalUploader>): (path: string) => Promise<string | undefined> {
    return async (path) => {
      try {
        await (await uploader).upload(path);
        return undefined;
      } catch (err) {
        return `${basename(path)}: ${errorMessage(err)}`;
      }
    };
  }

  /** Archives one segment (settings re-read each time: credentials rotate, switchovers move the archiver). */
  async archive(request: ArchiveRequest): Promise<ArchiveReply> {
    let settings: ArchiveSettings;
    try {
      settings = await readArchiveSettings(archivePaths(this.deps.runtimeDir));
    } catch (err) {
      return { error: `failed to get the archive settings: ${errorMessage(err)}` };
    }
    const store = settings.store;
    if (store === undefined) return { error: '' };
    if (!settings.archiver && request.force !== true) return { error: 'switchover in progress, refusing archiving' };
    if (nativeWalArchiveUnsupported(store) !== undefined) return { delegate: true };
    const upload = this.uploadWith(this.uploaderFor({ ...settings, store }));
    const walName = basename(request.walPath);

    // Read-ahead: the next ready segments start uploading now (not for forced files: partial or former primary).
    this.asking.add(walName);
    try {
      if (request.force !== true) {
        this.watchReady();
        await this.fill(store.wal.maxParallel - 1, upload);
      }
      return await this.serveAsked(walName, request.walPath, upload);
    } finally {
      this.asking.delete(walName);
    }
  }

  /**
   * Starts the ready-watch (once PostgreSQL archives through this daemon: PGDATA and its archive_status exist then).
   * It goes away with the folder (PGDATA moved aside, a rewind) and the next ask starts it again.
   */
  private watchReady(): void {
    if (this.readyWatch !== undefined || this.server === undefined || this.deps.readyWatch === false) return;
    void this.clearMarkers().catch(() => undefined);
    try {
      const watcher = watch(join(this.deps.pgdata, 'pg_wal', 'archive_status'), { persistent: false });
      watcher.on('change', (_event, filename) => {
        const name = String(filename);
        if (name.endsWith('.ready')) void this.readyAppeared(name.slice(0, -'.ready'.length));
      });
      watcher.on('error', () => {
        watcher.close();
        if (this.readyWatch === watcher) this.readyWatch = undefined;
      });
      this.readyWatch = watcher;
    } catch (err) {
      this.deps.logger.debug({ error: errorMessage(err) }, 'cannot watch archive_status; read-ahead starts with the next ask only');
    }
  }

  /** A `.ready` file appeared (or went): when this daemon archives and a slot is free, its upload starts now. */
  private async readyAppeared(name: string): Promise<void> {
    if (this.asking.has(name)) return;
    const dir = join(this.deps.pgdata, 'pg_wal', 'archive_status');
    try {
      await access(join(dir, `${name}.ready`));
    } catch {
      // Archived (PostgreSQL renamed it after the shell fast path answered, or it went with PGDATA): so do its
      // marker and its finished read-ahead.
      if (this.ahead.get(name)?.uploaded === true) {
        this.ahead.delete(name);
        this.archived.set(name, Date.now());
      }
      await rm(join(this.markers, name), { force: true });
      return;
    }
    if (this.ahead.has(name) || this.archived.has(name)) return;
    this.deps.trace?.(name, 'ready-seen');
    try {
      // Until barman-cloud-check-wal-archive has passed (the first ask does it), nothing goes to the store.
      if (await access(join(this.deps.pgdata, checkEmptyWalArchiveFlag)).then(() => true, () => false)) return;
    } catch {
      return;
    }
    const settings = await readArchiveSettings(archivePaths(this.deps.runtimeDir)).catch(() => undefined);
    const store = settings?.store;
    if (settings !== undefined && !settings.archiver) await this.clearMarkers().catch(() => undefined);
    if (settings === undefined || store === undefined || !settings.archiver || nativeWalArchiveUnsupported(store) !== undefined) return;
    const key = JSON.stringify([store, settings.env]);
    if (this.uploader?.key !== key) return;
    const before = this.ahead.size;
    // The oldest ready segments first (PostgreSQL asks in that order); the one that appeared is usually the only one.
    await this.fill(store.wal.maxParallel - this.direct, this.uploadWith(this.uploader.uploader));
    if (this.ahead.size > before) this.stats.watchStarted++;
  }

  private async serveAsked(walName: string, walPath: string, upload: (path: string) => Promise<string | undefined>): Promise<ArchiveReply> {
    const early = this.ahead.get(walName);
    if (early !== undefined) early.asked = true;
    this.ahead.delete(walName);
    this.deps.trace?.(walName, 'asked');
    this.stats.requests++;
    if (early !== undefined) this.stats.readAhead++;
    const started = Date.now();
    let error: string | undefined;
    if (early === undefined) {
      this.direct++;
      this.deps.trace?.(walName, 'upload-start');
      try {
        error = await upload(walPath);
        this.deps.trace?.(walName, error === undefined ? 'upload-end' : 'upload-failed');
      } finally {
        this.direct--;
      }
    } else error = await early.done;
    // A read-ahead that failed is retried once now, the way PostgreSQL would.
    if (error !== undefined && early !== undefined) error = await upload(walPath);
    if (error === undefined) {
      this.archived.set(walName, Date.now());
      this.deps.logger.debug({ walName, elapsedMs: Date.now() - started, readAhead: early !== undefined }, 'Archived WAL file');
      await this.markUploadedDone();
    }
    this.deps.trace?.(walName, 'answered');
    return { error: error === undefined ? '' : `WAL upload failed: ${error}` };
  }

  /**
   * Keeps up to `slots` read-ahead uploads running over the ready segments (oldest first), refilled as each ends.
   * What they uploaded is marked done by `markUploadedDone`, while PostgreSQL waits for an answer.
   */
  private async fill(slots: number, upload: (path: string) => Promise<string | undefined>): Promise<void> {
    if (slots <= 0) return;
    const now = Date.now();
    for (const [name, entry] of this.ahead) if (now - entry.at > readAheadTtlMs) this.ahead.delete(name);
    for (const [name, at] of this.archived) if (now - at > archivedMemoryMs) this.archived.delete(name);
    const running = [...this.ahead.values()].filter((e) => !e.uploaded).length;
    const free = slots - running;
    if (free <= 0) return;
    const ready = await gatherReadyWalFiles(this.deps.pgdata, '', slots + this.ahead.size + this.asking.size);
    let started = 0;
    for (const relative of ready) {
      if (started >= free) break;
      const name = basename(relative);
      if (this.ahead.has(name) || this.asking.has(name) || this.archived.has(name)) continue;
      const entry: ReadAhead = { done: Promise.resolve(undefined), at: now, asked: false, uploaded: false };
      entry.done = this.uploadAhead(name, join(this.deps.pgdata, relative), upload).then(({ error, stillArchiving }) => {
        entry.uploaded = error === undefined;
        if (error === undefined && stillArchiving) void this.fill(slots, upload);
        return error;
      });
      this.ahead.set(name, entry);
      started++;
    }
    void this.dropStaleMarkers().catch(() => undefined);
  }

  /**
   * One read-ahead upload, under its `.uploading` marker: the error text, or none once the segment is in the store;
   * then, while this instance still archives there, the `<segment>` marker answers PostgreSQL's ask.
   */
  private async uploadAhead(
    name: string,
    path: string,
    upload: (path: string) => Promise<string | undefined>,
  ): Promise<{ error: string | undefined; stillArchiving: boolean }> {
    const uploading = join(this.markers, `${name}.uploading`);
    this.markersWritten = true;
    await touch(uploading).catch(() => undefined);
    this.deps.trace?.(name, 'upload-start');
    try {
      const error = await upload(path);
      this.deps.trace?.(name, error === undefined ? 'upload-end' : 'upload-failed');
      if (error !== undefined) return { error, stillArchiving: true };
      // Settings changed meanwhile (a switchover, another store): no marker, and no refill.
      if (!(await this.stillArchiving())) return { error, stillArchiving: false };
      await this.markUploaded(name).catch((err: unknown) => {
        this.deps.logger.debug({ walName: name, error: errorMessage(err) }, 'could not write the upload marker; PostgreSQL will ask for it');
      });
      return { error, stillArchiving: true };
    } finally {
      // After the marker: the shell fast path, which waits while this file exists, then finds the marker.
      await rm(uploading, { force: true });
    }
  }

  /** The marker, while PostgreSQL has yet to archive the segment; and the outcome, for /pg/status and the condition. */
  private async markUploaded(name: string): Promise<void> {
    if (!(await access(join(this.deps.pgdata, 'pg_wal', 'archive_status', `${name}.ready`)).then(() => true, () => false))) return;
    this.markersWritten = true;
    await touch(join(this.markers, name));
    this.stats.markers++;
    this.deps.trace?.(name, 'marker');
    await writeResult(archivePaths(this.deps.runtimeDir), { at: new Date().toISOString(), walName: name, error: '' });
  }

  /** Markers whose `.ready` file is gone (archived, or PGDATA replaced): removed, so none outlives its segment. */
  private async dropStaleMarkers(): Promise<void> {
    const status = join(this.deps.pgdata, 'pg_wal', 'archive_status');
    for (const entry of await readdir(this.markers)) {
      if (entry.endsWith('.uploading')) continue;
      if (!(await access(join(status, `${entry}.ready`)).then(() => true, () => false))) await rm(join(this.markers, entry), { force: true });
    }
  }

  /**
   * Marks the segments uploaded ahead done (`.ready` -> `.done`, as PostgreSQL's archiver does after a successful
   * archive_command), so PostgreSQL starts no archive_command process for them: its archiver (15+) re-checks the
   * `.ready` file before each call precisely so that an archive_command may mark later files done. Called only
   * while PostgreSQL waits for this request's answer, so it never races PostgreSQL's own rename.
   */
  private async markUploadedDone(): Promise<void> {
    for (const [name, entry] of this.ahead) {
      if (!entry.uploaded || entry.asked) continue;
      this.ahead.delete(name);
      this.archived.set(name, Date.now());
      this.deps.trace?.(name, 'marked-done');
      await this.markDone(name).catch((err: unknown) => {
        this.deps.logger.debug({ walName: name, error: errorMessage(err) }, 'could not mark a WAL file done; PostgreSQL will ask for it');
      });
    }
  }

  /** The refill goes on only while this instance archives to the same store (no switchover, no new settings). */
  private async stillArchiving(): Promise<boolean> {
    const settings = await readArchiveSettings(archivePaths(this.deps.runtimeDir)).catch(() => undefined);
    return settings?.store !== undefined && settings.archiver && JSON.stringify([settings.store, settings.env]) === this.uploader?.key;
  }

  /** PostgreSQL's pgarch_archiveDone: a durable rename of the status file. */
  private async markDone(name: string): Promise<void> {
    const dir = join(this.deps.pgdata, 'pg_wal', 'archive_status');
    await rename(join(dir, `${name}.ready`), join(dir, `${name}.done`));
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    this.stats.markedDone++;
  }
}
