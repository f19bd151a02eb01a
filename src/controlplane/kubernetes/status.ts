import type { Logger } from 'pino';
import { errorMessage } from '../../errors/index.js';
import type { ClusterCondition, InstanceStatusReport, ManagedRolesStatus } from '../types.js';
import type { TablespaceState } from '../../cluster/tablespaces.js';
import { Backoff } from '../../async/backoff.js';
import { sleep } from '../../async/sleep.js';
import { ApiError, isApiStatus, type KubeClient } from './client.js';
import type { EventRecorder, EventType } from './events.js';
import { getNamedObject } from './object-watch.js';
import { isInstancePhase, operatorPhasePatch } from './operator-phase.js';
import { actionFields, clusters, describeAction, isRecord, objectPath, type ApiAction, type KubeObject } from './resources.js';

/** Shown in `managedFields`: which writer owns which status field. */
export const fieldManager = 'pgim';

/** client-go's `retry.DefaultBackoff` for optimistic-lock conflicts: 10 ms, ×5, 4 tries, 10 % jitter. */
const conflictAttempts = 4;

function statusAction(namespace: string, name: string): ApiAction {
  return { verb: 'patch', type: clusters, subresource: 'status', namespace, name };
}

/** A JSON merge patch of the Cluster's status subresource (never strategic merge: CRDs refuse it). */
export async function mergePatchStatus(client: KubeClient, namespace: string, name: string, patch: Record<string, unknown>): Promise<KubeObject> {
  const result = await client.request(statusAction(namespace, name), 'PATCH', objectPath(clusters, namespace, name, 'status'), {
    query: { fieldManager },
    contentType: 'application/merge-patch+json',
    body: patch,
  });
  return result as KubeObject;
}

/**
 * Read-modify-write of the status with an optimistic lock: GET the Cluster, let `decide` compute a patch from that
 * copy (or nothing), and merge-patch it carrying the copy's resourceVersion, so the API server refuses it (409) if
 * anyone wrote in between. On 409: a fresh GET and `decide` again, with client-go's backoff. Returns whether it
 * patched.
 */
export async function patchStatusWithLock(
  client: KubeClient,
  namespace: string,
  name: string,
  decide: (cluster: KubeObject) => Promise<Record<string, unknown> | undefined> | Record<string, unknown> | undefined,
): Promise<boolean> {
  const conflicts = new Backoff(10, Infinity, { factor: 5 });
  for (let attempt = 1; ; attempt++) {
    const cluster = await getNamedObject(client, clusters, namespace, name);
    if (cluster === undefined) throw new ApiError(404, 'NotFound', { verb: 'get', type: clusters, namespace, name }, 'the Cluster does not exist');
    const status = await decide(cluster);
    if (status === undefined) return false;
    try {
      await mergePatchStatus(client, namespace, name, { metadata: { resourceVersion: cluster.metadata?.resourceVersion }, status });
      return true;
    } catch (err) {
      if (!isApiStatus(err, 409) || attempt >= conflictAttempts) throw err;
      await sleep(conflicts.next());
    }
  }
}

interface PhaseReport {
  readonly phase: string;
  readonly phaseReason: string;
}

/** Events for phase transitions (CNPG's phase strings); anything else is a plain Normal event. */
const phaseEvents: Readonly<Record<string, { type: EventType; reason: string }>> = {
  'Invalid configuration': { type: 'Warning', reason: 'InvalidConfiguration' },
  'Cluster in healthy state': { type: 'Normal', reason: 'ConfigurationApplied' },
  'Applying configuration': { type: 'Normal', reason: 'ApplyingConfiguration' },
  'Waiting for user action': { type: 'Warning', reason: 'WaitingForUserAction' },
  'Waiting for the primary Lease': { type: 'Warning', reason: 'PrimaryLeaseNotAcquired' },
};

