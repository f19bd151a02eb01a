import type { Logger } from 'pino';
import { isObjectName } from '../cluster/names.js';
import type { Cluster } from '../cluster/schema.js';
import { ConfigError, errorMessage } from '../errors/index.js';
import { namedLogger } from '../log/logger.js';
import type { KubernetesOptions } from '../options/index.js';
import { Backoff } from '../async/backoff.js';
import { sleep } from '../async/sleep.js';
import { isApiStatus, KubeClient } from './kubernetes/client.js';
import { clusterFingerprint, parseClusterObject } from './kubernetes/cluster.js';
import { loadConnection, type ApiConnection } from './kubernetes/config.js';
import { EventRecorder } from './kubernetes/events.js';
import { PrimaryLease } from './kubernetes/lease.js';
import { getNamedObject, NamedObjectWatch } from './kubernetes/object-watch.js';
import { configMapData, objectContentFingerprint, secretData } from './kubernetes/objects.js';
import { actionFields, backups, clusters, collectionPath, configMaps, isRecord, objectPath, secrets, type KubeObject, type ResourceType } from './kubernetes/resources.js';
import { fieldManager, StatusReporter } from './kubernetes/status.js';
import type { BackupObject, ControlPlane, InstanceStatusReport, ObjectData, PoolerObject, ReadOptions } from './types.js';

/** A fresh GET of every followed object this often, whatever the watches say. */
const resyncMs = 60_000;
/** Changes seen together (a Cluster edit and the Secret it names) become one reload. */
const debounceMs = 100;

export interface KubernetesControlPlaneOptions {
  readonly kubernetes: KubernetesOptions;
  /** This instance's name (POD_NAME); `<cluster>-1` when unset, as in files mode. */
  readonly podName: string | undefined;
  readonly logger: Logger;
}

/** One object pgim reads: how to name it and what of it counts as a change. */
interface Followed {
  readonly type: ResourceType;
  readonly name: string;
  readonly fingerprint: (object: KubeObject | undefined) => string;
  /** Backoff for re-asking after a failed read of this object, so one refused Secret cannot spin the reconciler. */
  readonly retry: Backoff;
}

/**
 * Kubernetes mode: the Cluster, Secrets and ConfigMaps come from the API server, and the instance reports into the
 * Cluster's status. Same interface, same validation and same error messages as files mode.
 *
 * Change detection compares what the API server has with what the reconciler last *read* (not with the previous
 * event): a watch event, a re-GET after a dropped watch or a periodic resync triggers a reload only when the content
 * pgim uses differs from what it consumed, and only once per new content. So pgim's own status writes, reconnects
 * and resyncs never cause a reload, and a change that happened while no watch was running is still noticed.
 */
export class KubernetesControlPlane implements ControlPlane {
  readonly description: string;
  readonly clusterSource: string;
  readonly operatorDriven: boolean;
  private readonly client: KubeClient;
  private readonly namespace: string;
  private readonly clusterName: string;
  private readonly logger: Logger;
  private readonly status: StatusReporter;
  private readonly lease: PrimaryLease;
  private latestCluster: KubeObject | undefined;
  private readonly followed = new Map<string, Followed>();
  /** Key -> fingerprint of the content the reconciler last read. */
  private readonly consumed = new Map<string, string>();
  /** Key -> fingerprint a reload was already requested for. */
  private readonly requested = new Map<string, string>();
  private readonly watches = new Map<string, NamedObjectWatch>();
  /** The reconciler and the observability spec each follow the desired state; every change goes to all of them. */
  private readonly subscribers = new Set<() => void>();
  private debounceTimer: NodeJS.Timeout | undefined;
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  /** Optional objects the Role refused once: absent for this process's lifetime (a Role change means a new pod). */
  private readonly refusedOptional = new Set<string>();

  constructor(connection: ApiConnection, options: KubernetesControlPlaneOptions) {
    this.client = new KubeClient(connection);
    this.namespace = connection.namespace;
    this.clusterName = options.kubernetes.clusterName;
    this.operatorDriven = options.kubernetes.operatorDriven === true;
    this.logger = namedLogger(options.logger, 'kubernetes');
    this.clusterSource = `cluster ${this.namespace}/${this.clusterName}`;
    this.description = `kubernetes:${connection.server} ${this.clusterSource} (${connection.source})`;
    const podName = options.podName ?? `${this.clusterName}-1`;
    const events = new EventRecorder({
      client: this.client,
      namespace: this.namespace,
      clusterName: this.clusterName,
      podName,
      logger: this.logger,
      clusterUid: () => this.latestCluster?.metadata?.uid,
    });
    this.lease = new PrimaryLease({ client: this.client, namespace: this.namespace, name: this.clusterName, logger: this.logger });
    this.status = new StatusReporter({
      client: this.client,
      namespace: this.namespace,
      clusterName: this.clusterName,
      logger: this.logger,
      events,
      observed: () => this.latestCluster,
      operatorDriven: this.operatorDriven,
    });
  }

