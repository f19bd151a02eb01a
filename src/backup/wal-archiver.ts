import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { basename, isAbsolute, join } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage } from '../errors/index.js';
import { ensureDirectory } from '../fs/atomic.js';
import { gatherReadyWalFiles } from './wal-archive.js';
import { createWalUploader, type WalUploader } from './s3-wal-uploader.js';
import { archivePaths, readArchiveSettings, type ArchiveSettings } from './settings.js';
import { nativeWalArchiveUnsupported } from './wal-object.js';

/**
 * The daemon's side of `pgim wal-archive`: a local socket (0600, in the 0700 runtime folder) on which the
 * archive_command hands over one segment and waits for the answer. The daemon keeps one S3 client with warm
 * connections, and while PostgreSQL asks for segment N it already uploads the next `maxParallel - 1` ready ones
 * (CNPG's parallel archiving), so the next asks are answered at once.
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

export class WalArchiver {
  private server: Server | undefined;
  private uploader: { key: string; uploader: Promise<WalUploader> } | undefined;
  /** Uploads started ahead of PostgreSQL's ask, by segment name. */
  private readonly ahead = new Map<string, { done: Promise<string | undefined>; at: number }>();

  /** Requests answered, and how many of them by a read-ahead upload (tests and the bench read them). */
  readonly stats = { requests: 0, readAhead: 0 };

  constructor(private readonly deps: { runtimeDir: string; pgdata: string; logger: Logger }) {}

  async start(): Promise<void> {
    const paths = archivePaths(this.deps.runtimeDir);
    await ensureDirectory(paths.dir, 0o700);
    await rm(paths.socket, { force: true });
    const server = createServer((socket) => { this.serve(socket); });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(paths.socket, () => { resolve(); });
    });
    await chmod(paths.socket, 0o600);
    server.unref();
    this.server = server;
  }

  stop(): void {
    this.server?.close();
    this.server = undefined;
    void this.uploader?.uploader
      .then((u) => {
        u.close();
      })
      .catch(() => undefined);
    this.uploader = undefined;
  }

  private serve(socket: Socket): void {
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > 8192) return void socket.destroy();
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      socket.removeAllListeners('data');
      let request: ArchiveRequest;
      try {
        request = JSON.parse(buffered.slice(0, newline)) as ArchiveRequest;
        if (typeof request.walPath !== 'string' || !isAbsolute(request.walPath)) throw new Error('walPath must be absolute');
      } catch (err) {
        return void socket.end(`${JSON.stringify({ error: `bad request: ${errorMessage(err)}` })}\n`);
      }
      void this.archive(request).then((reply) => socket.end(`${JSON.stringify(reply)}\n`));
    });
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
      this.uploader = { key, uploader: createWalUploader(settings.store, settings.env) };
    }
    return this.uploader.uploader;
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
    const uploader = this.uploaderFor({ ...settings, store });
    const walName = basename(request.walPath);
    const upload = async (path: string): Promise<string | undefined> => {
      try {
        await (await uploader).upload(path);
        return undefined;
      } catch (err) {
        return `${basename(path)}: ${errorMessage(err)}`;
      }
    };

    // Read-ahead: the next ready segments start uploading now (not for forced files: partial or former primary).
    if (request.force !== true && store.wal.maxParallel > 1) {
      const now = Date.now();
      for (const [name, entry] of this.ahead) if (now - entry.at > readAheadTtlMs) this.ahead.delete(name);
      const budget = store.wal.maxParallel - 1 - this.ahead.size;
      const ready = await gatherReadyWalFiles(this.deps.pgdata, walName, store.wal.maxParallel - 1 + this.ahead.size);
      let started = 0;
      for (const relative of ready) {
        if (started >= budget) break;
        const name = basename(relative);
        if (this.ahead.has(name)) continue;
        this.ahead.set(name, { done: upload(join(this.deps.pgdata, relative)), at: now });
        started++;
      }
    }

    const early = this.ahead.get(walName);
    this.ahead.delete(walName);
    this.stats.requests++;
    if (early !== undefined) this.stats.readAhead++;
    const started = Date.now();
    let error = early === undefined ? await upload(request.walPath) : await early.done;
    // A read-ahead that failed is retried once now, the way PostgreSQL would.
    if (error !== undefined && early !== undefined) error = await upload(request.walPath);
    if (error === undefined) this.deps.logger.debug({ walName, elapsedMs: Date.now() - started, readAhead: early !== undefined }, 'Archived WAL file');
    return { error: error === undefined ? '' : `WAL upload failed: ${error}` };
  }
}
