import type { Logger } from 'pino';
import { phases } from '../controlplane/index.js';
import type { DesiredState } from '../desired/state.js';
import { errorMessage } from '../errors/index.js';
import type { InstanceState } from '../instance/state.js';
import type { PostgresInstance } from '../postgres/instance.js';
import { certificatePaths } from '../tls/files.js';
import { decideRestart, parseRestartedAt, restartAnnotation, restartRequested, type ReplicaReport, type RestartDecision } from './decision.js';
import { askReplica, readLocalFacts } from './facts.js';
import { decideUnderOperator, operatorPhases } from './operator-decision.js';

/** How long a primary waits for its replicas to apply settings that need a restart before it restarts anyway. */
export const replicaRestartTimeoutMs = 300_000;
/** How often an instance looks again while something waits (its replicas, its primary, a paused replay)... */
export const restartCheckIntervalMs = 2_000;
/** ...and otherwise, on a replica, for a paused replay or a pending restart that no configuration change announced... */
export const idleCheckIntervalMs = 5_000;
/**
 * ...and on a primary, whose replay cannot pause: only a restart pending without a change pgim made (ALTER SYSTEM and
 * a reload by hand) is left to find. Every change pgim makes is checked at once after its reload, and `/pg/status`
 * reads pending_restart live; two queries every 5 s were a tenth of an idle primary's CPU.
 */
export const primaryIdleCheckIntervalMs = 30_000;

/** How long until the next check: soon while something waits, otherwise by the role the last check saw. */
export function nextCheckDelayMs(waiting: boolean, lastRole: 'primary' | 'replica' | undefined): number {
  if (waiting) return restartCheckIntervalMs;
  return lastRole === 'primary' ? primaryIdleCheckIntervalMs : idleCheckIntervalMs;
}

export interface RestartCoordinatorOptions {
  instance: PostgresInstance;
  state: InstanceState;
  logger: Logger;
  /** The desired state in force (the reconciler's). */
  desired: () => DesiredState;
  /** Restarts postgres in place (smart, then fast) and resolves once the stop is under way. */
  restartInPlace: (reason: string) => Promise<void>;
  reportPhase: (phase: string, reason: string) => Promise<void>;
  askReplica?: (name: string, desired: DesiredState) => Promise<ReplicaReport>;
  now?: () => number;
  /** CloudNativePG's operator drives the rolling restart (./operator-decision.ts): this instance never starts one. */
  operatorDriven?: boolean;
}

function defaultAskReplica(name: string, desired: DesiredState): Promise<ReplicaReport> {
  const address = desired.topology.addresses.get(name);
  if (address === undefined) return Promise.resolve({ name, running: undefined, pending: [], error: 'no address' });
  return askReplica(name, address, certificatePaths(desired.layout.certificatesDir));
}

/**
 * Applies decideRestart: restarts this instance's postgres when its turn comes, and otherwise says what waits
 * (`/pg/status`, the log, the Cluster phase on the primary). Checks after each reload and every 2 s while something
 * waits (otherwise every 5 s on a replica, 30 s on a primary: nextCheckDelayMs), so a replica whose replay paused,
 * or a primary waiting for its replicas, acts without another configuration change.
 */
export class RestartCoordinator {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  private waitingSinceMs: number | undefined;
  private lastReport = '';
  /** Under the operator: the pending settings already announced, and whether the in-place request was served. */
  private announced: readonly string[] = [];
  private inPlaceRestartDone = false;
  /** The role the last check found (a new postmaster may be either until it is asked). */
  private lastRole: 'primary' | 'replica' | undefined;
  private readonly now: () => number;

  constructor(private readonly options: RestartCoordinatorOptions) {
    this.now = options.now ?? Date.now;
  }

