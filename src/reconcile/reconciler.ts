import type { Logger } from 'pino';
import { PrimaryLeaseError } from '../controlplane/index.js';
import type { DesiredState } from '../daemon/prepare.js';
import { ConfigError, errorMessage } from '../errors/index.js';
import type { InstanceState } from '../instance/state.js';
import type { PostgresInstance } from '../postgres/instance.js';
import { ensureSystemRoles } from '../postgres/roles.js';
import { withLocalClient } from '../postgres/sql.js';
import { CredentialsApplier } from './credentials.js';
import { haSlotName } from '../replication/topology.js';
import { writeRuntimeFiles } from './runtime-files.js';
import { primaryConninfo } from '../daemon/prepare.js';
import type { ShutdownPlan } from '../postgres/postmaster.js';
import { waitForPrimary } from '../replication/wait-primary.js';
import { certificatePaths } from '../tls/files.js';

export interface ReconcilerOptions {
  instance: PostgresInstance;
  state: InstanceState;
  logger: Logger;
  /** Reads, validates and renders the desired state (throws ConfigError). */
  load: () => Promise<DesiredState>;
  /** After a reload: restarts postgres when settings wait for it and it is this instance's turn (src/rollout). */
  checkRestart: (desired: DesiredState) => Promise<boolean>;
  /** Stops postgres fast, runs `beforeStart` (wait for the new primary, rewind), starts it as a replica. */
  demote: (plan: ShutdownPlan, beforeStart: () => Promise<void>) => Promise<void>;
  setFenced: (fenced: boolean, plan: ShutdownPlan) => void;
  /** Where the instance reports currentPrimary after a promotion. */
  reportPrimary: (name: string) => Promise<void>;
  reportPhase: (phase: string, reason: string) => Promise<void>;
  /** The control plane's primary Lease: held before promoting, freed once postgres no longer runs as a primary. */
  acquirePrimaryLease: (holder: string) => Promise<void>;
  releasePrimaryLease: (holder: string) => Promise<void>;
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

const reloadConfirmTimeoutMs = 10_000;
/** How long a promotion waits for the WAL receiver to stop (the old primary's clean shutdown ends it). */
const walReceiverStopTimeoutMs = 30_000;

/**
 * A promotion the Lease refused is tried again after 250 ms doubling to 10 s, or sooner when the holder's lease can
 * run out sooner. Short at first: in a planned switchover the old primary frees the Lease a moment after it stops.
 */
const leaseRetryFirstMs = 250;
const leaseRetryMaxMs = 10_000;

/** CNPG's fencing annotation: a JSON list of instance names, or `["*"]` for all. */
export const fencedInstancesAnnotation = 'cnpg.io/fencedInstances';

export function isFenced(desired: DesiredState): boolean {
  const raw = desired.cluster.annotations[fencedInstancesAnnotation];
  if (raw === undefined || raw === '') return false;
  try {
    const list = JSON.parse(raw) as unknown;
    return Array.isArray(list) && (list.includes('*') || list.includes(desired.topology.self));
  } catch {
    return false;
  }
}

/**
 * One loop: desired state -> render -> validate -> write -> apply -> report. Runs serialised; a burst of triggers
 * while it runs becomes one more pass. A render that fails validation, or that PostgreSQL refuses once written, is
 * reported and rolled back: the instance keeps its last good configuration.
 */
export class Reconciler {
  private current: DesiredState;
  private readonly credentials = new CredentialsApplier();
  private running: Promise<void> | undefined;
  private again = false;
  private leaseRetryMs = leaseRetryFirstMs;
  private leaseRetryTimer: NodeJS.Timeout | undefined;
  /** The lastError this reconciler set for a refused Lease, so it clears its own and nobody else's. */
  private leaseError: string | undefined;
  /** The last reason a running primary could not take the Lease: logged once per reason, not once per pass. */
  private keepLeaseError: string | undefined;

  constructor(
    private readonly options: ReconcilerOptions,
    initial: DesiredState,
  ) {
    this.current = initial;
  }

  get desired(): DesiredState {
    return this.current;
  }

  /** No more passes of its own (pgim is stopping). */
  close(): void {
    clearTimeout(this.leaseRetryTimer);
  }

  markCredentialsApplied(): void {
    this.credentials.markApplied(this.current.credentials);
  }

