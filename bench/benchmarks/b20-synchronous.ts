import { join } from 'node:path';
import { lostOn, startAckedWriter } from '../../test-kit/acked-writer.js';
import { sleep } from '../env.js';
import { connect, pollUntil, queryOnce, waitStreaming, waitWritable, type Login } from '../pg.js';
import { pgbenchInit, pgbenchRun } from '../pgbench.js';
import { PatroniCluster } from '../systems/patroni-cluster.js';
import { PgimCluster } from '../systems/pgim-cluster.js';
import { memberNamed, type ReplicatedCluster } from '../systems/replicated.js';
import { othersThan, probeTable, startCluster as startSwitchoverCluster, withLogs } from './b8-switchover.js';
import { describe, interleave, since } from './common.js';
import type { BenchContext, Benchmark, RunInfo } from './types.js';

/** CNPG's quorum of one of the two standbys, commits waiting for their flush (synchronous_commit on). */
const quorumOneOfTwo = { method: 'any', number: 1, dataDurability: 'required' };
const ackedTable = 'bench_sync_acked';
const streamingTimeoutMs = 180_000;

async function syncStandbyNames(login: Login): Promise<string> {
  return (await queryOnce<{ v: string }>(login, "SELECT current_setting('synchronous_standby_names') AS v"))[0]?.v ?? '';
}

/** Until the primary's synchronous_standby_names is set (synchronous) or empty (asynchronous). */
function waitSyncMode(primary: Login, synchronous: boolean): Promise<number> {
  return pollUntil(`synchronous_standby_names ${synchronous ? 'set' : 'empty'} on port ${primary.port}`, async () => ((await syncStandbyNames(primary)) !== '') === synchronous, 60_000);
}

/** B8's cluster start (its probe table for the writability polls), plus the table of acknowledged ids. */
async function startCluster(context: BenchContext, cluster: ReplicatedCluster): Promise<string> {
  const primary = await startSwitchoverCluster(context, cluster);
  await queryOnce(memberNamed(cluster, primary).login, `CREATE TABLE IF NOT EXISTS ${ackedTable} (id bigint PRIMARY KEY)`);
  return primary;
}

/** Synchronous replication on or off, and until the primary applied it. */
async function setSynchronous(cluster: ReplicatedCluster, primary: string, on: boolean): Promise<void> {
  if (cluster instanceof PgimCluster) await cluster.setSynchronous(on ? quorumOneOfTwo : undefined);
  else if (cluster instanceof PatroniCluster) await cluster.patchConfig(primary, { synchronous_mode: on });
  await waitSyncMode(memberNamed(cluster, primary).login, on);
}

const modeLabel = (cluster: ReplicatedCluster, synchronous: boolean): string => `${cluster.label} ${synchronous ? 'sync' : 'async'}`;