  start(): void {
    const waiting = this.options.state.restartWaitingFor !== undefined || this.options.state.replayPausedReason !== undefined;
    this.timer = setTimeout(() => {
      void this.check().then(() => {
        if (this.timer !== undefined) this.start();
      });
    }, nextCheckDelayMs(waiting, this.lastRole));
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Decides and acts once (serialised); resolves true when it restarted postgres. */
  check(desired?: DesiredState): Promise<boolean> {
    if (this.running) return this.running;
    this.running = this.decideAndAct(desired ?? this.options.desired())
      .catch((err: unknown) => {
        this.options.logger.debug({ error: errorMessage(err) }, 'restart check failed');
        return false;
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async decideAndAct(desired: DesiredState): Promise<boolean> {
    const { instance, state, logger } = this.options;
    if (!state.accepting || state.phase !== 'running') return false;
    if (this.options.operatorDriven === true) return this.actUnderOperator(desired);
    const facts = await readLocalFacts(instance);
    const role = facts.inRecovery ? 'replica' : 'primary';
    this.lastRole = role;
    const restartRequestedAtMs = parseRestartedAt(desired.cluster.annotations[restartAnnotation]);
    const asked = restartRequested(facts.postmasterStartMs, restartRequestedAtMs);
    // Replicas are asked only when this primary has something pending.
    const replicas = role === 'primary' && (facts.pending.length > 0 || asked) && desired.cluster.instances > 1
      ? await Promise.all(desired.topology.instances.filter((name) => name !== desired.topology.self).map((name) => (this.options.askReplica ?? defaultAskReplica)(name, desired)))
      : [];
    const decision = decideRestart({
      ...facts,
      role,
      strategy: desired.cluster.primaryUpdateStrategy,
      instances: desired.cluster.instances,
      replicas,
      waitingSinceMs: this.waitingSinceMs,
      nowMs: this.now(),
      replicaTimeoutMs: replicaRestartTimeoutMs,
      restartRequestedAtMs,
    });
    state.restartPending = facts.pending.length > 0 || asked;
    this.waitingSinceMs = decision.action === 'wait' && !decision.forUser && role === 'primary' ? (this.waitingSinceMs ?? this.now()) : undefined;
    this.reportReplay(decision);
    state.restartWaitingFor = decision.action === 'wait' ? decision.waitingFor : undefined;
    if (decision.action === 'restart') {
      logger.info({ settings: facts.pending, role, ...(asked ? { restartedAt: desired.cluster.annotations[restartAnnotation] } : {}) }, `restarting postgres in place: ${decision.reason}`);
      this.lastReport = '';
      if (role === 'primary') await this.options.reportPhase(phases.applying, decision.phaseReason);
      await this.options.restartInPlace(decision.reason);
      state.restartPending = false;
      return true;
    }
    if (decision.action === 'wait') {
      const report = `${role}:${decision.waitingFor}`;
      if (report !== this.lastReport) {
        logger[decision.forUser ? 'warn' : 'info']({ settings: facts.pending, role }, `settings need a restart; waiting for ${decision.waitingFor}`);
        // The primary speaks for the cluster; replicas say it in their own /pg/status and log.
        if (role === 'primary') await this.options.reportPhase(decision.forUser ? phases.waitingForUser : phases.applying, `waiting for ${decision.waitingFor}`);
      }
      this.lastReport = report;
      return false;
    }
    this.lastReport = '';
    return false;
  }

  private async actUnderOperator(desired: DesiredState): Promise<boolean> {
    const { instance, state, logger } = this.options;
    const facts = await readLocalFacts(instance);
    const role = facts.inRecovery ? 'replica' : 'primary';
    this.lastRole = role;
    const clusterPhase = desired.cluster.observability.clusterFacts.phase;
    if (clusterPhase !== operatorPhases.inplacePrimaryRestart) this.inPlaceRestartDone = false;
    state.restartPending = facts.pending.length > 0;
    const decision = decideUnderOperator({
      ...facts,
      role,
      strategy: desired.cluster.primaryUpdateStrategy,
      instances: desired.cluster.instances,
      self: desired.topology.self,
      clusterPhase,
      currentPrimary: desired.cluster.currentPrimary,
      targetPrimary: desired.cluster.targetPrimary,
      announced: this.announced,
      inPlaceRestartDone: this.inPlaceRestartDone,
    });
    this.announced = facts.pending;
    if (facts.pending.length > 0 && decision.action === 'none' && this.lastReport !== facts.pending.join()) {
      logger.info({ settings: facts.pending, role }, 'settings need a restart; the operator restarts this instance');
    }
    this.lastReport = facts.pending.join();
    if (decision.action === 'report') {
      await this.options.reportPhase(decision.phase.phase, decision.phase.phaseReason);
      return false;
    }
    if (decision.action !== 'restart') return false;
    logger.info({ settings: facts.pending, role }, `restarting postgres in place: ${decision.reason}`);
    this.inPlaceRestartDone = clusterPhase === operatorPhases.inplacePrimaryRestart;
    await this.options.restartInPlace(decision.reason);
    state.restartPending = false;
    await this.options.reportPhase(decision.then.phase, decision.then.phaseReason);
    return true;
  }

  /** A replica whose replay paused for insufficient settings is not ready, and says why once. */
  private reportReplay(decision: RestartDecision): void {
    const { state, logger } = this.options;
    const reason = decision.replayPausedReason;
    if (reason !== undefined && reason !== state.replayPausedReason) logger.warn(`recovery has paused: ${reason}; this replica is not ready`);
    if (reason === undefined && state.replayPausedReason !== undefined) logger.info('replay resumed; this replica is ready again');
    state.replayPausedReason = reason;
  }
}
