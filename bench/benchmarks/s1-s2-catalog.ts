/**
 * S1 (databases) and S2 (tables): what pgim's exporter costs as the catalog grows. One pgim, CNPG's default queries
 * plus one custom query; databases or tables are added between the points (never removed), so each point builds on
 * the last. Per point: the SQL one collection runs (from PostgreSQL's log), the scrape times with the cache off and
 * on, the SQL cached scrapes cause (none expected), and pgim's RSS.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { handToPostgres } from '../../test-kit/env.js';
import { connect, queryOnce, type Login } from '../pg.js';
import { PgimSystem } from '../systems/pgim.js';
import { median } from '../stats.js';
import { startReadWrite } from './common.js';
import {
  collections,
  pointRecorder,
  queriesYaml,
  repetitions,
  rssOf,
  sampleValue,
  scrape,
  seriesCount,
  setMonitoring,
  statementLogParameters,
  StatementLog,
} from './curve-kit.js';
import type { Benchmark, BenchContext, Recorder } from './types.js';

const configMap = 'curve-queries';
/** Sequential scrapes of one cached measurement: each must run no SQL. */
const cachedScrapes = 10;

interface CatalogCurve {
  axis: string;
  points: readonly number[];
  /** The custom query (CNPG's queries format) the curve adds to CNPG's defaults. */
  queries: string;
  /** Grows the catalog from `from` to `to` objects. */
  grow(superuser: Login, from: number, to: number, log: (line: string) => void): Promise<void>;
  /** Start-up count (the app database, no table). */
  initial: number;
}

function lastCollection(text: string): number {
  return sampleValue(text, 'pgim_metrics_last_collection_timestamp_seconds');
}

