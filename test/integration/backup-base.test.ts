import { strict as assert } from 'node:assert';
import { execFile, spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { clusterManifest, writeConfigDir } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { killPostmaster, pgimEntry, PgimProcess, query, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';
import { asPostgres, restoreNewestWithBarman } from '../../test-kit/barman-restore.js';
import { archivedWalNames, backupSpec, requireBackupParts, S3Server, writeBackupSecret } from '../../test-kit/s3.js';

const run = promisify(execFile);
interface BackupReply {
  data?: { phase: string; backupId?: string; beginWal?: string; endWal?: string; beginLSN?: string; endLSN?: string; startedAt?: string; stoppedAt?: string; error?: string };
}

interface StatusBody {
  backup?: { configured: boolean; lastSuccessfulBackup?: string; firstRecoverabilityPoint?: string; backups?: number; lastBackup?: { backupName: string; phase: string } };
}

/**
 * Base backups in files mode (`pgim backup`), restored with Barman Cloud's own tools and plain pg_ctl; a backup taken
 * with plain barman-cloud-backup seen by pgim; the retention policy.
 */
describe('base backups to an S3 object store (real PostgreSQL, Barman Cloud, versitygw)', function () {
  this.timeout(900_000);
  /** What before() set up, undone in reverse by after(). */
  const cleanup: (() => Promise<unknown>)[] = [];
  const secrets = { appPassword: 'app-pass-base', superuserPassword: 'su-pass-base' };
  const path = 'base-test';
  let s3: S3Server;
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let pgim: PgimProcess;

  const sql = (text: string): Promise<Record<string, unknown>[]> => query(ports.pgPort, 'postgres', secrets.superuserPassword, text);
  const status = async (): Promise<StatusBody> => (await (await fetch(`${pgim.statusUrl}/pg/status`)).json()) as StatusBody;
  const metric = async (name: string): Promise<number> => {
    const body = await (await fetch(`http://127.0.0.1:${ports.metricsPort}/metrics`)).text();
    const line = body.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? Number.NaN : Number(line.split(' ').at(-1));
  };
  const pgimBackup = async (name: string): Promise<{ code: number; reply: BackupReply; raw: string }> => {
    const child = spawn(process.execPath, [pgimEntry, 'backup', '--name', name, '--url', pgim.statusUrl], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise<number>((resolve) => child.on('exit', (c) => {
      resolve(c ?? 1);
    }));
    let reply: BackupReply = {};
    try {
      reply = JSON.parse(out) as BackupReply;
    } catch {
      // not JSON: the assertion shows `raw`
    }
    return { code, reply, raw: out };
  };
  const barman = (tool: string, args: string[]): Promise<{ stdout: string }> =>
    run(tool, ['--endpoint-url', s3.endpointURL, '--cloud-provider', 'aws-s3', ...args], { env: s3.barmanEnv() });
  const catalog = async (): Promise<{ backup_id: string; backup_name?: string; end_time?: string }[]> =>
    (JSON.parse((await barman('barman-cloud-backup-list', ['--format', 'json', s3.destination(path), 'itest'])).stdout) as { backups_list: { backup_id: string; backup_name?: string }[] }).backups_list;

  before(async function () {
    requireBackupParts(this);
    s3 = await S3Server.start();
    cleanup.push(() => s3.stop());
    base = await makeTempDir('base');
    cleanup.push(() => removeTempDir(base));
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    await writeConfigDir(paths.configDir, { enableSuperuserAccess: true, spec: backupSpec(s3, path, { data: { compression: 'gzip', immediateCheckpoint: true } }) }, secrets);
    await writeBackupSecret(paths.configDir, s3);
    await handToPostgres(paths.configDir);
    pgim = new PgimProcess('run', paths, ports);
    cleanup.push(() => pgim.stop().catch(() => killPostmaster(paths.pgdata)));
    await pgim.waitReady();
    await sql('CREATE TABLE kept (x int)');
    await sql('INSERT INTO kept SELECT g FROM generate_series(1, 1000) g');
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  });

  it('takes an online base backup with `pgim backup --name` and reports it (status, metrics, pgim status)', async () => {
    assert.equal(await metric('cnpg_collector_last_available_backup_timestamp'), 0);
    const reserved = await pgimBackup('latest');
    assert.equal(reserved.code, 1);
    assert.match(reserved.raw, /reserved by Barman/);
    const { code, reply, raw } = await pgimBackup('nightly-1');
    assert.equal(code, 0, raw);
    assert.equal(reply.data?.phase, 'completed');
    assert.match(reply.data.backupId ?? '', /^\d{8}T\d{6}$/);
    assert.match(reply.data.beginWal ?? '', /^[0-9A-F]{24}$/);
    assert.match(reply.data.endLSN ?? '', /^[0-9A-F]+\/[0-9A-F]+$/);
    const doc = await status();
    assert.equal(doc.backup?.lastBackup?.backupName, 'nightly-1');
    assert.ok(doc.backup.lastSuccessfulBackup !== undefined);
    assert.equal(doc.backup.backups, 1);
    assert.ok((await metric('cnpg_collector_last_available_backup_timestamp')) > 1e9);
    assert.ok((await metric('cnpg_collector_first_recoverability_point')) > 1e9);
    assert.equal(await metric('cnpg_collector_last_failed_backup_timestamp'), 0);
    const { stdout } = await run(process.execPath, [pgimEntry, 'status', '--url', `${pgim.statusUrl}/pg/status`]);
    assert.match(stdout, /Last backup\s+nightly-1 completed \(id \d{8}T\d{6}\)/);
    assert.match(stdout, /Archiving\s+ok/);
    // A second request while one runs is refused, not queued.
    const [a, b] = await Promise.all([pgimBackup('second'), pgimBackup('concurrent')]);
    assert.deepEqual([a.code, b.code].sort(), [0, 1]);
    assert.match(a.code === 1 ? a.raw : b.raw, /ANOTHER_BACKUP_IN_PROGRESS/);
  });

  it('is restored by barman-cloud-restore and barman-cloud-wal-restore alone, started with plain pg_ctl', async () => {
    // Rows after the backup reach the restore only through the archived WAL.
    await sql('INSERT INTO kept SELECT g FROM generate_series(1001, 1500) g');
    const wal = String((await sql('SELECT pg_walfile_name(pg_switch_wal()) AS w'))[0]?.w);
    await eventually(async () => ((await archivedWalNames(s3, path, 'itest')).includes(wal) ? true : undefined), 120_000, `${wal} archived`);
    const restored = await restoreNewestWithBarman(s3, path, 'itest', join(base, 'restored'));
    try {
      const rows = await eventually(async () => {
        const r = await query(restored.port, 'postgres', secrets.superuserPassword, 'SELECT pg_is_in_recovery() AS rec, (SELECT count(*)::int FROM kept) AS n').catch(() => undefined);
        return r?.[0]?.rec === false ? r : undefined;
      }, 300_000, 'the restored instance promoted').catch(async (err: unknown) => {
        throw new Error(`${(err as Error).message}\n${(await restored.log().catch(() => '')).slice(-3000)}`);
      });
      assert.equal(rows[0]?.n, 1500);
    } finally {
      await restored.stop();
    }
    const log = await restored.log();
    assert.match(log, /restored log file "[0-9A-F]{24}" from archive/);
  });

  it('lists a backup taken with plain barman-cloud-backup', async () => {
    const [cmd, args] = asPostgres('barman-cloud-backup', [
      '--endpoint-url', s3.endpointURL, '--cloud-provider', 'aws-s3', '--host', join(paths.runtimeDir, 'run'), '--port', String(ports.pgPort),
      '--user', 'postgres', '--name', 'plain', s3.destination(path), 'itest',
    ]);
    await run(cmd, args, { env: { ...s3.barmanEnv(), TMPDIR: base } });
    const { code, raw } = await pgimBackup('after-plain');
    assert.equal(code, 0, raw);
    const names = (await catalog()).map((b) => b.backup_name);
    assert.ok(names.includes('plain'));
    assert.equal((await status()).backup?.backups, names.length, 'pgim counts the plain backup too');
  });

  it('applies retentionPolicy with barman-cloud-backup-delete', async () => {
    // Make every backup so far look 10 days old (their backup.info in the store), then ask for a 1-day window.
    const root = join(s3.bucketDir, path, 'itest', 'base');
    const ids = await readdir(root);
    const old = new Date(Date.now() - 10 * 86_400_000);
    const stamp = (d: Date): string => d.toISOString().replace('T', ' ').replace('Z', '+00:00');
    for (const id of ids) {
      const file = join(root, id, 'backup.info');
      const text = await readFile(file, 'utf8');
      await writeFile(file, text.replace(/^begin_time=.*$/m, `begin_time=${stamp(old)}`).replace(/^end_time=.*$/m, `end_time=${stamp(old)}`));
    }
    // `data.jobs` 1 marks the new spec in the archiver's settings file (the retention policy is not in it).
    const manifest = clusterManifest({ enableSuperuserAccess: true, spec: backupSpec(s3, path, { retentionPolicy: '1d', data: { compression: 'gzip', immediateCheckpoint: true, jobs: 1 } }) });
    await writeFile(join(paths.configDir, 'cluster.yaml.tmp'), stringify(manifest));
    await run('mv', [join(paths.configDir, 'cluster.yaml.tmp'), join(paths.configDir, 'cluster.yaml')]);
    // The new spec changes no PostgreSQL setting (no reload to wait for); the pass that takes it rewrites the
    // archiver's settings, and the daemon's backup service reads the policy from that same pass's state.
    const applied = async (): Promise<true | undefined> => {
      const settings = JSON.parse(await readFile(join(paths.runtimeDir, 'wal-archive', 'settings.json'), 'utf8')) as { store?: { data?: { jobs?: number } } };
      return settings.store?.data?.jobs === 1 ? true : undefined;
    };
    await eventually(applied, 60_000, 'the new backup section applied');
    const before = ids.length;
    const { code, raw } = await pgimBackup('fresh');
    assert.equal(code, 0, raw);
    const after = await catalog();
    // The fresh one, plus the newest old one (needed to recover to the start of the window); the rest is gone.
    assert.equal(after.length, 2, `${before} old backups, then ${JSON.stringify(after.map((b) => b.backup_name))}`);
    assert.ok(after.some((b) => b.backup_name === 'fresh'));
    assert.ok(pgim.lines.some((l) => l.includes('retention policy applied')));
    assert.equal((await status()).backup?.backups, 2);
  });
});
