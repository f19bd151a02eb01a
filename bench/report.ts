import type { BenchmarkId, Sample, Unit } from './benchmarks/types.js';
import { benchmarks } from './benchmarks/index.js';
import type { BenchResult } from './harness.js';
import { curveGoals, curvePanels, curvesOf, curvesTable } from './curves.js';
import { maximum, median, minimum } from './stats.js';

export interface SummaryRow {
  benchmark: BenchmarkId;
  metric: string;
  system: string;
  unit: Unit;
  runs: number;
  median: number;
  min: number;
  max: number;
  ratioToFloor: number | undefined;
  ratioToPatroni: number | undefined;
}

export type Verdict = 'PASS' | 'FAIL' | 'n/a';

export interface GoalResult {
  benchmark: BenchmarkId;
  goal: string;
  measured: string;
  verdict: Verdict;
}

/**
 * Systems in a fixed order: the floor, pgim (files mode) and its variants, Patroni, then pgim in Kubernetes mode
 * beside CloudNativePG's manager (the like-for-like pair).
 */
function systemRank(system: string): number {
  if (system === 'floor') return 0;
  if (system === 'pgim') return 1;
  if (system.startsWith('pgim-k8s')) return 4;
  if (system.startsWith('pgim')) return 2;
  if (system.startsWith('cnpg')) return 5;
  return 3;
}

function benchmarkRank(id: BenchmarkId): number {
  return benchmarks.findIndex((b) => b.id === id);
}

/** Median, min and max per benchmark, metric and system over the measured runs (warm-ups and details left out). */
export function summarise(samples: readonly Sample[]): SummaryRow[] {
  const groups = new Map<string, Sample[]>();
  const metricOrder: string[] = [];
  for (const sample of samples) {
    if (sample.warmup || sample.detail === true) continue;
    const metricKey = `${sample.benchmark}\u0000${sample.metric}`;
    if (!metricOrder.includes(metricKey)) metricOrder.push(metricKey);
    const key = `${metricKey}\u0000${sample.system}`;
    const group = groups.get(key) ?? [];
    group.push(sample);
    groups.set(key, group);
  }
  const rows: SummaryRow[] = [];
  for (const group of groups.values()) {
    const first = group[0];
    if (first === undefined) continue;
    const values = group.map((s) => s.value);
    rows.push({
      benchmark: first.benchmark,
      metric: first.metric,
      system: first.system,
      unit: first.unit,
      runs: values.length,
      median: median(values),
      min: minimum(values),
      max: maximum(values),
      ratioToFloor: undefined,
      ratioToPatroni: undefined,
    });
  }
  const find = (row: SummaryRow, system: string): SummaryRow | undefined =>
    rows.find((r) => r.benchmark === row.benchmark && r.metric === row.metric && r.system === system);
  const ratio = (value: number, base: SummaryRow | undefined): number | undefined =>
    base === undefined || base.median === 0 ? undefined : value / base.median;
  for (const row of rows) {
    row.ratioToFloor = ratio(row.median, find(row, 'floor'));
    row.ratioToPatroni = ratio(row.median, find(row, 'patroni'));
  }
  return rows.sort(
    (a, b) =>
      benchmarkRank(a.benchmark) - benchmarkRank(b.benchmark) ||
      metricOrder.indexOf(`${a.benchmark}\u0000${a.metric}`) - metricOrder.indexOf(`${b.benchmark}\u0000${b.metric}`) ||
      systemRank(a.system) - systemRank(b.system),
  );
}

export function formatValue(value: number, unit: Unit): string {
  if (!Number.isFinite(value)) return '–';
  switch (unit) {
    case 'ms':
      return `${value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0)} ms`;
    case 'MB':
      return `${value.toFixed(1)} MB`;
    case 'req/s':
    case 'tx/s':
    case 'lines/s':
      return `${value.toFixed(0)} ${unit}`;
    case 'count':
    case 'threads':
      return Number.isInteger(value) ? String(value) : value.toFixed(1);
  }
}

function formatRatio(ratio: number | undefined): string {
  return ratio === undefined ? '–' : `${ratio.toFixed(2)}×`;
}

function rowFor(rows: readonly SummaryRow[], benchmark: BenchmarkId, metric: string, system: string): SummaryRow | undefined {
  return rows.find((r) => r.benchmark === benchmark && r.metric === metric && r.system === system);
}

/** "in no run" / "in every run" / "in some runs" from a 0/1 count's min and max. */
function leftText(row: SummaryRow | undefined): string {
  if (row === undefined) return '–';
  if (row.max === 0) return 'in no run';
  return row.min === 1 ? 'in every run' : 'in some runs';
}