export interface StatusReporterOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly clusterName: string;
  readonly logger: Logger;
  readonly events: EventRecorder;
  /** The Cluster as last seen, so a restarted pgim does not rewrite (or re-announce) a phase already there. */
  readonly observed: () => KubeObject | undefined;
  /** CloudNativePG's operator owns the phase: only CNPG's instance-manager phases are written (./operator-phase.ts). */
  readonly operatorDriven?: boolean;
}

/**
 * Writes what this instance owns in the Cluster's status. `phase`/`phaseReason`: a merge patch, last writer wins
 * (this instance is their only writer). `currentPrimary`: claimed with an optimistic lock, while nobody holds it and
 * `targetPrimary` is this pod or unset, or from a former primary when `targetPrimary` is this pod. A write that fails (API down, 403) never fails the caller: the
 * latest wanted status is kept and retried with backoff (1 s doubling to 60 s) until it lands.
 */
export class StatusReporter {
  private wantedPhase: PhaseReport | undefined;
  /** Under the operator: an instance-manager phase not yet written (checked against a fresh copy, with the lock). */
  private wantedOperatorPhase: PhaseReport | undefined;
  private writtenPhase: PhaseReport | undefined;
  private wantedPrimary: { podName: string; timestamp: string } | undefined;
  /** Backup conditions and times not yet written (the latest per key wins). */
  private wantedBackup: { conditions: Map<string, ClusterCondition>; fields: Record<string, string> } = { conditions: new Map(), fields: {} };
  /** status.managedRolesStatus not yet written (the latest wins). */
  private wantedManagedRoles: ManagedRolesStatus | undefined;
  /** The tablespaces status not yet written (the latest wins). */
  private wantedTablespaces: readonly TablespaceState[] | undefined;
  private queue: Promise<void> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff(1000, 60_000);
  private closed = false;

  constructor(private readonly options: StatusReporterOptions) {}

  report(report: InstanceStatusReport): Promise<void> {
    if (report.phase !== undefined) {
      const wanted = { phase: report.phase, phaseReason: report.phaseReason ?? '' };
      if (this.options.operatorDriven !== true) this.wantPhase(wanted);
      else if (isInstancePhase(wanted.phase, wanted.phaseReason)) this.wantedOperatorPhase = wanted;
      else this.options.logger.debug(wanted, 'not written: the operator owns the Cluster phase');
    }
    for (const condition of report.conditions ?? []) this.wantedBackup.conditions.set(condition.type, condition);
    for (const key of ['firstRecoverabilityPoint', 'lastSuccessfulBackup', 'lastFailedBackup'] as const) {
      const value = report[key];
      if (value !== undefined) this.wantedBackup.fields[key] = value;
    }
    if (report.managedRolesStatus !== undefined) this.wantedManagedRoles = report.managedRolesStatus;
    if (report.tablespacesStatus !== undefined) this.wantedTablespaces = report.tablespacesStatus;
    if (report.currentPrimary !== undefined) {
      this.wantedPrimary = { podName: report.currentPrimary, timestamp: report.currentPrimaryTimestamp ?? new Date().toISOString() };
    }
    return this.flush();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
  }

  /** A method, so the compiler does not assume it unchanged across an await. */
  private isClosed(): boolean {
    return this.closed;
  }

  private wantPhase(next: PhaseReport): void {
    const observed = this.options.observed()?.status;
    const previous = this.wantedPhase?.phase ?? (isRecord(observed) && typeof observed.phase === 'string' ? observed.phase : undefined);
    this.wantedPhase = next;
    if (previous === next.phase) return;
    const event = phaseEvents[next.phase] ?? { type: 'Normal', reason: 'PhaseChanged' };
    // Not awaited: an event is best effort and must not delay the status write behind it.
    void this.options.events.record(event.type, event.reason, next.phaseReason === '' ? next.phase : `${next.phase}: ${next.phaseReason}`);
  }

  /** One write attempt at a time, in order; each covers everything wanted so far. */
  private flush(): Promise<void> {
    this.queue = this.queue.then(() => this.writeOnce());
    return this.queue;
  }

