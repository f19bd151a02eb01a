import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { parse } from 'yaml';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { MonitoringSpec } from '../../src/cluster/observability.js';
import { InstanceState } from '../../src/instance/state.js';
import { idleTtls, MetricsCache, queryTimeoutMs } from '../../src/metrics/cache.js';
import type { Collector } from '../../src/metrics/collector.js';
import { alwaysQueriesYaml, defaultQueriesYaml } from '../../src/metrics/default-queries.js';
import { renderFamily, type Family } from '../../src/metrics/exposition.js';
import { globMatch, isPattern, parseVersionRange, postgresSemver } from '../../src/metrics/matching.js';
import { mergeQueries, parseQueries, QueriesParseError } from '../../src/metrics/queries-parser.js';
import { addResult, FamilySet, parseNumberArray, QueryShapeError, toLabel, toNumber } from '../../src/metrics/query-runner.js';
import { parseGoDuration, parseQuantity } from '../../src/cluster/units.js';

/** CNPG's real default monitoring ConfigMap (../shared/data beside the repository), never copied into it. */
export const cnpgDefaultMonitoring = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'shared', 'data', 'cloudnative-pg', 'default-monitoring.yaml');

function cnpgQueriesText(): string {
  if (!existsSync(cnpgDefaultMonitoring)) {
    throw new Error(`CNPG's default-monitoring.yaml is missing at ${cnpgDefaultMonitoring}: the shared/ data folder must sit beside the repository`);
  }
  const configMap = parse(readFileSync(cnpgDefaultMonitoring, 'utf8')) as { data: { queries: string } };
  return configMap.data.queries;
}

const field = (name: string, dataTypeID: number): pg.FieldDef => ({
  name, dataTypeID, tableID: 0, columnID: 0, dataTypeSize: -1, dataTypeModifier: -1, format: 'text',
});

describe('metrics: CNPG custom-queries format', () => {
  it("loads CNPG's real default-monitoring.yaml unchanged: every query, with its names, labels and types", () => {
    const { queries, errors } = parseQueries(cnpgQueriesText(), 'cnpg-default-monitoring/queries');
    assert.deepEqual(errors, []);
    assert.deepEqual(
      queries.map((q) => q.name).sort(),
      ['backends', 'backends_waiting', 'pg_database', 'pg_extensions', 'pg_postmaster', 'pg_replication', 'pg_replication_slots',
        'pg_settings', 'pg_stat_archiver', 'pg_stat_bgwriter', 'pg_stat_bgwriter_17', 'pg_stat_checkpointer', 'pg_stat_database',
        'pg_stat_replication'].sort(),
    );
    const byName = new Map(queries.map((q) => [q.name, q]));
    assert.deepEqual(byName.get('backends')?.labelColumns, ['datname', 'usename', 'application_name', 'state']);
    assert.equal(byName.get('pg_stat_bgwriter_17')?.columns[0]?.metricName, 'cnpg_pg_stat_bgwriter_buffers_clean', '`name` overrides the prefix');
    assert.equal(byName.get('pg_stat_replication')?.primaryOnly, true);
    assert.deepEqual(byName.get('pg_extensions')?.targetDatabases, ['*']);
    assert.match(byName.get('pg_stat_archiver')?.predicateQuery ?? '', /pg_is_in_recovery/);
    assert.equal(byName.get('pg_stat_database')?.columns.find((c) => c.column === 'xact_commit')?.usage, 'COUNTER');
  });

  it("pgim's own default set produces exactly CNPG's default families (names, usages, labels)", () => {
    const cnpg = parseQueries(cnpgQueriesText(), 'cnpg').queries;
    const ours = parseQueries(defaultQueriesYaml, 'pgim').queries;
    const shape = (qs: typeof cnpg): string[] =>
      qs.flatMap((q) => q.columns.map((c) => `${q.name}:${c.metricName || c.column}:${c.usage}:${q.labelColumns.join(',')}:${String(q.primaryOnly)}:${q.runOnServer ?? ''}`)).sort();
    assert.deepEqual(shape(ours), shape(cnpg));
    assert.deepEqual(parseQueries(alwaysQueriesYaml, 'pgim').queries[0]?.columns[1]?.metricName, 'cnpg_collector_lo_pages');
  });

  it('refuses one bad query without losing the others, and a non-YAML document as a whole', () => {
    const { queries, errors } = parseQueries(
      `good:\n  query: SELECT 1 AS v\n  metrics:\n    - v: {usage: GAUGE}\nbad:\n  query: SELECT 1 AS v\n  metrics:\n    - v: {usage: SOMETIMES}\n` +
        `badrange:\n  query: SELECT 1\n  runonserver: "~~"\n  metrics: []\nbadlabel:\n  query: SELECT 1\n  metrics:\n    - "__x": {usage: LABEL}\n`,
      'configmap q/queries',
    );
    assert.deepEqual(queries.map((q) => q.name), ['good']);
    assert.deepEqual(errors.map((e) => e.path), ['bad.metrics[0].v.usage', 'badrange.runonserver', 'badlabel.metrics[0].__x']);
    assert.throws(() => parseQueries('a: [unclosed', 'configmap q/queries'), QueriesParseError);
    assert.throws(() => parseQueries('- just\n- a list\n', 'configmap q/queries'), /must be a mapping/);
  });

  it('merges sources in order: a later query with the same name wins', () => {
    const a = parseQueries('q:\n  query: SELECT 1 AS v\n  metrics: [{v: {usage: GAUGE}}]\n', 'a').queries;
    const b = parseQueries('q:\n  query: SELECT 2 AS v\n  metrics: [{v: {usage: GAUGE}}]\n', 'b').queries;
    assert.deepEqual(mergeQueries([a, b]).map((q) => [q.name, q.source]), [['q', 'b']]);
  });
});