/** Issue 22's idle goals (B3 files mode, B3k Kubernetes mode: against Patroni in the same windows) and B7. */
function idleGoals(rows: readonly SummaryRow[]): GoalResult[] {
  const mb = (row: SummaryRow | undefined): string => (row === undefined ? '–' : formatValue(row.median, 'MB'));
  const cpu = (benchmark: BenchmarkId, system: string): SummaryRow | undefined =>
    rows.find((r) => r.benchmark === benchmark && r.system === system && r.metric.startsWith('CPU per '));
  const judge = (ok: boolean | undefined): Verdict => (ok === undefined ? 'n/a' : ok ? 'PASS' : 'FAIL');
  const goals: GoalResult[] = [];
  for (const [benchmark, system, rssGoal] of [['B3', 'pgim', 55], ['B3', 'pgim-k8s', 60], ['B3k', 'pgim (Kubernetes mode)', 60]] as const) {
    const rss = rowFor(rows, benchmark, 'RSS', system);
    const pss = rowFor(rows, benchmark, 'PSS', system);
    const mine = cpu(benchmark, system);
    const patroni = cpu(benchmark, 'patroni');
    if (rss === undefined) continue;
    goals.push({
      benchmark,
      goal: `${system} idle RSS under ${rssGoal} MB${system === 'pgim' ? ', PSS under 30 MB' : ''}, CPU per idle window (one scrape / 30 s) at most Patroni's`,
      measured: `RSS ${mb(rss)}, PSS ${mb(pss)}; CPU ${mine === undefined ? '–' : formatValue(mine.median, 'ms')} vs Patroni ${patroni === undefined ? '–' : formatValue(patroni.median, 'ms')}`,
      verdict: judge(mine && patroni ? rss.median < rssGoal && (system !== 'pgim' || (pss !== undefined && pss.median < 30)) && mine.median <= patroni.median : undefined),
    });
  }
  const b7Status = rowFor(rows, 'B7', 'backend kill -9 -> status document reports it', 'pgim');
  const b7Metrics = rowFor(rows, 'B7', 'backend kill -9 -> metrics report it', 'pgim');
  if (b7Status !== undefined || b7Metrics !== undefined) {
    goals.push({
      benchmark: 'B7',
      goal: 'a backend killed (the postmaster restarts): pgim /pg/status and its metrics report it within 1 s',
      measured: `/pg/status ${b7Status === undefined ? '–' : formatValue(b7Status.max, 'ms')}, metrics ${b7Metrics === undefined ? '–' : formatValue(b7Metrics.max, 'ms')} (slowest run)`,
      verdict: judge(b7Status && b7Metrics ? b7Status.max < 1000 && b7Metrics.max < 1000 : undefined),
    });
  }
  return goals;
}