  /**
   * Start: GET the Cluster until the API server answers with it, backing off from 1 s to 30 s, with one log line per
   * failed attempt (unreachable, refused with the verb/resource/name, or not found). Nothing is rendered and
   * PostgreSQL is not started before this returns. Resolves early (without the Cluster) when `signal` aborts.
   */
  async waitForApi(signal?: AbortSignal): Promise<void> {
    const backoff = new Backoff(1000, 30_000);
    const action = { verb: 'get', type: clusters, namespace: this.namespace, name: this.clusterName } as const;
    this.logger.info({ ...actionFields(action), controlPlane: this.description }, 'reading the Cluster from the Kubernetes API');
    // A function, not a narrowed expression: the signal can abort during any await below.
    const stopped = (): boolean => signal?.aborted === true;
    for (let attempt = 1; !stopped(); attempt++) {
      let problem: string;
      try {
        const cluster = await getNamedObject(this.client, clusters, this.namespace, this.clusterName, signal);
        if (cluster !== undefined) {
          this.latestCluster = cluster;
          if (attempt > 1) this.logger.info({ attempt }, 'the Kubernetes API answers');
          return;
        }
        problem = `${this.clusterSource} does not exist (yet)`;
      } catch (err) {
        if (stopped()) return;
        problem = errorMessage(err);
      }
      const delay = backoff.next();
      this.logger.warn({ ...actionFields(action), attempt, retryInMs: delay, error: problem }, `waiting for the Kubernetes API (attempt ${attempt}): ${problem}`);
      await sleep(delay, signal);
    }
  }

  async readCluster(): Promise<Cluster> {
    const object = await this.read('cluster', { type: clusters, name: this.clusterName, fingerprint: clusterFingerprint });
    if (object === undefined) throw new ConfigError(this.clusterSource, '', 'not found');
    this.latestCluster = object;
    return parseClusterObject(object, this.clusterSource);
  }

  async readSecret(name: string, options: ReadOptions = {}): Promise<ObjectData | undefined> {
    const source = `secret ${name}`;
    if (!isObjectName(name)) throw new ConfigError(source, '', 'is not a valid object name');
    const object = await this.readNamed(`secret/${name}`, { type: secrets, name, fingerprint: objectContentFingerprint }, options);
    return object === undefined ? undefined : secretData(object, source);
  }

  async readConfigMap(name: string, options: ReadOptions = {}): Promise<ObjectData | undefined> {
    const source = `configmap ${name}`;
    if (!isObjectName(name)) throw new ConfigError(source, '', 'is not a valid object name');
    const object = await this.readNamed(`configmap/${name}`, { type: configMaps, name, fingerprint: objectContentFingerprint }, options);
    return object === undefined ? undefined : configMapData(object, source);
  }

  /**
   * An optional object the Role does not grant reads as absent, and is not followed: a watch would only be
   * refused again and again. Anything else goes through `read`.
   */
  private async readNamed(key: string, what: Omit<Followed, 'retry'>, options: ReadOptions): Promise<KubeObject | undefined> {
    if (this.refusedOptional.has(key)) return undefined;
    if (options.optional !== true) return this.read(key, what);
    try {
      return await this.read(key, what);
    } catch (err) {
      if (!isApiStatus(err, 403)) throw err;
      this.refusedOptional.add(key);
      this.followed.delete(key);
      this.watches.get(key)?.stop();
      this.watches.delete(key);
      clearTimeout(this.retryTimers.get(key));
      this.retryTimers.delete(key);
      this.logger.info({ kind: what.type.kind, name: what.name }, `optional ${what.type.kind} ${what.name} is not granted to this instance: treated as absent`);
      return undefined;
    }
  }

  /**
   * Follows the Cluster and every Secret and ConfigMap the reconciler has read (each by name: GET + WATCH with a
   * field selector, as the Role allows), and calls every subscriber, debounced, when one of them differs from what was
   * last read.
   */
  watch(onChange: () => void): () => void {
    this.subscribers.add(onChange);
    for (const key of this.followed.keys()) this.follow(key);
    return () => {
      this.subscribers.delete(onChange);
      if (this.following) return;
      for (const watch of this.watches.values()) watch.stop();
      this.watches.clear();
      clearTimeout(this.debounceTimer);
      for (const timer of this.retryTimers.values()) clearTimeout(timer);
      this.retryTimers.clear();
      this.status.close();
      this.lease.close();
    };
  }

  async checkApiServer(timeoutMs: number): Promise<void> {
    const cluster = await getNamedObject(this.client, clusters, this.namespace, this.clusterName, AbortSignal.timeout(timeoutMs));
    if (cluster === undefined) throw new Error(`${this.clusterSource} does not exist`);
    this.latestCluster = cluster;
  }

  reportedInstanceIps(): ReadonlyMap<string, string> {
    const reported = isRecord(this.latestCluster?.status) ? this.latestCluster.status.instancesReportedState : undefined;
    const ips = new Map<string, string>();
    if (!isRecord(reported)) return ips;
    for (const [name, state] of Object.entries(reported)) {
      if (isRecord(state) && typeof state.ip === 'string' && state.ip !== '') ips.set(name, state.ip);
    }
    return ips;
  }

