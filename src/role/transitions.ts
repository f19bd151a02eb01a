import type { Logger } from 'pino';
import { Backoff } from '../async/backoff.js';
import { phases, PrimaryLeaseError, type ControlPlane } from '../controlplane/index.js';
import type { DesiredState } from '../desired/state.js';
import { primaryConninfo } from '../desired/state.js';
import { errorMessage } from '../errors/index.js';
import type { InstanceState } from '../instance/state.js';
import type { PostgresInstance } from '../postgres/instance.js';
import type { ShutdownPlan } from '../postgres/postmaster.js';
import { haSlotName } from '../replication/topology.js';
import { primaryTimeline, waitForPrimary } from '../replication/wait-primary.js';
import type { PostgresControl } from '../supervisor/supervisor.js';
import { certificatePaths } from '../tls/files.js';
import { decideRole, isFenced, type RoleFacts } from './decision.js';
import { DivergenceWatch } from './divergence.js';

export interface RoleTransitionsOptions {
  instance: PostgresInstance;
  state: InstanceState;
  logger: Logger;
  control: PostgresControl;
  /** The primary Lease and the reports (currentPrimary, the phase). */
  controlPlane: Pick<ControlPlane, 'acquirePrimaryLease' | 'releasePrimaryLease' | 'reportStatus'>;
  /** Asks for another reconcile pass: a promotion the Lease refused is tried again. */
  retry: (reason: string) => void;
}

/** What a role step did: the reconciler goes on with the rest of its pass only after 'promoted' or 'none'. */
export type RoleOutcome = 'promoted' | 'demoting' | 'waiting' | 'none';

/** How long a promotion waits for the WAL receiver to stop (the old primary's clean shutdown ends it). */
const walReceiverStopTimeoutMs = 30_000;

/** The fast stop of a role change or a fence: no smart phase, `switchoverDelay` for the fast one. */
export function roleChangePlan(desired: DesiredState): ShutdownPlan {
  return { smartSeconds: 0, fastSeconds: desired.cluster.switchoverDelaySeconds };
}

/**
 * Every role change in one place (CNPG's promote.go / instance_replica.go / slots, Patroni's rewind.py and
 * slots.py): promote, demote, rewind onto a new primary, rejoin after a forked history, the primary Lease and the
 * HA replication slots. decideRole (./decision.ts) says what to do; this carries it out.
 */
export class RoleTransitions {
  /**
   * A promotion the Lease refused is tried again after 250 ms doubling to 10 s, or sooner when the holder's lease
   * can run out sooner. Short at first: in a planned switchover the old primary frees the Lease a moment after it
   * stops.
   */
  private readonly leaseRetry = new Backoff(250, 10_000, { jitter: 0 });
  private leaseRetryTimer: NodeJS.Timeout | undefined;
  /** The lastError this set for a refused Lease, so it clears its own and nobody else's. */
  private leaseError: string | undefined;
  /** The last reason a running primary could not take the Lease: logged once per reason, not once per pass. */
  private keepLeaseError: string | undefined;

  constructor(private readonly options: RoleTransitionsOptions) {}

  /** No more retries of its own (pgim is stopping). */
  close(): void {
    clearTimeout(this.leaseRetryTimer);
  }