/** The goals of issue 10, judged on medians (B4 on the worst request seen at 32 clients). */
export function evaluateGoals(rows: readonly SummaryRow[]): GoalResult[] {
  const goals: GoalResult[] = [];
  const ms = (row: SummaryRow | undefined): string => (row === undefined ? '–' : formatValue(row.median, row.unit));
  const judge = (ok: boolean | undefined): Verdict => (ok === undefined ? 'n/a' : ok ? 'PASS' : 'FAIL');

  const b1Pgim = rowFor(rows, 'B1', 'start -> read-write', 'pgim');
  const b1Floor = rowFor(rows, 'B1', 'start -> read-write', 'floor');
  const b1PgCtl = rowFor(rows, 'B1', 'start -> pg_ctl start -w returned', 'floor');
  const b1Timelines = rowFor(rows, 'B1', 'new timelines per start', 'pgim');
  goals.push({
    benchmark: 'B1',
    goal: 'pgim start -> read-write within 0.2 s of the floor (pg_ctl start -w), no new timeline',
    measured: `pgim ${ms(b1Pgim)} vs floor ${ms(b1Floor)} (pg_ctl -w returned at ${ms(b1PgCtl)}); new timelines max ${b1Timelines === undefined ? '–' : String(b1Timelines.max)}`,
    verdict: judge(b1Pgim && b1Floor && b1Timelines ? b1Pgim.median <= b1Floor.median + 200 && b1Timelines.max === 0 : undefined),
  });

  const b2Pgim = rowFor(rows, 'B2', 'idle: stop -> manager done', 'pgim');
  const b2Floor = rowFor(rows, 'B2', 'idle: stop -> manager done', 'floor');
  goals.push({
    benchmark: 'B2',
    goal: 'pgim idle SIGTERM -> exit within 0.1 s of pg_ctl stop -m fast',
    measured: `pgim ${ms(b2Pgim)} vs pg_ctl stop -m fast ${ms(b2Floor)}`,
    verdict: judge(b2Pgim && b2Floor ? b2Pgim.median <= b2Floor.median + 100 : undefined),
  });

  const b3Pgim = rowFor(rows, 'B3', 'RSS', 'pgim');
  goals.push({
    benchmark: 'B3',
    goal: 'pgim idle RSS under 70 MB',
    measured: `pgim ${b3Pgim === undefined ? '–' : formatValue(b3Pgim.median, 'MB')} (max ${b3Pgim === undefined ? '–' : formatValue(b3Pgim.max, 'MB')})`,
    verdict: judge(b3Pgim ? b3Pgim.median < 70 : undefined),
  });
  goals.push(...idleGoals(rows));

  // Per run, the slowest request of a cell; the goal takes the median over runs of that (like every other goal),
  // for every c=32 cell. The single worst request of any run is shown too, next to the floor's, to show the noise.
  const c32Max = (system: string): SummaryRow[] => rows.filter((r) => r.benchmark === 'B4' && r.system === system && /c=32 .*: max$/.test(r.metric));
  const highest = (list: SummaryRow[], pick: (r: SummaryRow) => number): SummaryRow | undefined =>
    list.reduce<SummaryRow | undefined>((w, r) => (w === undefined || pick(r) > pick(w) ? r : w), undefined);
  const pgimCells = c32Max('pgim');
  const typical = highest(pgimCells, (r) => r.median);
  const worst = highest(pgimCells, (r) => r.max);
  const floorWorst = highest(c32Max('floor'), (r) => r.max);
  goals.push({
    benchmark: 'B4',
    goal: 'no pgim status request over 100 ms at 32 concurrent clients (median over runs of each c=32 cell\'s slowest request)',
    measured:
      typical === undefined || worst === undefined
        ? '–'
        : `slowest request per run, median ${formatValue(typical.median, 'ms')} (${typical.metric.replace(/: max$/, '')}); ` +
          `worst single request of all runs ${formatValue(worst.max, 'ms')} (floor's worst: ${floorWorst === undefined ? '–' : formatValue(floorWorst.max, 'ms')})`,
    verdict: judge(typical ? typical.median <= 100 : undefined),
  });

  // Plan B5: a cached scrape runs no SQL, so N custom queries cost only their exposition; concurrent scrapes share
  // one collection. (Strictly "independent of N" cannot hold: 200 queries of 10 rows are 30x the series.)
  const b5Cached0 = rowFor(rows, 'B5', 'N=0: scrape, cached (TTL 30 s)', 'pgim');
  const b5Cached200 = rowFor(rows, 'B5', 'N=200: scrape, cached (TTL 30 s)', 'pgim');
  const b5Fresh200 = rowFor(rows, 'B5', 'N=200: scrape, TTL 0 (runs the queries)', 'pgim');
  const b5Pairs = rows.filter((r) => r.benchmark === 'B5' && r.metric.endsWith('collections for 2 concurrent scrapes, TTL 0'));
  const b5WorstPair = b5Pairs.reduce((worst, r) => Math.max(worst, r.max), 0);
  goals.push({
    benchmark: 'B5',
    goal: 'a cached scrape with 200 custom queries under 50 ms (it runs no SQL); 2 concurrent uncached scrapes cost 1 collection',
    measured: `cached: N=0 ${ms(b5Cached0)}, N=200 ${ms(b5Cached200)} (uncached N=200: ${ms(b5Fresh200)}); collections per concurrent pair max ${b5Pairs.length === 0 ? '–' : String(b5WorstPair)}`,
    verdict: judge(b5Cached200 && b5Pairs.length > 0 ? b5Cached200.median < 50 && b5WorstPair <= 1 : undefined),
  });

  const b6Pgim = rowFor(rows, 'B6', 'kill -9 -> accepting', 'pgim');
  const b6Floor = rowFor(rows, 'B6', 'kill -9 -> accepting', 'floor');
  const b6Patroni = rowFor(rows, 'B6', 'kill -9 -> accepting', 'patroni');
  goals.push({
    benchmark: 'B6',
    goal: 'pgim kill -9 -> accepting under 1 s plus crash recovery (the floor: recovery + pg_ctl start at once)',
    measured: `pgim ${ms(b6Pgim)} vs floor ${ms(b6Floor)}; Patroni ${ms(b6Patroni)}`,
    verdict: judge(b6Pgim && b6Floor ? b6Pgim.median < b6Floor.median + 1000 : undefined),
  });

  // Issue 7: on an idle cluster, the new primary takes writes within 1 s of targetPrimary changing and the old
  // primary streams again within 3 s; Patroni's medians beside them (reference: 2.1 s and 3.7 s).
  const pair = (metric: string): [SummaryRow | undefined, SummaryRow | undefined] => [rowFor(rows, 'B8', metric, 'pgim'), rowFor(rows, 'B8', metric, 'patroni')];
  const [swWritable, swWritablePatroni] = pair('switchover: targetPrimary set -> new primary writable');
  const [swStreaming, swStreamingPatroni] = pair('switchover: targetPrimary set -> old primary streaming');
  goals.push({
    benchmark: 'B8',
    goal: 'switchover: new primary writable under 1 s and old primary streaming under 3 s after targetPrimary changes',
    measured: `pgim ${ms(swWritable)} / ${ms(swStreaming)}; Patroni ${ms(swWritablePatroni)} / ${ms(swStreamingPatroni)}`,
    verdict: judge(swWritable && swStreaming ? swWritable.median < 1000 && swStreaming.median < 3000 : undefined),
  });
  const [foWritable, foWritablePatroni] = pair('failover: targetPrimary set -> new primary writable');
  const [foRejoin, foRejoinPatroni] = pair('failover: old primary restarted -> streaming');
  goals.push({
    benchmark: 'B8',
    goal: 'failover: new primary writable under 1 s after targetPrimary changes; restarted old primary streaming under 3 s',
    measured: `pgim ${ms(foWritable)} / ${ms(foRejoin)}; Patroni ${ms(foWritablePatroni)} / ${ms(foRejoinPatroni)}`,
    verdict: judge(foWritable && foRejoin ? foWritable.median < 1000 && foRejoin.median < 3000 : undefined),
  });

  // Issue 8: PostgreSQL must not outlive its manager (no unsupervised primary), and must be gone within 2 s.
  const b9Gone = rowFor(rows, 'B9', 'kill -9 of the manager -> postmaster gone', 'pgim');
  const b9Left = rows.find((r) => r.benchmark === 'B9' && r.system === 'pgim' && r.metric.startsWith('postmaster left running'));
  const b9PatroniLeft = rows.find((r) => r.benchmark === 'B9' && r.system === 'patroni' && r.metric.startsWith('postmaster left running'));
  const b9Timelines = rowFor(rows, 'B9', 'new timelines (kill + restart)', 'pgim');
  goals.push({
    benchmark: 'B9',
    goal: 'kill -9 of pgim: its postmaster gone under 2 s, never left running',
    measured:
      `pgim ${ms(b9Gone)} (max ${b9Gone === undefined ? '–' : formatValue(b9Gone.max, 'ms')}), left running ${leftText(b9Left)}, ` +
      `new timelines max ${b9Timelines === undefined ? '–' : String(b9Timelines.max)}; Patroni left its postmaster running ${leftText(b9PatroniLeft)}`,
    verdict: judge(b9Gone && b9Left ? b9Gone.median < 2000 && b9Left.max === 0 : undefined),
  });

  const b13Pgim = rows.find((r) => r.benchmark === 'B13' && r.system === 'pgim' && r.metric.startsWith('new timelines'));
  const b13Patroni = rows.find((r) => r.benchmark === 'B13' && r.system === 'patroni' && r.metric.startsWith('new timelines'));
  goals.push({
    benchmark: 'B13',
    goal: 'zero new timelines from 10 restarts and 3 crashes',
    measured: `pgim ${b13Pgim === undefined ? '–' : String(b13Pgim.max)}; Patroni ${b13Patroni === undefined ? '–' : String(b13Patroni.max)}`,
    verdict: judge(b13Pgim ? b13Pgim.max === 0 : undefined),
  });
  // Plan B10: a ConfigMap/file change applied within 2 s.
  const b10 = (system: string): SummaryRow | undefined => rowFor(rows, 'B10', 'work_mem changed -> visible to a new session', system);
  const b10Pgim = b10('pgim');
  goals.push({
    benchmark: 'B10',
    goal: 'pgim: a reload-level parameter changed in cluster.yaml is applied within 2 s',
    measured: `pgim ${ms(b10Pgim)} (max ${b10Pgim === undefined ? '–' : formatValue(b10Pgim.max, 'ms')}); floor (ALTER SYSTEM + reload) ${ms(b10('floor'))}; Patroni (PATCH /config) ${ms(b10('patroni'))}`,
    verdict: judge(b10Pgim ? b10Pgim.median < 2000 : undefined),
  });

  // Plan B11: replaced server certificate files -> the new serial served within 2 s, with no reload by anyone. The
  // floor's and Patroni's figures include their operator's reload; without one they are counted as never served.
  const b11 = (system: string): SummaryRow | undefined => rowFor(rows, 'B11', 'server cert replaced -> new serial served', system);
  const b11Alone = (system: string): SummaryRow | undefined =>
    rows.find((r) => r.benchmark === 'B11' && r.system === system && r.metric.startsWith('no reload: new serial not served'));
  const b11Pgim = b11('pgim');
  const b11PgimAlone = b11Alone('pgim');
  goals.push({
    benchmark: 'B11',
    goal: 'pgim: a server certificate replaced in its Secret is served within 2 s of the file change',
    measured:
      `pgim ${ms(b11Pgim)} (max ${b11Pgim === undefined ? '–' : formatValue(b11Pgim.max, 'ms')}), not served in time ${leftText(b11PgimAlone)}; ` +
      `floor (pg_ctl reload) ${ms(b11('floor'))}; Patroni (POST /reload) ${ms(b11('patroni'))}; ` +
      `without a reload not served: floor ${leftText(b11Alone('floor'))}, Patroni ${leftText(b11Alone('patroni'))}`,
    verdict: judge(b11Pgim && b11PgimAlone ? b11Pgim.median < 2000 && b11PgimAlone.max === 0 : undefined),
  });

  // Plan B12: a Secret change -> new password works, old one fails, within 2 s and without a restart.
  const b12New = rowFor(rows, 'B12', 'password changed -> new one works', 'pgim');
  const b12Old = rowFor(rows, 'B12', 'password changed -> old one refused', 'pgim');
  goals.push({
    benchmark: 'B12',
    goal: 'pgim: a rotated Secret password works, and the old one is refused, within 2 s',
    measured: `pgim ${ms(b12New)} / ${ms(b12Old)}; floor (ALTER ROLE) ${ms(rowFor(rows, 'B12', 'password changed -> new one works', 'floor'))}`,
    verdict: judge(b12New && b12Old ? b12New.median < 2000 && b12Old.median < 2000 : undefined),
  });

  const b15Pgim = rowFor(rows, 'B15', 'readiness under load: p99', 'pgim');
  const b15Patroni = rowFor(rows, 'B15', 'readiness under load: p99', 'patroni');
  goals.push({
    benchmark: 'B15',
    goal: 'pgim readiness probe p99 under 50 ms while pgbench saturates the CPUs',
    measured: `pgim ${ms(b15Pgim)} (max ${b15Pgim === undefined ? '–' : formatValue(b15Pgim.max, 'ms')}); Patroni ${ms(b15Patroni)}`,
    verdict: judge(b15Pgim ? b15Pgim.median < 50 : undefined),
  });

  // Issue 8: logging every statement through pgim's pipe costs under 5 % of the floor's throughput.
  const b16Pgim = rowFor(rows, 'B16', 'pgbench -S TPS', 'pgim');
  const b16Floor = rowFor(rows, 'B16', 'pgbench -S TPS', 'floor');
  const b16Patroni = rowFor(rows, 'B16', 'pgbench -S TPS', 'patroni');
  const b16Lines = rowFor(rows, 'B16', 'JSON lines re-emitted per second (during the window)', 'pgim');
  goals.push({
    benchmark: 'B16',
    goal: "pgbench -S TPS with log_statement = 'all' through pgim's log pipe within 5 % of the floor (csvlog to a file)",
    measured:
      `pgim ${b16Pgim === undefined ? '–' : formatValue(b16Pgim.median, 'tx/s')} vs floor ${b16Floor === undefined ? '–' : formatValue(b16Floor.median, 'tx/s')}` +
      ` (${b16Pgim?.ratioToFloor === undefined ? '–' : `${(b16Pgim.ratioToFloor * 100).toFixed(1)} %`}); pgim re-emitted ${b16Lines === undefined ? '–' : formatValue(b16Lines.median, 'lines/s')}; ` +
      `Patroni ${b16Patroni === undefined ? '–' : formatValue(b16Patroni.median, 'tx/s')}`,
    verdict: judge(b16Pgim && b16Floor ? b16Pgim.median >= 0.95 * b16Floor.median : undefined),
  });

  // Issue 16: WAL archiving to S3. pgim's p99 lag under 1 s under pgbench -c 4, and its throughput at least 3x the
  // per-segment barman-cloud-wal-archive call (CNPG with maxParallel 1); pgBackRest async is the peer to beat.
  const b17 = (metric: string, system: string): SummaryRow | undefined => rowFor(rows, 'B17', metric, system);
  const pgim4 = 'pgim (maxParallel 4)';
  const barman = 'barman-cloud-wal-archive per segment';
  const pgbackrest = 'pgBackRest archive-push (async, process-max 4)';
  const b17Lag = b17('archive lag p99 (ms)', pgim4);
  const b17Rate = b17('backlog drained (segments/s)', pgim4);
  const b17Barman = b17('backlog drained (segments/s)', barman);
  const b17Peer = b17('backlog drained (segments/s)', pgbackrest);
  const rate = (row: SummaryRow | undefined): string => (row === undefined ? '–' : `${row.median.toFixed(2)} segments/s`);
  goals.push({
    benchmark: 'B17',
    goal: 'pgim (maxParallel 4): archive lag p99 under 1 s under pgbench -c 4, and at least 3x the throughput of barman-cloud-wal-archive per segment',
    measured: `p99 ${ms(b17Lag)}; pgim ${rate(b17Rate)} vs per-segment Barman ${rate(b17Barman)}; pgBackRest async ${rate(b17Peer)}`,
    verdict: judge(b17Lag && b17Rate && b17Barman ? b17Lag.median < 1000 && b17Rate.median >= 3 * b17Barman.median : undefined),
  });

  // Issue 16: a base backup of a 1 GB database within 10 % of plain barman-cloud-backup.
  const b18Pgim = rowFor(rows, 'B18', 'base backup time (ms)', 'pgim backup');
  const b18Barman = rowFor(rows, 'B18', 'base backup time (ms)', 'barman-cloud-backup');
  const b18Peer = rowFor(rows, 'B18', 'base backup time (ms)', 'pgBackRest backup (full)');
  goals.push({
    benchmark: 'B18',
    goal: 'pgim backup of a 1 GB database within 10 % of plain barman-cloud-backup',
    measured: `pgim ${ms(b18Pgim)} vs barman-cloud-backup ${ms(b18Barman)}; pgBackRest ${ms(b18Peer)}`,
    verdict: judge(b18Pgim && b18Barman ? b18Pgim.median <= 1.1 * b18Barman.median : undefined),
  });
  // Issue 18: synchronous replication. pgim's synchronous TPS at least Patroni's (synchronous_mode on), judged like
  // for like: Patroni encrypting as pgim always does (patroni-tls); Patroni as it comes (clear text) is shown beside
  // it, and both with pgbench's clients in clear text. A failover under writes loses no acknowledged row and the new
  // primary takes writes within 1 s of the failover request.
  const tps = (system: string): SummaryRow | undefined => rowFor(rows, 'B20', 'pgbench -c 4 TPS', system);
  const tpsText = (system: string): string => {
    const row = tps(system);
    return row === undefined ? '–' : formatValue(row.median, 'tx/s');
  };
  const syncPair = (label: string, suffix = ''): string => `${tpsText(`${label} sync${suffix}`)} (async ${tpsText(`${label} async${suffix}`)})`;
  const clearClients = ', clients without TLS';
  const pgimSync = tps('pgim sync');
  const peerSync = tps('patroni-tls sync');
  goals.push({
    benchmark: 'B20',
    goal: "pgbench -c 4: pgim's synchronous (ANY 1 of 2) TPS at least Patroni's synchronous_mode TPS, both encrypting (TLS for clients and replication)",
    measured:
      `pgim sync ${syncPair('pgim')}; Patroni with TLS sync ${syncPair('patroni-tls')}; clients without TLS: pgim ${syncPair('pgim', clearClients)}, ` +
      `Patroni with TLS ${syncPair('patroni-tls', clearClients)}, Patroni in clear text ${syncPair('patroni')}`,
    verdict: judge(pgimSync && peerSync ? pgimSync.median >= peerSync.median : undefined),
  });
  const b21 = (metric: string, system: string): SummaryRow | undefined => rowFor(rows, 'B21', `failover under writes: ${metric}`, system);
  const lostText = (row: SummaryRow | undefined): string => (row === undefined ? '–' : `${row.median} (max ${row.max})`);
  const syncWritable = b21('failover asked -> new primary writable', 'pgim sync');
  const syncLost = b21('acknowledged rows lost', 'pgim sync');
  goals.push({
    benchmark: 'B21',
    goal: 'failover under writes (pgim synchronous): 0 acknowledged rows lost in every run, writable under 1 s after the failover request',
    measured:
      `pgim sync ${ms(syncWritable)}, lost ${lostText(syncLost)}; pgim async ${ms(b21('failover asked -> new primary writable', 'pgim async'))}, lost ${lostText(b21('acknowledged rows lost', 'pgim async'))}; ` +
      `Patroni sync ${ms(b21('failover asked -> new primary writable', 'patroni sync'))}, lost ${lostText(b21('acknowledged rows lost', 'patroni sync'))}`,
    verdict: judge(syncWritable && syncLost ? syncLost.max === 0 && syncWritable.median < 1000 : undefined),
  });
  goals.push(...curveGoals(rows));

  // Issue 25: pgim against CloudNativePG's own instance manager (cnpg), the peer a pgim user would otherwise run. The
  // goal is judged like for like, pgim in Kubernetes mode (pgim-k8s) against cnpg on the same API server; files-mode
  // pgim is judged against it too, as before.
  const versus = (benchmark: BenchmarkId, metric: (system: string) => string | undefined, what: string): void => {
    const cnpgMetric = metric('cnpg');
    const cnpg = cnpgMetric === undefined ? undefined : rowFor(rows, benchmark, cnpgMetric, 'cnpg');
    for (const [system, mode] of [['pgim-k8s', 'in Kubernetes mode (like for like)'], ['pgim', 'in files mode']] as const) {
      const mine = metric(system);
      const pgim = mine === undefined ? undefined : rowFor(rows, benchmark, mine, system);
      goals.push({
        benchmark,
        goal: `pgim ${mode} ${what} than CloudNativePG's instance manager`,
        measured: `${system} ${pgim === undefined ? '–' : formatValue(pgim.median, pgim.unit)} vs cnpg ${cnpg === undefined ? '–' : formatValue(cnpg.median, cnpg.unit)}`,
        verdict: judge(pgim && cnpg ? pgim.median < cnpg.median : undefined),
      });
    }
  };
  versus('B1', () => 'start -> read-write', 'starts (existing PGDATA -> read-write) faster');
  versus('B2', () => 'idle: stop -> manager done', 'stops (idle SIGTERM -> manager exited) faster');
  versus('B3', () => 'PSS', 'idles with a lower PSS');
  versus('B3', (system) => rows.find((r) => r.benchmark === 'B3' && r.system === system && r.metric.startsWith('CPU per'))?.metric, 'uses less CPU when idle');
  return goals;
}

