import pg from 'pg';
import { FilesControlPlane } from '../controlplane/files.js';
import { resolveCredentials } from '../credentials/index.js';
import { resolveTopology } from './topology.js';

export class SwitchoverRefused extends Error {}

/**
 * Files mode `pgim switchover --to NAME`: checks that NAME is an instance of the cluster and a healthy replica
 * (it accepts connections and is in recovery), then writes `status.targetPrimary` into cluster.yaml atomically
 * (comments and layout kept). Every instance watching the folder then acts: the old primary demotes, NAME
 * promotes, the others follow.
 */
export async function switchover(configDir: string, target: string, failover = false): Promise<{ from: string; to: string }> {
  const controlPlane = new FilesControlPlane(configDir);
  const cluster = await controlPlane.readCluster();
  const topology = await resolveTopology(cluster, target, controlPlane);
  if (!topology.instances.includes(target)) {
    throw new SwitchoverRefused(`${target} is not an instance of cluster ${cluster.name} (${topology.instances.join(', ')})`);
  }
  const from = cluster.targetPrimary ?? `${cluster.name}-1`;
  if (from === target) throw new SwitchoverRefused(`${target} is already the target primary`);
  const address = topology.addresses.get(target) ?? { host: target, port: 5432 };
  const { owner } = await resolveCredentials(controlPlane, cluster);
  const client = new pg.Client({ host: address.host, port: address.port, user: owner.username, password: owner.password, database: cluster.bootstrap.database, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    // An unprivileged role sees the WAL receiver's row (pid) but not its status: a running receiver is the check.
    const { rows } = await client.query<{ r: boolean; streaming: boolean }>(
      'SELECT pg_is_in_recovery() AS r, EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE pid IS NOT NULL) AS streaming',
    );
    if (rows[0]?.r !== true) throw new SwitchoverRefused(`${target} is not a replica (it is not in recovery)`);
    if (!rows[0].streaming && !failover) throw new SwitchoverRefused(`${target} is not streaming from the primary: it may be behind`);
  } catch (err) {
    if (err instanceof SwitchoverRefused) throw err;
    throw new SwitchoverRefused(`${target} at ${address.host}:${address.port} is not healthy: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
  await controlPlane.writeTargetPrimary(target);
  return { from, to: target };
}