  /** Requests a pass; resolves when a pass that started after this call has finished. */
  trigger(reason: string): Promise<void> {
    this.options.logger.debug({ reason }, 'reconcile requested');
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.loop().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async loop(): Promise<void> {
    do {
      await this.pass().catch((err: unknown) => {
        this.options.state.lastError = errorMessage(err);
        this.options.logger.error({ error: errorMessage(err) }, 'reconcile failed');
      });
    } while (this.takeAgain());
  }

  /** Whether triggers arrived during the last pass (and forgets them: one more pass covers them all). */
  private takeAgain(): boolean {
    const again = this.again;
    this.again = false;
    return again;
  }

  /** Work for each fresh postmaster on a primary: system roles, then any password not yet applied. */
  async onPostgresAccepting(isPrimary: boolean): Promise<void> {
    if (!isPrimary) return;
    const { instance, logger } = this.options;
    await withLocalClient(instance.connection, async (client) => {
      await ensureSystemRoles(client);
      const rotated = await this.credentials.apply(client, this.current.credentials);
      if (rotated.length > 0) logger.info({ roles: rotated }, 'passwords applied');
    });
    await this.reconcileSlots(this.current);
    if (!this.options.state.restartPending && this.options.state.configurationError === undefined) await this.options.reportPhase(phases.healthy, '');
    // Last: the API may be slow or away, and roles and slots must not wait for it.
    if (this.current.topology.isPrimary) await this.keepPrimaryLease(this.current.topology.self);
  }

  async writeRuntimeFiles(desired: DesiredState = this.current): Promise<void> {
    await writeRuntimeFiles(desired, this.options.logger);
    this.options.state.certificates = desired.tls?.facts.map(({ secret, facts }) => ({ secret, notAfter: facts.notAfter, serial: facts.serial })) ?? [];
  }

  /** On the primary: an HA slot per other instance (`_cnpg_<name>`), stale inactive ones dropped. */
  private async reconcileSlots(desired: DesiredState): Promise<void> {
    const { topology } = desired;
    if (!topology.isPrimary) return;
    const wanted = topology.instances.filter((i) => i !== topology.self).map(haSlotName);
    const { created, dropped } = await this.options.instance.reconcileHaSlots(wanted);
    if (created.length + dropped.length > 0) this.options.logger.info({ created, dropped }, 'replication slots reconciled');
  }

  private async pass(): Promise<void> {
    const { instance, state, logger } = this.options;
    let desired: DesiredState;
    try {
      desired = await this.options.load();
      const refused = await instance.checkSettings(desired.rendered, desired.layout.tmpDir);
      if (refused.length > 0) throw new ConfigError(desired.controlPlane.clusterSource, 'spec.postgresql.parameters', `PostgreSQL refuses them: ${refused.join('; ')}`);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      state.configurationError = err.message;
      logger.error({ source: err.source, field: err.field }, `invalid configuration, keeping the last good one: ${err.message}`);
      await this.options.reportPhase(phases.invalid, err.message);
      return;
    }
    for (const warning of desired.rendered.warnings) logger.warn(warning);
    const fastPlan = { smartSeconds: 0, fastSeconds: desired.cluster.switchoverDelaySeconds };
    this.options.setFenced(isFenced(desired), fastPlan);
    const role = state.accepting ? await this.changeRole(desired) : 'none';
    if (role === 'demoting') {
      this.current = desired;
      return;
    }
    // Still a replica: a primary's render (no primary_conninfo) must not reach it. The last good files stay.
    if (role === 'waiting') return;

    await this.writeRuntimeFiles(desired);
    const write = await instance.writeConfiguration(desired.rendered);
    if (write.changed.length > 0) logger.info({ files: write.changed, configHash: desired.rendered.configHash }, 'configuration written');
    state.renderedConfigHash = desired.rendered.configHash;

    if (state.accepting && write.changed.length > 0) {
      const errors = await instance.fileErrors();
      if (errors.length > 0) {
        await instance.restoreConfiguration(write);
        state.configurationError = `PostgreSQL refuses the new files: ${errors.join('; ')}`;
        logger.error({ errors }, 'PostgreSQL refuses the new configuration files; previous files restored');
        await this.options.reportPhase(phases.invalid, state.configurationError);
        return;
      }
      const loaded = await instance.reloadAndConfirm(desired.rendered.configHash, reloadConfirmTimeoutMs);
      if (!loaded) logger.warn({ configHash: desired.rendered.configHash }, 'PostgreSQL did not confirm the new configuration in time');
      else logger.info({ configHash: desired.rendered.configHash }, 'configuration reloaded');
      if (await this.options.checkRestart(desired)) {
        // The fresh postmaster applies roles and passwords when it accepts connections (onPostgresAccepting).
        this.current = desired;
        state.configurationError = undefined;
        return;
      }
    }
    this.current = desired;
    state.configurationError = undefined;
    if (state.accepting && !(await instance.isStandby())) {
      await withLocalClient(instance.connection, async (client) => {
        const rotated = await this.credentials.apply(client, desired.credentials);
        if (rotated.length > 0) logger.info({ roles: rotated }, 'passwords applied');
      });
      await this.reconcileSlots(desired);
    }
    if (!state.restartPending) await this.options.reportPhase(phases.healthy, '');
  }

  /**
   * Follows `targetPrimary` (CNPG `reconcilePrimary` / `reconcileOldPrimary`): a replica that became the target
   * promotes in place; a primary that is no longer the target checkpoints, stops fast, waits for the new primary,
   * rewinds onto it and starts again as its replica, in process. Other replicas just follow the new conninfo.
   */
  private async changeRole(desired: DesiredState): Promise<'promoted' | 'demoting' | 'waiting' | 'none'> {
    const { instance, state, logger } = this.options;
    const inRecovery = await instance.isInRecovery();
    if (desired.topology.isPrimary && inRecovery) {
      if (!(await this.holdPrimaryLease(desired.topology.self))) return 'waiting';
      state.phase = 'promoting';
      logger.info({ target: desired.topology.self }, 'this instance is the target primary: promoting');
      const timeline = await instance.promote(walReceiverStopTimeoutMs);
      state.phase = 'running';
      logger.info({ timeline }, 'promoted');
      // The slots first: the former primary and the other replicas connect with primary_slot_name right away.
      await this.reconcileSlots(desired);
      await this.options.reportPrimary(desired.topology.self);
      return 'promoted';
    }
    if (!desired.topology.isPrimary && !inRecovery) {
      state.phase = 'demoting';
      logger.info({ target: desired.topology.primary }, 'another instance is the target primary: demoting this one');
      await instance.checkpoint(30_000).catch(() => undefined);
      await this.options.demote({ smartSeconds: 0, fastSeconds: desired.cluster.switchoverDelaySeconds }, async () => {
        await this.rejoinAsReplica(desired);
      });
      return 'demoting';
    }
    if (desired.topology.isPrimary) {
      await this.keepPrimaryLease(desired.topology.self);
      return 'none';
    }
    // A replica that is not (or no longer) the target must not keep a Lease it took for a promotion that did not
    // happen: the new target would wait for it to run out.
    await this.options.releasePrimaryLease(desired.topology.self);
    return 'none';
  }

  /**
   * A running primary that is the target holds the Lease too, as CloudNativePG acquires it on every reconcile of
   * the target: a primary started as one (bootstrap, restart) then also makes a failover wait until it stops
   * renewing. Best effort: postgres already runs as the primary, so a refusal is logged, never acted on.
   */
  private async keepPrimaryLease(self: string): Promise<void> {
    try {
      await this.options.acquirePrimaryLease(self);
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
    const { state, logger } = this.options;
    try {
      await this.options.acquirePrimaryLease(self);
    } catch (err) {
      const hint = err instanceof PrimaryLeaseError ? err.retryInMs : undefined;
      const delay = Math.min(this.leaseRetryMs, hint ?? Infinity);
      this.leaseRetryMs = Math.min(this.leaseRetryMs * 2, leaseRetryMaxMs);
      this.leaseError = state.lastError = errorMessage(err);
      logger.warn({ target: self, error: errorMessage(err), retryInMs: delay }, `this instance is the target primary but may not promote yet: ${errorMessage(err)}`);
      await this.options.reportPhase(phases.waitingForLease, `${self} cannot promote: ${errorMessage(err)}`);
      clearTimeout(this.leaseRetryTimer);
      this.leaseRetryTimer = setTimeout(() => void this.trigger('retry the primary Lease'), delay);
      this.leaseRetryTimer.unref();
      return false;
    }
    this.leaseRetryMs = leaseRetryFirstMs;
    clearTimeout(this.leaseRetryTimer);
    if (this.leaseError !== undefined && state.lastError === this.leaseError) state.lastError = undefined;
    this.leaseError = undefined;
    return true;
  }

  /** After the stop: wait for the new primary, pg_rewind onto it, write the replica configuration. */
  async rejoinAsReplica(desired: DesiredState, signal?: AbortSignal): Promise<void> {
    const { instance, logger } = this.options;
    // postgres is stopped here, so the Lease can go: the new primary need not wait for it to run out.
    await this.options.releasePrimaryLease(desired.topology.self);
    const primary = desired.topology.addresses.get(desired.topology.primary);
    if (!desired.tls || !primary) throw new Error('a replica needs the TLS Secrets and the primary address');
    await waitForPrimary(primary, certificatePaths(desired.layout.certificatesDir), signal);
    await instance.rewind(primaryConninfo(desired.topology, desired.tls, desired.layout, `${desired.topology.self}-rewind`), signal);
    await instance.writeConfiguration(desired.rendered);
    logger.info({ primary: desired.topology.primary }, 'rewound onto the new primary; starting as its replica');
  }

}