/** The figures of the README's table: one row per benchmark, one column per system. */
const sideBySideMetrics: readonly { benchmark: BenchmarkId; metric: RegExp; title: string }[] = [
  { benchmark: 'B1', metric: /^start -> read-write$/, title: 'B1 start on existing PGDATA → read-write' },
  { benchmark: 'B2', metric: /^idle: stop -> manager done$/, title: 'B2 clean stop, idle → manager exited' },
  { benchmark: 'B2', metric: /^open transaction: stop -> manager done$/, title: 'B2 clean stop, open transaction → manager exited' },
  { benchmark: 'B3', metric: /^RSS$/, title: 'B3 idle RSS' },
  { benchmark: 'B3', metric: /^PSS$/, title: 'B3 idle PSS' },
  { benchmark: 'B3', metric: /^CPU per/, title: 'B3 idle CPU per window (one /metrics scrape per 30 s)' },
  { benchmark: 'B3', metric: /^threads$/, title: 'B3 threads' },
  { benchmark: 'B4', metric: /^readiness c=32 fresh: req\/s$/, title: 'B4 readiness, 32 clients, fresh connections: req/s' },
  { benchmark: 'B4', metric: /^readiness c=32 fresh: p99$/, title: 'B4 readiness, 32 clients, fresh connections: p99' },
  { benchmark: 'B4', metric: /^status JSON c=8 keep-alive: p99$/, title: 'B4 status JSON, 8 clients, keep-alive: p99' },
  { benchmark: 'B6', metric: /^kill -9 -> manager exited/, title: 'B6 postmaster kill -9 → manager exited (cnpg: the kubelet restarts it)' },
  { benchmark: 'B6', metric: /^kill -9 -> read-write$/, title: 'B6 postmaster kill -9 → read-write' },
  { benchmark: 'B6', metric: /^new timelines per crash$/, title: 'B6 new timelines per crash' },
  { benchmark: 'B9', metric: /^kill -9 of the manager -> postmaster gone$/, title: 'B9 manager kill -9 → postmaster gone' },
  { benchmark: 'B9', metric: /^postmaster left running/, title: 'B9 postmaster left running unsupervised (runs)' },
  { benchmark: 'B9', metric: /^manager restarted -> read-write$/, title: 'B9 manager restarted → read-write' },
  { benchmark: 'B10', metric: /^work_mem changed -> visible/, title: 'B10 reload-level parameter changed → applied' },
  { benchmark: 'B11', metric: /^server cert replaced -> new serial served$/, title: 'B11 server certificate replaced → served' },
  { benchmark: 'B12', metric: /^password changed -> new one works$/, title: 'B12 password rotated → new one works' },
  { benchmark: 'B12', metric: /^password changed -> old one refused$/, title: 'B12 password rotated → old one refused' },
  { benchmark: 'B16', metric: /^pgbench -S TPS$/, title: "B16 pgbench -S TPS, log_statement 'all'" },
  { benchmark: 'B16', metric: /^JSON lines per 1000/, title: 'B16 JSON log lines per 1000 transactions' },
];