describe('metrics: runonserver ranges and target_databases patterns', () => {
  it('compares PostgreSQL versions as CNPG does (15.18 is 15.0.18)', () => {
    const v15 = postgresSemver(150018);
    assert.deepEqual(v15, [15, 0, 18]);
    assert.equal(parseVersionRange('<17.0.0')?.(v15), true);
    assert.equal(parseVersionRange('>=17.0.0')?.(v15), false);
    assert.equal(parseVersionRange('>=10.0.0 <16.0.0')?.(v15), true);
    assert.equal(parseVersionRange('>= 16.0.0 || < 15.0.19')?.(v15), true);
    assert.equal(parseVersionRange('15.0.18')?.(v15), true);
    assert.equal(parseVersionRange('!=15.0.18')?.(v15), false);
    assert.equal(parseVersionRange('>=abc'), undefined);
    assert.equal(parseVersionRange(''), undefined);
  });

  it("matches database names like Go's path.Match", () => {
    assert.equal(isPattern('app'), false);
    assert.equal(isPattern('a*'), true);
    assert.equal(globMatch('*', 'anything'), true);
    assert.equal(globMatch('app_*', 'app_1'), true);
    assert.equal(globMatch('app_*', 'postgres'), false);
    assert.equal(globMatch('db?', 'db1'), true);
    assert.equal(globMatch('db[0-3]', 'db2'), true);
    assert.equal(globMatch('db[^0-3]', 'db2'), false);
    assert.equal(globMatch('db[0-3', 'db2'), false, 'an unterminated class matches nothing');
    assert.equal(globMatch('a\\*', 'a*'), true);
    const started = Date.now();
    assert.equal(globMatch('*a*a*a*a*a*a*a*a*a*a*a*a*b', 'a'.repeat(63)), false);
    assert.ok(Date.now() - started < 200, 'no exponential backtracking on a hostile pattern');
  });
});

