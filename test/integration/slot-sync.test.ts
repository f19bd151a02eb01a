import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { startLocalCluster, type ClusterInstance, type LocalCluster } from '../support/cluster.js';
import { eventually, sleep } from '../../test-kit/env.js';
import { pgimEntry, query } from '../../test-kit/pgim.js';

const secrets = { appPassword: 'slots-app-pw', superuserPassword: 'slots-su-pw' };

/**
 * `spec.replicationSlots.synchronizeReplicas` on real PostgreSQL (files mode, a primary and a replica, updateInterval
 * 1 s): the replica keeps copies of the primary's user physical slots (CNPG's slot replicator), so a consumer's slot
 * is still there, no earlier than where the consumer confirmed, after a switchover.
 */
describe('replication slots follow the primary on the replicas (synchronizeReplicas, 2 instances, real PostgreSQL)', function () {
  this.timeout(300_000);
  let cluster: LocalCluster;
  const byName = (name: string): ClusterInstance => cluster.instances.find((i) => i.name === name)!;
  const su = <T extends Record<string, unknown>>(name: string, sql: string): Promise<T[]> => query<T>(byName(name).ports.pgPort, 'postgres', secrets.superuserPassword, sql);
  const slots = async (name: string): Promise<Map<string, string | null>> =>
    new Map((await su<{ slot_name: string; restart_lsn: string | null }>(name, "SELECT slot_name, restart_lsn::text FROM pg_replication_slots WHERE slot_type = 'physical' AND NOT temporary")).map((r) => [r.slot_name, r.restart_lsn]));
  /** The slot's restart_lsn on `name` once it is at least `lsn` (a consumer's confirmed position). */
  const reaches = (name: string, slot: string, lsn: string): Promise<string> =>
    eventually(async () => {
      const rows = await su<{ at: string }>(name, `SELECT restart_lsn::text AS at FROM pg_replication_slots WHERE slot_name = '${slot}' AND restart_lsn >= '${lsn}'::pg_lsn`).catch(() => []);
      return rows[0]?.at;
    }, 60_000, `${slot} on ${name} at ${lsn} or later`);
  /** What a consumer of the slot does when it confirms: moves restart_lsn to what it has flushed (here: everything). */
  const consumerConfirms = async (primary: string, slot: string): Promise<string> => {
    await su(primary, 'INSERT INTO filler SELECT generate_series(1, 2000)');
    const rows = await su<{ lsn: string }>(primary, `SELECT end_lsn::text AS lsn FROM pg_replication_slot_advance('${slot}', pg_current_wal_lsn()) AS a(slot_name, end_lsn)`);
    return rows[0]!.lsn;
  };

  before(async () => {
    cluster = await startLocalCluster(
      2,
      {
        enableSuperuserAccess: true,
        smartShutdownTimeout: 1,
        stopDelay: 20,
        spec: { switchoverDelay: 20, replicationSlots: { updateInterval: 1, synchronizeReplicas: { enabled: true, excludePatterns: ['^skip_'] } } },
      },
      secrets,
    );
    await su('itest-1', 'CREATE TABLE filler (n int)');
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') {
      for (const i of cluster.instances) process.stderr.write(`--- ${i.name}\n${i.pgim?.lines.filter((l) => !l.includes('"logger":"postgres"')).slice(-30).join('\n') ?? ''}\n`);
    }
  });

  after(async () => {
    await cluster.stop();
  });

  it('a user slot created on the primary appears on the replica and advances with it; an excluded one never does', async () => {
    await su('itest-1', "SELECT pg_create_physical_replication_slot('consumer', true), pg_create_physical_replication_slot('skip_me', true), pg_create_physical_replication_slot('unreserved')");
    await eventually(async () => ((await slots('itest-2')).has('consumer') && (await slots('itest-2')).has('unreserved') ? true : undefined), 60_000, 'the copies on itest-2');
    const first = await consumerConfirms('itest-1', 'consumer');
    await reaches('itest-2', 'consumer', first);
    const second = await consumerConfirms('itest-1', 'consumer');
    assert.ok((await su<{ later: boolean }>('itest-1', `SELECT '${second}'::pg_lsn > '${first}'::pg_lsn AS later`))[0]?.later);
    await reaches('itest-2', 'consumer', second);
    await sleep(2500);
    const onReplica = await slots('itest-2');
    assert.ok(!onReplica.has('skip_me'), 'an excluded slot is not copied');
    assert.equal(onReplica.get('unreserved'), null, 'a slot that never reserved WAL is copied without reserving');
    assert.ok(!onReplica.has('_cnpg_itest_1') && !onReplica.has('_cnpg_itest_2'), 'HA slots are not copied');
  });

  it('a slot dropped on the primary goes from the replica', async () => {
    await su('itest-1', "SELECT pg_drop_replication_slot('unreserved')");
    await eventually(async () => (!(await slots('itest-2')).has('unreserved') ? true : undefined), 60_000, 'unreserved dropped on itest-2');
    assert.ok((await slots('itest-2')).has('consumer'));
  });

  it("after a switchover the new primary has the consumer's slot, no earlier than its confirmed position; the old primary follows it", async () => {
    const confirmed = await consumerConfirms('itest-1', 'consumer');
    await reaches('itest-2', 'consumer', confirmed);
    execFileSync(process.execPath, [pgimEntry, 'switchover', '--config-dir', cluster.configDir, '--to', 'itest-2'], { encoding: 'utf8' });
    await eventually(async () => ((await su<{ r: boolean }>('itest-2', 'SELECT pg_is_in_recovery() AS r').catch(() => []))[0]?.r === false ? true : undefined), 60_000, 'itest-2 writable');
    const onNewPrimary = await slots('itest-2');
    const at = onNewPrimary.get('consumer');
    assert.ok(at !== undefined && at !== null, "the consumer's slot is on the new primary");
    assert.ok((await su<{ ok: boolean }>('itest-2', `SELECT '${at}'::pg_lsn >= '${confirmed}'::pg_lsn AS ok`))[0]?.ok, `${at} is not earlier than ${confirmed}`);
    // The WAL from there on is still on the new primary: the consumer can resume.
    const status = await su<{ wal_status: string }>('itest-2', "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'consumer'");
    assert.equal(status[0]?.wal_status, 'reserved');
    // The former primary, now a replica, keeps its slot and follows the new primary's (no copy of skip_me is made or dropped).
    await eventually(async () => ((await su<{ r: boolean }>('itest-1', 'SELECT pg_is_in_recovery() AS r').catch(() => []))[0]?.r === true ? true : undefined), 120_000, 'itest-1 a replica');
    await su('itest-2', 'CREATE TABLE IF NOT EXISTS filler (n int)');
    const later = await consumerConfirms('itest-2', 'consumer');
    await reaches('itest-1', 'consumer', later);
    assert.ok((await slots('itest-1')).has('skip_me'), 'an excluded slot is left alone, even where the primary lacks it');
  });
});