/** Medians side by side, one column per system measured: the README's benchmark table. */
export function sideBySideTable(rows: readonly SummaryRow[]): string {
  const systems = [...new Set(rows.map((r) => r.system))].sort((a, b) => systemRank(a) - systemRank(b) || a.localeCompare(b));
  const lines = [`| benchmark | ${systems.join(' | ')} |`, `|---|${systems.map(() => '---:').join('|')}|`];
  for (const entry of sideBySideMetrics) {
    const matching = rows.filter((r) => r.benchmark === entry.benchmark && entry.metric.test(r.metric));
    if (matching.length === 0) continue;
    const cell = (system: string): string => {
      const row = matching.find((r) => r.system === system);
      return row === undefined ? '–' : formatValue(row.median, row.unit);
    };
    lines.push(`| ${entry.title} | ${systems.map(cell).join(' | ')} |`);
  }
  return lines.join('\n');
}

export function resultsTable(rows: readonly SummaryRow[]): string {
  const lines = [
    '| benchmark | metric | system | runs | median | min | max | ratio to floor | ratio to Patroni |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.benchmark} | ${r.metric.replaceAll('->', '→')} | ${r.system} | ${r.runs} | ${formatValue(r.median, r.unit)} | ${formatValue(r.min, r.unit)} | ${formatValue(r.max, r.unit)} | ${formatRatio(r.ratioToFloor)} | ${formatRatio(r.ratioToPatroni)} |`,
    );
  }
  return lines.join('\n');
}

