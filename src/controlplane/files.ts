import { watch as watchFs, type FSWatcher } from 'node:fs';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { isObjectName } from '../cluster/names.js';
import type { Cluster } from '../cluster/schema.js';
import { parseClusterManifest } from '../cluster/parse.js';
import { ConfigError, errorMessage } from '../errors/index.js';
import { decodeManifest } from '../cluster/utf8.js';
import { writeFileAtomic } from '../fs/atomic.js';
import { ConfinedReadError, isValidObjectKey, permissionDenied, readConfined } from '../fs/confined.js';
import { z } from 'zod';
import { withObjectVersion, type BackupObject, type ControlPlane, type ObjectData, type PoolerObject } from './types.js';

const watchDebounceMs = 150;
const renameDebounceMs = 10;
/**
 * The safety net behind inotify, for filesystems that do not report changes (network mounts). Slow on purpose:
 * a poll every second was most of an idle pgim's CPU time, and every 10 s still a fifth of its wake-ups.
 */
const watchPollMs = 30_000;

interface FolderScan {
  /** Path, resolved target, size, mtime and inode of every file: any edit, replacement or `..data` swap changes it. */
  fingerprint: string;
  /** Every folder under the root (symlinked ones by their real path): each gets its own inotify watch. */
  folders: string[];
}

async function scanFolder(dir: string): Promise<FolderScan> {
  const parts: string[] = [];
  const realRoot = await realpath(dir);
  const folders = new Set<string>([realRoot]);
  // The calls of one folder run together: each file call is a round trip to libuv's pool, and one after the other
  // they woke the event loop ~30 times per scan of a small config folder. Only symlinks are resolved (realpath is a
  // readlink per path component in libc): an entry that is no symlink resolves to its resolved folder plus its name.
  const walk = async (current: string, realCurrent: string, depth: number): Promise<void> => {
    if (depth > 4) return;
    await Promise.all(
      (await readdir(current, { withFileTypes: true })).map(async (entry) => {
        const path = join(current, entry.name);
        try {
          const [info, real] = await Promise.all([stat(path), entry.isSymbolicLink() ? realpath(path) : join(realCurrent, entry.name)]);
          if (info.isDirectory()) {
            folders.add(real);
            await walk(path, real, depth + 1);
          } else parts.push(`${path}\0${real}\0${info.size}\0${info.mtimeMs}\0${info.ino}`);
        } catch {
          parts.push(`${path}\0missing`);
        }
      }),
    );
  };
  await walk(dir, realRoot, 0);
  return { fingerprint: createHash('sha256').update(parts.sort().join('\n')).digest('hex'), folders: [...folders] };
}

/** The API server caps a Secret or ConfigMap at 1 MiB; a mounted file larger than that is not one. */
export const maxObjectBytes = 1024 * 1024;

/**
 * Files mode: a folder laid out like the volumes Kubernetes would mount.
 * ```
 * <dir>/cluster.yaml             the Cluster manifest
 * <dir>/secrets/<name>/<key>     one file per Secret key
 * <dir>/configmaps/<name>/<key>  one file per ConfigMap key
 * ```
 */
export class FilesControlPlane implements ControlPlane {
  readonly description: string;

  constructor(
    private readonly dir: string,
    /** The safety poll's period; tests set it out of reach to prove inotify alone sees a change. */
    private readonly pollMs = watchPollMs,
  ) {
    this.description = `files:${dir}`;
  }

  get clusterSource(): string {
    return join(this.dir, 'cluster.yaml');
  }

  /** The folder as it was when the last load began: the watch reports anything that changed since (see watch()). */
  private loadedFingerprint: string | undefined;
  private watching = false;

  async readCluster(): Promise<Cluster> {
    // Taken before the read, and only until the watch runs (it scans on every change itself): a change that lands
    // during the load differs from it, so the watch's first scan reports it.
    if (!this.watching) this.loadedFingerprint = (await scanFolder(this.dir).catch(() => undefined))?.fingerprint;
    let text: Buffer;
    try {
      text = await readConfined(this.dir, 'cluster.yaml', maxObjectBytes);
    } catch (err) {
      if (err instanceof ConfinedReadError) throw new ConfigError(this.clusterSource, '', err.message);
      throw err;
    }
    const cluster = parseClusterManifest(decodeManifest(text, this.clusterSource), this.clusterSource);
    if (cluster.observability.probes.isolationCheck !== undefined) {
      // CNPG's check restarts a primary only when the API server does not answer either: that answer is what tells
      // "I am cut off" from "my replicas are down". Files mode has no API server, so peers alone would restart a
      // primary whose replicas merely stopped, which the check exists to avoid.
      throw new ConfigError(
        this.clusterSource,
        'spec.probes.liveness.isolationCheck.enabled',
        'is only available in Kubernetes mode (it asks the API server and the other instances); set it to false in files mode',
      );
    }
    return cluster;
  }