describe('metrics: values, labels and exposition', () => {
  it("converts PostgreSQL text like CNPG's DBToFloat64 / DBToString", () => {
    assert.equal(toNumber('42', 20), 42);
    assert.equal(toNumber('1.5e3', 1700), 1500);
    assert.equal(toNumber('t', 16), 1);
    assert.equal(toNumber('f', 16), 0);
    assert.ok(Number.isNaN(toNumber(null, 20)));
    assert.equal(toNumber('2024-01-02 03:04:05.6+00', 1184), 1704164645);
    assert.equal(toNumber('2024-01-02 03:04:05+0530', 1184), 1704144845);
    assert.equal(toNumber('abc', 25), undefined);
    assert.equal(toNumber('0x10', 25), undefined);
    assert.equal(toNumber('', 25), undefined);
    assert.equal(toLabel(null, 25), '');
    assert.equal(toLabel('t', 16), 'true');
    assert.deepEqual(parseNumberArray('{1,2.5,"3"}'), [1, 2.5, 3]);
    assert.equal(parseNumberArray('{1,x}'), undefined);
  });

  it('maps rows to families: LABEL, GAUGE, COUNTER, MAPPEDMETRIC, DURATION, HISTOGRAM, DISCARD', () => {
    const [def] = parseQueries(
      `q:\n  query: x\n  metrics:\n    - db: {usage: LABEL}\n    - skip: {usage: DISCARD}\n    - g: {usage: GAUGE, description: "a gauge"}\n` +
        `    - c: {usage: COUNTER}\n    - m: {usage: MAPPEDMETRIC, metric_mapping: {up: 1, down: 0}}\n    - d: {usage: DURATION}\n` +
        `    - h: {usage: HISTOGRAM}\n    - g2: {usage: GAUGE, name: renamed}\n`,
      't',
    ).queries;
    assert.ok(def);
    const fields = ['db', 'skip', 'g', 'c', 'm', 'd', 'h', 'h_bucket', 'h_sum', 'h_count', 'g2'].map((n) => field(n, 25));
    const set = new FamilySet();
    addResult(set, def, fields, [['a"b\\c\nd', 'x', '1.5', '7', 'down', '1500ms', '{0.1,1}', '{3,5}', '2.5', '6', '9']]);
    const names = [...set.families.keys()];
    assert.deepEqual(names, ['cnpg_q_g', 'cnpg_q_c', 'cnpg_q_m', 'cnpg_q_d_milliseconds', 'cnpg_q_h', 'cnpg_q_renamed']);
    const text = [...set.families.values()].map(renderFamily).join('');
    assert.match(text, /^# HELP cnpg_q_g a gauge\n# TYPE cnpg_q_g gauge\ncnpg_q_g\{db="a\\"b\\\\c\\nd"\} 1\.5$/m);
    assert.match(text, /^# TYPE cnpg_q_c counter\ncnpg_q_c\{db=".*"\} 7$/m);
    assert.match(text, /^cnpg_q_m\{db=".*"\} 0$/m);
    assert.match(text, /^cnpg_q_d_milliseconds\{db=".*"\} 1500$/m);
    assert.match(text, /^cnpg_q_h_bucket\{db=".*",le="0\.1"\} 3\ncnpg_q_h_bucket\{db=".*",le="1"\} 5\ncnpg_q_h_bucket\{db=".*",le="\+Inf"\} 6\ncnpg_q_h_sum\{db=".*"\} 2\.5\ncnpg_q_h_count\{db=".*"\} 6$/m);
    assert.doesNotMatch(text, /skip/);
  });

  it('refuses a result whose shape does not match the mapping, and drops duplicate series', () => {
    const [def] = parseQueries('q:\n  query: x\n  metrics:\n    - v: {usage: GAUGE}\n', 't').queries;
    assert.ok(def);
    assert.throws(() => { addResult(new FamilySet(), def, [field('v', 23), field('w', 23)], []); }, QueryShapeError);
    assert.throws(() => { addResult(new FamilySet(), def, [field('w', 23)], []); }, /no column named "v"/);
    const set = new FamilySet();
    addResult(set, def, [field('v', 23)], [['1'], ['2']]);
    assert.equal(set.families.get('cnpg_q_v')?.samples.length, 1, 'the same series twice would make Prometheus reject the scrape');
  });

  it('renders NaN and infinities the way Prometheus parses them', () => {
    const family: Family = { name: 'x', help: 'multi\nline \\ help', type: 'gauge', histograms: [], samples: [
      { labels: [], value: NaN }, { labels: [['a', '1']], value: Infinity }, { labels: [['a', '2']], value: -Infinity },
    ] };
    assert.equal(renderFamily(family), '# HELP x multi\\nline \\\\ help\n# TYPE x gauge\nx NaN\nx{a="1"} +Inf\nx{a="2"} -Inf\n');
  });
});

describe('metrics and probes: Cluster value syntaxes', () => {
  it('parses metricsQueriesTTL as a Go duration', () => {
    assert.equal(parseGoDuration('30s'), 30);
    assert.equal(parseGoDuration('1m30s'), 90);
    assert.equal(parseGoDuration('500ms'), 0.5);
    assert.equal(parseGoDuration('0'), 0);
    assert.equal(parseGoDuration('1.5h'), 5400);
    assert.equal(parseGoDuration('30'), undefined);
    assert.equal(parseGoDuration('-5s'), undefined);
    assert.equal(parseGoDuration('5 s'), undefined);
  });

  it('parses maximumLag as a Kubernetes quantity of bytes', () => {
    assert.equal(parseQuantity(1024), 1024);
    assert.equal(parseQuantity('64Mi'), 64 * 2 ** 20);
    assert.equal(parseQuantity('1G'), 1e9);
    assert.equal(parseQuantity('1e3'), 1000);
    assert.equal(parseQuantity('1.5Ki'), 1536);
    assert.equal(parseQuantity('lots'), undefined);
    assert.equal(parseQuantity('-1'), undefined);
    assert.equal(parseQuantity('1Xi'), undefined);
  });

  it('derives each query timeout from the TTL, so a collection fits in its period', () => {
    assert.equal(queryTimeoutMs(30), 10_000);
    assert.equal(queryTimeoutMs(4), 2000);
    assert.equal(queryTimeoutMs(1), 1000);
    assert.equal(queryTimeoutMs(0), 5000);
  });
});

describe('metrics: the query cache runs its schedule only while someone scrapes', () => {
  it('stops collecting after idleTtls TTLs without a scrape; the next scrape collects at once and restarts it', async () => {
    let clock = 1_000_000;
    let collections = 0;
    const collector = { collect: () => Promise.resolve(`# collection ${++collections}\n`), setConfigErrors: () => undefined } as unknown as Collector;
    const cache = new MetricsCache(
      {
        collector,
        state: Object.assign(new InstanceState('demo', 'demo-1'), { accepting: true, phase: 'running' }),
        monitoring: () => ({ queriesTtlSeconds: 0.01, customQueries: [] }) as unknown as MonitoringSpec,
        loadQueries: () => Promise.resolve({ queries: [], errors: [] }),
        logger: pino({ level: 'silent' }),
      },
      () => clock,
    );
    try {
      await cache.start();
      await eventually(() => collections >= 2, 'the schedule runs at first (start-up counts as a scrape)');
      clock += idleTtls * 10 + 1; // nobody scraped for more than idleTtls TTLs
      await sleep(100); // the next tick sees it and stops
      const stoppedAt = collections;
      await sleep(100);
      assert.equal(collections, stoppedAt, 'no SQL while nobody scrapes');

      clock += 1;
      assert.equal(await cache.snapshot(), `# collection ${stoppedAt + 1}\n`, 'a scrape after the pause collects first');
      await eventually(() => collections > stoppedAt + 2, 'the schedule runs again while scrapes come');
    } finally {
      cache.stop();
    }
  });
});

async function eventually(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(5);
  }
}