export function goalsTable(goals: readonly GoalResult[]): string {
  const lines = ['| goal | measured (medians) | verdict |', '|---|---|---|'];
  for (const g of goals) lines.push(`| ${g.benchmark}: ${g.goal} | ${g.measured} | **${g.verdict}** |`);
  return lines.join('\n');
}

export function renderMarkdown(result: BenchResult, command: string): string {
  const rows = summarise(result.samples);
  const m = result.machine;
  const selected = benchmarks.filter((b) => result.options.only.includes(b.id));
  return [
    `# pgim benchmarks, ${result.startedAt.slice(0, 10)}`,
    '',
    `Command: \`${command}\` (${result.options.runs} runs per benchmark${result.options.warmup ? ' after one warm-up' : ''}${result.options.quick ? ', quick windows' : ''}; systems: ${result.options.systems.join(', ')}).`,
    `Started ${result.startedAt}, finished ${result.finishedAt}.`,
    '',
    `Machine: ${m.cpuModel}, ${m.nproc} vCPU, ${m.memoryMiB} MiB RAM, kernel ${m.kernel}, load average at start ${m.loadAverageAtStart.join(' / ')}` +
      `${m.runAsRoot ? ', run as root (PostgreSQL, Patroni and etcd as postgres)' : ''}.`,
    `Software: Node ${m.node}; ${m.postgres ?? 'postgres ?'}; ${m.patroni ?? 'Patroni not run'}; ${m.etcd ?? 'etcd not run'}; pgim ${m.pgim}.`,
    '',
    '## Results',
    '',
    'Medians, minimum and maximum over the measured runs; ratios are of medians (below 1 = faster or smaller than the reference).',
    '',
    resultsTable(rows),
    '',
    '## Side by side',
    '',
    'Medians of the main figures, one column per system (the README\'s table).',
    '',
    sideBySideTable(rows),
    '',
    '## Goals',
    '',
    goalsTable(evaluateGoals(rows)),
    '',
    ...(curvesOf(rows).length > 0 ? ['## Cost curves', '', curvesTable(curvesOf(rows), formatValue), ''] : []),
    '## What each benchmark measures',
    '',
    ...selected.map((b) => `- **${b.id} ${b.title}**: ${b.measures}`),
    '',
    ...(result.notes.length > 0 ? ['## Notes', '', ...result.notes.map((n) => `- ${n}`), ''] : []),
    ...(result.failures.length > 0 ? ['## Failures', '', ...result.failures.map((f) => `- ${f.benchmark}: ${f.error}`), ''] : []),
  ].join('\n');
}

