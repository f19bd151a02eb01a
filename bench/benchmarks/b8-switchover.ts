import { readFile } from 'node:fs/promises';
import { queryOnce, waitStreaming, waitWritable } from '../pg.js';
import { logTail } from '../proc.js';
import type { SystemContext } from '../systems/context.js';
import { PatroniCluster } from '../systems/patroni-cluster.js';
import { PgimCluster } from '../systems/pgim-cluster.js';
import { memberNamed, type ClusterMember, type ReplicatedCluster } from '../systems/replicated.js';
import type { SystemKind } from '../systems/types.js';
import { awaitedLater, describe, interleave, since } from './common.js';
import type { BenchContext, Benchmark, Recorder, RunInfo } from './types.js';

/** Every successful writability poll adds a row here (created on the first primary, replicated to all). */
export const probeTable = 'bench_switchover_probe';
const writableTimeoutMs = 90_000;
const streamingTimeoutMs = 180_000;

function createCluster(kind: SystemKind, systems: SystemContext): Promise<ReplicatedCluster> | undefined {
  switch (kind) {
    case 'pgim':
      return PgimCluster.create(systems);
    case 'patroni':
      return PatroniCluster.create(systems);
    case 'floor':
      return undefined;
  }
}

/** The member after `name` in the cluster's order, wrapping: the next target, so every member takes its turn. */
function nextMember(cluster: ReplicatedCluster, name: string): string {
  const index = cluster.members.findIndex((m) => m.name === name);
  const next = cluster.members[(index + 1) % cluster.members.length];
  if (next === undefined) throw new Error(`${cluster.label} has no members`);
  return next.name;
}

export function othersThan(cluster: ReplicatedCluster, ...names: string[]): ClusterMember[] {
  return cluster.members.filter((m) => !names.includes(m.name));
}

/** The last lines of a log that mention timelines: what a replica that cannot follow a promotion says. */
async function timelineLines(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const lines = text.split('\n').filter((line) => /timeline/i.test(line)).slice(-6);
  return lines.length === 0 ? '' : `\n--- timeline lines of ${file} ---\n${lines.join('\n')}`;
}

/** A failure with the ends of the managers' logs (and their timeline lines), so a stuck switchover says why. */
export async function withLogs(cluster: ReplicatedCluster, err: unknown): Promise<Error> {
  const tails = await Promise.all(cluster.logFiles.map(async (file) => `${await timelineLines(file)}${await logTail(file, 8)}`));
  return new Error(`${cluster.label}: ${describe(err)}${tails.join('')}`);
}

/** Brings the cluster up and waits until the first member is the primary and both others stream from it. */
export async function startCluster(context: BenchContext, cluster: ReplicatedCluster): Promise<string> {
  context.log(`  starting the ${cluster.label} cluster (3 instances)`);
  await cluster.start();
  const [first] = cluster.members;
  if (first === undefined) throw new Error(`${cluster.label} has no members`);
  await waitStreaming(first.login, othersThan(cluster, first.name), streamingTimeoutMs);
  await queryOnce(first.login, `CREATE TABLE IF NOT EXISTS ${probeTable} (at timestamptz DEFAULT clock_timestamp())`);
  return first.name;
}

/**
 * Planned switchover from `from` to the next member. The polls start with the request: Patroni's REST call only
 * answers once the change is done (in 1 s steps), pgim's command returns once targetPrimary is written.
 */
async function measureSwitchover(cluster: ReplicatedCluster, from: string, recorder: Recorder, run: RunInfo): Promise<string> {
  const to = nextMember(cluster, from);
  const target = memberNamed(cluster, to);
  const writable = awaitedLater(waitWritable(target.login, probeTable, writableTimeoutMs));
  const oldStreaming = awaitedLater(waitStreaming(target.login, [memberNamed(cluster, from)], streamingTimeoutMs));
  const allStreaming = awaitedLater(waitStreaming(target.login, othersThan(cluster, to), streamingTimeoutMs));
  const request = await cluster.switchover(from, to);
  const [writableAt, oldAt, allAt] = [await writable, await oldStreaming, await allStreaming];
  const t0 = request.effectiveAt;
  recorder.add(cluster.label, 'switchover: targetPrimary set -> new primary writable', run, since(t0, writableAt), 'ms');
  recorder.add(cluster.label, 'switchover: targetPrimary set -> old primary streaming', run, since(t0, oldAt), 'ms');
  recorder.add(cluster.label, 'switchover: targetPrimary set -> all replicas streaming', run, since(t0, allAt), 'ms');
  recorder.add(cluster.label, 'switchover: command launched -> new primary writable', run, since(request.issuedAt, writableAt), 'ms');
  recorder.add(cluster.label, 'switchover: command duration', run, since(request.issuedAt, request.returnedAt), 'ms', { detail: true });
  return to;
}

