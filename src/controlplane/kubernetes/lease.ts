import type { Logger } from 'pino';
import { errorMessage } from '../../errors/index.js';
import { PrimaryLeaseError } from '../types.js';
import { isApiStatus, type KubeClient } from './client.js';
import { decideLease, leaseSpecFor, releasedLeaseSpec, type LeaseObservation, type LeaseView } from './lease-decision.js';
import { actionFields, describeAction, isRecord, leases, objectPath, asKubeObject, type ApiAction, type KubeObject } from './resources.js';

/** CloudNativePG's default `spec.primaryLease.leaseDurationSeconds`. */
export const leaseDurationSeconds = 15;
/**
 * A third of the duration: two renewals in a row can fail (an API hiccup) before the Lease runs out. client-go
 * renews every 2 s; this writes less to etcd for the same safety margin.
 */
export const renewIntervalMs = 5000;
/** A request must end before the next renewal is due. */
const requestTimeoutMs = 4000;
/** Optimistic-lock conflicts in one acquire before giving up until the next reconcile. */
const conflictAttempts = 4;

export interface PrimaryLeaseOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  /** The Lease is named after the Cluster, as CloudNativePG names it. */
  readonly name: string;
  readonly logger: Logger;
  /** Monotonic milliseconds (tests may pass their own). */
  readonly monotonicNow?: () => number;
  readonly renewIntervalMs?: number;
}

/**
 * The cluster's primary Lease (coordination.k8s.io/v1, `<cluster>` in the Cluster's namespace, holder = pod name),
 * with get and update only: the operator or deploy/kubernetes/lease.yaml creates it. Every write carries the
 * resourceVersion that was read, so two instances racing for it cannot both win: the API server answers the second
 * with 409, which is answered by a fresh GET and a new decision, never by a blind overwrite.
 */