  primaryServiceHost(clusterName: string): string {
    return `${clusterName}-rw`;
  }

  reportStatus(report: InstanceStatusReport): Promise<void> {
    return this.status.report(report);
  }

  acquirePrimaryLease(holder: string): Promise<void> {
    return this.lease.acquire(holder);
  }

  releasePrimaryLease(holder: string): Promise<void> {
    return this.lease.release(holder);
  }

  /** Every Backup in the namespace (the Role grants list, not watch, as CNPG's does). */
  async listBackups(): Promise<BackupObject[]> {
    const action = { verb: 'list', type: backups, namespace: this.namespace } as const;
    const list = (await this.client.request(action, 'GET', collectionPath(backups, this.namespace))) as { items?: KubeObject[] };
    return (list.items ?? []).map((item) => ({
      name: item.metadata?.name ?? '',
      creationTimestamp: item.metadata?.creationTimestamp ?? '',
      spec: isRecord(item.spec) ? item.spec : {},
      status: isRecord(item.status) ? item.status : {},
    }));
  }

  async patchBackupStatus(name: string, status: Record<string, unknown>): Promise<void> {
    const action = { verb: 'patch', type: backups, subresource: 'status', namespace: this.namespace, name } as const;
    await this.client.request(action, 'PATCH', objectPath(backups, this.namespace, name, 'status'), {
      query: { fieldManager },
      contentType: 'application/merge-patch+json',
      body: { status },
    });
  }

  async deleteBackup(name: string): Promise<void> {
    const action = { verb: 'delete', type: backups, namespace: this.namespace, name } as const;
    try {
      await this.client.request(action, 'DELETE', objectPath(backups, this.namespace, name));
    } catch (err) {
      if (!isApiStatus(err, 404)) throw err;
    }
  }

  /**
   * None read here: as in CloudNativePG, the operator lists the Cluster's Poolers and writes the ones the instance
   * must serve into `status.poolerIntegrations`, which the Cluster brings. The instance's Role has no namespace-wide
   * list of anything.
   */
  listPoolers(): Promise<PoolerObject[]> {
    return Promise.resolve([]);
  }

  /** A GET that records what the reconciler consumed; a failure schedules a retry (the change must not be lost). */
  private async read(key: string, what: Omit<Followed, 'retry'>): Promise<KubeObject | undefined> {
    const followed = this.followed.get(key) ?? { ...what, retry: new Backoff(2000, 60_000) };
    this.followed.set(key, followed);
    let object: KubeObject | undefined;
    try {
      object = await getNamedObject(this.client, what.type, this.namespace, what.name);
    } catch (err) {
      this.retryLater(key, followed);
      throw err;
    }
    followed.retry.reset();
    this.consumed.set(key, what.fingerprint(object));
    this.requested.delete(key);
    if (this.following) this.follow(key);
    return object;
  }

  private follow(key: string): void {
    const followed = this.followed.get(key);
    if (followed === undefined || this.watches.has(key)) return;
    const watch = new NamedObjectWatch({
      client: this.client,
      type: followed.type,
      namespace: this.namespace,
      name: followed.name,
      logger: this.logger,
      resyncMs,
      onObserved: (object) => {
        this.observed(key, followed, object);
      },
    });
    this.watches.set(key, watch);
    watch.start();
  }

  private observed(key: string, followed: Followed, object: KubeObject | undefined): void {
    if (key === 'cluster' && object !== undefined) this.latestCluster = object;
    const current = followed.fingerprint(object);
    const consumed = this.consumed.get(key);
    if (consumed === undefined || consumed === current) {
      this.requested.delete(key);
      return;
    }
    if (this.requested.get(key) === current) return;
    this.requested.set(key, current);
    this.logger.info({ kind: followed.type.kind, name: followed.name, exists: object !== undefined }, `${followed.type.kind} ${followed.name} changed`);
    this.requestReload();
  }

  private get following(): boolean {
    return this.subscribers.size > 0;
  }

  private notify(): void {
    for (const subscriber of [...this.subscribers]) subscriber();
  }

  private requestReload(): void {
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.notify();
    }, debounceMs);
  }

  private retryLater(key: string, followed: Followed): void {
    if (!this.following || this.retryTimers.has(key)) return;
    const delay = followed.retry.next();
    this.logger.info({ kind: followed.type.kind, name: followed.name, retryInMs: delay }, `reading ${followed.type.kind} ${followed.name} failed; the reload will be retried`);
    this.retryTimers.set(
      key,
      setTimeout(() => {
        this.retryTimers.delete(key);
        this.notify();
      }, delay),
    );
  }
}

/** Resolves the connection and waits until the API server serves the Cluster (or `signal` aborts). */
export async function openKubernetesControlPlane(options: KubernetesControlPlaneOptions, signal?: AbortSignal): Promise<KubernetesControlPlane> {
  const connection = await loadConnection(options.kubernetes);
  const plane = new KubernetesControlPlane(connection, options);
  await plane.waitForApi(signal);
  return plane;
}
