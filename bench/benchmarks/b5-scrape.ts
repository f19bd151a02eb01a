import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { handToPostgres } from '../../test-kit/env.js';
import { pollUntil } from '../pg.js';
import { PgimSystem } from '../systems/pgim.js';
import { median } from '../stats.js';
import { interleave, startReadWrite } from './common.js';
import type { Benchmark } from './types.js';

/** Custom query counts of the plan (CNPG's default set stays on: it is what every cluster runs). */
const queryCounts = [0, 10, 50, 200] as const;
/** Rows per custom query: each becomes one series per metric column. */
const rowsPerQuery = 10;
/** Sequential scrapes per cell and run; their median is the run's figure (one scrape is too noisy). */
const scrapesPerCell = 5;

/** A CNPG-format queries file with `count` queries, each `rowsPerQuery` rows of a label and a gauge. */
function queriesYaml(count: number): string {
  let text = '';
  for (let q = 1; q <= count; q += 1) {
    text +=
      `bench_q${q}:\n` +
      `  query: "SELECT g::text AS k, g::float8 AS v FROM pg_catalog.generate_series(1, ${rowsPerQuery}) AS g"\n` +
      '  metrics:\n' +
      '    - k: {usage: LABEL, description: "row"}\n' +
      '    - v: {usage: GAUGE, description: "value"}\n';
  }
  return text === '' ? '{}\n' : text;
}

interface Scrape {
  ms: number;
  text: string;
}

async function scrape(url: string): Promise<Scrape> {
  const t0 = performance.now();
  const response = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return { ms: performance.now() - t0, text };
}

/** The highest `bench_qN` family in an exposition (0 when none): shows which ConfigMap pgim has loaded. */
function loadedQueries(text: string): number {
  let highest = 0;
  for (const match of text.matchAll(/bench_q(\d+)_v\{/g)) highest = Math.max(highest, Number(match[1]));
  return highest;
}

function collections(text: string): number {
  return Number(/^cnpg_collector_collections_total (\S+)$/m.exec(text)?.[1] ?? 'NaN');
}

function seriesCount(text: string): number {
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('#')).length;
}

export const scrapeBenchmark: Benchmark = {
  id: 'B5',
  title: 'Metrics scrape vs number of custom queries (pgim only)',
  measures:
    `One pgim with CNPG's default queries plus N = ${queryCounts.join('/')} custom queries of ${rowsPerQuery} rows ` +
    '(a ConfigMap in its config folder, named by `spec.monitoring.customQueriesConfigMap`, changed live). Per N and ' +
    `run, the median of ${scrapesPerCell} sequential \`GET /metrics\`: with \`metricsQueriesTTL: 0\` (every scrape ` +
    'runs the queries) and with the default TTL (a scrape reads the cached result); the series count; and with TTL 0, ' +
    'how many collections two concurrent scrapes cause (coalesced: 1). Patroni has no custom SQL, the floor no ' +
    'exporter: n/a.',
  async run(context, recorder) {
    if (!context.kinds.includes('pgim')) return;
    context.note('B5: pgim only (Patroni has no custom queries; the floor no exporter).');
    const system = await PgimSystem.create(context.systems);
    try {
      for (const count of queryCounts) {
        const dir = join(system.configDir, 'configmaps', `bench-queries-${count}`);
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, 'queries'), queriesYaml(count));
      }
      await handToPostgres(join(system.configDir, 'configmaps'));
      await system.initialise();
      await startReadWrite(system);
      const monitoring = async (count: number, ttl: string): Promise<void> => {
        await system.changeSpec({ monitoring: { metricsQueriesTTL: ttl, customQueriesConfigMap: [{ name: `bench-queries-${count}`, key: 'queries' }] } });
      };
      await interleave(context, [system], async (_, run) => {
        for (const count of queryCounts) {
          const cell = `N=${count}`;
          await monitoring(count, '0');
          // Applied once the exposition has exactly the new queries and every scrape collects (TTL 0): N=0 with the
          // previous, cached settings would pass the first test alone.
          await pollUntil(`pgim to load ${count} custom queries with TTL 0`, async () => {
            const first = (await scrape(system.metricsUrl)).text;
            const second = (await scrape(system.metricsUrl)).text;
            return loadedQueries(second) === count && collections(second) !== collections(first);
          }, 30_000);
          const fresh: number[] = [];
          let last = '';
          for (let i = 0; i < scrapesPerCell; i += 1) {
            const result = await scrape(system.metricsUrl);
            fresh.push(result.ms);
            last = result.text;
          }
          recorder.add(system.label, `${cell}: scrape, TTL 0 (runs the queries)`, run, median(fresh), 'ms');
          recorder.add(system.label, `${cell}: series`, run, seriesCount(last), 'count');
          const before = collections(last);
          const pair = await Promise.all([scrape(system.metricsUrl), scrape(system.metricsUrl)]);
          const after = collections((await scrape(system.metricsUrl)).text);
          // The last scrape collected once more itself; two coalesced scrapes add one.
          recorder.add(system.label, `${cell}: collections for 2 concurrent scrapes, TTL 0`, run, after - before - 1, 'count');
          recorder.add(system.label, `${cell}: concurrent scrape pair, slower`, run, Math.max(...pair.map((p) => p.ms)), 'ms', { detail: true });
          await monitoring(count, '30s');
          // Cached once two scrapes in a row report the same collection count.
          await pollUntil('pgim to cache the metrics', async () => collections((await scrape(system.metricsUrl)).text) === collections((await scrape(system.metricsUrl)).text), 30_000);
          const cached: number[] = [];
          for (let i = 0; i < scrapesPerCell; i += 1) cached.push((await scrape(system.metricsUrl)).ms);
          recorder.add(system.label, `${cell}: scrape, cached (TTL 30 s)`, run, median(cached), 'ms');
        }
      });
    } finally {
      await system.stop().catch(() => undefined);
      await system.destroy();
    }
  },
};
