import { strict as assert } from 'node:assert';
import { lostOn, startAckedWriter } from '../../test-kit/acked-writer.js';
import { eventually, sleep } from '../../test-kit/env.js';
import { connect, query } from '../../test-kit/pgim.js';
import { electPrimary, type FailoverQuorum } from '../../src/replication/synchronous.js';
import { probeReplica } from '../../src/replication/switchover.js';
import type { TestApiServer } from '../k8s/apiserver.js';
import { getCluster, namespacedPath, patchClusterStatus, type Json } from '../k8s/fixtures.js';
import { apiServerFor, crdVariants, releaseAllApiServers, requireCrdFile, requireK8sBinaries } from '../k8s/harness.js';
import { leasesGroup, ReplicatedK8sCluster, type K8sNode } from '../k8s/replicated.js';

const clusterName = 'sync';
const appPassword = 'k8s-sync-app-pw';
const superuserPassword = 'k8s-sync-su-pw';
const [one, two, three] = [1, 2, 3].map((n) => `${clusterName}-${n}`) as [string, string, string];

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  renewTime?: string;
  leaseTransitions?: number;
}

/**
 * Synchronous replication in Kubernetes mode with CloudNativePG's real Cluster CRD on a real kube-apiserver: three
 * instances, `spec.postgresql.synchronous` {any, 1, required}; `synchronous_standby_names` as CNPG renders it, the
 * synchronous set in the Cluster status; a kill -9 of the primary under writes, the new primary elected as pgim's
 * `switchover --failover` elects (N - k + 1 answers, the most advanced) and named in `status.targetPrimary` as the
 * operator would: it promotes only once the dead primary's Lease ran out, and no acknowledged row is lost.
 */
