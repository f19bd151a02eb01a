import pg from 'pg';
import type { Cluster } from '../cluster/schema.js';
import { FilesControlPlane } from '../controlplane/files.js';
import { resolveCredentials, type Credentials } from '../credentials/index.js';
import { electPrimary, failoverQuorum, parseLsn, type Candidate } from './synchronous.js';
import { resolveTopology, type Topology } from './topology.js';

export class SwitchoverRefused extends Error {}

/** Each step of a switchover as it happens (`pgim switchover` prints them with PGIM_LOG_LEVEL=debug). */
export type SwitchoverTrace = (step: string, detail?: Record<string, unknown>) => void;

/** Where and as whom a replica is asked (the application owner: no privilege is needed for these questions). */
export interface ReplicaLogin {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

/** How long a replica may take to answer: a failover waits for the slowest of the N - k + 1 it needs. */
const probeTimeoutMs = 2000;

/** How a replica answered: the facts the election and the checks of a named target use. */
export async function probeReplica(name: string, login: ReplicaLogin): Promise<Candidate> {
  const client = new pg.Client({ ...login, connectionTimeoutMillis: probeTimeoutMs, query_timeout: probeTimeoutMs });
  client.on('error', () => undefined);
  const down = (problem: string): Candidate => ({ name, healthy: false, streaming: false, receivedLsn: 0n, replayedLsn: 0n, problem });
  try {
    await client.connect();
    // An unprivileged role sees the WAL receiver's row (pid) but not its status: a running receiver is the check.
    // The received LSN stays at the last flushed record once the primary is gone; after a restart it is null until
    // the receiver runs again, and the replayed LSN stands for it.
    const { rows } = await client.query<{ r: boolean; streaming: boolean; received: string | null; replayed: string | null }>(
      `SELECT pg_is_in_recovery() AS r, EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE pid IS NOT NULL) AS streaming,
              pg_last_wal_receive_lsn()::text AS received, pg_last_wal_replay_lsn()::text AS replayed`,
    );
    const row = rows[0];
    if (row?.r !== true) return down('not in recovery: not a replica');
    const replayedLsn = row.replayed === null ? 0n : parseLsn(row.replayed);
    const receivedLsn = row.received === null ? replayedLsn : parseLsn(row.received);
    return { name, healthy: true, streaming: row.streaming, receivedLsn: receivedLsn > replayedLsn ? receivedLsn : replayedLsn, replayedLsn };
  } catch (err) {
    return down(`unreachable at ${login.host}:${login.port}: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The login `probeReplica` uses for one instance of the cluster. */
function replicaLogin(cluster: Cluster, topology: Topology, owner: Credentials['owner'], name: string): ReplicaLogin {
  const address = topology.addresses.get(name) ?? { host: name, port: 5432 };
  return { host: address.host, port: address.port, user: owner.username, password: owner.password, database: cluster.bootstrap.database };
}

/**
 * Files mode `pgim switchover [--to NAME] [--failover]`. With NAME: checks that it is an instance of the cluster and
 * a healthy replica (it accepts connections and is in recovery; streaming unless --failover). Without: asks every
 * replica and elects the most advanced healthy one (electPrimary); a failover under synchronous replication needs
 * N - k + 1 answers first and is refused otherwise. Then writes `status.targetPrimary` into cluster.yaml atomically
 * (comments and layout kept). Every instance watching the folder then acts: the old primary demotes, the target
 * promotes, the others follow.
 */
export async function switchover(configDir: string, target: string | undefined, failover = false, trace: SwitchoverTrace = () => undefined): Promise<{ from: string; to: string }> {
  const controlPlane = new FilesControlPlane(configDir);
  const cluster = await controlPlane.readCluster();
  const from = cluster.targetPrimary ?? `${cluster.name}-1`;
  const topology = await resolveTopology(cluster, target ?? from, controlPlane);
  const { owner } = await resolveCredentials(controlPlane, cluster);
  trace('configuration read');
  if (target === undefined) {
    const others = topology.instances.filter((name) => name !== from);
    const candidates = await Promise.all(
      others.map(async (name) => {
        const candidate = await probeReplica(name, replicaLogin(cluster, topology, owner, name));
        trace('replica probed', { name, healthy: candidate.healthy, streaming: candidate.streaming, ...(candidate.problem === undefined ? {} : { problem: candidate.problem }) });
        return candidate;
      }),
    );
    const election = electPrimary(candidates, { failover, quorum: failover ? failoverQuorum(cluster.synchronous, topology.instances, from) : undefined });
    trace('elected', 'refused' in election ? { refused: election.refused } : { target: election.target, heard: election.heard });
    if ('refused' in election) throw new SwitchoverRefused(election.refused);
    await controlPlane.writeTargetPrimary(election.target);
    trace('targetPrimary written', { target: election.target });
    return { from, to: election.target };
  }
  if (!topology.instances.includes(target)) {
    throw new SwitchoverRefused(`${target} is not an instance of cluster ${cluster.name} (${topology.instances.join(', ')})`);
  }
  if (from === target) throw new SwitchoverRefused(`${target} is already the target primary`);
  const candidate = await probeReplica(target, replicaLogin(cluster, topology, owner, target));
  if (!candidate.healthy) throw new SwitchoverRefused(`${target} is not healthy: ${candidate.problem ?? 'unknown'}`);
  if (!candidate.streaming && !failover) throw new SwitchoverRefused(`${target} is not streaming from the primary: it may be behind`);
  await controlPlane.writeTargetPrimary(target);
  return { from, to: target };
}