export const synchronousTpsBenchmark: Benchmark = {
  id: 'B20',
  title: 'Write throughput, asynchronous vs synchronous replication, 3 instances',
  measures:
    'Three instances per system (as B8). `pgbench -c 4 -j 2 -T 15` (5 s with --quick; TPC-B, scale 10) against the ' +
    'primary, with asynchronous standbys and then synchronous ones: pgim `spec.postgresql.synchronous` {method: any, ' +
    'number: 1} (`ANY 1` of the two standbys), Patroni `synchronous_mode: on` (one synchronous standby, PATCH ' +
    '/config). The mode is switched within the same clusters and applied before each measure (the primary\'s ' +
    '`synchronous_standby_names`). pgbench connects with libpq\'s default `sslmode=prefer`: TLS wherever the server ' +
    'offers it. pgim always encrypts replication (CNPG\'s `streaming_replica` certificate, `verify-full`) and offers ' +
    'TLS to clients; Patroni runs twice: as it comes (`patroni`, everything in clear text) and like for like ' +
    '(`patroni-tls`: the server offers TLS 1.3, replication requires it, `verify-full`). pgim and patroni-tls are also ' +
    'measured with pgbench in clear text (`sslmode=disable`, "clients without TLS"): what is left is replication\'s TLS. ' +
    'TPS without connection time. No floor.',
  async run(context, recorder) {
    const clusters = await createClusters(context, false, true);
    try {
      const primaries = new Map<ReplicatedCluster, string>();
      for (const cluster of clusters) {
        try {
          const primary = await startCluster(context, cluster);
          primaries.set(cluster, primary);
          await checkReplicationTls(cluster, primary);
          await pgbenchInit(context.systems.processes, memberNamed(cluster, primary).login, 10, join(context.systems.workDir, `${cluster.label}-b20-init.log`));
        } catch (err) {
          throw await withLogs(cluster, err);
        }
      }
      const seconds = context.quick ? 5 : 15;
      await interleave(context, clusters, async (cluster, run) => {
        const primary = primaries.get(cluster) ?? '';
        const login = memberNamed(cluster, primary).login;
        for (const synchronous of [false, true]) {
          try {
            await setSynchronous(cluster, primary, synchronous);
            for (const clients of clientModes(cluster)) {
              const result = await pgbenchRun(
                context.systems.processes,
                login,
                ['-n', '-c', '4', '-j', '2', '-T', String(seconds)],
                join(context.systems.workDir, `${cluster.label}-b20.log`),
                (seconds + 60) * 1000,
                clients.env,
              );
              recorder.add(`${modeLabel(cluster, synchronous)}${clients.suffix}`, 'pgbench -c 4 TPS', run, result.tps, 'tx/s');
            }
          } catch (err) {
            throw await withLogs(cluster, err);
          }
        }
      });
    } finally {
      await destroyAll(context, clusters);
    }
  },
};

/** The comparison is only like for like if replication is encrypted where the cluster says so (and only there). */
async function checkReplicationTls(cluster: ReplicatedCluster, primary: string): Promise<void> {
  const expected = cluster.tls;
  const login = memberNamed(cluster, primary).login;
  await waitStreaming(login, othersThan(cluster, primary), streamingTimeoutMs);
  const rows = await queryOnce<{ name: string; ssl: boolean }>(login, 'SELECT application_name AS name, s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)');
  const wrong = rows.filter((row) => row.ssl !== expected).map((row) => row.name);
  if (rows.length === 0 || wrong.length > 0) throw new Error(`${cluster.label}: replication ${expected ? 'without' : 'with'} TLS from ${wrong.join(', ') || '(no standby)'}`);
}

/**
 * pgbench with libpq's default (TLS where the server offers it), and where the server offers TLS also in clear text:
 * the difference is what encrypting the clients' traffic costs, the rest of the gap is replication's TLS.
 */
function clientModes(cluster: ReplicatedCluster): { suffix: string; env: NodeJS.ProcessEnv }[] {
  const libpqDefault = { suffix: '', env: {} };
  if (!cluster.tls) return [libpqDefault];
  return [libpqDefault, { suffix: ', clients without TLS', env: { PGSSLMODE: 'disable' } }];
}

/** `patroniTlsToo`: a second Patroni cluster that encrypts as pgim does (B20 compares like for like). */
async function createClusters(context: BenchContext, patroniSynchronous: boolean, patroniTlsToo = false): Promise<ReplicatedCluster[]> {
  const clusters: ReplicatedCluster[] = [];
  if (context.kinds.includes('floor')) context.note('B20/B21: no floor (bare PostgreSQL has no replication manager); shown as n/a.');
  if (context.kinds.includes('pgim')) clusters.push(await PgimCluster.create(context.systems));
  if (context.kinds.includes('patroni')) {
    clusters.push(await PatroniCluster.create(context.systems, { synchronousMode: patroniSynchronous }));
    if (patroniTlsToo) clusters.push(await PatroniCluster.create(context.systems, { synchronousMode: patroniSynchronous, tls: true }));
  }
  return clusters;
}

async function destroyAll(context: BenchContext, clusters: readonly ReplicatedCluster[]): Promise<void> {
  for (const cluster of clusters) {
    await cluster.destroy().catch((err: unknown) => {
      context.log(`  cleanup of the ${cluster.label} cluster failed: ${describe(err)}`);
    });
  }
}