const systemColours: Readonly<Record<string, string>> = {
  floor: '#9e9e9e',
  pgim: '#1f77b4',
  patroni: '#ff7f0e',
  'pgim-k8s': '#17becf',
  cnpg: '#2ca02c',
};

function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

/** The main figures, one panel each: median bars with a min-max whisker. */
const chartPanels: readonly { benchmark: BenchmarkId; metric: RegExp; title: string }[] = [
  { benchmark: 'B1', metric: /^start -> read-write$/, title: 'B1 start on existing PGDATA → read-write (ms)' },
  { benchmark: 'B2', metric: /^idle: stop -> manager done$/, title: 'B2 idle clean stop → manager done (ms)' },
  { benchmark: 'B3', metric: /^RSS$/, title: 'B3 idle RSS of the manager process (MB)' },
  { benchmark: 'B4', metric: /^readiness c=32 fresh: p99$/, title: 'B4 readiness probe, 32 clients, p99 (ms)' },
  { benchmark: 'B6', metric: /^kill -9 -> read-write$/, title: 'B6 postmaster kill -9 → read-write (ms)' },
  { benchmark: 'B8', metric: /^switchover: targetPrimary set -> new primary writable$/, title: 'B8 switchover → new primary writable (ms)' },
  { benchmark: 'B8', metric: /^failover: targetPrimary set -> new primary writable$/, title: 'B8 failover → new primary writable (ms)' },
  { benchmark: 'B9', metric: /^manager restarted -> readiness 200$/, title: 'B9 manager kill -9, restarted → readiness 200 (ms)' },
  { benchmark: 'B13', metric: /^new timelines/, title: 'B13 new timelines (10 restarts + 3 crashes)' },
  { benchmark: 'B14', metric: /^empty folder -> read-write$/, title: 'B14 bootstrap empty folder → read-write (ms)' },
  { benchmark: 'B10', metric: /^work_mem changed -> visible/, title: 'B10 work_mem changed → applied (ms)' },
  { benchmark: 'B11', metric: /^server cert replaced -> new serial served$/, title: 'B11 server cert replaced → new serial served (ms)' },
  { benchmark: 'B12', metric: /^password changed -> new one works$/, title: 'B12 password rotated → new one works (ms)' },
  { benchmark: 'B15', metric: /^readiness under load: p99$/, title: 'B15 readiness probe p99 under pgbench load (ms)' },
  { benchmark: 'B16', metric: /^pgbench -S TPS$/, title: "B16 pgbench -S with log_statement 'all' (tx/s)" },
];

