import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ExternalCluster } from '../cluster/external-clusters.js';
import type { DesiredState } from '../desired/state.js';
import { ConfigError, errorMessage } from '../errors/index.js';
import { writeFileAtomic } from '../fs/atomic.js';
import { checkEmptyWalArchiveFlag } from '../postgres/datadir.js';
import type { PostgresInstance } from '../postgres/instance.js';
import { applyCredentials, ensureApplicationDatabase, ensureSystemRoles } from '../postgres/roles.js';
import { withLocalClient } from '../postgres/sql.js';
import { loadExternalConnection, removeExternalFiles, writeExternalFiles } from '../replication/external.js';

/**
 * CNPG's `instance pgbasebackup` and a replica cluster's first start: an empty PGDATA is cloned from an
 * externalClusters entry. A new cluster (`bootstrap.pg_basebackup`) then promotes onto a new timeline and gets its
 * own roles and passwords, as an initdb bootstrap would; a replica cluster's designated primary stays a standby of
 * its source. Nothing here ever runs initdb: a failed clone exits with PGDATA left empty (pg_basebackup removes what
 * it wrote) or, after a later failure, moved aside by the bootstrap marker at the next start.
 */

/** Where an empty PGDATA comes from, if not from initdb: the replica source or `bootstrap.pg_basebackup`. */
export function cloneSource(desired: DesiredState): { entry: ExternalCluster; field: string } | undefined {
  const { external } = desired.cluster;
  if (!desired.topology.isPrimary) return undefined;
  if (external.clone !== undefined) return { entry: external.clone, field: 'spec.bootstrap.pg_basebackup.source' };
  // A source with only an object store is restored from instead (bootstrap.recovery, src/backup/restore.ts).
  if (external.replica !== undefined && !external.replica.archiveOnly) return { entry: external.replica.source, field: 'spec.replica.source' };
  return undefined;
}

/** How long the clone waits for the server to leave recovery after pg_promote. */
const promoteTimeoutSeconds = 600;

export async function cloneExternalCluster(instance: PostgresInstance, desired: DesiredState, logger: Logger, signal?: AbortSignal): Promise<void> {
  const source = cloneSource(desired);
  if (source === undefined) throw new Error('no external cluster to clone');
  const { entry, field } = source;
  // The Secrets are read now, not before every start: once cloned, the cluster no longer needs them.
  const connection = await loadExternalConnection(desired.controlPlane, entry, desired.layout.root);
  await writeExternalFiles(connection);
  const replica = desired.cluster.external.replica !== undefined;
  logger.info({ pgdata: instance.pgdata, source: entry.name, field, replicaCluster: replica }, `PGDATA is empty: cloning ${entry.field} (${entry.name}) with pg_basebackup`);
  try {
    // CNPG's clone conninfo: no sender timeout while the base backup is taken.
    await instance.basebackup(`${connection.conninfo} options='-c wal_sender_timeout=0s'`, signal, [], true);
  } catch (err) {
    throw new ConfigError(desired.controlPlane.clusterSource, field, `cloning ${entry.field} (${entry.name}) failed: ${errorMessage(err)}; pg_basebackup's log lines say why (PGDATA left empty, nothing initialised)`);
  } finally {
    // A new cluster needs the source's key and password no more; a designated primary keeps them (it streams).
    if (!replica) await removeExternalFiles(desired.layout.root);
  }
  // CNPG: the first WAL archived by the new cluster must find its object store empty.
  await writeFileAtomic(join(instance.pgdata, checkEmptyWalArchiveFlag), '', 0o600);
  if (replica) {
    // The designated primary starts as a standby of its source (the render has its primary_conninfo).
    await instance.bootstrapDone();
    logger.info({ source: entry.name }, 'cloned: starting as the designated primary of this replica cluster');
    return;
  }
  await promoteClone(instance, desired, logger, signal);
  await instance.bootstrapDone();
}

/**
 * Starts the clone on the socket only as a standby with no upstream, so it replays the WAL streamed with the backup,
 * then promotes it onto a new timeline (the source's history is not continued under the same timeline), and sets
 * this cluster's roles and passwords; then a fast stop.
 */
async function promoteClone(instance: PostgresInstance, desired: DesiredState, logger: Logger, signal?: AbortSignal): Promise<void> {
  await instance.writeConfiguration(desired.rendered);
  await writeFileAtomic(join(instance.pgdata, 'standby.signal'), '', 0o600);
  const postmaster = await instance.spawn({ listen_addresses: '', primary_conninfo: '', primary_slot_name: '' });
  try {
    await instance.waitAccepting(postmaster, signal);
    const timeline = await withLocalClient(instance.connection, async (client) => {
      await client.query(`SELECT pg_promote(true, ${promoteTimeoutSeconds})`);
      const { cluster, credentials } = desired;
      await ensureApplicationDatabase(client, cluster.bootstrap.owner, cluster.bootstrap.database);
      await ensureSystemRoles(client);
      await applyCredentials(client, credentials);
      await client.query('CHECKPOINT');
      const { rows } = await client.query<{ tli: number }>('SELECT timeline_id AS tli FROM pg_control_checkpoint()');
      return rows[0]?.tli;
    });
    logger.info({ timeline }, "the clone is promoted onto a new timeline with this cluster's roles and passwords");
  } finally {
    await postmaster.stop({ smartSeconds: 0, fastSeconds: 60 });
  }
}

/**
 * A replica cluster's designated primary whose PGDATA holds a primary (it was promoted, or it was never a replica):
 * following the source again would need a demotion, which pgim does not implement; refused before any file is written.
 */
export async function refuseDemotionAtStart(instance: PostgresInstance, desired: DesiredState): Promise<void> {
  if (desired.replicaSource === undefined || (await instance.isStandby())) return;
  throw new ConfigError(
    desired.controlPlane.clusterSource,
    'spec.replica',
    'PGDATA holds a primary: demoting a primary into a replica cluster is not implemented by pgim (CNPG demotes with a demotion token); set spec.replica.enabled: false, or clone again into an empty PGDATA',
  );
}
