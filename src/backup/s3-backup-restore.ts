import { spawn } from 'node:child_process';
import { mkdir, readdir, realpath, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { BarmanObjectStore } from '../cluster/backup.js';
import { backupFiles, backupIdsFromListing, basePrefix, parseBackupInfo, walDirectory, type BackupInfo, type TarCompression } from './backup-info.js';
import { createStoreClient, httpStatus, type StoreClient } from './s3-client.js';
import { isAnyXlogFile, parseDestination, pythonPathJoin } from './wal-object.js';

/** A key whose name is a WAL file, plain or with one of Barman's compression suffixes (get_wal_paths). */
function isArchivedWalKey(key: string): boolean {
  const name = key.slice(key.lastIndexOf('/') + 1);
  return isAnyXlogFile(name) || (/\.(gz|bz2|snappy)$/.test(name) && isAnyXlogFile(name.replace(/\.[^.]+$/, '')));
}

/**
 * pgim's own barman-cloud-backup-list and barman-cloud-restore (3.4) for S3 stores, on the S3 client pgim's WAL
 * upload and download share: the catalog is every `base/<id>/backup.info` (read in parallel), and a backup is
 * restored by streaming each tar from the store, decompressed by Node when gzip, straight into `tar -x` (no copy of
 * the whole file on disk), PGDATA and every tablespace at once. bzip2 and snappy backups are left to
 * barman-cloud-restore (`{ delegate }`): Node cannot decode them without another dependency.
 *
 * Errors carry what Barman's would say (an unknown backup, a missing tar, a folder not empty), and a store that
 * cannot be reached or refuses the credentials is told apart (BackupStoreError).
 */

/** The store could not be used: unreachable, no such bucket, or the request refused (credentials). */
export class BackupStoreError extends Error {}

/** A clear sentence for an SDK error (never a credential: the SDK's messages hold none). */
function storeError(err: unknown, store: BarmanObjectStore, bucket: string, what: string): BackupStoreError {
  const status = httpStatus(err);
  const e = err as { name?: string; code?: string; message?: string; Code?: string };
  if (status === undefined) {
    return new BackupStoreError(`cannot reach the object store${store.endpointURL === undefined ? '' : ` at ${store.endpointURL}`} (${what}): ${e.code ?? e.name ?? 'error'}${e.message === undefined || e.message === '' ? '' : `: ${e.message}`}`);
  }
  if (status === 404 && what === 'HeadBucket') return new BackupStoreError(`the bucket ${bucket} does not exist`);
  const code = e.Code ?? (e.name !== undefined && e.name !== 'Error' && e.name !== 'UnknownError' ? e.name : undefined);
  return new BackupStoreError(`the object store answered HTTP ${status}${code === undefined ? '' : ` (${code})`} to ${what}${status === 401 || status === 403 ? ': the credentials were refused' : ''}`);
}

export interface RestoreProgress {
  /** Uncompressed tar bytes handed to the extractor so far. */
  readonly bytes: number;
}

export interface BackupStore {
  /** barman-cloud-backup-list: every readable backup.info under `base/`; unreadable ones are reported apart. */
  listBackups(signal?: AbortSignal): Promise<{ backups: BackupInfo[]; unreadable: { backupId: string; error: string }[] }>;
  /** One backup's backup.info; undefined when it does not exist. */
  backupInfo(backupId: string, signal?: AbortSignal): Promise<BackupInfo | undefined>;
  /**
   * barman-cloud-restore of `info` into `destination` (missing or empty); tablespaces to their recorded locations
   * unless `tablespaces` relocates them by name. `{ delegate }` when Barman must do it (nothing was written then).
   */
  /**
   * barman-cloud-check-wal-archive without `--timeline`: whether `wals/` holds no WAL file at all (a missing
   * bucket passes). Throws when the store cannot be used.
   */
  walArchiveEmpty(signal?: AbortSignal): Promise<boolean>;
  restore(info: BackupInfo, destination: string, options?: { tablespaces?: Readonly<Record<string, string>>; progress?: (p: RestoreProgress) => void; signal?: AbortSignal | undefined }): Promise<'restored' | { delegate: TarCompression | 'snapshot' }>;
  close(): void;
}

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  const entries = await readdir(dir).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  });
  return entries.length === 0;
}

