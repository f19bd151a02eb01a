/**
 * S5: what the primary's pgim pays for each replica: `/pg/status` (which reads pg_stat_replication and the
 * replication slots) and a metrics collection, in local clusters of 1 primary + 1, 2, 4, 8 streaming replicas.
 */
import { waitStreaming } from '../pg.js';
import { footprint } from '../footprint.js';
import { PgimCluster } from '../systems/pgim-cluster.js';
import { medianGet, pointRecorder, repetitions, sampleValue, scrape, seriesCount } from './curve-kit.js';
import type { Benchmark } from './types.js';

const points = [1, 2, 4, 8] as const;
const pointsQuick = [1, 2] as const;
const requests = 20;
const scrapes = 5;

export const replicasCurve: Benchmark = {
  id: 'S5',
  title: 'Cost curve: replicas of one primary (pgim only)',
  measures:
    `A files-mode pgim cluster (as B8) of 1 primary and 1, 2, 4, 8 streaming replicas (${pointsQuick.join(', ')} with --quick), ` +
    'a new cluster per point (`max_wal_senders 32`: the replicas clone at once), `metricsQueriesTTL: 0`. On the primary, per point and run, once every replica streams: ' +
    `the median of ${requests} \`GET /pg/status\` (a new connection each), the median of ${scrapes} \`GET /metrics\` (each ` +
    'collects), the collection duration pgim reports, the series, and the primary pgim\'s RSS.',
  async run(context, recorder) {
    if (!context.kinds.includes('pgim')) return;
    for (const replicas of context.quick ? pointsQuick : points) {
      context.log(`  S5: 1 primary + ${replicas} replicas`);
      // Eight replicas clone at once, two WAL senders each (pg_basebackup's backup and WAL streams): more than the
      // default max_wal_senders 10.
      const cluster = await PgimCluster.create(context.systems, {
        instances: replicas + 1,
        parameters: { max_wal_senders: '32' },
        spec: { monitoring: { metricsQueriesTTL: '0' } },
      });
      try {
        await cluster.start();
        const [primary, ...others] = cluster.members;
        if (primary === undefined) throw new Error('no primary');
        await waitStreaming(primary.login, others, 600_000);
        const base = `http://127.0.0.1:${primary.ports.statusPort}`;
        const metricsUrl = `http://127.0.0.1:${primary.ports.metricsPort}/metrics`;
        for (const run of repetitions(context)) {
          const point = pointRecorder(recorder, 'pgim', 'replicas', replicas, run);
          point('/pg/status latency', await medianGet(`${base}/pg/status`, requests), 'ms');
          const times: number[] = [];
          let text = '';
          for (let i = 0; i < scrapes; i += 1) {
            const result = await scrape(metricsUrl);
            times.push(result.ms);
            text = result.text;
          }
          times.sort((a, b) => a - b);
          point('/metrics scrape, uncached (TTL 0)', times[Math.floor(times.length / 2)] ?? NaN, 'ms');
          point('collection duration', 1000 * sampleValue(text, 'cnpg_collector_collection_duration_seconds', { collector: 'Collect.cnpg' }), 'ms');
          point('series', seriesCount(text), 'count');
          const pid = primary.daemon?.pid;
          if (pid !== undefined) point('primary pgim RSS', (await footprint(pid)).rssMb, 'MB');
        }
      } finally {
        await cluster.destroy();
      }
    }
  },
};