/**
 * A lost primary: its manager and PostgreSQL killed (-9), then the next member is made the primary; once it takes
 * writes the old primary's manager is started again and must rejoin (pg_rewind) and stream.
 */
async function measureFailover(cluster: ReplicatedCluster, from: string, recorder: Recorder, run: RunInfo): Promise<string> {
  const to = nextMember(cluster, from);
  const other = othersThan(cluster, from, to);
  const target = memberNamed(cluster, to);
  await cluster.killMember(from);
  const writable = awaitedLater(waitWritable(target.login, probeTable, writableTimeoutMs));
  const otherStreaming = awaitedLater(waitStreaming(target.login, other, streamingTimeoutMs));
  const request = await cluster.failover(from, to);
  const writableAt = await writable;
  const t0 = request.effectiveAt;
  recorder.add(cluster.label, 'failover: targetPrimary set -> new primary writable', run, since(t0, writableAt), 'ms');
  recorder.add(cluster.label, 'failover: targetPrimary set -> other replica streaming', run, since(t0, await otherStreaming), 'ms');
  const restartedAt = performance.now();
  cluster.restartMember(from);
  const rejoinedAt = await waitStreaming(target.login, [memberNamed(cluster, from)], streamingTimeoutMs);
  recorder.add(cluster.label, 'failover: old primary restarted -> streaming', run, since(restartedAt, rejoinedAt), 'ms');
  return to;
}

export const switchoverBenchmark: Benchmark = {
  id: 'B8',
  title: 'Switchover and failover, 3 instances',
  measures:
    'Three instances on 127.0.0.1 per system (pgim: three `pgim run` on one files-mode config folder; Patroni: three ' +
    'members on the shared etcd, use_pg_rewind on), idle. Switchover: `pgim switchover --to NEXT` (t0 = cluster.yaml ' +
    'rewritten with the new targetPrimary, from its mtime) / Patroni `POST /switchover` (t0 = request sent) -> the ' +
    'target is writable (pg_is_in_recovery() false and an INSERT commits), -> the old primary streams from it ' +
    '(pg_stat_replication on the new primary, and its own pg_stat_wal_receiver streaming the new primary\'s ' +
    'timeline), -> all replicas stream; "command launched" includes the pgim CLI\'s ' +
    'start. Failover: kill -9 of the primary\'s manager and PostgreSQL (pgim: its postmaster dies with it), then ' +
    '`pgim switchover --failover` / Patroni `POST /failover` to the next member -> writable; then the old primary\'s ' +
    'manager is restarted -> streaming again. Targets rotate so every member is promoted in turn. No floor.',
  async run(context, recorder) {
    if (context.kinds.includes('floor')) context.note('B8: no floor (bare PostgreSQL has no switchover); shown as n/a.');
    const clusters: ReplicatedCluster[] = [];
    try {
      for (const kind of context.kinds) {
        const created = await createCluster(kind, context.systems);
        if (created !== undefined) clusters.push(created);
      }
      const primaries = new Map<ReplicatedCluster, string>();
      for (const cluster of clusters) {
        try {
          primaries.set(cluster, await startCluster(context, cluster));
        } catch (err) {
          throw await withLogs(cluster, err);
        }
      }
      await interleave(context, clusters, async (cluster, run) => {
        try {
          const primary = primaries.get(cluster) ?? '';
          const switchedTo = await measureSwitchover(cluster, primary, recorder, run);
          primaries.set(cluster, switchedTo);
          const failedOverTo = await measureFailover(cluster, switchedTo, recorder, run);
          primaries.set(cluster, failedOverTo);
        } catch (err) {
          throw await withLogs(cluster, err);
        }
      });
    } finally {
      for (const cluster of clusters) {
        await cluster.destroy().catch((err: unknown) => {
          context.log(`  cleanup of the ${cluster.label} cluster failed: ${describe(err)}`);
        });
      }
    }
  },
};