  private async writeOnce(): Promise<void> {
    if (this.closed) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const { client, namespace, clusterName, logger } = this.options;
    try {
      const primary = this.wantedPrimary;
      if (primary !== undefined) {
        await this.claimPrimary(primary.podName, primary.timestamp);
        if (this.wantedPrimary === primary) this.wantedPrimary = undefined;
      }
      const wanted = this.wantedPhase;
      if (wanted !== undefined && !samePhase(wanted, this.lastKnownPhase())) {
        await mergePatchStatus(client, namespace, clusterName, { status: { phase: wanted.phase, phaseReason: wanted.phaseReason } });
        logger.debug({ phase: wanted.phase }, 'Cluster status patched');
      }
      if (wanted !== undefined) this.writtenPhase = wanted;
      const operatorPhase = this.wantedOperatorPhase;
      if (operatorPhase !== undefined) {
        const written = await patchStatusWithLock(client, namespace, clusterName, (cluster) =>
          operatorPhasePatch(isRecord(cluster.status) ? cluster.status : {}, operatorPhase.phase, operatorPhase.phaseReason, new Date()),
        );
        if (written) logger.info({ phase: operatorPhase.phase, phaseReason: operatorPhase.phaseReason }, 'Cluster phase written');
        if (this.wantedOperatorPhase === operatorPhase) this.wantedOperatorPhase = undefined;
      }
      await this.writeBackupStatus();
      await this.writeManagedRolesStatus();
      const tablespaces = this.wantedTablespaces;
      if (tablespaces !== undefined) {
        await mergePatchStatus(client, namespace, clusterName, { status: { tablespacesStatus: tablespaces.map((t) => ({ ...t })) } });
        if (this.wantedTablespaces === tablespaces) this.wantedTablespaces = undefined;
      }
      this.backoff.reset();
    } catch (err) {
      const delay = this.backoff.next();
      const action = err instanceof ApiError ? err.action : statusAction(namespace, clusterName);
      logger.warn(
        { ...actionFields(action), error: errorMessage(err), retryInMs: delay },
        err instanceof ApiError && err.status === 403
          ? `the API server refused: ${describeAction(action)}; will retry the status write`
          : 'could not write the Cluster status; will retry',
      );
      if (!this.isClosed()) {
        this.retryTimer = setTimeout(() => void this.flush(), delay);
        // A pending retry must not keep a stopping pgim alive.
        this.retryTimer.unref();
      }
    }
  }

  /**
   * What this instance last wrote; before its first write, what the Cluster already says. Not the live copy after
   * that: a watch event can lag behind this instance's own writes.
   */
  private lastKnownPhase(): PhaseReport | undefined {
    if (this.writtenPhase !== undefined) return this.writtenPhase;
    const status = this.options.observed()?.status;
    if (!isRecord(status) || typeof status.phase !== 'string') return undefined;
    return { phase: status.phase, phaseReason: typeof status.phaseReason === 'string' ? status.phaseReason : '' };
  }

  /**
   * Conditions (replaced by type, `lastTransitionTime` kept while the status does not change, as
   * meta.SetStatusCondition does) and the backup times, with the optimistic lock: other writers own the other
   * conditions. Nothing is written when nothing changes.
   */
  private async writeBackupStatus(): Promise<void> {
    const wanted = this.wantedBackup;
    if (wanted.conditions.size === 0 && Object.keys(wanted.fields).length === 0) return;
    this.wantedBackup = { conditions: new Map(), fields: {} };
    const { client, namespace, clusterName } = this.options;
    try {
      await patchStatusWithLock(client, namespace, clusterName, (cluster) => {
        const status = isRecord(cluster.status) ? cluster.status : {};
        const existing = Array.isArray(status.conditions) ? (status.conditions as Record<string, unknown>[]) : [];
        let changed = false;
        const conditions = existing.map((c) => ({ ...c }));
        for (const condition of wanted.conditions.values()) {
          const index = conditions.findIndex((c) => c.type === condition.type);
          const old = index === -1 ? undefined : conditions[index];
          if (old !== undefined && old.status === condition.status && old.reason === condition.reason && old.message === condition.message) continue;
          changed = true;
          const next = {
            ...condition,
            lastTransitionTime: old !== undefined && old.status === condition.status && typeof old.lastTransitionTime === 'string' ? old.lastTransitionTime : new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
          };
          if (index === -1) conditions.push(next);
          else conditions[index] = next;
        }
        const patch: Record<string, unknown> = changed ? { conditions } : {};
        for (const [key, value] of Object.entries(wanted.fields)) {
          const current = typeof status[key] === 'string' ? status[key] : '';
          if (current === value) continue;
          patch[key] = value === '' ? null : value;
        }
        return Object.keys(patch).length === 0 ? undefined : patch;
      });
    } catch (err) {
      // Keep what was wanted (newer wishes win) for the retry.
      for (const [type, condition] of wanted.conditions) if (!this.wantedBackup.conditions.has(type)) this.wantedBackup.conditions.set(type, condition);
      this.wantedBackup.fields = { ...wanted.fields, ...this.wantedBackup.fields };
      throw err;
    }
  }