  /**
   * Sets `status.targetPrimary` in cluster.yaml (`pgim switchover` in files mode): the rest of the file, comments
   * included, stays as written; the result is validated, then replaces the file atomically and durably (temp file,
   * fsync, rename, fsync of the folder) with the file's mode, so every instance reads the old name or the new one.
   */
  async writeTargetPrimary(target: string): Promise<void> {
    const file = this.clusterSource;
    const doc = parseDocument(await readFile(file, 'utf8'));
    doc.setIn(['status', 'targetPrimary'], target);
    const text = doc.toString();
    parseClusterManifest(text, file);
    await writeFileAtomic(file, text, (await stat(file)).mode & 0o7777);
  }

  /** ReadOptions change nothing here: a folder pgim cannot read is an error whether the object is optional or not. */
  async readSecret(name: string): Promise<ObjectData | undefined> {
    const data = await this.readObject('secrets', 'secret', name);
    return data === undefined ? undefined : withObjectVersion(data, contentVersion(data));
  }

  readConfigMap(name: string): Promise<ObjectData | undefined> {
    return this.readObject('configmaps', 'configmap', name);
  }

  async readScheduledBackups(): Promise<{ source: string; text: string }[]> {
    const folder = join(this.dir, 'scheduledbackups');
    let entries: string[];
    try {
      entries = await readdir(folder);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new ConfigError(folder, '', errorMessage(err));
    }
    const out: { source: string; text: string }[] = [];
    for (const entry of entries.filter((e) => /\.ya?ml$/.test(e) && !e.startsWith('.')).sort()) {
      const source = join(folder, entry);
      try {
        out.push({ source, text: decodeManifest(await readConfined(folder, entry, maxObjectBytes), source) });
      } catch (err) {
        if (err instanceof ConfinedReadError) throw new ConfigError(source, '', err.message);
        throw err;
      }
    }
    return out;
  }

