import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { clusterManifest, writeConfigDir } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { killPostmaster, PgimProcess, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';
import { asPostgres } from '../../test-kit/barman-restore.js';
import { archivedWalNames, backupSecretName, backupSpec, requireBackupParts, S3Server, writeBackupSecret } from '../../test-kit/s3.js';

const run = promisify(execFile);

/**
 * spec.bootstrap.recovery in files mode: a cluster backed up by plain barman-cloud-backup (as CNPG's operator takes
 * it) and archived by pgim is restored by pgim to a time, an LSN, the end of the backup and the end of the WAL;
 * the restored cluster is writable on a new timeline with its own passwords. Failures leave PGDATA empty or moved
 * aside and never initdb.
 */
describe('recovery from an object store (real PostgreSQL, Barman Cloud, versitygw)', function () {
  this.timeout(900_000);
  const cleanup: (() => Promise<unknown>)[] = [];
  const origin = { appPassword: 'app-pass-origin', superuserPassword: 'su-pass-origin' };
  const restoredSecrets = { appPassword: 'app-pass-restored', superuserPassword: 'su-pass-restored' };
  const path = 'recovery-test';
  let s3: S3Server;
  let base: string;
  let originPaths: PgimPaths;
  let originPorts: PgimPorts;
  let backupId: string;
  let timeT: string;
  let lsnL: string;

  const originSql = (text: string): Promise<Record<string, unknown>[]> => query(originPorts.pgPort, 'postgres', origin.superuserPassword, text);

  /** The source entry: the origin's store (serverName itest), credentials from its Secret, prefetching 4 segments. */
  const externalCluster = (store: Record<string, unknown> = {}): Record<string, unknown> => {
    const own = (backupSpec(s3, path, { wal: { maxParallel: 4 } }).backup as { barmanObjectStore: Record<string, unknown> }).barmanObjectStore;
    return { name: 'origin', barmanObjectStore: { ...own, serverName: 'itest', ...store } };
  };

  let counter = 0;
  /** A config folder for a restored cluster named `restored`, its own Secrets and ports. */
  const restoredInstance = async (recovery: Record<string, unknown>, extra: { spec?: Record<string, unknown>; store?: Record<string, unknown> } = {}): Promise<{ paths: PgimPaths; ports: PgimPorts }> => {
    const dir = join(base, `restored-${++counter}`);
    const paths = { configDir: join(dir, 'config'), pgdata: join(dir, 'pgdata'), runtimeDir: join(dir, 'runtime') };
    const ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    await writeConfigDir(paths.configDir, { name: 'restored' }, restoredSecrets);
    const manifest = clusterManifest({ name: 'restored', enableSuperuserAccess: true, spec: { externalClusters: [externalCluster(extra.store)], ...extra.spec } });
    (manifest.spec as Record<string, unknown>).bootstrap = { recovery: { source: 'origin', ...recovery } };
    await writeFile(join(paths.configDir, 'cluster.yaml'), stringify(manifest));
    await writeBackupSecret(paths.configDir, s3);
    await mkdir(dir, { recursive: true });
    await handToPostgres(dir);
    return { paths, ports };
  };

  const restoreOnce = async (paths: PgimPaths, ports: PgimPorts): Promise<{ code: number | null; output: string }> => {
    const pgim = new PgimProcess('restore', paths, ports);
    const exit = await pgim.waitExit(600_000);
    if (process.env.PGIM_TEST_DUMP !== undefined) await writeFile(`${process.env.PGIM_TEST_DUMP}-${counter}-restore.log`, pgim.output);
    return { code: exit.code, output: pgim.output };
  };

  /** Runs the restored cluster and reads what it holds with its own app password. */
  const inspect = async (paths: PgimPaths, ports: PgimPorts, pgim?: PgimProcess): Promise<{ rows: string[]; timeline: number }> => {
    const running = pgim ?? new PgimProcess('run', paths, ports);
    try {
      await running.waitReady(600_000);
      const app = (text: string): Promise<Record<string, unknown>[]> => query(ports.pgPort, 'app', restoredSecrets.appPassword, text);
      const rows = (await app('SELECT x FROM t ORDER BY x')).map((r) => String(r.x));
      await app("INSERT INTO t VALUES ('after-restore')");
      const timeline = Number((await app('SELECT timeline_id FROM pg_control_checkpoint()'))[0]?.timeline_id);
      const inRecovery = (await app('SELECT pg_is_in_recovery() AS r'))[0]?.r;
      assert.equal(inRecovery, false);
      return { rows, timeline };
    } finally {
      await running.stop().catch(() => killPostmaster(paths.pgdata));
      if (process.env.PGIM_TEST_DUMP !== undefined) await writeFile(`${process.env.PGIM_TEST_DUMP}-${counter}-run.log`, running.output);
    }
  };

  const assertNoInitdb = async (paths: PgimPaths): Promise<void> => {
    const entries = await readdir(paths.pgdata).catch(() => [] as string[]);
    assert.deepEqual(entries, [], `PGDATA must be empty after a failed restore, holds ${entries.join(', ')}`);
  };

  before(async function () {
    requireBackupParts(this);
    s3 = await S3Server.start();
    cleanup.push(() => s3.stop());
    base = await makeTempDir('recovery');
    cleanup.push(() => removeTempDir(base));
    originPaths = { configDir: join(base, 'origin', 'config'), pgdata: join(base, 'origin', 'pgdata'), runtimeDir: join(base, 'origin', 'runtime') };
    originPorts = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    await writeConfigDir(originPaths.configDir, { enableSuperuserAccess: true, spec: backupSpec(s3, path) }, origin);
    await writeBackupSecret(originPaths.configDir, s3);
    await handToPostgres(join(base, 'origin'));
    const pgim = new PgimProcess('run', originPaths, originPorts);
    cleanup.push(() => pgim.stop().catch(() => killPostmaster(originPaths.pgdata)));
    await pgim.waitReady();
    await query(originPorts.pgPort, 'app', origin.appPassword, 'CREATE TABLE t (x text)');
    await originSql("SELECT pg_switch_wal()");
    // The base backup as CNPG's operator writes it: plain barman-cloud-backup.
    const [cmd, args] = asPostgres('barman-cloud-backup', [
      '--endpoint-url', s3.endpointURL, '--cloud-provider', 'aws-s3', '--host', join(originPaths.runtimeDir, 'run'), '--port', String(originPorts.pgPort),
      '--user', 'postgres', '--name', 'plain', '--immediate-checkpoint', s3.destination(path), 'itest',
    ]);
    await run(cmd, args, { env: { ...s3.barmanEnv(), TMPDIR: base } });
    const list = JSON.parse((await run('barman-cloud-backup-list', ['--endpoint-url', s3.endpointURL, '--cloud-provider', 'aws-s3', '--format', 'json', s3.destination(path), 'itest'], { env: s3.barmanEnv() })).stdout) as { backups_list: { backup_id: string }[] };
    backupId = list.backups_list.at(-1)?.backup_id ?? '';
    // Row A, then the target time T and LSN L, then row B a second later, then row C on a later segment.
    await originSql("INSERT INTO t VALUES ('A')");
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const mark = (await originSql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS t, pg_current_wal_insert_lsn()::text AS l"))[0];
    timeT = String(mark?.t);
    lsnL = String(mark?.l);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await originSql("INSERT INTO t VALUES ('B')");
    await originSql('SELECT pg_switch_wal()');
    await originSql("INSERT INTO t VALUES ('C')");
    const last = String((await originSql('SELECT pg_walfile_name(pg_current_wal_lsn()) AS w'))[0]?.w);
    await originSql('SELECT pg_switch_wal()');
    await eventually(async () => ((await archivedWalNames(s3, path, 'itest')).includes(last) ? true : undefined), 180_000, `${last} archived`);
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  });

  it('restores to a time (targetTime): row A, not row B; writable on a new timeline with its own app password (pgim run)', async () => {
    const { paths, ports } = await restoredInstance({ recoveryTarget: { targetTime: timeT } });
    const pgim = new PgimProcess('run', paths, ports);
    const { rows, timeline } = await inspect(paths, ports, pgim);
    assert.deepEqual(rows, ['A']);
    assert.ok(timeline >= 2, `timeline ${timeline}`);
    assert.ok(pgim.lines.some((l) => l.includes('Target backup found') && l.includes(backupId)), 'the log names the backup');
    assert.ok(pgim.lines.some((l) => l.includes('restore progress') && l.includes('bytesRestored')), 'the log reports the bytes restored');
    assert.ok(pgim.lines.some((l) => /restore complete: promoted onto a new timeline/.test(l)));
    assert.ok(!pgim.lines.some((l) => l.includes(s3.secretKey)), 'no secret in the log');
  });

  it('restores to an LSN (targetLSN) with `pgim restore`, WAL read ahead and moved into place by restore_command itself', async () => {
    const { paths, ports } = await restoredInstance({ recoveryTarget: { targetLSN: lsnL } });
    const restored = await restoreOnce(paths, ports);
    assert.equal(restored.code, 0, restored.output);
    // The backup's first segment was read ahead while the base backup downloaded; restore_command's shell took it
    // (and the next ones) from the spool without starting pgim.
    assert.match(restored.output, /Restored WAL file from spool \(parallel, moved by restore_command\)/);
    const { rows, timeline } = await inspect(paths, ports);
    assert.deepEqual(rows, ['A']);
    assert.ok(timeline >= 2);
  });

  it('restores to the end of the backup (targetImmediate with backupID): consistent, before row A', async () => {
    const { paths, ports } = await restoredInstance({ recoveryTarget: { targetImmediate: true, backupID: backupId } });
    const restored = await restoreOnce(paths, ports);
    assert.equal(restored.code, 0, restored.output);
    const { rows } = await inspect(paths, ports);
    assert.deepEqual(rows, []);
  });

  it('restores to the end of the archived WAL (no target), then archives its new timeline into its own folder', async () => {
    const { paths, ports } = await restoredInstance({}, { spec: backupSpec(s3, path, { serverName: 'restored' }) });
    const restored = await restoreOnce(paths, ports);
    assert.equal(restored.code, 0, restored.output);
    const pgim = new PgimProcess('run', paths, ports);
    const { rows, timeline } = await inspect(paths, ports, pgim);
    assert.deepEqual(rows, ['A', 'B', 'C']);
    // Its own archive gets the new timeline's history file (and nothing lands in the origin's folder).
    const history = `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
    const names = (): Promise<string[]> => readdir(join(s3.bucketDir, path, 'restored', 'wals')).catch(() => []);
    await eventually(async () => ((await names()).includes(history) ? true : undefined), 120_000, `${history} archived into restored/`);
  });

  it('refuses to archive into the folder it restores from, naming the field; PGDATA untouched', async () => {
    const { paths, ports } = await restoredInstance({}, { spec: backupSpec(s3, path, { serverName: 'itest' }) });
    const restored = await restoreOnce(paths, ports);
    assert.equal(restored.code, 3, restored.output);
    assert.match(restored.output, /spec\.backup\.barmanObjectStore\.serverName/);
    await assertNoInitdb(paths);
  });

  it('a wrong credential: exit non-zero naming the source, PGDATA empty, no initdb', async () => {
    const { paths, ports } = await restoredInstance({});
    await writeFile(join(paths.configDir, 'secrets', backupSecretName, 'ACCESS_SECRET_KEY'), 'not-the-secret');
    const restored = await restoreOnce(paths, ports);
    assert.notEqual(restored.code, 0);
    assert.match(restored.output, /spec\.externalClusters\[0\]\.barmanObjectStore/);
    assert.match(restored.output, /cannot list the backups/);
    assert.ok(!restored.output.includes('not-the-secret'));
    await assertNoInitdb(paths);
  });

  it('a missing backup: exit non-zero naming backupID, PGDATA empty, no initdb', async () => {
    const { paths, ports } = await restoredInstance({ recoveryTarget: { backupID: '20000101T000000' } });
    const restored = await restoreOnce(paths, ports);
    assert.notEqual(restored.code, 0);
    assert.match(restored.output, /recoveryTarget\.backupID.*20000101T000000 is not in/);
    await assertNoInitdb(paths);
  });

  it('an unreachable store: exit non-zero, PGDATA empty, no initdb', async () => {
    const { paths, ports } = await restoredInstance({}, { store: { endpointURL: `http://127.0.0.1:${await freePort()}` } });
    const restored = await restoreOnce(paths, ports);
    assert.notEqual(restored.code, 0);
    assert.match(restored.output, /cannot list the backups/);
    await assertNoInitdb(paths);
  });

  it('a target after the end of the archived WAL: exit non-zero, the partly restored PGDATA moved aside', async () => {
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const { paths, ports } = await restoredInstance({ recoveryTarget: { targetTime: later } });
    const restored = await restoreOnce(paths, ports);
    assert.notEqual(restored.code, 0);
    assert.match(restored.output, /moved aside/);
    await assertNoInitdb(paths);
    const siblings = await readdir(join(paths.pgdata, '..'));
    assert.ok(siblings.some((name) => name.startsWith('pgdata_')), siblings.join(', '));
  });
});
