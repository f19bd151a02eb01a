import type { Logger } from 'pino';
import type { DesiredState } from '../desired/state.js';
import type { PostgresInstance } from '../postgres/instance.js';
import type { PostInitScripts } from '../postgres/post-init.js';

/**
 * The target primary's bootstrap of an empty PGDATA: initdb, or, with spec.bootstrap.recovery, a restore. A restore
 * that fails throws; it never falls back to initdb.
 */
export async function bootstrapOrRestore(desired: DesiredState, instance: PostgresInstance, logger: Logger, scripts: PostInitScripts, signal?: AbortSignal): Promise<void> {
  if (desired.cluster.bootstrap.recovery !== undefined) {
    const { restoreFromBackup } = await import('../backup/restore.js');
    await restoreFromBackup({ desired, instance, logger, signal });
    return;
  }
  await instance.bootstrap(desired.cluster, desired.credentials, desired.rendered, scripts, signal);
}
