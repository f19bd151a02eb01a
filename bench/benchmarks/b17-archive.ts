import { readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { handFileToServiceUser, serviceDirectory, sleep } from '../env.js';
import { queryOnce } from '../pg.js';
import { pgbenchRun } from '../pgbench.js';
import { percentile } from '../stats.js';
import { FloorSystem } from '../systems/floor.js';
import { S3Server } from '../../test-kit/s3.js';
import { pgimEntry } from '../../test-kit/pgim.js';
import { parseClusterManifest } from '../../src/cluster/parse.js';
import { archiveCommand } from '../../src/backup/runtime.js';
import { archivePaths, type ArchiveSettings } from '../../src/backup/settings.js';
import type { SystemContext } from '../systems/context.js';
import { interleave, since } from './common.js';
import type { Benchmark, BenchContext } from './types.js';

/** pgBackRest's `[global]` lines for the benchmarks' S3 server (TLS, path style), its repo under `repoPath`. */
export function pgbackrestS3Global(s3: S3Server, caFile: string, repoPath: string, dir: string): string[] {
  return [
    '[global]', 'repo1-type=s3', `repo1-s3-bucket=${s3.bucket}`, 'repo1-s3-endpoint=localhost', `repo1-storage-port=${new URL(s3.endpointURL).port}`,
    `repo1-s3-key=${s3.accessKey}`, `repo1-s3-key-secret=${s3.secretKey}`, 'repo1-s3-region=us-east-1', 'repo1-s3-uri-style=path',
    `repo1-storage-ca-file=${caFile}`, `repo1-path=${repoPath}`, `lock-path=${join(dir, 'pgbackrest-lock')}`, `log-path=${join(dir, 'pgbackrest-log')}`,
    'log-level-console=warn',
  ];
}

/** The daemon's archiver alone (bench/wal-archiver-host.ts), as the service user: what `pgim run` serves. */
export async function startArchiverHost(
  systems: SystemContext,
  runtimeDir: string,
  pgdata: string,
  logFile: string,
  readyWatch = true,
  traceFile?: string,
): Promise<{ stop: () => Promise<void> }> {
  const host = join(dirname(fileURLToPath(import.meta.url)), '..', 'wal-archiver-host.js');
  const args = [host, runtimeDir, pgdata, ...(readyWatch ? [] : ['--no-ready-watch']), ...(traceFile === undefined ? [] : ['--trace', traceFile])];
  const child = systems.processes.spawn('pgim wal archiver', process.execPath, args, { asServiceUser: true, logFile, captureStdout: true });
  for (let i = 0; i < 600 && !child.stdout.includes('ready'); i++) {
    if (!child.running) throw new Error(`the WAL archiver host exited; see ${logFile}`);
    await sleep(50);
  }
  if (!child.stdout.includes('ready')) throw new Error(`the WAL archiver host did not start; see ${logFile}`);
  return { stop: () => child.terminate(5_000).then(() => undefined) };
}

/** One way of archiving, as an archive_command on the same PostgreSQL. */
interface Archiver {
  readonly label: string;
  readonly command: string;
  /** pgim's: its settings file and contents (only the archiver whose turn it is says `archiver: true`). */
  readonly settings?: { path: string; value: ArchiveSettings };
  /** pgim's daemon: its per-segment steps (bench/wal-archiver-host.ts --trace). */
  readonly traceFile?: string;
}

const segmentBytes = 16 * 1024 * 1024;

/** Sets archive_command (a reload-level setting) and waits until PostgreSQL uses it. */
async function useArchiveCommand(floor: FloorSystem, command: string): Promise<void> {
  await queryOnce(floor.login, `ALTER SYSTEM SET archive_command = '${command.replace(/'/g, "''")}'`);
  await queryOnce(floor.login, 'SELECT pg_reload_conf()');
  for (let i = 0; i < 100; i++) {
    const rows = await queryOnce<{ c: string }>(floor.login, "SELECT current_setting('archive_command') AS c");
    if (rows[0]?.c === command) return;
    await sleep(50);
  }
  throw new Error('archive_command was not reloaded');
}

async function readySegments(pgdata: string): Promise<string[]> {
  const names = await readdir(join(pgdata, 'pg_wal', 'archive_status')).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith('.ready')).map((n) => n.slice(0, -'.ready'.length));
}