  private async readObject(folder: string, kind: string, name: string): Promise<ObjectData | undefined> {
    const source = `${kind} ${name}`;
    if (!isObjectName(name)) throw new ConfigError(source, '', 'is not a valid object name');
    const objectDir = join(this.dir, folder, name);
    let entries: string[];
    try {
      entries = await readdir(objectDir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      if (code === 'ENOTDIR') throw new ConfigError(source, '', `${objectDir} is not a folder`);
      const denied = permissionDenied(err);
      if (denied) throw new ConfigError(source, '', `${objectDir} ${denied.message}`);
      throw err;
    }
    const data = new Map<string, Buffer>();
    // `..data` and `..<timestamp>` are the projection's own plumbing, not keys; Kubernetes forbids keys like them.
    for (const key of entries.filter(isValidObjectKey).sort()) {
      try {
        data.set(key, await readConfined(objectDir, key, maxObjectBytes));
      } catch (err) {
        if (err instanceof ConfinedReadError && err.reason !== 'missing') throw new ConfigError(source, key, err.message);
        if (!(err instanceof ConfinedReadError)) throw err;
      }
    }
    return data;
  }

  /**
   * One non-recursive inotify watch per folder, re-armed after every check (a `..data` swap replaces the folder the
   * keys resolve into; Node 20's recursive watch goes quiet after such a rename), plus a slow poll as the safety
   * net. Either one only schedules a check; the callback runs when the fingerprint really changed, once per burst.
   */
  /** `status.targetPrimary` of cluster.yaml as it is now (undefined when unreadable or unset). */
  private async readTargetPrimary(): Promise<string | undefined> {
    try {
      const target = parseDocument(await readFile(this.clusterSource, 'utf8')).getIn(['status', 'targetPrimary']);
      return typeof target === 'string' ? target : undefined;
    } catch {
      return undefined;
    }
  }

  watch(onChange: () => void): () => void {
    this.watching = true;
    let timer: NodeJS.Timeout | undefined;
    // The desired state was loaded before the watch began: its first scan compares with the folder as that load saw
    // it, so an edit made in between is reported, not taken as the starting point (it was lost before).
    let last: string | undefined = this.loadedFingerprint;
    let lastTarget: string | undefined;
    let stopped = false;
    const watchers = new Map<string, FSWatcher>();
    const schedule = (event?: string, file?: string | Buffer | null): void => {
      clearTimeout(timer);
      // A burst of writes (an editor, a `..data` swap) becomes one change. A cluster.yaml renamed into place (what
      // `pgim switchover` and `sed -i` do) is complete at once, and a failover waits for it: checked after 10 ms
      // (and reported at once only when it names another primary). An editor that creates the file and then writes
      // it restarts the wait with that write ('change').
      const renamedIntoPlace = event === 'rename' && file === 'cluster.yaml';
      timer = setTimeout(() => void check(renamedIntoPlace), renamedIntoPlace ? renameDebounceMs : watchDebounceMs);
    };
    const rearm = (folders: readonly string[]): void => {
      for (const [folder, watcher] of watchers) {
        if (folders.includes(folder)) continue;
        watcher.close();
        watchers.delete(folder);
      }
      for (const folder of folders) {
        if (watchers.has(folder)) continue;
        try {
          const watcher = watchFs(folder, { persistent: false }, schedule);
          watcher.on('error', () => {
            watcher.close();
            watchers.delete(folder);
            schedule();
          });
          watchers.set(folder, watcher);
        } catch {
          // gone already, or no inotify here: the poll covers it
        }
      }
    };
    const check = async (clusterRenamed = false): Promise<void> => {
      // A cluster.yaml renamed into place that names another primary (a switchover or failover waits for it) is
      // reported before the scan of the whole folder (which re-arms the watches and records the new fingerprint, so
      // it is not reported twice). Any other rename is an edit like the rest: a burst of them stays one change.
      let known = false;
      if (clusterRenamed && last !== undefined) {
        const target = await this.readTargetPrimary();
        if (target === lastTarget) {
          timer = setTimeout(() => void check(false), watchDebounceMs);
          return;
        }
        lastTarget = target;
        known = true;
        if (!stopped) onChange();
      }
      const scan = await scanFolder(this.dir).catch(() => undefined);
      if (stopped || scan === undefined) return;
      rearm(scan.folders);
      if (first || (!known && scan.fingerprint !== last)) {
        if (last !== undefined && scan.fingerprint !== last) onChange();
        lastTarget = await this.readTargetPrimary();
      }
      first = false;
      last = scan.fingerprint;
    };
    let first = true;
    void check(false);
    const poll = setInterval(() => {
      schedule();
    }, this.pollMs);
    poll.unref();
    return () => {
      stopped = true;
      this.watching = false;
      clearTimeout(timer);
      clearInterval(poll);
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
    };
  }

  /** Files mode has no status store shared with an operator: there is nobody to report to. */
  reportStatus(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Files mode has no Lease and needs none: the arbiter is the one `status.targetPrimary` in the shared
   * cluster.yaml, which `pgim switchover` replaces atomically, so every instance reads one name and only the one it
   * names promotes.
   */
  acquirePrimaryLease(): Promise<void> {
    return Promise.resolve();
  }

  releasePrimaryLease(): Promise<void> {
    return Promise.resolve();
  }

  /** Files mode has no Backup objects: `pgim backup` asks the instance, and a schedule is a timer calling it. */
  listBackups(): Promise<BackupObject[]> {
    return Promise.resolve([]);
  }

  patchBackupStatus(): Promise<void> {
    return Promise.resolve();
  }

  deleteBackup(): Promise<void> {
    return Promise.resolve();
  }

  /** `poolers/<name>.yaml`: Pooler manifests, as `kubectl apply` would take them. */
  async listPoolers(): Promise<PoolerObject[]> {
    const folder = join(this.dir, 'poolers');
    let entries: string[];
    try {
      entries = (await readdir(folder)).filter((f) => /\.ya?ml$/.test(f)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const poolers: PoolerObject[] = [];
    for (const entry of entries) {
      const file = join(folder, entry);
      const manifest = poolerManifest.safeParse(parseDocument(decodeManifest(await readConfined(folder, entry, maxObjectBytes), file)).toJS({ maxAliasCount: 100 }));
      if (!manifest.success) {
        const issue = manifest.error.issues[0];
        throw new ConfigError(file, issue?.path.join('.') ?? '', issue?.message ?? 'is not a Pooler manifest');
      }
      const { metadata, spec } = manifest.data;
      poolers.push({ name: metadata.name, spec: { cluster: spec.cluster, ...(spec.pgbouncer === undefined ? {} : { pgbouncer: spec.pgbouncer }) } });
    }
    return poolers;
  }
}

const poolerManifest = z.object({
  apiVersion: z.literal('postgresql.cnpg.io/v1', { error: 'must be postgresql.cnpg.io/v1' }),
  kind: z.literal('Pooler', { error: 'must be Pooler' }),
  metadata: z.object({ name: z.string().refine(isObjectName, 'must be a Kubernetes object name') }).loose(),
  spec: z.object({ cluster: z.object({ name: z.string() }).loose(), pgbouncer: z.object({ authQuerySecret: z.unknown().optional() }).loose().optional() }).loose(),
});

/** Keyed with a per-process random key: a version changes with the content and cannot be used to guess it. */
const versionKey = randomBytes(32);

/** A files-mode Secret's version (Kubernetes has resourceVersion): a keyed digest of its keys and values. */
function contentVersion(data: ObjectData): string {
  const mac = createHmac('sha256', versionKey);
  for (const [key, value] of [...data].sort(([a], [b]) => (a < b ? -1 : 1))) mac.update(`${key}\0${value.length}\0`).update(value);
  return mac.digest('hex').slice(0, 16);
}