  /**
   * Applies the fence, then follows `targetPrimary` (CNPG `reconcilePrimary` / `reconcileOldPrimary`): a replica
   * that became the target promotes in place; a primary that is no longer the target checkpoints, stops fast, waits
   * for the new primary, rewinds onto it and starts again as its replica, in process. Other replicas just follow the
   * new conninfo.
   */
  async apply(desired: DesiredState): Promise<RoleOutcome> {
    const { instance, state, logger, control } = this.options;
    const { topology } = desired;
    const facts: RoleFacts = {
      isTarget: topology.isPrimary,
      inRecovery: state.accepting ? await instance.isInRecovery() : undefined,
      fenced: isFenced(desired.cluster.annotations, topology.self),
      lease: 'not asked',
      forked: false,
      designatedPrimary: desired.replicaSource !== undefined,
    };
    const decision = decideRole(facts);
    control.fence(decision.fence, roleChangePlan(desired));
    let action = decision.action;
    if (action === 'acquire lease') action = decideRole({ ...facts, lease: (await this.holdPrimaryLease(topology.self)) ? 'held' : 'refused' }).action;
    switch (action) {
      case 'promote': {
        state.phase = 'promoting';
        // A replica cluster's designated primary (no slot: it streamed from another cluster, which keeps running)
        // promotes at once; its history forks from the source's onto a new timeline.
        const designated = await instance.streamsWithoutSlot();
        logger.info({ target: topology.self, replicaClusterPromotion: designated }, designated ? 'the replica cluster is no longer a replica: its designated primary promotes' : 'this instance is the target primary: promoting');
        // The HA slots are created while still a replica (physical slots can be), right before the promotion: the
        // former primary and the other replicas connect with primary_slot_name at once and must find theirs.
        const { timeline, slots } = await instance.promote(designated ? 0 : walReceiverStopTimeoutMs, this.haSlots(desired));
        if (slots !== undefined && slots.created.length + slots.dropped.length > 0) logger.info(slots, 'replication slots reconciled');
        state.phase = 'running';
        logger.info({ timeline }, 'promoted');
        await this.options.controlPlane.reportStatus({ currentPrimary: topology.self, currentPrimaryTimestamp: new Date().toISOString() });
        return 'promoted';
      }
      case 'wait for lease':
        return 'waiting';
      case 'demote':
        state.phase = 'demoting';
        logger.info({ target: topology.primary }, 'another instance is the target primary: demoting this one');
        await instance.checkpoint(30_000).catch(() => undefined);
        await control.demote(roleChangePlan(desired), async () => {
          await this.rejoinAsReplica(desired);
        });
        return 'demoting';
      case 'keep lease':
        await this.keepPrimaryLease(topology.self);
        // A designated primary keeps the HA slots its own replicas cascade from.
        if (desired.replicaSource !== undefined) await this.reconcileSlots(desired);
        return 'none';
      case 'refuse demotion': {
        const message = 'spec.replica asks this running primary to follow another cluster: demoting a primary into a replica cluster is not implemented by pgim (CNPG demotes with a demotion token); it keeps running as a primary with its last good configuration';
        if (state.lastError !== message) logger.error({ field: 'spec.replica' }, message);
        state.lastError = message;
        await this.options.controlPlane.reportStatus({ phase: phases.invalid, phaseReason: message });
        return 'waiting';
      }
      case 'release lease':
        // A replica that is not (or no longer) the target must not keep a Lease it took for a promotion that did
        // not happen: the new target would wait for it to run out.
        await this.options.controlPlane.releasePrimaryLease(topology.self);
        return 'none';
      default:
        return 'none';
    }
  }

  /** The HA slots the (target) primary keeps: one per other instance (`_cnpg_<name>`); undefined on a replica. */
  private haSlots(desired: DesiredState): string[] | undefined {
    const { topology } = desired;
    return topology.isPrimary ? topology.instances.filter((i) => i !== topology.self).map(haSlotName) : undefined;
  }

  /** On the primary: an HA slot per other instance (`_cnpg_<name>`), stale inactive ones dropped. */
  async reconcileSlots(desired: DesiredState): Promise<void> {
    const wanted = this.haSlots(desired);
    if (wanted === undefined) return;
    const { created, dropped } = await this.options.instance.reconcileHaSlots(wanted);
    if (created.length + dropped.length > 0) this.options.logger.info({ created, dropped }, 'replication slots reconciled');
  }

  /**
   * A running primary that is the target holds the Lease too, as CloudNativePG acquires it on every reconcile of
   * the target: a primary started as one (bootstrap, restart) then also makes a failover wait until it stops
   * renewing. Best effort: postgres already runs as the primary, so a refusal is logged, never acted on.
   */
  async keepPrimaryLease(self: string): Promise<void> {
    try {
      await this.options.controlPlane.acquirePrimaryLease(self);
      this.keepLeaseError = undefined;
    } catch (err) {
      const message = errorMessage(err);
      if (message !== this.keepLeaseError) this.options.logger.warn({ error: message }, `this primary does not hold the primary Lease: ${message}`);
      this.keepLeaseError = message;
    }
  }