/** Completes `count` segments (a little data, then a switch each) while archiving is held back. */
async function makeSegments(floor: FloorSystem, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await queryOnce(floor.login, 'INSERT INTO b17_rows SELECT g FROM generate_series(1, 1000) g');
    await queryOnce(floor.login, 'SELECT pg_switch_wal()');
  }
}

/** One segment seen by watchLag: when its .ready file was first seen and when it was gone (epoch ms). */
interface SegmentLag {
  readonly name: string;
  readonly readyAt: number;
  readonly archivedAt: number;
}

/**
 * Watches archive_status every 20 ms: when each segment became ready and when it stopped being ready (archived:
 * PostgreSQL renamed it to .done after archive_command exited 0, or the daemon did after the upload). Returns the
 * segments seen both ways, lag = archivedAt - readyAt (each end within one 20 ms poll).
 */
function watchLag(pgdata: string): { stop: () => Promise<SegmentLag[]> } {
  const readyAt = new Map<string, number>();
  const lags: SegmentLag[] = [];
  const state = { running: true };
  const loop = (async () => {
    while (state.running) {
      const now = performance.timeOrigin + performance.now();
      const ready = new Set(await readySegments(pgdata));
      for (const name of ready) if (!readyAt.has(name)) readyAt.set(name, now);
      for (const [name, at] of readyAt) {
        if (!ready.has(name) && at >= 0) {
          lags.push({ name, readyAt: at, archivedAt: now });
          readyAt.set(name, -1);
        }
      }
      await sleep(20);
    }
  })();
  return {
    stop: async () => {
      state.running = false;
      await loop;
      return lags;
    },
  };
}

/**
 * pgim's daemon's steps for the segments of one lag phase (its trace file): per segment, ready seen -> upload start
 * -> upload end -> archived, and whether PostgreSQL's call needed Node (an `asked`) or was answered by the shell
 * fast path's marker.
 */
export function segmentTimeline(segments: readonly SegmentLag[], traceText: string): {
  readyToUpload: number[];
  upload: number[];
  uploadToArchived: number[];
  asked: number;
  traced: number;
} {
  const events = new Map<string, Map<string, number>>();
  for (const line of traceText.split('\n')) {
    if (line === '') continue;
    const { t, wal, event } = JSON.parse(line) as { t: number; wal: string; event: string };
    const byEvent = events.get(wal) ?? new Map<string, number>();
    if (!byEvent.has(event)) byEvent.set(event, t);
    events.set(wal, byEvent);
  }
  const out = { readyToUpload: [] as number[], upload: [] as number[], uploadToArchived: [] as number[], asked: 0, traced: 0 };
  for (const segment of segments) {
    const steps = events.get(segment.name);
    if (steps === undefined) continue;
    out.traced++;
    if (steps.has('asked')) out.asked++;
    const start = steps.get('upload-start');
    const end = steps.get('upload-end');
    if (start === undefined || end === undefined) continue;
    out.readyToUpload.push(start - segment.readyAt);
    out.upload.push(end - start);
    out.uploadToArchived.push(segment.archivedAt - end);
  }
  return out;
}

