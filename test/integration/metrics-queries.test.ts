import { strict as assert } from 'node:assert';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { parseQueries } from '../../src/metrics/queries-parser.js';
import { parseVersionRange, postgresSemver } from '../../src/metrics/matching.js';
import { writeClusterYaml, writeConfigDir, type TestClusterOptions } from '../../test-kit/config.js';
import { eventually, freePort, handToPostgres, isRoot, makeTempDir, removeTempDir, sleep } from '../../test-kit/env.js';
import { connect, killPostmaster, PgimProcess, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';

const cnpgDefaultMonitoring = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'shared', 'data', 'cloudnative-pg', 'default-monitoring.yaml');
const pgBin = process.env.PGIM_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** One metric sample line: name, labels, value. */
interface SampleLine {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function samples(text: string): SampleLine[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((line) => {
    // eslint-disable-next-line security/detect-unsafe-regex -- test input is pgim's own exposition text
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`unparsable sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const m of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1] ?? ''] = (m[2] ?? '').replace(/\\(.)/g, '$1');
    return { name: match[1] ?? '', labels, value: Number(match[4]) };
  });
}

/** promtool / prometheus from Debian's `prometheus` package: installed when missing and running as root. */
function prometheusTools(): boolean {
  const has = (): boolean => spawnSync('sh', ['-c', 'command -v promtool && command -v prometheus'], { stdio: 'ignore' }).status === 0;
  if (has()) return true;
  if (!isRoot) return false;
  execFileSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null'], { stdio: 'inherit' });
  return has();
}

const extraQueries = `
fails:
  query: SELECT 1 / 0 AS v
  metrics:
    - v: {usage: GAUGE, description: "never produced"}
too_slow:
  query: SELECT pg_catalog.pg_sleep(30) IS NULL AS v
  metrics:
    - v: {usage: GAUGE, description: "cut by statement_timeout"}
writes:
  query: SELECT pg_catalog.nextval('public.itest_seq') AS v
  metrics:
    - v: {usage: GAUGE, description: "a read-only transaction refuses it"}
two_statements:
  query: "SELECT 1 AS v; CREATE TABLE public.pwned (x int)"
  metrics:
    - v: {usage: GAUGE, description: "one statement only"}
escapes_transaction:
  query: "COMMIT; CREATE TABLE public.pwned2 (x int); SELECT 1 AS v"
  metrics:
    - v: {usage: GAUGE, description: "cannot leave the read-only transaction"}
session:
  target_databases: ['a*', 'postgres']
  query: |
    SELECT pg_catalog.current_database() AS datname, session_user::text AS session_role, current_user::text AS query_role,
           pg_catalog.current_setting('search_path') AS search_path, pg_catalog.current_setting('transaction_read_only') AS read_only,
           pg_catalog.current_setting('statement_timeout') AS timeout, 1 AS up
  metrics:
    - datname: {usage: LABEL}
    - session_role: {usage: LABEL}
    - query_role: {usage: LABEL}
    - search_path: {usage: LABEL}
    - read_only: {usage: LABEL}
    - timeout: {usage: LABEL}
    - up: {usage: GAUGE, description: "how monitoring queries run"}
`;

describe('metrics: CNPG queries, scheduled collection, Prometheus (real PostgreSQL 15)', function () {
  this.timeout(180_000);
  const superPassword = 'super-metrics-pw';
  let base: string;
  let paths: PgimPaths;
  let ports: PgimPorts;
  let pgim: PgimProcess;
  let cluster: TestClusterOptions;
  let receiver: ChildProcess | undefined;
  const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${ports.metricsPort}/metrics`)).text();
  const value = (text: string, name: string, labels: Record<string, string> = {}): number | undefined =>
    samples(text).find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  const writeConfigMap = async (name: string, text: string): Promise<void> => {
    await mkdir(join(paths.configDir, 'configmaps', name), { recursive: true });
    await writeFile(join(paths.configDir, 'configmaps', name, 'queries'), text);
    await handToPostgres(join(paths.configDir, 'configmaps'));
  };

  before(async function () {
    if (!existsSync(cnpgDefaultMonitoring)) {
      throw new Error(`CNPG's default-monitoring.yaml is missing at ${cnpgDefaultMonitoring}: the shared/ folder must sit beside the repository`);
    }
    base = await makeTempDir('metrics');
    paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    cluster = {
      enableSuperuserAccess: true,
      pgHba: ['host replication postgres 127.0.0.1/32 scram-sha-256'],
      spec: {
        monitoring: {
          disableDefaultQueries: true,
          metricsQueriesTTL: '2s',
          customQueriesConfigMap: [{ name: 'cnpg-default-monitoring', key: 'queries' }, { name: 'extra', key: 'queries' }, { name: 'broken', key: 'queries' }],
        },
      },
    };
    await writeConfigDir(paths.configDir, cluster, { appPassword: 'app-metrics-pw', superuserPassword: superPassword });
    // CNPG's file is read from shared/ at test time and mounted like the operator's ConfigMap; never copied into the repo.
    const configMap = parse(readFileSync(cnpgDefaultMonitoring, 'utf8')) as { data: { queries: string } };
    await writeConfigMap('cnpg-default-monitoring', configMap.data.queries);
    await writeConfigMap('extra', extraQueries);
    await writeConfigMap('broken', 'pg_x:\n  query: [unclosed\n');
    await handToPostgres(paths.configDir);
    pgim = new PgimProcess('run', paths, ports);
    await pgim.waitReady();
    // A physical slot and a streaming client, so the slot and replication queries have rows to show.
    const su = await connect(ports.pgPort, 'postgres', superPassword, 'postgres');
    try {
      await su.query("SELECT pg_catalog.pg_create_physical_replication_slot('itest_slot', true)");
    } finally {
      await su.end();
    }
    // A sequence the monitoring role may use: only the read-only transaction stops nextval().
    const app = await connect(ports.pgPort, 'postgres', superPassword, 'app');
    try {
      await app.query('CREATE SEQUENCE public.itest_seq; GRANT USAGE, UPDATE ON SEQUENCE public.itest_seq TO pg_monitor');
    } finally {
      await app.end();
    }
    await mkdir(join(base, 'receivewal'));
    await handToPostgres(join(base, 'receivewal'));
    receiver = spawn(join(pgBin, 'pg_receivewal'), ['-h', '127.0.0.1', '-p', String(ports.pgPort), '-U', 'postgres', '-D', join(base, 'receivewal'), '--slot', 'itest_slot', '-n'], {
      env: { ...process.env, PGPASSWORD: superPassword, PGAPPNAME: 'itest-receiver' },
      stdio: 'ignore',
    });
  });

  afterEach(async function () {
    const exited = await Promise.race([pgim.exited, sleep(10).then(() => undefined)]);
    if (this.currentTest?.state === 'failed' && exited) console.log(`pgim exited ${JSON.stringify(exited)}:\n${pgim.lines.slice(-30).join('\n')}`);
  });

  after(async () => {
    receiver?.kill('SIGTERM');
    const exit = await pgim.stop().catch(() => undefined);
    if (!exit) await killPostmaster(paths.pgdata);
    await removeTempDir(base);
  });

  it("serves every family of CNPG's real default-monitoring.yaml that applies to PostgreSQL 15, with samples", async () => {
    const queries = parseQueries((parse(readFileSync(cnpgDefaultMonitoring, 'utf8')) as { data: { queries: string } }).data.queries, 'cnpg').queries;
    const v15 = postgresSemver(150000 + 18);
    const applicable = queries.filter((q) => q.runOnServer === undefined || parseVersionRange(q.runOnServer)?.(v15) === true);
    assert.ok(applicable.length >= 11, `${applicable.length} queries apply`);
    const expected = applicable.flatMap((q) => q.columns.filter((c) => c.metricName !== '').map((c) => c.metricName));
    const text = await eventually(async () => {
      const t = await scrape();
      const present = new Set(samples(t).map((s) => s.name));
      return expected.every((name) => present.has(name)) && present.has('cnpg_pg_stat_replication_sent_diff_bytes') ? t : undefined;
    }, 30_000, 'every CNPG family with a sample');
    assert.equal(value(text, 'cnpg_pg_replication_slots_active', { slot_name: 'itest_slot' }), 1);
    assert.equal(value(text, 'cnpg_pg_stat_replication_backend_xmin_age', { usename: 'postgres', application_name: 'itest-receiver' }) !== undefined, true);
    assert.equal(value(text, 'cnpg_collector_up', { cluster: 'itest' }), 1);
    assert.equal(value(text, 'cnpg_collector_lo_pages', { datname: 'app' }), 0, 'the always-injected query runs on every database');
    assert.ok((value(text, 'cnpg_pg_settings_setting', { name: 'max_connections' }) ?? 0) >= 30);
    assert.equal(value(text, 'cnpg_collector_postgres_version', { cluster: 'itest' }) !== undefined, true);
    for (const name of ['cnpg_collector_collections_total', 'cnpg_collector_last_collection_error', 'cnpg_collector_wal_records', 'cnpg_collector_wal_bytes',
      'cnpg_collector_pg_wal', 'cnpg_collector_pg_wal_archive_status', 'cnpg_collector_sync_replicas', 'cnpg_collector_replica_mode', 'cnpg_collector_fencing_on',
      'process_cpu_seconds_total', 'nodejs_heap_size_used_bytes']) {
      assert.ok(samples(text).some((s) => s.name === name), name);
    }
    for (const name of ['cnpg_pg_stat_bgwriter_17_buffers_clean', 'cnpg_pg_stat_checkpointer_checkpoints_timed']) {
      assert.ok(!samples(text).some((s) => s.name === name), `${name} is for PostgreSQL 17`);
    }
  });

  it('runs queries as cnpg_metrics_exporter (peer), read-only, as pg_monitor, with a pinned search_path and timeout, on matching databases', async () => {
    const text = await scrape();
    const rows = samples(text).filter((s) => s.name === 'cnpg_session_up');
    assert.deepEqual(rows.map((r) => r.labels.datname).sort(), ['app', 'postgres']);
    for (const r of rows) {
      assert.equal(r.labels.session_role, 'cnpg_metrics_exporter');
      assert.equal(r.labels.query_role, 'pg_monitor');
      assert.equal(r.labels.search_path, 'pg_catalog, public, pg_temp');
      assert.equal(r.labels.read_only, 'on');
      assert.equal(r.labels.timeout, '1s', 'half the 2 s TTL, at least 1 s');
    }
  });

  it('runs a query on more databases than max_connections allows: one session at a time, every database answers (bench S1)', async () => {
    // max_connections is 30: a collection that kept a session on every matching database until its end failed here.
    const names = Array.from({ length: 32 }, (_, i) => `a_many_${i}`);
    const su = await connect(ports.pgPort, 'postgres', superPassword, 'postgres');
    try {
      for (const name of names) await su.query(`CREATE DATABASE ${name}`);
      const text = await eventually(async () => {
        const current = await scrape();
        const up = samples(current).filter((s) => s.name === 'cnpg_session_up').map((s) => s.labels.datname);
        return names.every((n) => up.includes(n)) ? current : undefined;
      }, 60_000, 'the session query on all 32 new databases');
      for (const database of [...names, 'app', 'postgres']) {
        assert.equal(value(text, 'pgim_metrics_query_errors_total', { query: 'session', database }), 0, `no failed run on ${database}`);
      }
    } finally {
      for (const name of names) await su.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await su.end();
    }
  });

  it('counts a failing, slow, writing or multi-statement query per query, and keeps every other family (c5 #51)', async () => {
    const bad = ['fails', 'too_slow', 'writes', 'two_statements', 'escapes_transaction'];
    let text = '';
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      text = await scrape();
      if (bad.every((q) => (value(text, 'pgim_metrics_query_errors_total', { query: q, database: 'app' }) ?? 0) >= 1)) break;
      await sleep(200);
    }
    for (const q of bad) {
      assert.ok((value(text, 'pgim_metrics_query_errors_total', { query: q, database: 'app' }) ?? 0) >= 1, `errors of ${q}: ${pgim.lines.filter((l) => l.includes(q)).slice(-2).join('\n')}`);
    }
    assert.equal(value(text, 'pgim_metrics_query_errors_total', { query: 'backends', database: 'app' }), 0);
    assert.ok((value(text, 'pgim_metrics_query_duration_seconds', { query: 'too_slow', database: 'app' }) ?? 99) < 2, 'cut by statement_timeout');
    assert.equal(value(text, 'cnpg_collector_last_collection_error'), 1);
    assert.ok(samples(text).some((s) => s.name === 'cnpg_backends_total'), 'other families stay');
    assert.ok(!samples(text).some((s) => s.name === 'cnpg_fails_v'));
    const su = await connect(ports.pgPort, 'postgres', superPassword, 'app');
    try {
      const { rows } = await su.query<{ n: string }>("SELECT count(*)::text AS n FROM pg_class WHERE relname IN ('pwned', 'pwned2')");
      assert.equal(rows[0]?.n, '0', 'no statement outside the read-only transaction ran');
    } finally {
      await su.end();
    }
    assert.equal(value(text, 'pgim_metrics_config_errors', { source: 'configmap broken/queries' }), 1, 'bad YAML is reported, not fatal');
    assert.equal(value(text, 'pgim_metrics_config_errors', { source: 'configmap extra/queries' }), 0);
    assert.equal(value(text, 'cnpg_collector_up', { cluster: 'itest' }), 1);
  });

