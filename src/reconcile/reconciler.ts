import type { Logger } from 'pino';
import { serialised } from '../async/serial.js';
import { phases, type ControlPlane } from '../controlplane/index.js';
import type { DesiredUpdate } from '../desired/source.js';
import type { DesiredState } from '../desired/state.js';
import { ConfigError, errorMessage } from '../errors/index.js';
import type { InstanceState } from '../instance/state.js';
import type { PostgresInstance } from '../postgres/instance.js';
import { ensureSystemRoles } from '../postgres/roles.js';
import { withLocalClient } from '../postgres/sql.js';
import { RoleTransitions, type RoleOutcome } from '../role/transitions.js';
import { RestartCoordinator } from '../rollout/coordinator.js';
import { restartAnnotation } from '../rollout/decision.js';
import { ManagedObjects } from '../managed/service.js';
import { warnIgnoredFields } from '../cluster/field-support.js';
import type { PostgresControl } from '../supervisor/supervisor.js';
import { synchronousCondition } from '../replication/synchronous.js';
import { CredentialsApplier } from './credentials.js';
import { TablespacePass } from './tablespaces.js';
import { writeRuntimeFiles } from './runtime-files.js';
import { reportSecurityWarnings } from './security-warnings.js';

export interface ReconcilerOptions {
  instance: PostgresInstance;
  state: InstanceState;
  logger: Logger;
  /** Restarts postgres in place when a setting needs it; promotes, demotes, fences. */
  control: PostgresControl;
  /** Where the phase is reported; the primary Lease. */
  controlPlane: Pick<ControlPlane, 'reportStatus' | 'acquirePrimaryLease' | 'releasePrimaryLease' | 'readSecret' | 'listPoolers' | 'operatorDriven'>;
}

const reloadConfirmTimeoutMs = 10_000;
/** How long a replica hurries its reconnection to a new primary (afterwards PostgreSQL's own retry interval). */
const followNewPrimaryTimeoutMs = 5_000;

/**
 * One loop: desired state -> render -> validate -> write -> apply -> report. Runs serialised; a burst of triggers
 * while it runs becomes one more pass. A render that fails validation, or that PostgreSQL refuses once written, is
 * reported and rolled back: the instance keeps its last good configuration.
 */
/** What CNPG's `kubectl cnpg reload` writes on the Cluster (a timestamp): reload, re-reading every Secret. */
export const reloadAnnotation = 'cnpg.io/reloadedAt';

function reloadRequestedAt(cluster: { readonly annotations: Readonly<Record<string, string>> }): string | undefined {
  return cluster.annotations[reloadAnnotation];
}

export class Reconciler {
  private current: DesiredState;
  /** The latest desired state the source published (or why it could not build one); each pass works from it. */
  private latest: DesiredUpdate;
  private credentials = new CredentialsApplier();
  /** The last SynchronousReplication condition reported (JSON), so an unchanged one is not written again. */
  private reportedSynchronous = '';
  /** Promote, demote, rewind, the Lease and the HA slots; a Lease refusal asks this reconciler for another pass. */
  readonly roles: RoleTransitions;
  /** Restarts for pending settings in CNPG's order (replicas first); checked after each reload and on its own timer. */
  readonly restarts: RestartCoordinator;
  /** spec.managed.roles and the pooler integration, on the primary (each pass, each fresh postmaster, a timer). */
  private readonly managed: ManagedObjects;
  private readonly tablespaces: TablespacePass;

  constructor(
    private readonly options: ReconcilerOptions,
    initial: DesiredState,
  ) {
    this.current = initial;
    this.latest = { desired: initial, cluster: initial.cluster };
    const { instance, state, logger, control, controlPlane } = options;
    this.roles = new RoleTransitions({ instance, state, logger, control, controlPlane, retry: (reason) => void this.trigger(reason) });
    this.restarts = new RestartCoordinator({
      instance,
      state,
      logger,
      desired: () => this.current,
      restartInPlace: (reason) => control.restart(reason),
      reportPhase: (phase, phaseReason) => this.reportPhase(phase, phaseReason),
      operatorDriven: controlPlane.operatorDriven === true,
    });
    this.managed = new ManagedObjects({ connection: instance.connection, controlPlane, state, logger });
    this.tablespaces = new TablespacePass({ instance, state, logger, controlPlane, retry: (reason) => void this.trigger(reason) });
  }

