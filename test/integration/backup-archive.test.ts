import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeConfigDir } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { killPostmaster, PgimProcess, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';
import { archivedWalNames, backupSpec, requireBackupParts, S3Server, writeBackupSecret } from '../../test-kit/s3.js';

const run = promisify(execFile);

interface StatusBody {
  isPrimary?: boolean;
  readyWalFiles?: number;
  currentWAL?: string;
  backup?: { configured: boolean; archiving?: { ok: boolean; error?: string; walName: string } };
}

/**
 * Continuous WAL archiving with real parts: PostgreSQL 15, pgim's `wal-archive` as archive_command, Debian's
 * barman-cli-cloud 3.4, and versitygw over TLS with a test CA (`endpointCA`).
 */
describe('WAL archiving to an S3 object store (real PostgreSQL, Barman Cloud, versitygw over TLS)', function () {
  this.timeout(600_000);
  /** What before() set up, undone in reverse by after(). */
  const cleanup: (() => Promise<unknown>)[] = [];
  const secrets = { appPassword: 'app-pass-archive', superuserPassword: 'su-pass-archive' };
  let s3: S3Server;
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let pgim: PgimProcess;
  let caFile: string;
  const path = 'archive-test';

  const status = async (): Promise<StatusBody> => (await (await fetch(`${pgim.statusUrl}/pg/status`)).json()) as StatusBody;
  const sql = (text: string): Promise<Record<string, unknown>[]> => query(ports.pgPort, 'postgres', secrets.superuserPassword, text);
  const metric = async (name: string): Promise<number> => {
    const body = await (await fetch(`http://127.0.0.1:${ports.metricsPort}/metrics`)).text();
    const line = body.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return line === undefined ? Number.NaN : Number(line.split(' ').at(-1));
  };
  /** Writes a little and switches to a new segment `count` times; returns the last completed segment's name. */
  const switchSegments = async (count: number): Promise<string> => {
    let last = '';
    for (let i = 0; i < count; i++) {
      await sql('INSERT INTO archived_rows SELECT g FROM generate_series(1, 100) g');
      const rows = await sql('SELECT pg_walfile_name(pg_switch_wal()) AS wal');
      last = typeof rows[0]?.wal === 'string' ? rows[0].wal : '';
    }
    return last;
  };
  const waitArchived = async (walName: string, timeoutMs: number): Promise<void> => {
    await eventually(async () => ((await archivedWalNames(s3, path, 'itest')).includes(walName) ? true : undefined), timeoutMs, `${walName} in the object store`);
  };

  before(async function () {
    requireBackupParts(this);
    s3 = await S3Server.start({ tls: true });
    cleanup.push(() => s3.stop());
    base = await makeTempDir('archive');
    cleanup.push(() => removeTempDir(base));
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    await writeConfigDir(paths.configDir, { enableSuperuserAccess: true, spec: backupSpec(s3, path, { wal: { maxParallel: 4, compression: 'gzip' } }) }, secrets);
    await writeBackupSecret(paths.configDir, s3);
    await handToPostgres(paths.configDir);
    caFile = join(base, 'ca.crt');
    await writeFile(caFile, s3.caPem ?? '');
    pgim = new PgimProcess('run', paths, ports);
    cleanup.push(() => pgim.stop().catch(() => killPostmaster(paths.pgdata)));
    await pgim.waitReady();
    await sql('CREATE TABLE archived_rows (x int)');
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  });

  it('sets archive_mode = on with pgim wal-archive as archive_command (CNPG shape)', async () => {
    const rows = await sql("SELECT current_setting('archive_mode') AS mode, current_setting('archive_command') AS command, current_setting('archive_timeout') AS timeout");
    assert.equal(rows[0]?.mode, 'on');
    assert.match(String(rows[0].command), / wal-archive --runtime-dir \S+ %p$/);
    assert.equal(rows[0].timeout, '5min');
  });

  it('archives every segment (40 under writes, 4 in parallel), and barman-cloud-check-wal-archive agrees', async () => {
    const last = await switchSegments(40);
    // Every segment from the first to the last, without a hole (parallel uploads finish in any order).
    const segments = await eventually(async () => {
      const names = (await archivedWalNames(s3, path, 'itest')).filter((n) => /^[0-9A-F]{24}$/.test(n));
      const numbers = new Set(names.map((n) => parseInt(n.slice(16), 16)));
      for (let n = 1; n <= parseInt(last.slice(16), 16); n++) if (!numbers.has(n)) return undefined;
      return names;
    }, 300_000, `every segment up to ${last} archived`);
    assert.ok(segments.length >= 40, `${segments.length} segments archived`);
    const env = s3.barmanEnv(caFile);
    const common = ['--endpoint-url', s3.endpointURL, '--cloud-provider', 'aws-s3', s3.destination(path), 'itest'];
    // Consistent for this cluster's timeline 1 (nothing from a later timeline)...
    await run('barman-cloud-check-wal-archive', ['--timeline', '2', ...common], { env });
    // ...and not empty: the same check a new cluster makes before its first archive refuses it.
    await assert.rejects(run('barman-cloud-check-wal-archive', common, { env }));
    // Parallel uploads leave no stale spool markers once PostgreSQL has asked for each segment.
    await eventually(async () => ((await readdir(join(paths.runtimeDir, 'wal-archive-spool')).catch(() => [])).length === 0 ? true : undefined), 60_000, 'an empty spool');
    const doc = await status();
    assert.equal(doc.backup?.archiving?.ok, true);
    await eventually(async () => ((await metric('cnpg_pg_stat_archiver_archived_count')) >= 40 ? true : undefined), 120_000, 'cnpg_pg_stat_archiver_archived_count');
  });

  it('keeps WAL in pg_wal while the object store is down for 30 s under pgbench, says so, and catches up by itself', async () => {
    const pgbench = join(process.env.PGIM_PG_BIN ?? '/usr/lib/postgresql/15/bin', 'pgbench');
    const env = { ...process.env, PGPASSWORD: secrets.superuserPassword };
    const target = ['-h', '127.0.0.1', '-p', String(ports.pgPort), '-U', 'postgres', 'app'];
    await run(pgbench, ['-i', '-s', '2', '-q', ...target], { env });
    await s3.pause();
    const failedBefore = await metric('cnpg_pg_stat_archiver_failed_count');
    // 30 s of writes with the store down; the run's own count of acknowledged transactions is checked afterwards.
    const stoppedAt = Date.now();
    const bench = run(pgbench, ['-c', '4', '-T', '30', '-n', ...target], { env });
    await switchSegments(3);
    const doc = await eventually(async () => {
      const d = await status();
      return d.backup?.archiving?.ok === false ? d : undefined;
    }, 60_000, 'the failure in /pg/status');
    assert.match(doc.backup?.archiving?.error ?? '', /barman-cloud-wal-archive/);
    const { stdout } = await bench;
    const acknowledged = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1]);
    assert.ok(acknowledged > 0, 'pgbench committed transactions');
    assert.ok(Date.now() - stoppedAt >= 30_000);
    const ready = (await status()).readyWalFiles ?? 0;
    assert.ok(ready >= 1, `WAL waits in pg_wal (${ready} ready)`);
    // The metrics are collected on a schedule: the growth shows within a collection interval.
    await eventually(async () => ((await metric('cnpg_pg_stat_archiver_failed_count')) > failedBefore ? true : undefined), 120_000, 'cnpg_pg_stat_archiver_failed_count to grow');
    assert.ok(pgim.lines.some((l) => l.includes('WAL archiving is failing')), 'the failure is in the log');
    const history = await sql('SELECT count(*)::int AS n FROM pgbench_history');
    assert.equal(history[0]?.n, acknowledged, 'every acknowledged transaction is there');

    await s3.resume();
    const last = await switchSegments(1);
    await waitArchived(last, 300_000);
    await eventually(async () => ((await status()).readyWalFiles === 0 ? true : undefined), 300_000, 'no segment left to archive');
    await eventually(async () => ((await status()).backup?.archiving?.ok === true ? true : undefined), 60_000, 'archiving reported as working again');
  });

  it('refuses a destination that holds another cluster\'s WAL, and writes nothing into it', async () => {
    const other = await makeTempDir('archive-other');
    const otherPaths = { configDir: join(other, 'config'), pgdata: join(other, 'pgdata'), runtimeDir: join(other, 'runtime') };
    const otherPorts = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    // Same destination and serverName as the running cluster.
    await writeConfigDir(otherPaths.configDir, { enableSuperuserAccess: true, spec: backupSpec(s3, path) }, secrets);
    await writeBackupSecret(otherPaths.configDir, s3);
    await handToPostgres(otherPaths.configDir);
    const before = await archivedWalNames(s3, path, 'itest');
    const second = new PgimProcess('run', otherPaths, otherPorts);
    try {
      await second.waitReady(180_000).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}\n${second.lines.slice(-30).join('\n')}`);
      });
      await query(otherPorts.pgPort, 'postgres', secrets.superuserPassword, 'CREATE TABLE t (x int)');
      await query(otherPorts.pgPort, 'postgres', secrets.superuserPassword, 'SELECT pg_switch_wal()');
      const doc = await eventually(async () => {
        const d = (await (await fetch(`${second.statusUrl}/pg/status`)).json()) as StatusBody;
        return d.backup?.archiving?.ok === false ? d : undefined;
      }, 120_000, 'the refusal in /pg/status');
      assert.match(doc.backup?.archiving?.error ?? '', /is not empty: it holds another cluster's WAL/);
      assert.ok(second.lines.some((l) => l.includes("another cluster's WAL")), 'the refusal is in the log');
      // The first cluster archives nothing new meanwhile (no switch), so any change would be the second's.
      assert.deepEqual(await archivedWalNames(s3, path, 'itest'), before);
      assert.ok((((await (await fetch(`${second.statusUrl}/pg/status`)).json()) as StatusBody).readyWalFiles ?? 0) >= 1);
    } finally {
      await second.stop().catch(() => killPostmaster(otherPaths.pgdata));
      await removeTempDir(other);
    }
  });

  it('keeps the S3 credentials out of every output (argv of archive_command, log, /pg/status)', async () => {
    const doc = JSON.stringify(await status());
    const settings = await readFile(join(paths.runtimeDir, 'wal-archive', 'settings.json'), 'utf8');
    assert.ok(settings.includes(s3.secretKey), 'the settings file holds the secret (0600)');
    for (const [what, text] of [['log', pgim.output], ['/pg/status', doc], ['archive_command', JSON.stringify(await sql("SELECT current_setting('archive_command')"))]] as const) {
      assert.ok(!text.includes(s3.secretKey), `${what} does not contain the secret key`);
      assert.ok(!text.includes(s3.accessKey), `${what} does not contain the access key`);
    }
  });
});