  it('scrapes read the cache: 100 scrapes run no SQL; the schedule runs each query once per TTL (CNPG #4962)', async () => {
    const runs = async (): Promise<number> => value(await scrape(), 'pgim_metrics_query_runs_total', { query: 'backends', database: 'app' }) ?? NaN;
    // Align just after a collection so a window of well under the 2 s TTL holds none.
    const initial = await runs();
    const before = await eventually(async () => {
      const current = await runs();
      return current > initial ? current : undefined;
    }, 20_000, 'a collection');
    const started = Date.now();
    await Promise.all(Array.from({ length: 100 }, () => scrape()));
    const elapsed = Date.now() - started;
    const after = await runs();
    if (elapsed < 1500) assert.equal(after, before, `100 scrapes in ${elapsed} ms ran no query`);
    await sleep(6_200);
    const later = await runs();
    assert.ok(later - after >= 2 && later - after <= 4, `${later - after} runs in 6.2 s at a 2 s TTL, without any scrape`);
  });

  it('picks up a changed ConfigMap without a restart; removing a source drops its families', async () => {
    const pid = pgim.pid;
    await writeConfigMap('extra', `${extraQueries}\nadded:\n  query: SELECT 42 AS answer\n  metrics:\n    - answer: {usage: GAUGE, description: "new"}\n`);
    await eventually(async () => (value(await scrape(), 'cnpg_added_answer') === 42 ? true : undefined), 10_000, 'the new query');
    cluster = { ...cluster, spec: { monitoring: { disableDefaultQueries: true, metricsQueriesTTL: '2s', customQueriesConfigMap: [{ name: 'extra', key: 'queries' }] } } };
    await writeClusterYaml(paths.configDir, cluster);
    await eventually(async () => (samples(await scrape()).some((s) => s.name === 'cnpg_backends_total') ? undefined : true), 10_000, 'CNPG families gone');
    assert.equal(pgim.pid, pid);
  });

