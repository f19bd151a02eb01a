import { strict as assert } from 'node:assert';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startLocalCluster, type ClusterInstance, type LocalCluster } from '../support/cluster.js';
import { eventually } from '../../test-kit/env.js';
import { query } from '../../test-kit/pgim.js';
import { archivedWalNames, backupSpec, requireBackupParts, S3Server, writeBackupSecret } from '../../test-kit/s3.js';

const secrets = { appPassword: 'raf-app-pw', superuserPassword: 'raf-su-pw' };

/**
 * A replica that was away while its primary removed the WAL it needs (its slot dropped, checkpoints) catches up from
 * the object store through restore_command = pgim wal-restore, then streams again (CNPG's replicas do the same).
 */
describe('a replica falls back to the archive when streaming cannot serve it (2 instances, Barman Cloud, versitygw)', function () {
  this.timeout(600_000);
  const cleanup: (() => Promise<unknown>)[] = [];
  let s3: S3Server;
  let cluster: LocalCluster;
  const path = 'fallback';
  const byName = (name: string): ClusterInstance => cluster.instances.find((i) => i.name === name)!;
  const app = (i: ClusterInstance, sql: string): Promise<Record<string, unknown>[]> => query(i.ports.pgPort, 'app', secrets.appPassword, sql);
  const su = (i: ClusterInstance, sql: string): Promise<Record<string, unknown>[]> => query(i.ports.pgPort, 'postgres', secrets.superuserPassword, sql);
  const count = async (i: ClusterInstance): Promise<number | undefined> => (await su(i, 'SELECT count(*)::int AS n FROM ledger').catch(() => undefined))?.[0]?.n as number | undefined;

  before(async function () {
    requireBackupParts(this);
    s3 = await S3Server.start();
    cleanup.push(() => s3.stop());
    cluster = await startLocalCluster(2, { enableSuperuserAccess: true, smartShutdownTimeout: 1, stopDelay: 20, parameters: { wal_keep_size: '0' }, spec: backupSpec(s3, path, { wal: { maxParallel: 2 } }) }, secrets, async (configDir) => {
      await writeBackupSecret(configDir, s3);
    });
    cleanup.push(() => cluster.stop());
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  });

  it('restores the removed WAL from the store, then streams again', async () => {
    const primary = byName('itest-1');
    const replica = byName('itest-2');
    await app(primary, 'CREATE TABLE ledger (id int, era text)');
    await app(primary, "INSERT INTO ledger SELECT g, 'before' FROM generate_series(1, 100) g");
    await eventually(async () => ((await count(replica)) === 100 ? true : undefined), 120_000, 'the replica streams');
    // pg_walfile_name() is refused during recovery: the primary names the segment of the replica's position.
    const replayed = String((await su(replica, 'SELECT pg_last_wal_replay_lsn()::text AS l'))[0]?.l);
    const needed = String((await su(primary, `SELECT pg_walfile_name('${replayed}'::pg_lsn) AS w`))[0]?.w);
    await replica.pgim?.stop();

    // A slot dropped behind pgim's back (nothing in the spec changed) comes back by itself: without it the replica
    // could never stream again ("replication slot ... does not exist" on every attempt).
    const slotExists = async (): Promise<true | undefined> =>
      (await su(primary, "SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = '_cnpg_itest_2'"))[0]?.n === 1 ? true : undefined;
    await su(primary, "SELECT pg_drop_replication_slot('_cnpg_itest_2')");
    await eventually(slotExists, 60_000, 'the primary to re-create the HA slot it lost');

    // The primary forgets the replica's position: checkpoints recycle the WAL it needs (wal_keep_size 0 instead of
    // CNPG's 512MB, so a few segments suffice) once its slot no longer holds it (advanced to now, as a slot
    // re-created while the replica was away reserves from then on).
    for (let i = 0; i < 4; i++) {
      await app(primary, `INSERT INTO ledger SELECT g, 'away ${i}' FROM generate_series(1, 1000) g`);
      await su(primary, 'SELECT pg_switch_wal()');
    }
    await su(primary, "SELECT pg_replication_slot_advance('_cnpg_itest_2', pg_current_wal_lsn())");
    await su(primary, 'CHECKPOINT');
    const last = String((await su(primary, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS w'))[0]?.w);
    await su(primary, 'SELECT pg_switch_wal()');
    await eventually(async () => ((await archivedWalNames(s3, path, 'itest')).includes(last) ? true : undefined), 300_000, `${last} archived`);
    await su(primary, 'CHECKPOINT');
    const left = await readdir(join(primary.paths.pgdata, 'pg_wal'));
    assert.ok(!left.includes(needed), `${needed} is gone from the primary's pg_wal (${left.join(' ')})`);

    const back = cluster.start(replica);
    await back.waitReady(120_000);
    await eventually(async () => ((await count(replica)) === 4100 ? true : undefined), 120_000, 'the replica caught up');
    assert.ok(back.lines.some((l) => /wal-restore.*(Restored WAL file|WAL restore command completed)/.test(l)), 'segments came from the archive');
    // And it streams again: a row written now arrives without a segment switch.
    await eventually(async () => ((await su(primary, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'itest-2' AND state = 'streaming'"))[0]?.n === 1 ? true : undefined), 120_000, 'streaming again');
    await app(primary, "INSERT INTO ledger VALUES (0, 'streamed')");
    await eventually(async () => ((await count(replica)) === 4101 ? true : undefined), 60_000, 'the new row streamed').catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${back.lines.slice(-60).join('\n')}`);
    });
  });
});