/** The standby Patroni's synchronous_mode made synchronous: the only one its failover accepts. */
async function patroniSyncStandby(primary: Login): Promise<string> {
  const rows = await queryOnce<{ name: string }>(primary, "SELECT application_name AS name FROM pg_stat_replication WHERE sync_state = 'sync'");
  const name = rows[0]?.name;
  if (name === undefined) throw new Error('Patroni has no synchronous standby');
  return name;
}

let nextId = 1;

/** The CLI's trace as breakdown steps: its process start, then each step it printed (the last probe only). */
function cliSteps(events: readonly { what: string; at: number; fields: Record<string, unknown> }[]): { what: string; at: number }[] {
  const steps: { what: string; at: number }[] = [];
  const started = events.find((e) => e.what === 'process started');
  if (started !== undefined && typeof started.fields.at === 'string') steps.push({ what: 'CLI: node process started', at: Date.parse(started.fields.at) - performance.timeOrigin });
  if (started !== undefined) steps.push({ what: 'CLI: entry module loaded', at: started.at });
  const probes = events.filter((e) => e.what === 'replica probed');
  for (const event of events) {
    if (event.what === 'process started' || (event.what === 'replica probed' && event !== probes.at(-1))) continue;
    steps.push({ what: `CLI: ${event.what === 'replica probed' ? 'replicas probed' : event.what}`, at: event.at });
  }
  return steps;
}

/** Until `standby` streams from the instance at `primary`, and that instance is out of recovery. */
function waitStreamingFromPrimary(primary: Login, standby: string): Promise<number> {
  return pollUntil(`${standby} streaming from port ${primary.port} as a primary`, async () => {
    const rows = await queryOnce<{ ok: boolean }>(
      primary,
      `SELECT NOT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_replication WHERE application_name = '${standby}' AND state = 'streaming') AS ok`,
      1_000,
    );
    return rows[0]?.ok === true;
  }, 120_000);
}

/**
 * One failover under writes: a writer commits one row per transaction on the primary and records each acknowledged
 * id; after 2 s the primary's manager and PostgreSQL are killed (-9); the failover is asked for at once (pgim:
 * `switchover --failover` without --to, the CLI elects; Patroni: POST /failover to its synchronous standby, or the
 * next member when asynchronous); then the acknowledged ids missing on the new primary are counted.
 */