  it('reads queries from Secrets (customQueriesSecret) like ConfigMaps: loading, errors, metrics, live changes (issue 19, item 4)', async () => {
    const writeSecret = async (name: string, text: string): Promise<void> => {
      await mkdir(join(paths.configDir, 'secrets', name), { recursive: true });
      await writeFile(join(paths.configDir, 'secrets', name, 'queries'), text);
      await handToPostgres(join(paths.configDir, 'secrets'));
    };
    const query = (name: string, value: number): string => `${name}:\n  query: SELECT ${value} AS answer\n  metrics:\n    - answer: {usage: GAUGE, description: "from a Secret"}\n`;
    await writeSecret('secret-queries', query('from_secret', 7) + query('shadowed', 2));
    await writeSecret('broken-secret', 'pg_x:\n  query: [unclosed\n');
    await writeConfigMap('shadow', query('shadowed', 1));
    cluster = {
      ...cluster,
      spec: {
        monitoring: {
          disableDefaultQueries: true,
          metricsQueriesTTL: '2s',
          customQueriesConfigMap: [{ name: 'shadow', key: 'queries' }],
          customQueriesSecret: [{ name: 'secret-queries', key: 'queries' }, { name: 'broken-secret', key: 'queries' }, { name: 'absent-secret', key: 'queries' }],
        },
      },
    };
    await writeClusterYaml(paths.configDir, cluster);
    const text = await eventually(async () => {
      const t = await scrape();
      return value(t, 'cnpg_from_secret_answer') === 7 ? t : undefined;
    }, 15_000, 'the query from the Secret');
    assert.equal(value(text, 'cnpg_shadowed_answer'), 2, 'a Secret query replaces a ConfigMap query of the same name (CNPG order)');
    assert.equal(value(text, 'pgim_metrics_config_errors', { source: 'secret broken-secret/queries' }), 1, 'bad YAML in a Secret is reported, not fatal');
    assert.equal(value(text, 'pgim_metrics_config_errors', { source: 'secret absent-secret/queries' }), 1, 'a missing Secret is reported');
    assert.equal(value(text, 'pgim_metrics_config_errors', { source: 'secret secret-queries/queries' }), 0);
    await writeSecret('secret-queries', query('from_secret', 8));
    await eventually(async () => (value(await scrape(), 'cnpg_from_secret_answer') === 8 ? true : undefined), 15_000, 'the changed Secret');
  });

