import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { restoreNewestWithBarman } from '../../test-kit/barman-restore.js';
import { startLocalCluster, type ClusterInstance, type LocalCluster } from '../support/cluster.js';
import { eventually, handToPostgres } from '../../test-kit/env.js';
import { pgimEntry, query } from '../../test-kit/pgim.js';
import { archivedWalNames, backupSpec, requireBackupParts, S3Server, writeBackupSecret } from '../../test-kit/s3.js';

const secrets = { appPassword: 'swa-app-pw', superuserPassword: 'swa-su-pw' };

/**
 * A switchover while WAL is archived: a base backup taken before it, restored afterwards with Barman Cloud alone,
 * holds the rows written after it on the new primary. That needs every segment of both timelines (and the history
 * file) in the store: no hole across the switchover.
 */
describe('switchover during WAL archiving leaves no gap (2 instances, Barman Cloud, versitygw)', function () {
  this.timeout(900_000);
  /** What before() set up, undone in reverse by after(). */
  const cleanup: (() => Promise<unknown>)[] = [];
  let s3: S3Server;
  let cluster: LocalCluster;
  const path = 'switchover';
  const byName = (name: string): ClusterInstance => cluster.instances.find((i) => i.name === name)!;
  const app = (i: ClusterInstance, sql: string): Promise<Record<string, unknown>[]> => query(i.ports.pgPort, 'app', secrets.appPassword, sql);
  const su = (i: ClusterInstance, sql: string): Promise<Record<string, unknown>[]> => query(i.ports.pgPort, 'postgres', secrets.superuserPassword, sql);

  before(async function () {
    requireBackupParts(this);
    s3 = await S3Server.start();
    cleanup.push(() => s3.stop());
    // writeBackupSecret needs the config folder first: start with the spec, the Secret follows before the start.
    cluster = await startLocalCluster(2, { enableSuperuserAccess: true, smartShutdownTimeout: 1, stopDelay: 20, spec: { switchoverDelay: 20, ...backupSpec(s3, path, { wal: { maxParallel: 2 } }) } }, secrets, async (configDir) => {
      await writeBackupSecret(configDir, s3);
    });
    cleanup.push(() => cluster.stop());
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  });

  it('takes a files-mode ScheduledBackup on schedule on the streaming replica (target: prefer-standby)', async () => {
    const replica = byName('itest-2');
    // A schedule 25 s ahead (seconds first, UTC), written as a CNPG ScheduledBackup manifest into the config folder.
    const at = new Date(Date.now() + 25_000);
    const schedule = `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} * * *`;
    const folder = join(cluster.configDir, 'scheduledbackups');
    await mkdir(folder, { recursive: true });
    const manifest = { apiVersion: 'postgresql.cnpg.io/v1', kind: 'ScheduledBackup', metadata: { name: 'on-standby' }, spec: { schedule, target: 'prefer-standby', method: 'barmanObjectStore', cluster: { name: 'itest' } } };
    await writeFile(join(folder, '.on-standby.yaml.new'), stringify(manifest));
    await handToPostgres(folder);
    await rename(join(folder, '.on-standby.yaml.new'), join(folder, 'on-standby.yaml'));
    try {
      const status = await eventually(async () => {
        const doc = (await (await fetch(`${replica.pgim?.statusUrl ?? ''}/pg/status`)).json()) as { isPrimary?: boolean; backup?: { lastBackup?: { backupName: string; phase: string; instanceID: { podName: string }; error?: string } } };
        const last = doc.backup?.lastBackup;
        if (last?.phase === 'failed') throw new Error(`the scheduled backup failed: ${last.error ?? ''}`);
        return last?.phase === 'completed' ? doc : undefined;
      }, 300_000, 'the scheduled backup completed on itest-2');
      assert.equal(status.isPrimary, false, 'taken on the replica');
      assert.match(status.backup?.lastBackup?.backupName ?? '', /^on-standby-\d{14}$/);
      assert.equal(status.backup?.lastBackup?.instanceID.podName, 'itest-2');
      assert.ok(replica.pgim?.lines.some((l) => l.includes('taking a scheduled backup')), "the replica's log says so");
      assert.ok(!byName('itest-1').pgim?.lines.some((l) => l.includes('taking a scheduled backup')), 'the primary took none');
    } finally {
      await rm(join(folder, 'on-standby.yaml'), { force: true });
    }
  });

  it('archives both timelines completely: a backup from before restores the rows written after', async () => {
    const first = byName('itest-1');
    const second = byName('itest-2');
    await app(first, 'CREATE TABLE ledger (id int, era text)');
    await app(first, "INSERT INTO ledger SELECT g, 'before' FROM generate_series(1, 1000) g");
    const backup = spawnSync(process.execPath, [pgimEntry, 'backup', '--name', 'before-switchover', '--url', first.pgim?.statusUrl ?? ''], { encoding: 'utf8' });
    assert.equal(backup.status, 0, backup.stdout + backup.stderr);
    await app(first, "INSERT INTO ledger SELECT g, 'old primary' FROM generate_series(1, 1000) g");
    await su(first, 'SELECT pg_switch_wal()');
    await app(first, "INSERT INTO ledger SELECT g, 'old primary, last segment' FROM generate_series(1, 500) g");
    await eventually(async () => {
      const rows = await su(second, "SELECT count(*)::int AS n FROM ledger").catch(() => undefined);
      return rows?.[0]?.n === 2500 ? true : undefined;
    }, 60_000, 'the replica caught up');
    execFileSync(process.execPath, [pgimEntry, 'switchover', '--config-dir', cluster.configDir, '--to', 'itest-2'], { encoding: 'utf8' });
    await eventually(async () => ((await su(second, 'SELECT pg_is_in_recovery() AS r').catch(() => undefined))?.[0]?.r === false ? true : undefined), 120_000, 'itest-2 promoted');
    await app(second, "INSERT INTO ledger SELECT g, 'new primary' FROM generate_series(1, 700) g");
    const last = String((await su(second, 'SELECT pg_walfile_name(pg_switch_wal()) AS w'))[0]?.w);
    await eventually(async () => ((await archivedWalNames(s3, path, 'itest')).includes(last) ? true : undefined), 300_000, `${last} archived`);
    const names = await archivedWalNames(s3, path, 'itest');
    assert.ok(names.some((n) => /^00000002\.history$/.test(n)), `the timeline history file is archived: ${names.join(' ')}`);

    const restored = await restoreNewestWithBarman(s3, path, 'itest', join(cluster.base, 'restored'));
    try {
      const rows = await eventually(async () => {
        const r = await query(restored.port, 'app', secrets.appPassword, 'SELECT pg_is_in_recovery() AS rec, (SELECT count(*)::int FROM ledger) AS n').catch(() => undefined);
        return r?.[0]?.rec === false ? r : undefined;
      }, 300_000, 'the restored instance promoted').catch(async (err: unknown) => {
        throw new Error(`${(err as Error).message}\n${(await restored.log().catch(() => '')).slice(-3000)}`);
      });
      assert.equal(rows[0]?.n, 3200, await restored.log());
    } finally {
      await restored.stop();
    }
  });
});
