import { watch as watchFs, type FSWatcher } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isObjectName, type Cluster } from '../cluster/schema.js';
import { parseClusterManifest } from '../cluster/parse.js';
import { ConfigError } from '../errors/index.js';
import { ConfinedReadError, isValidObjectKey, readConfined } from '../fs/confined.js';
import type { ControlPlane, InstanceStatusReport, ObjectData } from './types.js';

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
  private lastReport: InstanceStatusReport = {};

  constructor(private readonly dir: string) {
    this.description = `files:${dir}`;
  }

  get clusterSource(): string {
    return join(this.dir, 'cluster.yaml');
  }

  async readCluster(): Promise<Cluster> {
    let text: Buffer;
    try {
      text = await readConfined(this.dir, 'cluster.yaml', maxObjectBytes);
    } catch (err) {
      if (err instanceof ConfinedReadError) throw new ConfigError(this.clusterSource, '', err.message);
      throw err;
    }
    return parseClusterManifest(text.toString('utf8'), this.clusterSource);
  }

  readSecret(name: string): Promise<ObjectData | undefined> {
    return this.readObject('secrets', 'secret', name);
  }

  readConfigMap(name: string): Promise<ObjectData | undefined> {
    return this.readObject('configmaps', 'configmap', name);
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

  watch(onChange: () => void): () => void {
    let timer: NodeJS.Timeout | undefined;
    const fire = (): void => {
      clearTimeout(timer);
      // A burst of writes (an editor, a `..data` swap) becomes one change.
      timer = setTimeout(onChange, 250);
    };
    let watcher: FSWatcher | undefined;
    try {
      watcher = watchFs(this.dir, { recursive: true, persistent: false }, fire);
      watcher.on('error', () => undefined);
    } catch {
      watcher = undefined;
    }
    return () => {
      clearTimeout(timer);
      watcher?.close();
    };
  }

  /** Files mode has no status store shared with an operator: the report is kept for the status API. */
  reportStatus(report: InstanceStatusReport): Promise<void> {
    this.lastReport = { ...this.lastReport, ...report };
    return Promise.resolve();
  }

  get reportedStatus(): InstanceStatusReport {
    return this.lastReport;
  }
}
