import type { Logger } from 'pino';
import type { DesiredState } from '../daemon/prepare.js';
import { ConfigError, errorMessage } from '../errors/index.js';
import { writeFileAtomic } from '../fs/atomic.js';
import type { InstanceState } from '../instance/state.js';
import type { PostgresInstance } from '../postgres/instance.js';
import { ensureSystemRoles } from '../postgres/roles.js';
import { withLocalClient } from '../postgres/sql.js';
import { renderPgpass } from '../render/pgpass.js';
import { CredentialsApplier } from './credentials.js';

export interface ReconcilerOptions {
  instance: PostgresInstance;
  state: InstanceState;
  logger: Logger;
  /** Reads, validates and renders the desired state (throws ConfigError). */
  load: () => Promise<DesiredState>;
  /** Restarts postgres in place (smart, then fast) and resolves once the stop is under way. */
  restartInPlace: (reason: string) => Promise<void>;
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
  }

  /** Writes the passfile (0600) for the roles pgim can authenticate as. */
  async writePassfile(desired: DesiredState = this.current): Promise<void> {
    const entries = [desired.credentials.owner, ...(desired.credentials.superuser ? [desired.credentials.superuser] : [])];
    await writeFileAtomic(desired.layout.pgpassFile, renderPgpass(entries, desired.port), 0o600);
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

    const write = await instance.writeConfiguration(desired.rendered);
    await this.writePassfile(desired);
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
    }
    if (!state.restartPending) await this.options.reportPhase(phases.healthy, '');
  }

  /** Returns true when it restarted postgres. */
  private async handlePendingRestart(desired: DesiredState): Promise<boolean> {
    const { instance, state, logger } = this.options;
    const pending = await instance.pendingRestart();
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