  /** A new desired state (or a failure to build one) from the DesiredStateSource: one pass applies it. */
  /** Takes a new desired state; resolves once a pass has applied it (or found it invalid). */
  update(update: DesiredUpdate): Promise<void> {
    this.latest = update;
    return this.trigger('desired state changed');
  }

  get desired(): DesiredState {
    return this.current;
  }

  /** No more passes of its own (pgim is stopping). */
  close(): void {
    this.roles.close();
    this.restarts.stop();
    this.managed.stop();
    this.tablespaces.close();
  }

  markCredentialsApplied(): void {
    this.credentials.markApplied(this.current.credentials);
  }

  /** Requests a pass; resolves when a pass that started after this call has finished. */
  trigger(reason: string): Promise<void> {
    this.options.logger.debug({ reason }, 'reconcile requested');
    return this.passes();
  }

  /** Passes run serialised; a burst of triggers while one runs becomes one more pass. */
  private readonly passes = serialised(() =>
    this.pass().catch((err: unknown) => {
      this.options.state.lastError = errorMessage(err);
      this.options.logger.error({ error: errorMessage(err) }, 'reconcile failed');
    }),
  );

  /** Work for each fresh postmaster on a primary: system roles, then any password not yet applied. */
  async onPostgresAccepting(isPrimary: boolean): Promise<void> {
    // A replica cluster's designated primary: read-only, but the slots of its own (cascading) replicas live there.
    if (!isPrimary && this.current.replicaSource !== undefined) await this.roles.reconcileSlots(this.current);
    if (!isPrimary) {
      await this.tablespaces.run(this.current, false);
      return;
    }
    const { instance, logger } = this.options;
    await withLocalClient(instance.connection, async (client) => {
      await ensureSystemRoles(client);
      const rotated = await this.credentials.apply(client, this.current.credentials);
      if (rotated.length > 0) logger.info({ roles: rotated }, 'passwords applied');
    });
    await this.roles.reconcileSlots(this.current);
    await this.managed.reconcile(this.current.cluster);
    await this.tablespaces.run(this.current, true);
    if (!this.options.state.restartPending && this.options.state.configurationError === undefined) await this.reportPhase(phases.healthy, '');
    // Last: the API may be slow or away, and roles and slots must not wait for it.
    if (this.current.topology.isPrimary) {
      // As CNPG's instance manager does at every start of the target primary: claim `currentPrimary` while it is
      // unset (a Cluster bootstrapped by an initdb Job has none; CNPG's operator waits for it). The claim is a no-op
      // once the Cluster names a current primary.
      await this.options.controlPlane.reportStatus({ currentPrimary: this.current.topology.self, currentPrimaryTimestamp: new Date().toISOString() });
      await this.roles.keepPrimaryLease(this.current.topology.self);
    }
  }

  async writeRuntimeFiles(desired: DesiredState = this.current): Promise<void> {
    await writeRuntimeFiles(desired, this.options.logger);
    this.options.state.certificates = desired.tls?.facts.map(({ secret, facts }) => ({ secret, notAfter: facts.notAfter, serial: facts.serial })) ?? [];
  }

  private reportPhase(phase: string, phaseReason: string): Promise<void> {
    return this.options.controlPlane.reportStatus({ phase, phaseReason });
  }