  it('passes `promtool check metrics` (only CNPG-named query families may break the naming lint)', async function () {
    if (!prometheusTools()) {
      if (process.env.CI === 'true') throw new Error('promtool is missing under CI: install the Debian package prometheus');
      console.warn('      SKIPPED LOUDLY: promtool missing and not root (apt-get install prometheus)');
      this.skip();
    }
    cluster = { ...cluster, spec: { monitoring: { metricsQueriesTTL: '2s' } } };
    await writeClusterYaml(paths.configDir, cluster);
    const text = await eventually(async () => {
      const t = await scrape();
      return samples(t).some((s) => s.name === 'cnpg_backends_total') ? t : undefined;
    }, 15_000, "pgim's default queries");
    const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.notEqual(result.status, 1, `promtool could not parse the output:\n${result.stderr}`);
    // CNPG's family names predate the lint (e.g. counters without _total); they are kept so existing
    // dashboards work. Anything else, and every cnpg_collector_*, pgim_* and process family, must be clean.
    const allowed = /^cnpg_(?!collector_)\w+ (counter metrics should have "_total" suffix|non-counter metrics should not have "_total" suffix|non-histogram and non-summary metrics should not have "_count" suffix)$/;
    const problems = `${result.stdout}${result.stderr}`.split('\n').filter((l) => l.trim() !== '');
    assert.deepEqual(problems.filter((l) => !allowed.test(l)), [], 'lint problems outside CNPG-named query families');
    cluster = { ...cluster, spec: { monitoring: { metricsQueriesTTL: '2s', disableDefaultQueries: true } } };
    await writeClusterYaml(paths.configDir, cluster);
    const own = await eventually(async () => {
      const t = await scrape();
      return samples(t).some((s) => s.name === 'cnpg_backends_total') ? undefined : t;
    }, 15_000, 'default queries off');
    const strict = spawnSync('promtool', ['check', 'metrics'], { input: own, encoding: 'utf8' });
    assert.equal(strict.status, 0, `built-in families alone are lint-clean:\n${strict.stdout}${strict.stderr}`);
  });

