/**
 * S3: pgim's status endpoints and the `backends` metrics query as PostgreSQL's client connections grow. The clients
 * are open and busy (each in `SELECT pg_sleep(...)`: state `active` in pg_stat_activity) without burning CPU, so
 * the figures show what the size of pg_stat_activity costs pgim, not a saturated machine.
 */
import pg from 'pg';
import { connect, queryOnce } from '../pg.js';
import { PgimSystem } from '../systems/pgim.js';
import { startReadWrite } from './common.js';
import { medianGet, pointRecorder, repetitions, rssOf, sampleValue, scrape, seriesCount, setMonitoring } from './curve-kit.js';
import type { Benchmark } from './types.js';

const points = [10, 100, 500] as const;
const pointsQuick = [10, 50] as const;
const busyApplication = 'pgim-bench-busy';
/** Sequential requests per endpoint and run (their median is the run's figure). */
const requests = 20;

export const connectionsCurve: Benchmark = {
  id: 'S3',
  title: 'Cost curve: client connections (pgim only)',
  measures:
    `One pgim (max_connections 600) with 10, 100, 500 client connections (${pointsQuick.join(', ')} with --quick) open and ` +
    'busy: each runs `SELECT pg_sleep(3600)`, so pg_stat_activity holds that many active backends. Per point and run: ' +
    `the median of ${requests} sequential \`GET /pg/status\` and of ${requests} \`GET /readyz\` (keep-alive off, a new ` +
    'connection each, as kubelet probes), and with `metricsQueriesTTL: 0` one `GET /metrics`: the wall time pgim ' +
    'reports for CNPG\'s `backends` query (the source of `cnpg_backends_total`, `pgim_metrics_query_duration_seconds`), ' +
    'the whole collection, the `cnpg_backends_total` series, and pgim\'s RSS.',
  async run(context, recorder) {
    if (!context.kinds.includes('pgim')) return;
    const system = await PgimSystem.create(context.systems, { smartShutdownTimeout: 5, superuserAccess: true, parameters: { max_connections: '600' } });
    const clients: pg.Client[] = [];
    try {
      await system.initialise();
      await startReadWrite(system);
      await setMonitoring(system, '0', []);
      for (const x of context.quick ? pointsQuick : points) {
        context.log(`  S3: ${x} busy client connections`);
        while (clients.length < x) {
          const batch = await Promise.all(
            Array.from({ length: Math.min(25, x - clients.length) }, async () => {
              const client = await connect({ ...system.login }, 60_000);
              await client.query(`SET application_name = '${busyApplication}'`);
              // Never awaited: it runs until the clients are terminated below.
              client.query('SELECT pg_catalog.pg_sleep(3600)').catch(() => undefined);
              return client;
            }),
          );
          clients.push(...batch);
        }
        const active = await queryOnce<{ n: string }>(
          system.superuserLogin,
          `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = '${busyApplication}' AND state = 'active'`,
          30_000,
        );
        if (Number(active[0]?.n) < x) throw new Error(`only ${active[0]?.n ?? 0} of ${x} busy clients are active`);
        for (const run of repetitions(context)) {
          const point = pointRecorder(recorder, system.label, 'client connections', x, run);
          point('/pg/status latency', await medianGet(system.endpoints.statusDocument, requests), 'ms');
          point('/readyz latency', await medianGet(system.endpoints.readiness, requests), 'ms');
          const metrics = await scrape(system.metricsUrl);
          point('/metrics scrape, uncached (TTL 0)', metrics.ms, 'ms');
          point('backends query (cnpg_backends_total) time', 1000 * sampleValue(metrics.text, 'pgim_metrics_query_duration_seconds', { query: 'backends' }), 'ms');
          point('collection duration', 1000 * sampleValue(metrics.text, 'cnpg_collector_collection_duration_seconds', { collector: 'Collect.cnpg' }), 'ms');
          point('cnpg_backends_total series', seriesCount(metrics.text.split('\n').filter((l) => l.startsWith('cnpg_backends_total{')).join('\n')), 'count');
          point('pgim RSS', await rssOf(system), 'MB');
        }
      }
    } finally {
      await queryOnce(system.superuserLogin, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${busyApplication}'`, 30_000).catch(() => undefined);
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await system.stop().catch(() => undefined);
      await system.destroy();
    }
  },
};