  private async pass(): Promise<void> {
    const { instance, state, logger } = this.options;
    let desired: DesiredState;
    let role: RoleOutcome | undefined;
    try {
      const latest = this.latest;
      if (latest.desired === undefined) throw latest.error instanceof Error ? latest.error : new Error(String(latest.error));
      desired = latest.desired;
      // The target primary takes its role before its new files are checked: a promotion writes no file, and a
      // failover waits for it. (A demotion still waits for the check: the rejoining replica starts on the new files.)
      if (desired.topology.isPrimary) role = await this.roles.apply(desired);
      const refused = await instance.checkSettings(desired.rendered, desired.layout.tmpDir, { checkedAfterWrite: state.accepting });
      if (refused.length > 0) throw new ConfigError(desired.controlPlane.clusterSource, 'spec.postgresql.parameters', `PostgreSQL refuses them: ${refused.join('; ')}`);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      state.configurationError = err.message;
      logger.error({ source: err.source, field: err.field }, `invalid configuration, keeping the last good one: ${err.message}`);
      await this.reportPhase(phases.invalid, err.message);
      return;
    }
    reportSecurityWarnings(desired.rendered.securityWarnings, logger, state);
    const reloadRequested = reloadRequestedAt(desired.cluster) !== reloadRequestedAt(this.current.cluster);
    // `kubectl cnpg restart` (the restartedAt annotation) changes no file: checked in this pass, not at the next idle check.
    const restartAsked = desired.cluster.annotations[restartAnnotation] !== this.current.cluster.annotations[restartAnnotation];
    if (reloadRequested) {
      // `kubectl cnpg reload`: every Secret and certificate was just read again; every password is set again and
      // PostgreSQL reloads (it re-reads its certificate files on SIGHUP) even when no file changed.
      logger.info({ reloadedAt: reloadRequestedAt(desired.cluster) }, `reload requested (${reloadAnnotation})`);
      this.credentials = new CredentialsApplier();
    }
    if (desired.cluster.ignoredFields.join() !== this.current.cluster.ignoredFields.join()) warnIgnoredFields(desired.cluster.ignoredFields, logger);
    role ??= await this.roles.apply(desired);
    if (role === 'demoting') {
      this.current = desired;
      return;
    }
    // Still a replica: a primary's render (no primary_conninfo) must not reach it. The last good files stay.
    if (role === 'waiting') return;

    await this.writeRuntimeFiles(desired);
    const write = await instance.writeConfiguration(desired.rendered);
    if (write.changed.length > 0) logger.info({ files: write.changed, configHash: desired.rendered.configHash }, 'configuration written');

    if (state.accepting && (write.changed.length > 0 || reloadRequested)) {
      const errors = await instance.fileErrors();
      if (errors.length > 0) {
        await instance.restoreConfiguration(write);
        state.configurationError = `PostgreSQL refuses the new files: ${errors.join('; ')}`;
        logger.error({ errors }, 'PostgreSQL refuses the new configuration files; previous files restored');
        await this.reportPhase(phases.invalid, state.configurationError);
        return;
      }
      const loaded = await instance.reloadAndConfirm(desired.rendered.configHash, reloadConfirmTimeoutMs);
      if (!loaded) logger.warn({ configHash: desired.rendered.configHash }, 'PostgreSQL did not confirm the new configuration in time');
      else logger.info({ configHash: desired.rendered.configHash }, 'configuration reloaded');
      if (await this.restarts.check(desired)) {
        // The fresh postmaster applies roles and passwords when it accepts connections (onPostgresAccepting).
        this.current = desired;
        state.configurationError = undefined;
        return;
      }
    }
    if (state.accepting && !desired.topology.isPrimary && desired.topology.primary !== this.current.topology.primary && (await instance.isStandby())) {
      // Another instance is the primary now: this replica follows it as soon as it can take the connection.
      const streaming = await instance.followNewPrimary(followNewPrimaryTimeoutMs);
      logger.info({ primary: desired.topology.primary, streaming }, streaming ? 'streaming from the new primary' : 'not streaming from the new primary yet; PostgreSQL keeps retrying');
    }
    this.current = desired;
    state.configurationError = undefined;
    if (state.accepting && !(await instance.isStandby())) {
      await withLocalClient(instance.connection, async (client) => {
        const rotated = await this.credentials.apply(client, desired.credentials);
        if (rotated.length > 0) logger.info({ roles: rotated }, 'passwords applied');
      });
      await this.roles.reconcileSlots(desired);
      await this.managed.reconcile(desired.cluster);
      await this.reportSynchronous(desired);
    }
    if (state.accepting) await this.tablespaces.run(desired, !(await instance.isStandby()));
    if (restartAsked && state.accepting && (await this.restarts.check(desired))) return;
    if (!state.restartPending) await this.reportPhase(phases.healthy, '');
  }

  /** The primary shows the synchronous set in the Cluster status (a condition), once per change. */
  private async reportSynchronous(desired: DesiredState): Promise<void> {
    if (desired.cluster.synchronous === undefined && this.reportedSynchronous === '') return;
    const condition = synchronousCondition(desired.synchronous, desired.streamingStandbys);
    const text = JSON.stringify(condition);
    if (text === this.reportedSynchronous) return;
    this.reportedSynchronous = text;
    await this.options.controlPlane.reportStatus({ conditions: [condition] });
  }
}