describe('Kubernetes mode: synchronous replication and a zero-loss failover under the primary Lease (3 instances, CNPG CRD)', function () {
  this.timeout(600_000);
  let server: TestApiServer;
  let cluster: ReplicatedK8sCluster;
  const cnpg = crdVariants.find((v) => v.key === 'cnpg');

  const su = <T extends Record<string, unknown>>(name: string, sql: string): Promise<T[]> => query<T>(cluster.node(name).ports.pgPort, 'postgres', superuserPassword, sql);
  const inRecovery = async (name: string): Promise<boolean | undefined> => su<{ r: boolean }>(name, 'SELECT pg_is_in_recovery() AS r').then((rows) => rows[0]?.r, () => undefined);
  const syncNames = async (name: string): Promise<string | undefined> =>
    su<{ v: string }>(name, "SELECT current_setting('synchronous_standby_names') AS v").then((rows) => rows[0]?.v, () => undefined);
  const waitSyncNames = (name: string, expected: string): Promise<true> =>
    eventually(async () => ((await syncNames(name)) === expected ? true : undefined), 60_000, `${name}: synchronous_standby_names = ${expected}`);
  const waitStreaming = (primary: string, standbys: readonly string[]): Promise<true> =>
    eventually(async () => {
      const rows = await su<{ application_name: string }>(primary, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'").catch(() => []);
      return standbys.every((s) => rows.some((r) => r.application_name === s)) ? true : undefined;
    }, 120_000, `${standbys.join(', ')} streaming from ${primary}`);
  const lease = async (): Promise<LeaseSpec> => ((await server.request(namespacedPath(cluster.namespace, 'leases', clusterName, leasesGroup))).body as { spec?: LeaseSpec }).spec ?? {};
  const synchronousCondition = async (): Promise<Json | undefined> =>
    ((await getCluster(server, cluster.namespace, clusterName)).status?.conditions as Json[] | undefined)?.find((c) => c.type === 'SynchronousReplication');
  const waitCondition = (message: string): Promise<Json> =>
    eventually(async () => {
      const condition = await synchronousCondition();
      return condition?.message === message ? condition : undefined;
    }, 60_000, `the SynchronousReplication condition: ${message}`);
  const login = (node: K8sNode) => ({ host: '127.0.0.1', port: node.ports.pgPort, user: 'app', password: appPassword, database: 'app' });

  before(async function () {
    const binDir = await requireK8sBinaries(this);
    if (cnpg === undefined) throw new Error('no CNPG CRD variant');
    requireCrdFile(this, cnpg);
    server = await apiServerFor(binDir, cnpg);
    cluster = await ReplicatedK8sCluster.create(server, {
      namespacePrefix: 'sync',
      clusterName,
      instances: 3,
      appPassword,
      superuserPassword,
      cluster: {
        enableSuperuserAccess: true,
        smartShutdownTimeout: 1,
        stopDelay: 20,
        spec: {
          instances: 3,
          switchoverDelay: 20,
          postgresql: { parameters: { shared_buffers: '16MB', max_connections: '30' }, synchronous: { method: 'any', number: 1, dataDurability: 'required' } },
        },
      },
    });
    await cluster.start();
    await waitStreaming(one, [two, three]);
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(`\n${cluster.recentLogs()}\n`);
  });

  after(async () => {
    await (cluster as ReplicatedK8sCluster | undefined)?.dispose();
    await releaseAllApiServers();
  });

  it("renders synchronous_standby_names as CNPG does and shows the synchronous set in the Cluster's status", async () => {
    // Streaming standbys sorted, then the others, the primary last (so the list holds after a switchover).
    await waitSyncNames(one, `ANY 1 ("${two}","${three}","${one}")`);
    const condition = await waitCondition(`synchronous_standby_names = ANY 1 ("${two}","${three}","${one}"); streaming: ${two}, ${three}`);
    assert.deepEqual([condition.status, condition.reason], ['True', 'StandbysStreaming']);
    const status = (await (await fetch(`${cluster.node(one).pgim.statusUrl}/pg/status`)).json()) as { replicationInfo?: { applicationName: string; syncState: string }[] };
    assert.deepEqual(
      (status.replicationInfo ?? []).map((r) => [r.applicationName, r.syncState]).sort(),
      [[two, 'quorum'], [three, 'quorum']],
    );
  });

  it('fails over after kill -9 under writes: elected with N - k + 1 answers, promoted only once the Lease ran out, nothing acknowledged lost', async () => {
    await query(cluster.node(one).ports.pgPort, 'app', appPassword, 'CREATE TABLE acked (id bigint PRIMARY KEY)');
    const writer = await startAckedWriter(() => connect(cluster.node(one).ports.pgPort, 'app', appPassword), 'acked', 1);
    await eventually(() => Promise.resolve(writer.acked.length > 0 ? true : undefined), 60_000, 'a first acknowledged commit');
    await sleep(1500);
    const held = await lease();
    assert.equal(held.holderIdentity, one);
    await cluster.killHard(one);
    await Promise.race([writer.finished, sleep(15_000)]);
    await writer.stop();

    // The operator's part, with pgim's election: both standbys answer (N - k + 1 = 2 of 2), the most advanced wins.
    const quorum: FailoverQuorum = { standbys: [two, three], external: 0, number: 1, rule: 'ANY 1' };
    const candidates = await Promise.all([two, three].map((name) => probeReplica(name, login(cluster.node(name)))));
    const election = electPrimary(candidates, { failover: true, quorum });
    assert.ok('target' in election, JSON.stringify(election));
    const target = election.target;
    const other = target === two ? three : two;
    // With one answer only, the same election refuses: a lone replica may lack acknowledged commits.
    const alone = electPrimary(candidates.filter((c) => c.name === other), { failover: true, quorum });
    assert.ok('refused' in alone && alone.refused.includes('N - k + 1'), JSON.stringify(alone));

    await patchClusterStatus(server, cluster.namespace, clusterName, { targetPrimary: target });
    // The dead primary's Lease has not run out: the target stays a replica and says why.
    await cluster.node(target).pgim.waitForLog(/may not promote yet/, 30_000);
    const refusal = cluster.node(target).pgim.records().find((r) => typeof r.msg === 'string' && r.msg.includes('may not promote yet'));
    assert.ok(String(refusal?.error).endsWith(`is held by "${one}" and has not run out`), String(refusal?.error));
    const lastRenewal = Date.parse((await lease()).renewTime ?? '');
    const leaseMs = (held.leaseDurationSeconds ?? 0) * 1000;
    assert.ok(leaseMs > 0 && Number.isFinite(lastRenewal));
    // Sampled until it promotes: never out of recovery while the Lease could still be the dead primary's.
    const promotedAt = await eventually(async () => {
      const recovering = await inRecovery(target);
      const now = Date.now();
      if (recovering === false) return now;
      assert.notEqual(await inRecovery(other), false, `${other} promoted, it was not the target`);
      return undefined;
    }, 120_000, `${target} to promote`);
    assert.ok(promotedAt >= lastRenewal + leaseMs, `promoted ${lastRenewal + leaseMs - promotedAt} ms before the dead primary's Lease ran out`);
    const taken = await lease();
    assert.equal(taken.holderIdentity, target);
    assert.equal(taken.leaseTransitions, (held.leaseTransitions ?? 0) + 1);

    // Writable once the other standby streams from it (required); every acknowledged row is there.
    await query(cluster.node(target).ports.pgPort, 'app', appPassword, 'INSERT INTO acked VALUES (-1)');
    const client = await connect(cluster.node(target).ports.pgPort, 'app', appPassword);
    const lost = await lostOn(client, 'acked', writer.acked).finally(() => client.end());
    assert.ok(writer.acked.length > 0);
    assert.equal(lost, 0, `${lost} of ${writer.acked.length} acknowledged rows missing on ${target}`);
    console.log(`      kill -9 of ${one} under writes -> ${target}: ${writer.acked.length} acknowledged, 0 lost`);

    // The new primary's list and the Cluster's status follow: the streaming standby first, the dead one, itself last.
    await waitSyncNames(target, `ANY 1 ("${other}","${one}","${target}")`);
    const condition = await waitCondition(`synchronous_standby_names = ANY 1 ("${other}","${one}","${target}"); streaming: ${other}`);
    assert.equal(condition.status, 'True');
    const status = (await getCluster(server, cluster.namespace, clusterName)).status;
    assert.equal(status?.currentPrimary, target);
  });

  it('the old primary rejoins as a replica of the new one, and the synchronous set takes it back', async () => {
    const target = (await getCluster(server, cluster.namespace, clusterName)).status?.targetPrimary as string;
    const other = target === two ? three : two;
    await cluster.startNode(one);
    await waitStreaming(target, [one, other]);
    assert.equal(await inRecovery(one), true);
    const expected = `ANY 1 (${[one, other].sort().map((n) => `"${n}"`).join(',')},"${target}")`;
    await waitSyncNames(target, expected);
    await waitCondition(`synchronous_standby_names = ${expected}; streaming: ${[one, other].sort().join(', ')}`);
  });
});