export function renderSvg(result: BenchResult): string {
  const rows = summarise(result.samples);
  const panelWidth = 460;
  const panelHeight = 190;
  const columns = 2;
  const panels = chartPanels
    .map((panel) => ({ ...panel, rows: rows.filter((r) => r.benchmark === panel.benchmark && panel.metric.test(r.metric)) }))
    .filter((panel) => panel.rows.length > 0);
  const barsHeight = 50 + Math.ceil(panels.length / columns) * panelHeight;
  const curves = curvePanels(rows, barsHeight - 10, panelWidth, columns, formatValue);
  const height = barsHeight + curves.height;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${columns * panelWidth}" height="${height}" font-family="sans-serif" font-size="11">`,
    '<rect width="100%" height="100%" fill="white"/>',
    `<text x="10" y="22" font-size="15" font-weight="bold">${escapeXml(`pgim vs bare PostgreSQL (floor) vs Patroni vs CloudNativePG's instance manager, ${result.startedAt.slice(0, 10)}: medians, whiskers min–max`)}</text>`,
  ];
  panels.forEach((panel, i) => {
    const x0 = (i % columns) * panelWidth + 10;
    const y0 = 40 + Math.floor(i / columns) * panelHeight;
    const top = Math.max(...panel.rows.map((r) => r.max), 1e-9);
    const labelWidth = 170;
    const barMax = panelWidth - labelWidth - 90;
    parts.push(`<text x="${x0}" y="${y0 + 14}" font-weight="bold">${escapeXml(panel.title)}</text>`);
    panel.rows.forEach((row, j) => {
      const y = y0 + 26 + j * 30;
      const colour = systemColours[row.system] ?? '#6baed6';
      const scale = (v: number): number => (v / top) * barMax;
      const bx = x0 + labelWidth;
      parts.push(
        `<text x="${x0}" y="${y + 14}">${escapeXml(row.system.replace('smartShutdownTimeout', 'smart'))}</text>`,
        `<rect x="${bx}" y="${y + 2}" width="${scale(row.median).toFixed(1)}" height="18" fill="${colour}"/>`,
        `<line x1="${(bx + scale(row.min)).toFixed(1)}" x2="${(bx + scale(row.max)).toFixed(1)}" y1="${y + 11}" y2="${y + 11}" stroke="black"/>`,
        `<text x="${(bx + scale(row.max) + 6).toFixed(1)}" y="${y + 15}">${escapeXml(formatValue(row.median, row.unit))}</text>`,
      );
    });
  });
  parts.push(...curves.parts, '</svg>');
  return `${parts.join('\n')}\n`;
}