async function failoverUnderLoad(cluster: ReplicatedCluster, from: string, synchronous: boolean, label: string, recorder: Parameters<Benchmark['run']>[1], run: RunInfo): Promise<string> {
  const old = memberNamed(cluster, from);
  await waitStreaming(old.login, othersThan(cluster, from), streamingTimeoutMs);
  const patroniTarget = cluster instanceof PatroniCluster ? (synchronous ? await patroniSyncStandby(old.login) : othersThan(cluster, from)[0]?.name) : undefined;
  const writer = await startAckedWriter(() => connect(old.login, 5_000), ackedTable, nextId);
  await sleep(2_000);
  await cluster.killMember(from);
  const killedAt = performance.now();
  let to: string;
  let request: { issuedAt: number; effectiveAt: number };
  let steps: { what: string; at: number }[] = [];
  if (cluster instanceof PgimCluster) {
    const elected = await cluster.electFailover();
    to = elected.to;
    request = elected.request;
    steps = cliSteps(elected.steps);
  } else {
    to = patroniTarget ?? '';
    request = await cluster.failover(from, to);
  }
  const issuedAt = request.issuedAt;
  const target = memberNamed(cluster, to);
  const third = othersThan(cluster, from).find((m) => m.name !== to);
  // In parallel: when the remaining standby streams from the new primary (under `required` a commit needs it).
  const thirdStreaming = third === undefined ? Promise.resolve(undefined) : waitStreamingFromPrimary(target.login, third.name).catch(() => undefined);
  const writableAt = await waitWritable(target.login, probeTable, 120_000);
  await Promise.race([writer.finished, sleep(15_000)]);
  await writer.stop();
  const client = await connect(target.login, 5_000);
  const lost = await lostOn(client, ackedTable, writer.acked).finally(() => client.end().catch(() => undefined));
  nextId = (writer.acked.at(-1) ?? nextId) + 1_000;
  recorder.add(label, 'failover under writes: kill -> new primary writable', run, since(killedAt, writableAt), 'ms');
  recorder.add(label, 'failover under writes: failover asked -> new primary writable', run, since(issuedAt, writableAt), 'ms');
  // pgim: the CLI's start and its questions to the replicas come before targetPrimary changes.
  recorder.add(label, 'failover under writes: targetPrimary set -> new primary writable', run, since(request.effectiveAt, writableAt), 'ms', { detail: true });
  if (cluster instanceof PgimCluster) {
    // Where the time goes, each step from the kill (pgim's own log lines and the CLI's trace).
    const first = async (name: string | undefined, msg: string): Promise<number | undefined> =>
      name === undefined ? undefined : (await cluster.logEvents(name, killedAt)).find((e) => e.what === msg)?.at;
    steps.push(
      ...[
        { what: 'target: promotion started', at: await first(to, 'this instance is the target primary: promoting') },
        { what: 'target: out of recovery (promotion done)', at: await first(to, 'out of recovery: read-write') },
        { what: 'target: promoted (log)', at: await first(to, 'promoted') },
        { what: 'other standby: configuration reloaded', at: await first(third?.name, 'configuration reloaded') },
        { what: 'other standby streaming from the new primary', at: await thirdStreaming },
      ].filter((step): step is { what: string; at: number } => step.at !== undefined),
    );
    for (const step of steps) recorder.add(label, `failover under writes: kill -> ${step.what}`, run, since(killedAt, step.at), 'ms', { detail: true });
  }
  recorder.add(label, 'failover under writes: acknowledged rows lost', run, lost, 'count');
  recorder.add(label, 'failover under writes: acknowledged rows', run, writer.acked.length, 'count', { detail: true });
  cluster.restartMember(from);
  await waitStreaming(target.login, othersThan(cluster, to), streamingTimeoutMs);
  return to;
}

export const synchronousFailoverBenchmark: Benchmark = {
  id: 'B21',
  title: 'Failover under write load: time to writable and acknowledged rows lost',
  measures:
    'Three instances per system. A writer commits one row per transaction on the primary and records every ' +
    'acknowledged id; after 2 s the primary\'s manager and PostgreSQL are killed (-9) and the failover is asked for at ' +
    'once: pgim `switchover --failover` without --to (the CLI elects the most advanced replica; synchronous: only with ' +
    'N - k + 1 answers), Patroni `POST /failover` to its synchronous standby. Measured: kill -> the new primary takes ' +
    'writes, failover asked -> writable, and the acknowledged ids missing on the new primary. pgim synchronous (ANY ' +
    '1 of 2, required) and asynchronous (the same cluster, switched), Patroni `synchronous_mode: on`. No floor.',
  async run(context, recorder) {
    const clusters = await createClusters(context, true);
    try {
      const primaries = new Map<ReplicatedCluster, string>();
      for (const cluster of clusters) {
        try {
          primaries.set(cluster, await startCluster(context, cluster));
        } catch (err) {
          throw await withLogs(cluster, err);
        }
      }
      await interleave(context, clusters, async (cluster, run) => {
        const modes = cluster instanceof PgimCluster ? [true, false] : [true];
        for (const synchronous of modes) {
          try {
            const primary = primaries.get(cluster) ?? '';
            await setSynchronous(cluster, primary, synchronous);
            primaries.set(cluster, await failoverUnderLoad(cluster, primary, synchronous, modeLabel(cluster, synchronous), recorder, run));
          } catch (err) {
            throw await withLogs(cluster, err);
          }
        }
      });
    } finally {
      await destroyAll(context, clusters);
    }
  },
};
