import { appendFile, copyFile, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { handFileToServiceUser, freePort, pgBinDir, serviceDirectory, sleep } from '../env.js';
import { queryOnce, type Login } from '../pg.js';
import { FloorSystem } from '../systems/floor.js';
import { S3Server } from '../../test-kit/s3.js';
import { pgimEntry } from '../../test-kit/pgim.js';
import { interleave, since } from './common.js';
import type { Benchmark, BenchContext } from './types.js';

/**
 * B19: one PostgreSQL (pg_ctl) archives every segment to the same local S3 server (versitygw over TLS) twice, with
 * barman-cloud-wal-archive and with pgBackRest archive-push, after a base backup of each kind. Then, at several WAL
 * volumes, three restores to the latest point each start from an empty folder, interleaved: pgim (`pgim restore`:
 * the base backup listed and streamed into tar by pgim itself, then restore_command with wal.maxParallel 8: the
 * restoring pgim reads 7 segments ahead into its spool and the command's shell moves each one into place, `pgim
 * wal-restore` starting only for what is not there), plain Barman Cloud (barman-cloud-restore,
 * PostgreSQL with restore_command = barman-cloud-wal-restore, one segment per call), pgBackRest 2.45 (restore, then
 * archive-get with archive-async and process-max 4).
 */

const segmentBytes = 16 * 1024 * 1024;

interface Restorer {
  readonly label: string;
  /** Restores into `dir` (empty) and returns once the restored instance is read-write (or, for pgim, promoted and stopped). */
  restore(dir: string): Promise<void>;
}

async function readyCount(pgdata: string): Promise<number> {
  return (await readdir(join(pgdata, 'pg_wal', 'archive_status')).catch(() => [] as string[])).filter((n) => n.endsWith('.ready')).length;
}

async function waitArchived(pgdata: string): Promise<void> {
  const t0 = performance.now();
  while ((await readyCount(pgdata)) > 0) {
    if (since(t0) > 1_800_000) throw new Error('archiving did not catch up in 30 min');
    await sleep(200);
  }
}

/** Writes about `bytes` of WAL (rows of 200 bytes), then switches to a new segment. */
async function writeWal(login: Login, bytes: number): Promise<void> {
  const start = BigInt(String((await queryOnce<{ l: string }>(login, "SELECT (pg_current_wal_lsn() - '0/0')::bigint::text AS l"))[0]?.l));
  for (;;) {
    await queryOnce(login, "INSERT INTO b19_wal SELECT g, repeat('w', 200) FROM generate_series(1, 20000) g", 120_000);
    const now = BigInt(String((await queryOnce<{ l: string }>(login, "SELECT (pg_current_wal_lsn() - '0/0')::bigint::text AS l"))[0]?.l));
    if (now - start >= BigInt(bytes)) break;
  }
  await queryOnce(login, 'SELECT pg_switch_wal()');
}

export const restoreBenchmark: Benchmark = {
  id: 'B19',
  title: 'Restore of a base backup plus WAL to the latest point: pgim vs Barman Cloud vs pgBackRest',
  measures:
    'A base backup (64 MiB of table data; 16 with --quick) plus 1, 3 and 6 × 64 MiB of WAL (1, 2 and 4 × 32 MiB with --quick) ' +
    'archived to a local S3 server over TLS, restored to the latest point from an empty folder: time until the ' +
    'restored PostgreSQL is promoted. pgim: `pgim restore` (the base backup listed and streamed into tar by pgim, then ' +
    'restore_command with wal.maxParallel 8: 7 segments read ahead by the restoring pgim, moved into place by the command\'s shell; promotion, roles and passwords, stop). Barman Cloud: barman-cloud-restore then PostgreSQL with ' +
    'restore_command = barman-cloud-wal-restore (one process per segment, CNPG\'s path with maxParallel 1). ' +
    'pgBackRest 2.45: restore then archive-get (archive-async, process-max 4). Every restored table is counted.',
  async run(context: BenchContext, recorder) {
    const s3 = await S3Server.start({ tls: true });
    const floor = await FloorSystem.create(context.systems, { archive_mode: 'on', archive_command: '/bin/false', archive_timeout: '0', max_wal_size: '4GB' });
    const dir = join(context.systems.workDir, 'b19');
    try {
      await floor.initialise();
      await (await floor.start()).commandDone;
      await serviceDirectory(dir, 0o755);
      const caFile = join(dir, 'ca.crt');
      await writeFile(caFile, s3.caPem ?? '');
      await handFileToServiceUser(caFile);
      const env = { AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_CA_BUNDLE: caFile };
      const envFile = join(dir, 's3.env');
      await writeFile(envFile, `export AWS_ACCESS_KEY_ID='${s3.accessKey}' AWS_SECRET_ACCESS_KEY='${s3.secretKey}' AWS_CA_BUNDLE='${caFile}'\n`, { mode: 0o600 });
      await handFileToServiceUser(envFile);
      const barmanCommon = ['--endpoint-url', s3.endpointURL, '--cloud-provider', 'aws-s3'];
      const barmanDest = s3.destination('barman');
      const pgbackrestConf = join(dir, 'pgbackrest.conf');
      const url = new URL(s3.endpointURL);
      const pgbackrestGlobal = [
        '[global]', 'repo1-type=s3', `repo1-s3-bucket=${s3.bucket}`, 'repo1-s3-endpoint=localhost', `repo1-storage-port=${url.port}`,
        `repo1-s3-key=${s3.accessKey}`, `repo1-s3-key-secret=${s3.secretKey}`, 'repo1-s3-region=us-east-1', 'repo1-s3-uri-style=path',
        `repo1-storage-ca-file=${caFile}`, 'repo1-path=/pgbackrest', 'archive-async=y', `spool-path=${join(dir, 'pgbackrest-spool')}`,
        'process-max=4', `lock-path=${join(dir, 'pgbackrest-lock')}`, `log-path=${join(dir, 'pgbackrest-log')}`, 'log-level-console=warn',
        'compress-type=gz', 'compress-level=6', '',
      ];
      await writeFile(pgbackrestConf, [...pgbackrestGlobal, '[b19]', `pg1-path=${floor.pgdata}`, `pg1-port=${floor.login.port}`, `pg1-socket-path=${join(floor.pgdata, '..', 'run')}`, ''].join('\n'), { mode: 0o600 });
      await handFileToServiceUser(pgbackrestConf);
      for (const sub of ['pgbackrest-spool', 'pgbackrest-lock', 'pgbackrest-log']) await serviceDirectory(join(dir, sub), 0o700);
      const toolLog = join(dir, 'tools.log');
      await context.systems.processes.mustRun('pgbackrest stanza-create', 'pgbackrest', [`--config=${pgbackrestConf}`, '--stanza=b19', 'stanza-create'], { asServiceUser: true, logFile: toolLog });
      const archiveCommand = `. ${envFile} && barman-cloud-wal-archive ${barmanCommon.join(' ')} ${barmanDest} b19 %p && pgbackrest --config=${pgbackrestConf} --stanza=b19 archive-push %p`;
      await queryOnce(floor.login, `ALTER SYSTEM SET archive_command = '${archiveCommand.replace(/'/g, "''")}'`);
      await queryOnce(floor.login, 'SELECT pg_reload_conf()');

      // B19_SIZES_MIB=<base>:<wal>,<wal>,...: other sizes (e.g. 1024:1024, the 1 GB + 1 GB point).
      const sizeWords = (process.env.B19_SIZES_MIB ?? '').split(/[:,]/);
      const sizes = sizeWords.length >= 2 && sizeWords.every((w) => /^\d+$/.test(w)) ? sizeWords.map(Number) : undefined;
      const baseBytes = (sizes?.[0] ?? (context.quick ? 16 : 64)) * 1024 * 1024;
      await queryOnce(floor.login, 'CREATE TABLE b19_base (x int, pad text)');
      await queryOnce(floor.login, 'CREATE TABLE b19_wal (x int, pad text)');
      await queryOnce(floor.login, `INSERT INTO b19_base SELECT g, repeat('b', 200) FROM generate_series(1, ${Math.round(baseBytes / 240)}) g`, 600_000);
      await queryOnce(floor.login, 'SELECT pg_switch_wal()');
      await waitArchived(floor.pgdata);
      context.log('  base backups (barman-cloud-backup, pgbackrest backup --type=full)');
      await context.systems.processes.mustRun('barman-cloud-backup', 'sh', ['-c', `. ${envFile} && exec barman-cloud-backup ${barmanCommon.join(' ')} --immediate-checkpoint --host ${join(floor.pgdata, '..', 'run')} --port ${floor.login.port} --user postgres ${barmanDest} b19`], { asServiceUser: true, logFile: toolLog, cwd: dir }, 1_800_000);
      await context.systems.processes.mustRun('pgbackrest backup', 'pgbackrest', [`--config=${pgbackrestConf}`, '--stanza=b19', '--type=full', '--start-fast', 'backup'], { asServiceUser: true, logFile: toolLog }, 1_800_000);

      // The restored instances' own port, sockets and no archiving.
      const startRestored = async (pgdata: string, restoreCommand: string | undefined, extraEnv: Record<string, string>): Promise<void> => {
        const port = await freePort();
        const run = join(pgdata, '..', 'run');
        await serviceDirectory(run);
        await appendFile(join(pgdata, 'postgresql.auto.conf'), [
          `port = ${port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${run}'`, "archive_mode = 'off'",
          "recovery_target_timeline = 'latest'", "recovery_target_action = 'promote'",
          ...(restoreCommand === undefined ? [] : [`restore_command = '${restoreCommand}'`]),
        ].join('\n').concat('\n'));
        await writeFile(join(pgdata, 'recovery.signal'), '');
        await context.systems.processes.run('chown', 'chown', ['-R', `${process.env.PGIM_TEST_USER ?? 'postgres'}:`, join(pgdata, '..')]);
        context.systems.processes.trackDataDirectory(pgdata);
        const logFile = join(pgdata, '..', 'postgres.log');
        await context.systems.processes.mustRun('pg_ctl start (restored)', join(pgBinDir, 'pg_ctl'), ['start', '-w', '-t', '3600', '-D', pgdata, '-l', logFile], { asServiceUser: true, logFile: toolLog, env: extraEnv }, 3_700_000);
        const login: Login = { ...floor.login, port };
        for (;;) {
          const rows = await queryOnce<{ r: boolean }>(login, 'SELECT pg_is_in_recovery() AS r').catch(() => []);
          if (rows[0]?.r === false) break;
          await sleep(50);
        }
        const counted = await queryOnce<{ n: string }>(login, 'SELECT count(*)::text AS n FROM b19_wal');
        restoredRows = Number(counted[0]?.n);
        await context.systems.processes.run('pg_ctl stop (restored)', join(pgBinDir, 'pg_ctl'), ['stop', '-m', 'immediate', '-w', '-D', pgdata], { asServiceUser: true, logFile: toolLog });
      };
      let restoredRows = 0;

      const pgimConfig = join(dir, 'pgim-config');
      await mkdir(join(pgimConfig, 'secrets', 'creds'), { recursive: true });
      for (const [name, files] of Object.entries({
        'b19r-app': { username: 'app', password: 'b19-app-pw' },
        'b19r-superuser': { username: 'postgres', password: floor.login.password },
        creds: { ACCESS_KEY_ID: s3.accessKey, ACCESS_SECRET_KEY: s3.secretKey, 'ca.crt': s3.caPem ?? '' },
      })) {
        await mkdir(join(pgimConfig, 'secrets', name), { recursive: true });
        for (const [key, value] of Object.entries(files)) await writeFile(join(pgimConfig, 'secrets', name, key), value);
      }
      await writeFile(join(pgimConfig, 'cluster.yaml'), stringify({
        apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name: 'b19r' },
        spec: {
          instances: 1, enableSuperuserAccess: true,
          bootstrap: { recovery: { source: 'b19' } },
          externalClusters: [{ name: 'b19', barmanObjectStore: {
            destinationPath: barmanDest, endpointURL: s3.endpointURL, endpointCA: { name: 'creds', key: 'ca.crt' },
            s3Credentials: { accessKeyId: { name: 'creds', key: 'ACCESS_KEY_ID' }, secretAccessKey: { name: 'creds', key: 'ACCESS_SECRET_KEY' } },
            wal: { maxParallel: 8 },
          } }],
        },
      }));
      await context.systems.processes.run('chown', 'chown', ['-R', `${process.env.PGIM_TEST_USER ?? 'postgres'}:`, pgimConfig]);

      const pgimRestorer = (label: string, entry: string): Restorer => ({
        label,
        restore: async (target) => {
          const pgdata = join(target, 'pgdata');
          context.systems.processes.trackDataDirectory(pgdata);
          const exit = await context.systems.processes.run('pgim restore', process.execPath, [
            entry, 'restore', '--config-dir', pgimConfig, '--pgdata', pgdata, '--runtime-dir', join(target, 'runtime'), '--pg-port', String(await freePort()),
          ], { logFile: join(target, 'pgim.log') }, 3_700_000);
          if (exit.code !== 0) {
            const kept = join(context.systems.workDir, '..', `b19-pgim-restore-${Date.now()}.log`);
            await copyFile(join(target, 'pgim.log'), kept).catch(() => undefined);
            throw new Error(`pgim restore failed (exit ${String(exit.code)}); its log: ${kept}`);
          }
          restoredRows = -1;
        },
      });
      // B19_BASELINE_PGIM=<another build's dist/cmd/pgim.js>: that pgim restores too, interleaved with this one
      // (before/after figures from one run, on the same backups and WAL).
      const baseline = process.env.B19_BASELINE_PGIM;
      const restorers: Restorer[] = [
        pgimRestorer('pgim restore (wal.maxParallel 8)', pgimEntry),
        ...(baseline === undefined || baseline === '' ? [] : [pgimRestorer('pgim restore, baseline build (wal.maxParallel 8)', baseline)]),
        {
          label: 'barman-cloud-restore + barman-cloud-wal-restore',
          restore: async (target) => {
            const pgdata = join(target, 'pgdata');
            const list = await context.systems.processes.output('barman-cloud-backup-list', 'barman-cloud-backup-list', [...barmanCommon, '--format', 'json', barmanDest, 'b19'], { env }, 120_000);
            const id = (JSON.parse(list) as { backups_list: { backup_id: string }[] }).backups_list.at(-1)?.backup_id ?? '';
            await context.systems.processes.mustRun('barman-cloud-restore', 'barman-cloud-restore', [...barmanCommon, barmanDest, 'b19', id, pgdata], { env, logFile: toolLog }, 3_600_000);
            await startRestored(pgdata, `barman-cloud-wal-restore ${barmanCommon.join(' ')} ${barmanDest} b19 %f %p`, env);
          },
        },
        {
          label: 'pgBackRest 2.45 restore + archive-get (async)',
          restore: async (target) => {
            const pgdata = join(target, 'pgdata');
            await serviceDirectory(pgdata);
            await context.systems.processes.mustRun('pgbackrest restore', 'pgbackrest', [`--config=${pgbackrestConf}`, '--stanza=b19', `--pg1-path=${pgdata}`, 'restore'], { asServiceUser: true, logFile: toolLog }, 3_600_000);
            await startRestored(pgdata, undefined, {});
          },
        },
      ];

      const points = sizes !== undefined ? sizes.slice(1).map((n) => n * 1024 * 1024) : context.quick ? [1, 2, 4].map((n) => n * 32 * 1024 * 1024) : [1, 3, 6].map((n) => n * 64 * 1024 * 1024);
      let written = 0;
      for (const total of points) {
        await writeWal(floor.login, total - written);
        written = total;
        await waitArchived(floor.pgdata);
        const expected = Number((await queryOnce<{ n: string }>(floor.login, 'SELECT count(*)::text AS n FROM b19_wal'))[0]?.n);
        const mib = Math.round(total / 1048576);
        context.log(`  ${mib} MiB of WAL after the backup (${Math.ceil(total / segmentBytes)} segments), ${expected} rows`);
        let attempt = 0;
        await interleave(context, restorers, async (restorer, run) => {
          const target = join(dir, `restore-${++attempt}`);
          await serviceDirectory(target, 0o755);
          const t0 = performance.now();
          await restorer.restore(target);
          const elapsed = since(t0);
          if (restoredRows >= 0 && restoredRows !== expected) throw new Error(`${restorer.label}: restored ${restoredRows} rows, expected ${expected}`);
          recorder.add(restorer.label, `restore to latest, backup + ${mib} MiB WAL (ms)`, run, elapsed, 'ms');
          context.log(`    ${restorer.label}: ${(elapsed / 1000).toFixed(1)} s`);
          await rm(target, { recursive: true, force: true });
        });
      }
    } finally {
      await floor.destroy();
      await s3.stop();
    }
  },
};
