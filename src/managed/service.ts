import type { Logger } from 'pino';
import { quietInterval, type QuietInterval } from '../async/quiet-interval.js';
import { serialised } from '../async/serial.js';
import type { Cluster } from '../cluster/schema.js';
import type { ControlPlane } from '../controlplane/index.js';
import { errorMessage } from '../errors/index.js';
import type { InstanceState } from '../instance/state.js';
import { withLocalClient, type LocalConnection } from '../postgres/sql.js';
import { ensurePoolerIntegration, integratedPoolers } from './pooler.js';
import type { PasswordState } from './role-actions.js';
import { reconcileManagedRoles } from './roles.js';

/** How often the primary compares pg_authid with spec.managed.roles on its own, so drift made by hand is reverted. */
export const managedRolesIntervalMs = 10_000;

export interface ManagedObjectsOptions {
  readonly connection: LocalConnection;
  readonly controlPlane: Pick<ControlPlane, 'readSecret' | 'reportStatus' | 'listPoolers'>;
  readonly state: InstanceState;
  readonly logger: Logger;
  readonly intervalMs?: number;
}

/**
 * What the primary keeps in its catalog for the Cluster beyond the bootstrap: spec.managed.roles (CNPG's role
 * reconciler) and the pooler integration (CNPG's `reconcilePgbouncerAuthUser`). It runs when the reconciler hands it
 * a Cluster (each change, each fresh postmaster) and on its own timer; only while PostgreSQL is a primary. A failure
 * is logged and retried at the next run: it never stops the reconciler.
 */
export class ManagedObjects {
  private cluster: Cluster | undefined;
  /** CNPG's passwordStatus: seeded from the Cluster's status (Kubernetes mode keeps it across restarts). */
  private passwords: Map<string, PasswordState> | undefined;
  private reported = '';
  private lastProblems = '';
  /** The last run found nothing to manage (no managed roles, no integrated pooler): the timer sleeps. */
  private nothingToManage = true;
  private readonly timer: QuietInterval;

  constructor(private readonly options: ManagedObjectsOptions) {
    this.timer = quietInterval(() => this.runs(), options.intervalMs ?? managedRolesIntervalMs, () => !this.nothingToManage);
  }

  stop(): void {
    this.timer.stop();
  }

  /** Applies `cluster` now (on the primary) and from then on at every tick, while it has something to manage. */
  async reconcile(cluster: Cluster): Promise<void> {
    this.cluster = cluster;
    await this.runs();
    this.timer.wake();
  }

  private readonly runs = serialised(() =>
    this.run().catch((err: unknown) => {
      this.options.logger.warn({ error: errorMessage(err) }, 'managed roles and pooler integration: will retry');
    }),
  );

  private async run(): Promise<void> {
    const { state, connection, controlPlane, logger } = this.options;
    const cluster = this.cluster;
    if (cluster === undefined || !state.accepting) return;
    const poolers = new Set([...cluster.pgBouncerIntegrationSecrets, ...integratedPoolers(await controlPlane.listPoolers(), cluster.name)]);
    this.nothingToManage = poolers.size === 0 && cluster.managedRoles.length === 0;
    // Nothing to manage: no session, and no timer until the next Cluster (a Pooler file or object changes it too).
    if (this.nothingToManage) {
      state.managedRolesStatus = undefined;
      return;
    }
    await withLocalClient(connection, async (client) => {
      const { rows } = await client.query<{ standby: boolean }>('SELECT pg_catalog.pg_is_in_recovery() AS standby');
      if (rows[0]?.standby !== false) {
        state.managedRolesStatus = undefined;
        return;
      }
      if (poolers.size > 0) {
        const created = await ensurePoolerIntegration(client);
        if (created.length > 0) logger.info({ created, poolers: [...poolers].sort() }, 'pooler integration created');
      }
      if (cluster.managedRoles.length === 0) {
        state.managedRolesStatus = undefined;
        return;
      }
      this.passwords ??= new Map(Object.entries(cluster.managedRolesPasswordStatus));
      const { status, changed } = await reconcileManagedRoles(client, controlPlane, cluster.managedRoles, this.passwords);
      if (changed.length > 0) logger.info({ roles: changed }, 'managed roles reconciled');
      const problems = JSON.stringify(status.cannotReconcile ?? {});
      if (problems !== this.lastProblems && status.cannotReconcile !== undefined) logger.warn({ cannotReconcile: status.cannotReconcile }, 'some managed roles cannot be reconciled');
      this.lastProblems = problems;
      state.managedRolesStatus = status;
      const json = JSON.stringify(status);
      if (json !== this.reported) {
        await controlPlane.reportStatus({ managedRolesStatus: status });
        this.reported = json;
      }
    });
  }
}