  /**
   * Whether this instance holds the primary Lease and may promote. When not: says why (log, status, lastError) and
   * schedules another pass, since nothing else may trigger one while the holder simply lets its lease run out.
   */
  private async holdPrimaryLease(self: string): Promise<boolean> {
    const { state, logger, controlPlane } = this.options;
    try {
      await controlPlane.acquirePrimaryLease(self);
    } catch (err) {
      const hint = err instanceof PrimaryLeaseError ? err.retryInMs : undefined;
      const delay = Math.min(this.leaseRetry.next(), hint ?? Infinity);
      this.leaseError = state.lastError = errorMessage(err);
      logger.warn({ target: self, error: errorMessage(err), retryInMs: delay }, `this instance is the target primary but may not promote yet: ${errorMessage(err)}`);
      await controlPlane.reportStatus({ phase: phases.waitingForLease, phaseReason: `${self} cannot promote: ${errorMessage(err)}` });
      clearTimeout(this.leaseRetryTimer);
      this.leaseRetryTimer = setTimeout(() => {
        this.options.retry('retry the primary Lease');
      }, delay);
      this.leaseRetryTimer.unref();
      return false;
    }
    this.leaseRetry.reset();
    clearTimeout(this.leaseRetryTimer);
    if (this.leaseError !== undefined && state.lastError === this.leaseError) state.lastError = undefined;
    this.leaseError = undefined;
    return true;
  }

  /** After the stop: wait for the new primary, pg_rewind onto it, write the replica configuration. */
  async rejoinAsReplica(desired: DesiredState, signal?: AbortSignal): Promise<void> {
    const { instance, logger, state } = this.options;
    state.rejoiningAsReplica = true;
    try {
      // postgres is stopped here, so the Lease can go: the new primary need not wait for it to run out.
      await this.options.controlPlane.releasePrimaryLease(desired.topology.self);
      const primary = desired.topology.addresses.get(desired.topology.primary);
      if (!desired.tls || !primary) throw new Error('a replica needs the TLS Secrets and the primary address');
      await waitForPrimary(primary, certificatePaths(desired.layout.certificatesDir), signal, undefined, desired.cluster.external.replica !== undefined);
      await instance.rewind(primaryConninfo(desired.topology, desired.tls, desired.layout, `${desired.topology.self}-rewind`), signal);
      await instance.writeConfiguration(desired.rendered);
    } finally {
      state.rejoiningAsReplica = false;
    }
    logger.info({ primary: desired.topology.primary }, 'rewound onto the new primary; starting as its replica');
  }

  /** Rewinds this replica in process (stop, pg_rewind, start) when its history forked from the primary's. */
  watchForDivergence(current: () => DesiredState): DivergenceWatch {
    const { instance, state, logger, control } = this.options;
    const watch = new DivergenceWatch(
      {
        applies: () => !current().topology.isPrimary,
        replica: () => (current().topology.isPrimary || !state.accepting || state.phase !== 'running' ? Promise.resolve(undefined) : instance.replicaState()),
        primaryTimeline: () => {
          const { topology, layout } = current();
          const address = topology.addresses.get(topology.primary);
          return address === undefined ? Promise.resolve(undefined) : primaryTimeline(address, certificatePaths(layout.certificatesDir));
        },
      },
      (timelines) => {
        const desired = current();
        const facts: RoleFacts = {
          isTarget: desired.topology.isPrimary,
          inRecovery: true,
          fenced: isFenced(desired.cluster.annotations, desired.topology.self),
          lease: 'not asked',
          forked: true,
        };
        if (decideRole(facts).action !== 'rewind') return;
        logger.warn(
          { timeline: timelines.replica, primaryTimeline: timelines.primary },
          "this replica has not streamed while its primary runs on a later timeline: its history forked from the primary's; rewinding onto it",
        );
        void control.restart('replica history forked from the primary', {
          plan: roleChangePlan(desired),
          beforeStart: () => this.rejoinAsReplica(current(), control.stopSignal),
        });
      },
    );
    watch.start();
    return watch;
  }
}
