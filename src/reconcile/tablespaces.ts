import type { Logger } from 'pino';
import type { TablespaceState } from '../cluster/tablespaces.js';
import type { ControlPlane } from '../controlplane/index.js';
import type { DesiredState } from '../desired/state.js';
import { errorMessage } from '../errors/index.js';
import type { InstanceState } from '../instance/state.js';
import type { PostgresInstance } from '../postgres/instance.js';

/** CNPG requeues a pending tablespace every 5 s (a missing owner or mount point can appear at any time). */
const pendingRetryMs = 5000;

/**
 * spec.tablespaces on every pass. The primary creates and owns them and reports CNPG's `tablespacesStatus` (the
 * Cluster's status in Kubernetes mode, `/pg/status` always); a replica makes its folders (so replaying a CREATE
 * TABLESPACE finds them) and reports any tablespace whose folder is not its own.
 */
export class TablespacePass {
  private reported = '';
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: {
      instance: PostgresInstance;
      state: InstanceState;
      logger: Logger;
      controlPlane: Pick<ControlPlane, 'reportStatus'>;
      retry: (reason: string) => void;
    },
  ) {}

  async run(desired: DesiredState, isPrimary: boolean): Promise<void> {
    const { instance, state, logger } = this.options;
    const { tablespaces } = desired.cluster;
    if (tablespaces.length === 0 && state.tablespacesStatus === undefined) return;
    let states: TablespaceState[];
    try {
      states = isPrimary ? await instance.reconcileTablespaces(tablespaces) : await this.replicaStates(desired);
    } catch (err) {
      logger.warn({ error: errorMessage(err) }, 'tablespaces: the pass failed; will retry');
      this.scheduleRetry();
      return;
    }
    state.tablespacesStatus = states;
    const text = JSON.stringify(states);
    if (text !== this.reported) {
      this.reported = text;
      for (const t of states.filter((s) => s.error !== undefined)) logger.error({ tablespace: t.name, owner: t.owner, error: t.error }, 'tablespace not reconciled');
      const done = states.filter((s) => s.state === 'reconciled').map((s) => s.name);
      if (done.length > 0) logger.info({ tablespaces: done }, 'tablespaces reconciled');
      if (isPrimary) await this.options.controlPlane.reportStatus({ tablespacesStatus: states });
    }
    if (states.some((s) => s.state === 'pending')) this.scheduleRetry();
  }

  close(): void {
    clearTimeout(this.retryTimer);
  }

  private async replicaStates(desired: DesiredState): Promise<TablespaceState[]> {
    const { instance } = this.options;
    const missing = await instance.ensureTablespaceFolders(desired.cluster.tablespaces);
    const foreign = new Map((await instance.foreignTablespaceFolders()).map((f) => [f.name, f]));
    return desired.cluster.tablespaces.map(({ name, owner }): TablespaceState => {
      const other = foreign.get(name);
      if (other !== undefined) {
        return {
          name, owner, state: 'pending',
          error: `replayed into ${other.location}, not this instance's folder ${other.expected}: created on the primary while this replica streamed, on a host they share; clone this replica again (pg_basebackup maps the folder)`,
        };
      }
      const why = missing.get(name);
      return why === undefined ? { name, owner, state: 'reconciled' } : { name, owner, state: 'pending', error: why };
    });
  }

  private scheduleRetry(): void {
    if (this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.options.retry('tablespaces pending');
    }, pendingRetryMs);
    this.retryTimer.unref();
  }
}
