import type { Cluster } from '../cluster/schema.js';
import type { ManagedRolesStatus } from '../instance/state.js';

export type { ManagedRolesStatus } from '../instance/state.js';
import type { TablespaceState } from '../cluster/tablespaces.js';

/** A Secret's or ConfigMap's data: key -> raw bytes, as Kubernetes stores them. */
export type ObjectData = ReadonlyMap<string, Buffer>;

const objectVersions = new WeakMap<ObjectData, string>();

/** Records which version of its object `data` is (the Secret's resourceVersion, or a keyed digest in files mode). */
export function withObjectVersion(data: ObjectData, version: string): ObjectData {
  objectVersions.set(data, version);
  return data;
}

/**
 * The version of the object `data` was read from: it changes whenever the object does, and tells nothing about its
 * content (a password Secret's version is shown in status).
 */
export function objectVersion(data: ObjectData): string {
  return objectVersions.get(data) ?? '';
}


export interface ReadOptions {
  /**
   * An optional object, e.g. a hint only some setups provide: undefined also when this instance may not read it
   * (in Kubernetes mode the Role grants named objects only; a refusal then means "not configured here", not an
   * error). Without it, a refusal is an error.
   */
  readonly optional?: boolean;
}

/** A Cluster status condition (metav1.Condition without the timestamps, which the control plane sets). */
export interface ClusterCondition {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
}

/** CloudNativePG's phase strings, so tools that read the Cluster status understand pgim's. */
export const phases = {
  healthy: 'Cluster in healthy state',
  applying: 'Applying configuration',
  waitingForUser: 'Waiting for user action',
  invalid: 'Invalid configuration',
  /** Not CloudNativePG's (it only logs and requeues): shown so `kubectl get cluster` says why nothing promotes. */
  waitingForLease: 'Waiting for the primary Lease',
} as const;

/** What this instance reports about itself; merged into the Cluster's status by the control plane. */
export interface InstanceStatusReport {
  readonly currentPrimary?: string;
  readonly currentPrimaryTimestamp?: string;
  readonly phase?: string;
  readonly phaseReason?: string;
  /** Set or replaced by type (ContinuousArchiving, LastBackupSucceeded). */
  readonly conditions?: readonly ClusterCondition[];
  /** RFC 3339; '' removes the field. */
  readonly firstRecoverabilityPoint?: string;
  readonly lastSuccessfulBackup?: string;
  readonly lastFailedBackup?: string;
  /** Replaces `status.managedRolesStatus` as a whole (keys it no longer has are removed). */
  readonly managedRolesStatus?: ManagedRolesStatus;
  /** The primary's tablespace pass: replaces `status.tablespacesStatus` (CNPG's TablespaceState list). */
  readonly tablespacesStatus?: readonly TablespaceState[];
}

/** A `postgresql.cnpg.io/v1` Backup object, as far as an instance reads it. */
export interface BackupObject {
  readonly name: string;
  readonly creationTimestamp: string;
  readonly spec: { readonly cluster?: { readonly name?: string }; readonly method?: string; readonly target?: string };
  readonly status: Readonly<Record<string, unknown>>;
}

/** A `postgresql.cnpg.io/v1` Pooler, as far as an instance reads it. */
export interface PoolerObject {
  readonly name: string;
  readonly spec: {
    readonly cluster?: { readonly name?: string };
    readonly pgbouncer?: { readonly authQuerySecret?: unknown };
  };
}

/**
 * This instance may not promote now: another instance holds the primary Lease, the Lease is missing, the Role
 * refuses it, or the API server cannot be asked. The message says which and is safe to log and to report.
 */
export class PrimaryLeaseError extends Error {
  override readonly name = 'PrimaryLeaseError';
  constructor(
    message: string,
    /** When asking again can first succeed (another holder's lease runs out); undefined: retry with backoff. */
    readonly retryInMs?: number,
  ) {
    super(message);
  }
}

/**
 * Where the desired state comes from and where the instance reports: the config folder (files mode) or the
 * Kubernetes API. Nothing outside `controlplane/` knows which one is in use.
 */
export interface ControlPlane {
  /** A short human description for logs, e.g. `files:/etc/pgim`. */
  readonly description: string;
  /** Names the Cluster's source in errors: a file path, or `cluster <namespace>/<name>`. */
  readonly clusterSource: string;
  /**
   * Where replicas reach the primary when the `<cluster>-hosts` ConfigMap names no address for it. Kubernetes:
   * CloudNativePG's read-write Service `<cluster>-rw` (what CNPG's own primary_conninfo uses: pod names do not
   * resolve in a cluster). Files mode: undefined, each instance is reached at its own name.
   */
  primaryServiceHost?(clusterName: string): string | undefined;
  /**
   * CloudNativePG's operator drives this instance (started through its command line, in Kubernetes mode): the
   * operator owns the Cluster's phase and the rolling restarts. The instance writes only the phases CNPG's instance
   * manager writes (src/rollout/operator-decision.ts) and restarts only when asked.
   */
  readonly operatorDriven?: boolean;
  /**
   * Kubernetes mode: GETs the Cluster within `timeoutMs`, rejecting when the API server does not serve it (the
   * liveness isolation check's "can I reach the API server"). Absent in files mode, which has no API server.
   */
  checkApiServer?(timeoutMs: number): Promise<void>;
  /** Kubernetes mode: `status.instancesReportedState` of the last Cluster seen (instance -> pod IP, as CNPG's operator reports). */
  reportedInstanceIps?(): ReadonlyMap<string, string>;
  /** Reads and validates the Cluster. Throws ConfigError naming the source and field. */
  readCluster(): Promise<Cluster>;
  /** Undefined when the Secret does not exist; throws ConfigError when it exists but cannot be used. */
  readSecret(name: string, options?: ReadOptions): Promise<ObjectData | undefined>;
  readConfigMap(name: string, options?: ReadOptions): Promise<ObjectData | undefined>;
  /**
   * Files mode only: the ScheduledBackup manifests of `<config-dir>/scheduledbackups/` (source and text). In
   * Kubernetes mode CNPG's operator schedules backups, so this is absent.
   */
  readScheduledBackups?(): Promise<{ source: string; text: string }[]>;
  /** Calls `onChange` (debounced) whenever the desired state may have changed. Returns a stop function. */
  watch(onChange: () => void): () => void;
  reportStatus(report: InstanceStatusReport): Promise<void>;
  /**
   * Called before promoting: resolves once `holder` holds the cluster's primary Lease, which the control plane then
   * renews until `releasePrimaryLease`. Rejects with PrimaryLeaseError when it may not promote; the caller must not.
   */
  acquirePrimaryLease(holder: string): Promise<void>;
  /**
   * Called once postgres no longer runs as a primary (stopped for a demotion or a shutdown, or a replica that is not
   * the target): stops renewing and frees the Lease if `holder` holds it. Never rejects: a Lease that cannot be
   * freed runs out by itself.
   */
  releasePrimaryLease(holder: string): Promise<void>;
  /** Backup objects in the Cluster's namespace (files mode has none: `pgim backup` asks the instance directly). */
  listBackups(): Promise<BackupObject[]>;
  /** Merge-patches a Backup's status subresource. */
  patchBackupStatus(name: string, status: Record<string, unknown>): Promise<void>;
  deleteBackup(name: string): Promise<void>;
  /**
   * Files mode: the Pooler manifests of the config folder (`poolers/*.yaml`); throws ConfigError naming a file that
   * is not one. Kubernetes mode: none (CNPG's operator lists them and writes `status.poolerIntegrations`).
   */
  listPoolers(): Promise<PoolerObject[]>;
}
