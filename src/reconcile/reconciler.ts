import type { Logger } from 'pino';
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
  /** Restarts postgres in place (smart, then fast) and resolves once the stop is under way. */
  restartInPlace: (reason: string) => Promise<void>;
  /** Stops postgres fast, runs `beforeStart` (wait for the new primary, rewind), starts it as a replica. */
  demote: (plan: ShutdownPlan, beforeStart: () => Promise<void>) => Promise<void>;
  setFenced: (fenced: boolean, plan: ShutdownPlan) => void;
  /** Where the instance reports currentPrimary after a promotion. */
  reportPrimary: (name: string) => Promise<void>;
  reportPhase: (phase: string, reason: string) => Promise<void>;
}

/** CloudNativePG's phase strings, so tools that read the Cluster status understand pgim's. */
export const phases = {
  healthy: 'Cluster in healthy state',
  applying: 'Applying configuration',
  waitingForUser: 'Waiting for user action',
  invalid: 'Invalid configuration',
} as const;

const reloadConfirmTimeoutMs = 10_000;
/** How long a promotion waits for the WAL receiver to stop (the old primary's clean shutdown ends it). */
const walReceiverStopTimeoutMs = 30_000;

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

  constructor(
    private readonly options: ReconcilerOptions,
    initial: DesiredState,
  ) {
    this.current = initial;
  }

  get desired(): DesiredState {
    return this.current;
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
    if (state.accepting && (await this.changeRole(desired)) === 'demoting') {
      this.current = desired;
      return;
    }

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
      if (await this.handlePendingRestart(desired)) {
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
  private async changeRole(desired: DesiredState): Promise<'promoted' | 'demoting' | 'none'> {
    const { instance, state, logger } = this.options;
    const inRecovery = await instance.isInRecovery();
    if (desired.topology.isPrimary && inRecovery) {
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
    return 'none';
  }

  /** After the stop: wait for the new primary, pg_rewind onto it, write the replica configuration. */
  async rejoinAsReplica(desired: DesiredState, signal?: AbortSignal): Promise<void> {
    const { instance, logger } = this.options;
    const primary = desired.topology.addresses.get(desired.topology.primary);
    if (!desired.tls || !primary) throw new Error('a replica needs the TLS Secrets and the primary address');
    await waitForPrimary(primary, certificatePaths(desired.layout.certificatesDir), signal);
    await instance.rewind(primaryConninfo(desired.topology, desired.tls, desired.layout, `${desired.topology.self}-rewind`), signal);
    await instance.writeConfiguration(desired.rendered);
    logger.info({ primary: desired.topology.primary }, 'rewound onto the new primary; starting as its replica');
  }

  /** Returns true when it restarted postgres. */
  private async handlePendingRestart(desired: DesiredState): Promise<boolean> {
    const { instance, state, logger } = this.options;
    // Recovery-only settings (removed at promotion, constant on replicas) never justify a restart.
    const pending = (await instance.pendingRestart()).filter((name) => !name.startsWith('recovery_target'));
    state.restartPending = pending.length > 0;
    if (pending.length === 0) return false;
    if (desired.cluster.primaryUpdateStrategy === 'unsupervised' && !(await instance.isStandby())) {
      logger.info({ settings: pending }, 'settings need a restart: restarting postgres in place');
      await this.options.reportPhase(phases.applying, `restart for ${pending.join(', ')}`);
      await this.options.restartInPlace(`settings need a restart: ${pending.join(', ')}`);
      state.restartPending = false;
      return true;
    }
    logger.warn({ settings: pending }, 'settings need a restart; primaryUpdateStrategy is supervised: waiting for the user');
    await this.options.reportPhase(phases.waitingForUser, `restart needed for ${pending.join(', ')}`);
    return false;
  }
}
