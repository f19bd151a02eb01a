import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { handFileToServiceUser, serviceDirectory, sleep } from '../env.js';
import { queryOnce } from '../pg.js';
import { pgbenchInit } from '../pgbench.js';
import { PgimSystem } from '../systems/pgim.js';
import { handToPostgres } from '../../test-kit/env.js';
import { backupSpec, S3Server, writeBackupSecret } from '../../test-kit/s3.js';
import { pgbackrestS3Global } from './b17-archive.js';
import { interleave, since } from './common.js';
import type { Benchmark, BenchContext } from './types.js';

/** One way of taking a base backup of the same running PostgreSQL. */
interface BaseBackupTool {
  readonly label: string;
  take(run: number): Promise<void>;
}

export const baseBackupBenchmark: Benchmark = {
  id: 'B18',
  title: 'Base backup of a 1 GB database to S3',
  measures:
    'One pgim-run PostgreSQL 15 with a pgbench database of scale 67 (about 1 GB; scale 7 with --quick), archiving ' +
    'its WAL to a local S3 server (versitygw over TLS). Each tool takes a full, uncompressed base backup with an ' +
    'immediate checkpoint into its own path, interleaved: `pgim backup` (POST /pg/backup: checks archiving, runs ' +
    "barman-cloud-backup with CNPG's arguments, lists the catalog), plain `barman-cloud-backup` (2 upload jobs, " +
    'its default) and pgBackRest 2.45 `backup --type=full` (process-max 2, no compression, archive-check off since ' +
    'the WAL goes to the Barman layout). Wall time from the request to the tool\'s exit.',
  async run(context: BenchContext, recorder) {
    const s3 = await S3Server.start({ tls: true });
    const pgim = await PgimSystem.create(context.systems, { smartShutdownTimeout: 5, label: 'pgim' });
    try {
      const spec = backupSpec(s3, 'pgim', { data: { immediateCheckpoint: true }, wal: { maxParallel: 4 } });
      await pgim.changeSpec(spec);
      await writeBackupSecret(pgim.paths.configDir, s3);
      await handToPostgres(pgim.paths.configDir);
      await pgim.initialise();
      await pgim.start();
      for (let i = 0; i < 1200; i++) {
        const ready = await fetch(pgim.endpoints.readiness).then((r) => r.ok, () => false);
        if (ready) break;
        await sleep(100);
      }
      const dir = join(context.systems.workDir, 'b18');
      await serviceDirectory(dir, 0o700);
      const scale = context.quick ? 7 : 67;
      context.log(`    creating the pgbench database (scale ${scale})`);
      await pgbenchInit(context.systems.processes, pgim.login, scale, join(dir, 'pgbench-init.log'));
      const size = await queryOnce<{ bytes: string }>(pgim.login, 'SELECT pg_database_size(current_database())::text AS bytes');
      context.note(`B18: the app database holds ${(Number(size[0]?.bytes ?? 0) / 1e9).toFixed(2)} GB (pg_database_size).`);
      const caFile = join(dir, 'ca.crt');
      await writeFile(caFile, s3.caPem ?? '');
      await handFileToServiceUser(caFile);
      const socketDir = join(pgim.paths.runtimeDir, 'run');
      const port = String(pgim.login.port);
      const s3env = { AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_CA_BUNDLE: caFile };

      const pgbackrestConf = join(dir, 'pgbackrest.conf');
      await writeFile(
        pgbackrestConf,
        [
          ...pgbackrestS3Global(s3, caFile, '/pgbackrest-b18', dir), 'process-max=2', 'compress-type=none', 'start-fast=y', 'archive-check=n',
          'repo1-retention-full=1', '', '[b18]', `pg1-path=${pgim.pgdata}`, `pg1-port=${port}`, `pg1-socket-path=${socketDir}`, 'pg1-user=postgres', '',
        ].join('\n'),
        { mode: 0o600 },
      );
      await handFileToServiceUser(pgbackrestConf);
      for (const sub of ['pgbackrest-lock', 'pgbackrest-log']) await serviceDirectory(join(dir, sub), 0o700);
      const pgbackrest = (args: string[], log: string): Promise<void> =>
        context.systems.processes.mustRun('pgbackrest', 'pgbackrest', [`--config=${pgbackrestConf}`, '--stanza=b18', ...args], { asServiceUser: true, logFile: join(dir, log) }, 1_800_000);
      await pgbackrest(['stanza-create'], 'pgbackrest-tool.log');

      const tools: BaseBackupTool[] = [
        {
          label: 'pgim backup',
          take: async (run) => {
            const response = await fetch(`${pgim.endpoints.readiness.replace(/\/readyz$/, '')}/pg/backup?name=b18-pgim-${run}`, { method: 'POST', signal: AbortSignal.timeout(1_800_000) });
            const body = await response.text();
            if (!response.ok) throw new Error(`pgim backup failed: ${body}`);
          },
        },
        {
          label: 'barman-cloud-backup',
          take: (run) =>
            context.systems.processes.mustRun(
              'barman-cloud-backup',
              'barman-cloud-backup',
              ['--user', 'postgres', '--host', socketDir, '--port', port, '--name', `b18-barman-${run}`, '--immediate-checkpoint', '--endpoint-url', s3.endpointURL, '--cloud-provider', 'aws-s3', s3.destination('barman'), 'b18'],
              { asServiceUser: true, logFile: join(dir, 'barman.log'), env: { ...s3env, TMPDIR: dir } },
              1_800_000,
            ),
        },
        { label: 'pgBackRest backup (full)', take: () => pgbackrest(['backup', '--type=full'], 'pgbackrest-backup.log') },
      ];
      await interleave(context, tools, async (tool, run) => {
        const t0 = performance.now();
        await tool.take(run.index);
        const elapsed = since(t0);
        recorder.add(tool.label, 'base backup time (ms)', run, elapsed, 'ms');
        recorder.add(tool.label, 'base backup rate (MB/s)', run, Number(size[0]?.bytes ?? 0) / 1e6 / (elapsed / 1000), 'MB', { detail: true });
        context.log(`    ${tool.label}: ${(elapsed / 1000).toFixed(1)} s`);
      });
    } finally {
      await pgim.destroy();
      await s3.stop();
    }
  },
};