/**
 * `tar -x` into `dir` from `source`, as Python's tarfile.extractall (Barman) extracts: modes kept exactly (`-p`),
 * owners when root (GNU tar's default then), and the folders' times and modes set once every member is out
 * (`--delay-directory-restore`: Barman adds global/pg_control last, after its folder).
 */
async function extractTar(source: Readable, transforms: readonly Transform[], dir: string, signal: AbortSignal | undefined): Promise<void> {
  const child = spawn('tar', ['-x', '-p', '--delay-directory-restore', '-f', '-', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'], ...(signal === undefined ? {} : { signal }) });
  const stderr: Buffer[] = [];
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < 64) stderr.push(chunk);
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      resolve(code);
    });
  });
  try {
    await pipeline([source, ...transforms, child.stdin]);
  } catch (err) {
    // tar stops reading at the archive's end marker (as Python's tarfile does) and exits: the zero padding after
    // it then has nowhere to go, which is fine when tar succeeded.
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno !== 'EPIPE' && errno !== 'ERR_STREAM_PREMATURE_CLOSE') {
      child.kill('SIGKILL');
      await exited.catch(() => undefined);
      throw err;
    }
  }
  const code = await exited;
  if (code === 0) return;
  const text = Buffer.concat(stderr).toString('utf8').trim().split('\n').slice(-3).join(' / ');
  throw new Error(`tar exited with code ${String(code)} extracting into ${dir}${text === '' ? '' : `: ${text}`}`);
}