  /**
   * status.managedRolesStatus replaced as a whole, as CNPG's MergeFrom patch does: a merge patch alone would keep the
   * map keys the new status no longer has (a role that left `pending-reconciliation`), so they are sent as null.
   */
  private async writeManagedRolesStatus(): Promise<void> {
    const wanted = this.wantedManagedRoles;
    if (wanted === undefined) return;
    const { client, namespace, clusterName } = this.options;
    await patchStatusWithLock(client, namespace, clusterName, (cluster) => {
      const status = isRecord(cluster.status) ? cluster.status : {};
      const patch = replacingPatch(status.managedRolesStatus, wanted);
      return patch === undefined ? undefined : { managedRolesStatus: patch };
    });
    if (this.wantedManagedRoles === wanted) this.wantedManagedRoles = undefined;
  }

  private async claimPrimary(podName: string, timestamp: string): Promise<void> {
    const { client, namespace, clusterName, logger } = this.options;
    const patched = await patchStatusWithLock(client, namespace, clusterName, (cluster) => {
      const status = isRecord(cluster.status) ? cluster.status : {};
      const current = typeof status.currentPrimary === 'string' ? status.currentPrimary : '';
      const target = typeof status.targetPrimary === 'string' ? status.targetPrimary : '';
      if (current === podName) return undefined;
      // The target primary takes over from the former one (a switchover or failover the operator asked for), as
      // CNPG's instance manager does after its promotion; anyone else claims only an unset currentPrimary.
      if (current !== '' && target !== podName) {
        logger.info({ currentPrimary: current }, 'the Cluster already names another current primary; not claiming it');
        return undefined;
      }
      if (target !== '' && target !== podName) {
        logger.info({ targetPrimary: target }, 'the Cluster targets another instance as primary; not claiming it');
        return undefined;
      }
      return { currentPrimary: podName, currentPrimaryTimestamp: timestamp };
    });
    if (patched) logger.info({ currentPrimary: podName }, 'reported this instance as the current primary');
  }
}

/**
 * The JSON merge patch that turns `current` into `wanted` (objects recursively, keys `wanted` lacks set to null,
 * anything else replaced), or undefined when they are equal already.
 */
export function replacingPatch(current: unknown, wanted: unknown): unknown {
  if (!isRecord(wanted)) return JSON.stringify(current) === JSON.stringify(wanted) ? undefined : wanted;
  if (!isRecord(current)) return Object.keys(wanted).length === 0 ? undefined : wanted;
  const patch: Record<string, unknown> = {};
  for (const key of Object.keys(current)) if (!(key in wanted)) patch[key] = null;
  for (const [key, value] of Object.entries(wanted)) {
    const child = replacingPatch(current[key], value);
    if (child !== undefined) patch[key] = child;
  }
  return Object.keys(patch).length === 0 ? undefined : patch;
}

function samePhase(a: PhaseReport, b: PhaseReport | undefined): boolean {
  return b !== undefined && a.phase === b.phase && a.phaseReason === b.phaseReason;
}
