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
  this.timeout(900_000);
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

    // The primary forgets the replica: its slot goes (pgim recreates it, reserving from now), checkpoints recycle the
    // rest (wal_keep_size 0 instead of CNPG's 512MB, so a few segments suffice).
    await su(primary, "SELECT pg_drop_replication_slot('_cnpg_itest_2')");
    for (let i = 0; i < 4; i++) {
      await app(primary, `INSERT INTO ledger SELECT g, 'away ${i}' FROM generate_series(1, 1000) g`);
      await su(primary, 'SELECT pg_switch_wal()');
      await su(primary, 'CHECKPOINT');
    }
    const last = String((await su(primary, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS w'))[0]?.w);
    await su(primary, 'SELECT pg_switch_wal()');
    await eventually(async () => ((await archivedWalNames(s3, path, 'itest')).includes(last) ? true : undefined), 300_000, `${last} archived`);
    await su(primary, 'CHECKPOINT');
    const left = await readdir(join(primary.paths.pgdata, 'pg_wal'));
    assert.ok(!left.includes(needed), `${needed} is gone from the primary's pg_wal (${left.join(' ')})`);

    const back = cluster.start(replica);
    await back.waitReady(300_000);
    await eventually(async () => ((await count(replica)) === 4100 ? true : undefined), 300_000, 'the replica caught up');
    assert.ok(back.lines.some((l) => /wal-restore.*(Restored WAL file|WAL restore command completed)/.test(l)), 'segments came from the archive');
    // And it streams again: a row written now arrives without a segment switch.
    await eventually(async () => ((await su(replica, 'SELECT status FROM pg_stat_wal_receiver').catch(() => undefined))?.[0]?.status === 'streaming' ? true : undefined), 300_000, 'streaming again');
    await app(primary, "INSERT INTO ledger VALUES (0, 'streamed')");
    await eventually(async () => ((await count(replica)) === 4101 ? true : undefined), 300_000, 'the new row streamed').catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${back.lines.slice(-60).join('\n')}`);
    });
  });
});