export class PrimaryLease {
  private observation: LeaseObservation | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  /** Who this process renews the Lease for, while it believes it holds it. */
  private holding: string | undefined;
  /** Until the first release: a previous pgim in this pod may have left the Lease held under this pod's name. */
  private mayHold = true;
  /** Acquire, renew and release run one at a time, in order. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;
  readonly source: string;

  constructor(private readonly options: PrimaryLeaseOptions) {
    this.now = options.monotonicNow ?? (() => performance.now());
    this.source = `Lease ${options.namespace}/${options.name}`;
  }

  acquire(holder: string): Promise<void> {
    return this.serial(async () => {
      // Held and renewed every few seconds: the renewal checks it, and stops (clearing `holding`) once it is lost.
      if (this.holding === holder && this.renewTimer !== undefined) return;
      await this.take(holder, 'acquire');
    });
  }

  release(holder: string): Promise<void> {
    return this.serial(() => this.free(holder));
  }

  /** Stops renewing without writing (pgim is going away, or the caller releases separately). */
  close(): void {
    clearInterval(this.renewTimer);
    this.renewTimer = undefined;
    this.holding = undefined;
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private action(verb: 'get' | 'update'): ApiAction {
    return { verb, type: leases, namespace: this.options.namespace, name: this.options.name };
  }

  /** The Lease, or undefined when it does not exist. */
  private async get(): Promise<KubeObject | undefined> {
    const action = this.action('get');
    try {
      return asKubeObject(await this.options.client.request(action, 'GET', objectPath(leases, this.options.namespace, this.options.name), { timeoutMs: requestTimeoutMs }));
    } catch (err) {
      if (isApiStatus(err, 404)) return undefined;
      throw this.explain(err, action);
    }
  }

  private async put(lease: KubeObject, spec: Record<string, unknown>): Promise<KubeObject> {
    const action = this.action('update');
    // The whole object as read, resourceVersion included: the API server refuses it if anyone wrote in between.
    const body = { ...lease, spec: { ...(isRecord(lease.spec) ? lease.spec : {}), ...spec } };
    try {
      return asKubeObject(
        await this.options.client.request(action, 'PUT', objectPath(leases, this.options.namespace, this.options.name), { body, timeoutMs: requestTimeoutMs }),
      );
    } catch (err) {
      if (isApiStatus(err, 409)) throw err;
      throw this.explain(err, action);
    }
  }

  /** The errors a user can act on, in their words: who must create the Lease, which Role rule is missing. */
  private explain(err: unknown, action: ApiAction): PrimaryLeaseError {
    if (isApiStatus(err, 404)) return this.missing();
    if (isApiStatus(err, 403)) {
      return new PrimaryLeaseError(
        `the API server refused: ${describeAction(action)}; the Role needs verbs get and update on leases (apiGroup coordination.k8s.io) for resourceName "${this.options.name}"`,
      );
    }
    return new PrimaryLeaseError(`cannot ${action.verb} ${this.source}: ${errorMessage(err)}`);
  }

  private missing(): PrimaryLeaseError {
    return new PrimaryLeaseError(`${this.source} does not exist: the operator or deploy/kubernetes/lease.yaml must create it (pgim may only get and update it)`);
  }

  /**
   * GET, decide, conditional PUT; on 409 again with a fresh copy. `renew` mode is the timer's: there, another holder
   * means this instance lost the Lease (it stops renewing and says so), not a reason to wait.
   */
  private async take(holder: string, mode: 'acquire' | 'renew'): Promise<void> {
    const { logger } = this.options;
    for (let attempt = 1; attempt <= conflictAttempts; attempt++) {
      const lease = await this.get();
      if (lease === undefined) throw this.missing();
      const view = readLeaseView(lease, this.source);
      if (mode === 'renew' && view.holder !== '' && view.holder !== holder) {
        this.close();
        logger.error({ ...actionFields(this.action('update')), holder: view.holder }, `${this.source} is now held by "${view.holder}": this instance no longer holds the primary Lease`);
        return;
      }
      const { decision, observation } = decideLease(view, holder, this.now(), this.observation);
      this.observation = observation;
      if (decision.action === 'refuse') {
        logger.debug({ holder: view.holder, renewTime: view.renewTime, leaseDurationSeconds: view.durationSeconds, retryInMs: decision.retryInMs }, 'the primary Lease is held by another instance');
        throw new PrimaryLeaseError(`${this.source} is held by "${view.holder}" and has not run out`, decision.retryInMs);
      }
      let written: KubeObject;
      try {
        written = await this.put(lease, leaseSpecFor(view, decision.action, holder, leaseDurationSeconds, new Date()));
      } catch (err) {
        if (isApiStatus(err, 409)) {
          logger.debug({ attempt }, `${this.source} changed while being written (409): reading it again`);
          continue;
        }
        throw err;
      }
      this.mayHold = true;
      if (decision.action === 'take') {
        const spec = isRecord(written.spec) ? written.spec : {};
        logger.info({ holder, previousHolder: view.holder, leaseTransitions: spec.leaseTransitions }, `took the primary Lease ${this.source}`);
      }
      this.startRenewing(holder);
      return;
    }
    throw new PrimaryLeaseError(`${this.source} kept changing while being written (409 ${conflictAttempts} times)`);
  }

  private startRenewing(holder: string): void {
    if (this.holding === holder && this.renewTimer !== undefined) return;
    this.close();
    this.holding = holder;
    this.renewTimer = setInterval(() => {
      void this.serial(async () => {
        if (this.holding !== holder) return;
        try {
          await this.take(holder, 'renew');
        } catch (err) {
          // Kept renewing: an API hiccup shorter than the lease duration must not cost the Lease.
          this.options.logger.warn({ ...actionFields(this.action('update')), error: errorMessage(err) }, `could not renew ${this.source}; will try again`);
        }
      });
    }, this.options.renewIntervalMs ?? renewIntervalMs);
    // Renewing must not keep a stopping pgim alive.
    this.renewTimer.unref();
  }

  private async free(holder: string): Promise<void> {
    const wasHolding = this.holding === holder;
    this.close();
    if (!this.mayHold) return;
    const { logger } = this.options;
    try {
      for (let attempt = 1; attempt <= conflictAttempts; attempt++) {
        const lease = await this.get();
        const view = lease === undefined ? undefined : readLeaseView(lease, this.source);
        if (lease === undefined || view?.holder !== holder) {
          this.mayHold = false;
          return;
        }
        try {
          await this.put(lease, releasedLeaseSpec(view, new Date()));
          this.mayHold = false;
          logger.info({ holder }, `released the primary Lease ${this.source}`);
          return;
        } catch (err) {
          if (!isApiStatus(err, 409)) throw err;
        }
      }
      throw new Error('it kept changing while being written (409)');
    } catch (err) {
      // No longer renewed, it runs out by itself within a lease duration: slower for the next primary, not unsafe.
      logger[wasHolding ? 'warn' : 'info']({ error: errorMessage(err), leaseDurationSeconds }, `could not release ${this.source}; it runs out unless renewed`);
    }
  }
}

/** The Lease's spec, checked: a malformed field is named, never guessed around. */
export function readLeaseView(lease: KubeObject, source: string): LeaseView {
  const spec = lease.spec === undefined ? {} : lease.spec;
  if (!isRecord(spec)) throw new PrimaryLeaseError(`${source}: spec: is not an object`);
  const text = (field: string): string | undefined => {
    const value = spec[field];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') throw new PrimaryLeaseError(`${source}: spec.${field}: is not a string`);
    return value;
  };
  const count = (field: string, fallback: number): number => {
    const value = spec[field];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new PrimaryLeaseError(`${source}: spec.${field}: is not a non-negative integer`);
    return value;
  };
  // No duration written yet: assume pgim's own, never a shorter one.
  const durationSeconds = count('leaseDurationSeconds', leaseDurationSeconds);
  return {
    holder: text('holderIdentity') ?? '',
    renewTime: text('renewTime'),
    acquireTime: text('acquireTime'),
    durationSeconds: durationSeconds === 0 ? leaseDurationSeconds : durationSeconds,
    transitions: count('leaseTransitions', 0),
  };
}