export const archiveBenchmark: Benchmark = {
  id: 'B17',
  title: 'WAL archiving to S3 under pgbench: lag and throughput',
  measures:
    'One PostgreSQL 15 (pg_ctl), archive_mode = on, and a local S3 server (versitygw over TLS, `--keep-alive` as S3 keeps ' +
    'connections open; BENCH_B17_STORE_KEEPALIVE=0 without); only archive_command ' +
    "changes between the archivers: pgim's archive_command (a shell fast path answering from the daemon's upload " +
    "markers, else `pgim wal-archive` handing the segment to the daemon's archiver; its own S3 upload, byte for byte " +
    "Barman's objects, started when the .ready file appears) with wal.maxParallel 1 and 4, references without the " +
    'shell fast path (Node on every call), without the ready-watch and without a daemon (the upload in the ' +
    'archive_command process), plain `barman-cloud-wal-archive` ' +
    "per segment (CNPG's path with maxParallel 1), and pgBackRest 2.45 `archive-push` with archive-async and " +
    'process-max 4. Throughput: with archiving held back (`/bin/false`), 16 completed segments (8 with --quick), then ' +
    'the archiver is set and the time until none is ready gives segments/s (x16 MiB = the highest WAL rate it sustains). ' +
    'Lag: during `pgbench -c 4 -j 2 -T 20` (10 s with --quick) of 1000-row inserts, the time from a segment\'s .ready file appearing to its ' +
    'disappearing (polled every 20 ms), p50 and p99; for pgim, where each segment\'s time went (its daemon\'s trace: ready -> ' +
    'upload start, upload, upload end -> archived) and how many archive_command calls still started Node.',
  async run(context: BenchContext, recorder) {
    // The store keeps connections open between requests, as S3 does (versitygw's default closes each one after a
    // request: every request of every archiver then pays a TCP and TLS handshake). BENCH_B17_STORE_KEEPALIVE=0: as before.
    const keepAlive = process.env.BENCH_B17_STORE_KEEPALIVE !== '0';
    context.log(`  S3 store: versitygw over TLS, keep-alive ${keepAlive ? 'on' : 'off'}`);
    const s3 = await S3Server.start({ tls: true, keepAlive });
    const floor = await FloorSystem.create(context.systems, { archive_mode: 'on', archive_command: '/bin/false', archive_timeout: '0', max_wal_size: '1GB' });
    try {
      await floor.initialise();
      await (await floor.start()).commandDone;
      const dir = join(context.systems.workDir, 'b17');
      await serviceDirectory(dir, 0o700);
      const caFile = join(dir, 'ca.crt');
      await writeFile(caFile, s3.caPem ?? '');
      await handFileToServiceUser(caFile);
      // The peers' credentials: sourced by the shell PostgreSQL runs archive_command with (never in an argv).
      const envFile = join(dir, 's3.env');
      await writeFile(envFile, `export AWS_ACCESS_KEY_ID='${s3.accessKey}' AWS_SECRET_ACCESS_KEY='${s3.secretKey}' AWS_CA_BUNDLE='${caFile}'\n`, { mode: 0o600 });
      await handFileToServiceUser(envFile);
      const archivers: Archiver[] = [];
      const hosts: { stop: () => Promise<void> }[] = [];
      // The ready-watch (uploads start when a .ready file appears) and archive_command's shell fast path are on in
      // pgim; its references run without them (without the fast path: archive_command always starts Node).
      for (const [maxParallel, daemon, readyWatch, fastPath] of [
        [1, true, true, true],
        [4, true, true, true],
        [4, true, true, false],
        [4, true, false, true],
        [4, false, false, true],
      ] as const) {
        const variant = `pgim-${maxParallel}${daemon ? '' : '-nodaemon'}${daemon && !readyWatch ? '-noreadywatch' : ''}${fastPath ? '' : '-nofastpath'}`;
        const runtime = join(dir, variant);
        await serviceDirectory(runtime, 0o700);
        await serviceDirectory(archivePaths(runtime).dir, 0o700);
        await serviceDirectory(archivePaths(runtime).spool, 0o700);
        const cluster = parseClusterManifest(
          JSON.stringify({
            apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name: 'b17' },
            spec: { backup: { barmanObjectStore: {
              destinationPath: s3.destination(variant), endpointURL: s3.endpointURL,
              s3Credentials: { accessKeyId: { name: 'x', key: 'x' }, secretAccessKey: { name: 'x', key: 'x' } },
              wal: { maxParallel },
            } } },
          }),
          'b17',
        );
        const settings: ArchiveSettings = {
          version: 1, clusterName: 'b17', podName: 'b17-1', archiver: true, store: cluster.backup.barmanObjectStore,
          env: { AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_CA_BUNDLE: caFile },
        };
        await writeFile(archivePaths(runtime).settings, JSON.stringify(settings), { mode: 0o600 });
        await handFileToServiceUser(archivePaths(runtime).settings);
        const traceFile = daemon ? join(dir, `trace-${variant}.jsonl`) : undefined;
        if (daemon) hosts.push(await startArchiverHost(context.systems, runtime, floor.pgdata, join(dir, `archiver-${variant}.log`), readyWatch, traceFile));
        const node = [process.execPath, pgimEntry];
        archivers.push({
          label: `pgim (maxParallel ${maxParallel}${daemon ? (readyWatch ? '' : ', no ready-watch') : ', no daemon'}${fastPath ? '' : ', no shell fast path'})`,
          // pgim's own archive_command (runtime.ts); without the fast path, the Node command it ends with.
          command: fastPath ? archiveCommand(runtime, node) : `${node.join(' ')} wal-archive --runtime-dir ${runtime} %p`,
          settings: { path: archivePaths(runtime).settings, value: settings },
          ...(traceFile === undefined ? {} : { traceFile }),
        });
      }
      archivers.push({
        label: 'barman-cloud-wal-archive per segment',
        command: `. ${envFile} && barman-cloud-wal-archive --endpoint-url ${s3.endpointURL} --cloud-provider aws-s3 ${s3.destination('barman')} b17 %p`,
      });
      const pgbackrestConf = join(dir, 'pgbackrest.conf');
      await writeFile(
        pgbackrestConf,
        [
          ...pgbackrestS3Global(s3, caFile, '/pgbackrest', dir), 'archive-async=y', `spool-path=${join(dir, 'pgbackrest-spool')}`, 'process-max=4',
          'compress-type=gz', 'compress-level=6', '', '[b17]', `pg1-path=${floor.pgdata}`, `pg1-port=${floor.login.port}`,
          `pg1-socket-path=${join(floor.pgdata, '..', 'run')}`, '',
        ].join('\n'),
        { mode: 0o600 },
      );
      await handFileToServiceUser(pgbackrestConf);
      for (const sub of ['pgbackrest-spool', 'pgbackrest-lock', 'pgbackrest-log']) await serviceDirectory(join(dir, sub), 0o700);
      await context.systems.processes.mustRun('pgbackrest stanza-create', 'pgbackrest', [`--config=${pgbackrestConf}`, '--stanza=b17', 'stanza-create'], {
        asServiceUser: true,
        logFile: join(dir, 'pgbackrest-tool.log'),
      });
      archivers.push({ label: 'pgBackRest archive-push (async, process-max 4)', command: `pgbackrest --config=${pgbackrestConf} --stanza=b17 archive-push %p` });

      await queryOnce(floor.login, 'CREATE TABLE b17_rows (x int)');
      // A write load that fills segments (about 40 kB of WAL per transaction), so the lag is measured on many.
      const writeScript = join(dir, 'write.sql');
      await writeFile(writeScript, 'INSERT INTO b17_rows SELECT g FROM generate_series(1, 1000) g;\n');
      await handFileToServiceUser(writeScript);
      const backlog = context.quick ? 8 : 16;
      const seconds = context.quick ? 10 : 20;
      // BENCH_B17_ARCHIVERS=a,b keeps the archivers whose label contains one of those words (a shorter comparison).
      const only = (process.env.BENCH_B17_ARCHIVERS ?? '').split(',').map((w) => w.trim()).filter((w) => w !== '');
      const chosen = only.length === 0 ? archivers : archivers.filter((a) => only.some((w) => a.label.includes(w)));
      await interleave(context, chosen, async (archiver, run) => {
        // Throughput: a backlog, then the archiver.
        await useArchiveCommand(floor, '/bin/false');
        // One archiver at a time, as after a switchover: the other daemons' ready-watches see the same folder and
        // must not upload (each reads `archiver` from its settings before it starts an upload). While the backlog is
        // made none archives: a ready-watch would otherwise upload it before the clock starts.
        const archiverIs = async (chosenOne: Archiver | undefined): Promise<void> => {
          for (const other of archivers) {
            if (other.settings === undefined) continue;
            await writeFile(other.settings.path, JSON.stringify({ ...other.settings.value, archiver: other === chosenOne }), { mode: 0o600 });
          }
        };
        await archiverIs(undefined);
        await makeSegments(floor, backlog);
        const waiting = (await readySegments(floor.pgdata)).length;
        const t0 = performance.now();
        await archiverIs(archiver);
        await useArchiveCommand(floor, archiver.command);
        while ((await readySegments(floor.pgdata)).length > 0) {
          if (since(t0) > 600_000) throw new Error(`${archiver.label}: the backlog did not drain in 10 min`);
          await sleep(20);
        }
        const elapsed = since(t0);
        const perSecond = (waiting * 1000) / elapsed;
        recorder.add(archiver.label, 'backlog drained (segments/s)', run, perSecond, 'count');
        recorder.add(archiver.label, 'sustained WAL rate (MB/s)', run, (perSecond * segmentBytes) / 1e6, 'MB');
        // Lag under a write load.
        const watch = watchLag(floor.pgdata);
        const bench = await pgbenchRun(context.systems.processes, floor.login, ['-c', '4', '-j', '2', '-T', String(seconds), '-n', '-f', writeScript], join(dir, 'pgbench.log'), (seconds + 120) * 1000);
        while ((await readySegments(floor.pgdata)).length > 0) await sleep(20);
        const segments = await watch.stop();
        const lags = segments.map((s) => s.archivedAt - s.readyAt);
        if (lags.length > 0) {
          recorder.add(archiver.label, 'archive lag p50 (ms)', run, percentile(lags, 50), 'ms');
          recorder.add(archiver.label, 'archive lag p99 (ms)', run, percentile(lags, 99), 'ms');
        }
        recorder.add(archiver.label, 'pgbench TPS during archiving', run, bench.tps, 'tx/s', { detail: true });
        recorder.add(archiver.label, 'segments under load', run, lags.length, 'count', { detail: true });
        if (archiver.traceFile !== undefined) {
          // Where each segment's time went in pgim's daemon (the host's clock and this one's: the same machine).
          const timeline = segmentTimeline(segments, await readFile(archiver.traceFile, 'utf8').catch(() => ''));
          for (const [what, values] of [['ready -> upload start', timeline.readyToUpload], ['upload', timeline.upload], ['upload end -> archived', timeline.uploadToArchived]] as const) {
            if (values.length === 0) continue;
            recorder.add(archiver.label, `${what} p50 (ms)`, run, percentile(values, 50), 'ms', { detail: true });
            recorder.add(archiver.label, `${what} p99 (ms)`, run, percentile(values, 99), 'ms', { detail: true });
          }
          if (timeline.traced > 0) recorder.add(archiver.label, 'archive_command calls that started Node (%)', run, (100 * timeline.asked) / timeline.traced, 'count', { detail: true });
        }
        context.log(`    ${archiver.label}: ${perSecond.toFixed(2)} segments/s, ${lags.length} segments under load, p99 ${lags.length > 0 ? percentile(lags, 99).toFixed(0) : '-'} ms`);
      });
      for (const host of hosts) await host.stop();
    } finally {
      await floor.destroy();
      await s3.stop();
    }
  },
};