export async function openBackupStore(store: BarmanObjectStore, env: Readonly<Record<string, string>>): Promise<BackupStore> {
  const client: StoreClient = await createStoreClient(store, env);
  const { s3 } = client;
  const { bucket, path } = parseDestination(store.destinationPath);
  const base = basePrefix(path, store.serverName);
  const opts = (signal?: AbortSignal): { abortSignal?: AbortSignal } => (signal === undefined ? {} : { abortSignal: signal });
  let bucketChecked = false;

  const send = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (err) {
      if (err instanceof BackupStoreError || (err as Error).name === 'AbortError') throw err;
      throw storeError(err, store, bucket, what);
    }
  };

  /** test_connectivity and bucket_exists, as every Barman tool starts. */
  const checkBucket = async (signal?: AbortSignal): Promise<void> => {
    if (bucketChecked) return;
    await send('HeadBucket', () => client.client.send(new s3.HeadBucketCommand({ Bucket: bucket }), opts(signal)));
    bucketChecked = true;
  };

  /** list_bucket: folders (common prefixes) and keys right under `prefix`. */
  const list = async (prefix: string, signal?: AbortSignal): Promise<{ folders: string[]; keys: string[] }> => {
    const folders: string[] = [];
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await send('ListObjectsV2', () =>
        client.client.send(new s3.ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: '/', ...(token === undefined ? {} : { ContinuationToken: token }) }), opts(signal)),
      );
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix !== undefined) folders.push(p.Prefix);
      for (const o of page.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return { folders, keys };
  };

  const get = async (key: string, signal?: AbortSignal): Promise<Readable | undefined> => {
    try {
      const object = await client.client.send(new s3.GetObjectCommand({ Bucket: bucket, Key: key }), opts(signal));
      const body = object.Body as Readable | undefined;
      if (body === undefined) throw new Error(`the store returned no body for ${key}`);
      return body;
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      if ((err as Error).name === 'AbortError') throw err;
      throw storeError(err, store, bucket, `GetObject ${key}`);
    }
  };

  const backupInfo = async (backupId: string, signal?: AbortSignal): Promise<BackupInfo | undefined> => {
    await checkBucket(signal);
    const body = await get(pythonPathJoin(base, backupId, 'backup.info'), signal);
    if (body === undefined) return undefined;
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    return parseBackupInfo(backupId, Buffer.concat(chunks).toString('utf8'));
  };

  const listBackups: BackupStore['listBackups'] = async (signal) => {
    await checkBucket(signal);
    const ids = backupIdsFromListing((await list(`${base}/`, signal)).folders);
    const backups: BackupInfo[] = [];
    const unreadable: { backupId: string; error: string }[] = [];
    // Every backup.info at once (Barman reads them one by one): a catalog of many backups costs one round trip.
    await Promise.all(
      ids.map(async (backupId) => {
        try {
          const info = await backupInfo(backupId, signal);
          if (info !== undefined) backups.push(info);
        } catch (err) {
          if (err instanceof BackupStoreError && !/^the object store answered HTTP/.test(err.message)) throw err;
          unreadable.push({ backupId, error: (err as Error).message });
        }
      }),
    );
    return { backups: backups.sort((a, b) => a.backupId.localeCompare(b.backupId)), unreadable };
  };

  const walArchiveEmpty: BackupStore['walArchiveEmpty'] = async (signal) => {
    try {
      await checkBucket(signal);
    } catch (err) {
      if (err instanceof BackupStoreError && err.message === `the bucket ${bucket} does not exist`) return true;
      throw err;
    }
    // CloudBackupCatalog.get_wal_paths: every key under wals/, at any depth, named as a WAL file (one compression
    // suffix allowed); the first one found settles it.
    const prefix = `${pythonPathJoin(path, store.serverName, 'wals').replace(/^\/+/, '')}/`;
    let token: string | undefined;
    do {
      const page = await send('ListObjectsV2', () =>
        client.client.send(new s3.ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token === undefined ? {} : { ContinuationToken: token }) }), opts(signal)),
      );
      if ((page.Contents ?? []).some((o) => isArchivedWalKey(o.Key ?? ''))) return false;
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return true;
  };

  const restore: BackupStore['restore'] = async (info, destination, options = {}) => {
    const { signal } = options;
    if (info.snapshots) return { delegate: 'snapshot' };
    if (!(await isEmptyOrMissing(destination))) throw new Error(`Destination ${destination} already exists and it is not empty`);
    const sourceDir = pythonPathJoin(base, info.backupId);
    const files = backupFiles(sourceDir, info, (await list(`${sourceDir}/`, signal)).keys);
    const foreign = files.flatMap((f) => f.tars).find((t) => t.compression === 'bzip2' || t.compression === 'snappy');
    if (foreign !== undefined) return { delegate: foreign.compression };

    // Where each file goes (CloudBackupDownloaderObjectStore.download_backup), every target checked before any download.
    const jobs: { dir: string; keys: { key: string; compression: TarCompression }[] }[] = [];
    const links: { link: string; target: string }[] = [];
    for (const file of files) {
      let dir = destination;
      if (file.oid !== undefined) {
        const tablespace = info.tablespaces.find((t) => t.oid === file.oid);
        if (tablespace === undefined) throw new Error(`The backup file oid '${file.oid}' must be present in backupinfo.tablespaces list`);
        const relocated = options.tablespaces?.[tablespace.name];
        dir = relocated === undefined ? tablespace.location : await realpath(relocated).catch(() => relocated);
        links.push({ link: join(destination, 'pg_tblspc', String(file.oid)), target: dir });
      }
      if (!(await isEmptyOrMissing(dir))) throw new Error(`Destination ${dir} already exists and it is not empty`);
      jobs.push({ dir, keys: file.tars.map((t) => ({ key: t.key, compression: t.compression })) });
    }

    let bytes = 0;
    const counter = (): Transform =>
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          bytes += chunk.length;
          options.progress?.({ bytes });
          callback(null, chunk);
        },
      });
    // PGDATA and the tablespaces side by side; the parts of one target in order (one tar at a time per folder,
    // so a folder's attributes are set once, after its last part).
    await Promise.all(
      jobs.map(async (job) => {
        await mkdir(job.dir, { recursive: true });
        for (const { key, compression } of job.keys) {
          const body = await get(key, signal);
          if (body === undefined) throw new Error(`${key} disappeared from the store during the restore`);
          await extractTar(body, [...(compression === 'gzip' ? [createGunzip()] : []), counter()], job.dir, signal);
        }
      }),
    );
    for (const { link, target } of links) await symlink(target, link);
    // A pg_wal that was a symlink was not in the backup: recreated empty.
    await mkdir(join(destination, walDirectory(info))).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    });
    return 'restored';
  };

  return { listBackups, backupInfo, walArchiveEmpty, restore, close: client.close };
}