  it('is scraped by a real Prometheus server, which reads cnpg_collector_up 1', async function () {
    if (!prometheusTools()) {
      if (process.env.CI === 'true') throw new Error('prometheus is missing under CI: install the Debian package prometheus');
      console.warn('      SKIPPED LOUDLY: prometheus missing and not root (apt-get install prometheus)');
      this.skip();
    }
    const dir = join(base, 'prometheus');
    await mkdir(dir);
    const webPort = await freePort();
    await writeFile(join(dir, 'prometheus.yml'), [
      'global:', '  scrape_interval: 1s', '  scrape_timeout: 1s', 'scrape_configs:', '  - job_name: pgim', '    static_configs:',
      `      - targets: ['127.0.0.1:${ports.metricsPort}']`, '',
    ].join('\n'));
    const server = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${webPort}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const log: string[] = [];
    server.stderr.on('data', (d: Buffer) => log.push(d.toString()));
    try {
      const up = await eventually(async () => {
        const res = await fetch(`http://127.0.0.1:${webPort}/api/v1/query?query=${encodeURIComponent('cnpg_collector_up{cluster="itest"}')}`);
        const body = (await res.json()) as { data?: { result?: { value: [number, string] }[] } };
        return body.data?.result?.[0]?.value[1];
      }, 60_000, 'Prometheus to scrape pgim');
      assert.equal(up, '1');
      const health = await fetch(`http://127.0.0.1:${webPort}/api/v1/targets`);
      const targets = (await health.json()) as { data: { activeTargets: { health: string; lastError: string }[] } };
      assert.deepEqual(targets.data.activeTargets.map((t) => [t.health, t.lastError]), [['up', '']], log.join(''));
    } finally {
      server.kill('SIGTERM');
      await new Promise((resolve) => server.once('exit', resolve));
    }
  });
});