async function measureCatalogCurve(context: BenchContext, recorder: Recorder, id: string, curve: CatalogCurve): Promise<void> {
  if (!context.kinds.includes('pgim')) return;
  const system = await PgimSystem.create(context.systems, {
    smartShutdownTimeout: 5,
    superuserAccess: true,
    // fsync off only makes building 1,000 databases or 100,000 tables affordable; no figure measures a write.
    parameters: { ...statementLogParameters, fsync: 'off' },
  });
  try {
    const dir = join(system.configDir, 'configmaps', configMap);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'queries'), curve.queries);
    await handToPostgres(join(system.configDir, 'configmaps'));
    await system.initialise();
    await startReadWrite(system);
    const sql = new StatementLog(system.logFile, system.superuserLogin);
    let count = curve.initial;
    for (const x of curve.points) {
      if (x > count) {
        context.log(`  ${id}: ${curve.axis} ${count} -> ${x}`);
        const t0 = performance.now();
        await curve.grow(system.superuserLogin, count, x, (line) => {
          context.log(line);
        });
        context.log(`  ${id}: ${x} ${curve.axis} after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        count = x;
      }
      await setMonitoring(system, '0', [configMap]);
      for (const run of repetitions(context)) {
        const point = pointRecorder(recorder, system.label, curve.axis, x, run);
        const from = await sql.sync();
        const result = await scrape(system.metricsUrl);
        const work = await sql.since(from);
        point('/metrics scrape, uncached (TTL 0)', result.ms, 'ms');
        point('SQL statements per collection', work.statements, 'count');
        point('SQL time per collection', work.ms, 'ms');
        point('sessions opened per collection', work.sessions, 'count');
        point('collection duration', 1000 * sampleValue(result.text, 'cnpg_collector_collection_duration_seconds', { collector: 'Collect.cnpg' }), 'ms');
        point('series', seriesCount(result.text), 'count');
      }
      // A long TTL for the cached scrapes: at 1,000 databases a collection can outlast 30 s on a loaded machine, and
      // the schedule would then collect during every window. The last TTL-0 scrape primed the cache.
      await setMonitoring(system, '10m', [configMap]);
      for (const run of repetitions(context)) {
        const point = pointRecorder(recorder, system.label, curve.axis, x, run);
        // A scheduled collection inside the window would be counted as scrape work: measure the window again.
        for (let attempt = 1; ; attempt += 1) {
          const from = await sql.sync();
          const first = (await scrape(system.metricsUrl)).text;
          const times: number[] = [];
          const firstBytes: number[] = [];
          let last = '';
          for (let i = 0; i < cachedScrapes; i += 1) {
            const result = await scrape(system.metricsUrl);
            times.push(result.ms);
            firstBytes.push(result.firstByteMs);
            last = result.text;
          }
          const work = await sql.since(from);
          // Collections counts a collection when it starts, the timestamp when it ends: both unchanged, none ran.
          const ran = collections(last) !== collections(first) || lastCollection(last) !== lastCollection(first);
          if (ran && attempt < 5) continue;
          point('/metrics scrape, cached', median(firstBytes), 'ms');
          point('/metrics scrape, cached, with the transfer', median(times), 'ms');
          point('exposition size', Buffer.byteLength(last) / 1e6, 'MB');
          point('SQL statements per cached scrape', work.statements / (cachedScrapes + 1), 'count');
          break;
        }
        point('pgim RSS', await rssOf(system), 'MB');
      }
    }
  } finally {
    await system.stop().catch(() => undefined);
    await system.destroy();
  }
}

/** Runs `statements` on one session, `batch` of them per transaction. */
async function runBatched(login: Login, statements: Iterable<string>, batch: number): Promise<void> {
  const client = await connect(login, 30_000);
  try {
    let pending: string[] = [];
    const flush = async (): Promise<void> => {
      if (pending.length === 0) return;
      await client.query(`BEGIN; ${pending.join('; ')}; COMMIT`);
      pending = [];
    };
    for (const statement of statements) {
      pending.push(statement);
      if (pending.length >= batch) await flush();
    }
    await flush();
  } finally {
    await client.end().catch(() => undefined);
  }
}

const databasePoints = [1, 10, 100, 1000] as const;
const databasePointsQuick = [1, 3] as const;

export const databasesCurve: Benchmark = {
  id: 'S1',
  title: 'Cost curve: databases (pgim only)',
  measures:
    `One pgim with 1, 10, 100, 1,000 databases (${databasePointsQuick.join(', ')} with --quick; the app database counts as one, ` +
    '`postgres` is there too), CNPG\'s default queries plus one custom query with `target_databases: [\'*\']` (the ' +
    'user tables of each database). Per point and run: one `GET /metrics` with `metricsQueriesTTL: 0` (it collects): its ' +
    'time, the statements and their server time that the exporter (`application_name` cnpg_metrics_exporter) ran, ' +
    'counted from PostgreSQL\'s own log (`log_min_duration_statement = 0`, relayed by pgim), the sessions it opened, ' +
    'the collection duration and the series; then with `metricsQueriesTTL: 10m` (so that no scheduled collection ' +
    'falls into the window, even when one lasts longer than the default 30 s) the median of ' +
    `${cachedScrapes} cached scrapes (until the response headers arrive: pgim's work, since it renders before it ` +
    'answers; and until the last byte, the exposition\'s transfer included), the statements they caused (per scrape; ' +
    `0 expected), the exposition's size and pgim's RSS. No peer: ` +
    'Patroni has no exporter SQL.',
  async run(context, recorder) {
    await measureCatalogCurve(context, recorder, 'S1', {
      axis: 'databases',
      points: context.quick ? databasePointsQuick : databasePoints,
      initial: 1,
      queries: queriesYaml({
        bench_database: {
          query: 'SELECT pg_catalog.current_database() AS datname, pg_catalog.count(*) AS user_tables FROM pg_catalog.pg_stat_user_tables',
          targetDatabases: ['*'],
          metrics: [['datname', 'LABEL'], ['user_tables', 'GAUGE']],
        },
      }),
      async grow(superuser, from, to) {
        // FILE_COPY: a copy of the template's files (WAL_LOG would write each database's 7 MB into the WAL).
        for (let n = from + 1; n <= to; n += 1) await queryOnce(superuser, `CREATE DATABASE bench_db_${n} STRATEGY = FILE_COPY`, 60_000);
      },
    });
  },
};

const tablePoints = [10, 1000, 100_000] as const;
const tablePointsQuick = [10, 100] as const;
/** Tables created per transaction (each holds a lock until commit; the lock table has max_locks_per_transaction × max_connections slots). */
const tablesPerTransaction = 500;
const perTableColumns = ['seq_scan', 'idx_scan', 'n_tup_ins', 'n_live_tup', 'n_dead_tup'] as const;

export const tablesCurve: Benchmark = {
  id: 'S2',
  title: 'Cost curve: tables in one database (pgim only)',
  measures:
    `One pgim with 10, 1,000, 100,000 tables in the app database (${tablePointsQuick.join(', ')} with --quick), CNPG's ` +
    `default queries plus a per-table query as CNPG users add one: \`pg_stat_user_tables\` with ${perTableColumns.length} ` +
    `counters per table (${perTableColumns.join(', ')}) and \`max_rows: 200000\` (pgim's default limit, 5,000 rows, ` +
    'would refuse its result at 100,000 tables). Per point the same figures as S1.',
  async run(context, recorder) {
    await measureCatalogCurve(context, recorder, 'S2', {
      axis: 'tables',
      points: context.quick ? tablePointsQuick : tablePoints,
      initial: 0,
      queries: queriesYaml({
        bench_user_tables: {
          query: `SELECT schemaname, relname, ${perTableColumns.join(', ')} FROM pg_catalog.pg_stat_user_tables`,
          maxRows: 200_000,
          metrics: [['schemaname', 'LABEL'], ['relname', 'LABEL'], ...perTableColumns.map((c) => [c, 'COUNTER'] as [string, 'COUNTER'])],
        },
      }),
      async grow(superuser, from, to, log) {
        const app = { ...superuser, database: 'app' };
        function* creates(): Generator<string> {
          for (let n = from + 1; n <= to; n += 1) {
            if (n % 20_000 === 0) log(`    ${n} tables`);
            yield `CREATE TABLE public.bench_t${n} (id integer)`;
          }
        }
        await runBatched(app, creates(), tablesPerTransaction);
      },
    });
  },
};
