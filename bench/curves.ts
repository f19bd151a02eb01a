/**
 * Cost curves (issue 22, S1-S5): how a cost grows with the work. A curve's points are ordinary samples whose metric
 * ends in `[axis=x]` (`pointMetric`), so the harness, the JSON and the summary table treat them like any other
 * figure; this module groups them back into curves, computes each curve's shape from its points, and renders the
 * curve table, the curve goals and the line charts of the SVG.
 */
import type { BenchmarkId, Unit } from './benchmarks/types.js';
import type { GoalResult, SummaryRow } from './report.js';

/** The metric name of one point of a curve: `quantity [axis=x]`. */
export function pointMetric(quantity: string, axis: string, x: number): string {
  return `${quantity} [${axis}=${x}]`;
}

/** `quantity [axis=x]` split into its parts; undefined for any other metric. */
function parsePoint(metric: string): { quantity: string; axis: string; x: number } | undefined {
  const open = metric.lastIndexOf(' [');
  if (open === -1 || !metric.endsWith(']')) return undefined;
  const [axis, x] = metric.slice(open + 2, -1).split('=');
  if (axis === undefined || x === undefined || !/^[a-z][a-z /-]*$/.test(axis) || !/^\d+$/.test(x)) return undefined;
  return { quantity: metric.slice(0, open), axis, x: Number(x) };
}

export type Shape = 'flat' | 'linear' | 'worse than linear';

export interface CurvePoint {
  x: number;
  median: number;
  min: number;
  max: number;
}

export interface Curve {
  benchmark: BenchmarkId;
  quantity: string;
  axis: string;
  system: string;
  unit: Unit;
  points: CurvePoint[];
  shape: Shape;
  /** log-log slope from the first to the last point (0: flat, 1: proportional). */
  overallSlope: number;
  /** log-log slope of the last segment: where a cost worse than linear shows first. */
  tailSlope: number;
}

/**
 * The shape of a cost from its points (sorted by x, at least two). **flat**: no point costs more than 1.5x the first
 * while the work grew 8x or more (fixed costs dominate). Otherwise **linear** when it grows no faster than the work,
 * judged on log-log slopes, with 1.3 as the limit (noise on a loaded machine moves a slope by ~0.1-0.2; a quadratic
 * cost has slope 2): the slope of the whole curve, and the tail slope, that of the last segment on the cost above
 * the first point (the fixed part taken out: 50 + 0.01x² has a raw tail slope under 1.3 on 1..1000 but a marginal
 * one of 2). When the cost had not yet grown by a quarter before the last point, that marginal slope is mostly
 * noise, and the raw slope of the last segment is used instead. Values at or below `floor` (e.g. 0 statements)
 * count as `floor`, so a cost that stays at zero is flat.
 */
export function curveShape(points: readonly { x: number; y: number }[], floor = 1e-3): { shape: Shape; overallSlope: number; tailSlope: number } {
  const sorted = [...points].sort((a, b) => a.x - b.x);
  const first = sorted[0];
  const last = sorted.at(-1);
  const beforeLast = sorted.at(-2);
  if (first === undefined || last === undefined || beforeLast === undefined || first === last) return { shape: 'flat', overallSlope: 0, tailSlope: 0 };
  const y = (v: number): number => Math.max(v, floor);
  const slope = (y0: number, y1: number, x0: number, x1: number): number => Math.log(y(y1) / y(y0)) / Math.log(x1 / x0);
  const overallSlope = slope(first.y, last.y, first.x, last.x);
  const grownBefore = beforeLast.y - y(first.y);
  const tailSlope =
    beforeLast !== first && grownBefore >= 0.25 * y(first.y)
      ? slope(grownBefore, last.y - y(first.y), beforeLast.x - first.x, last.x - first.x)
      : slope(beforeLast.y, last.y, beforeLast.x, last.x);
  const maxY = Math.max(...sorted.map((p) => y(p.y)));
  if (maxY <= 1.5 * y(first.y)) return { shape: 'flat', overallSlope, tailSlope };
  return { shape: overallSlope <= 1.3 && tailSlope <= 1.3 ? 'linear' : 'worse than linear', overallSlope, tailSlope };
}

/** Every curve in the summary rows, in their order (a curve needs two points or more). */
export function curvesOf(rows: readonly SummaryRow[]): Curve[] {
  const curves = new Map<string, Omit<Curve, 'shape' | 'overallSlope' | 'tailSlope'>>();
  for (const row of rows) {
    const point = parsePoint(row.metric);
    if (point === undefined) continue;
    const { quantity, axis, x } = point;
    const key = `${row.benchmark}\u0000${quantity}\u0000${axis}\u0000${row.system}`;
    const curve = curves.get(key) ?? { benchmark: row.benchmark, quantity, axis, system: row.system, unit: row.unit, points: [] };
    curve.points.push({ x, median: row.median, min: row.min, max: row.max });
    curves.set(key, curve);
  }
  return [...curves.values()]
    .filter((c) => c.points.length >= 2)
    .map((c) => {
      const points = [...c.points].sort((a, b) => a.x - b.x);
      return { ...c, points, ...curveShape(points.map((p) => ({ x: p.x, y: p.median }))) };
    });
}

function findCurve(curves: readonly Curve[], benchmark: BenchmarkId, quantity: string, system = 'pgim'): Curve | undefined {
  return curves.find((c) => c.benchmark === benchmark && c.quantity === quantity && c.system === system);
}

/** One line per curve: the points (x: median) and the computed shape with its slopes. */
export function curvesTable(curves: readonly Curve[], format: (value: number, unit: Unit) => string): string {
  const lines = ['| curve | quantity | system | points (median) | shape (log-log slope: whole curve / tail) |', '|---|---|---|---|---|'];
  for (const c of curves) {
    const points = c.points.map((p) => `${p.x.toLocaleString('en-US')}: ${format(p.median, c.unit)}`).join(', ');
    lines.push(`| ${c.benchmark} ${c.axis} | ${c.quantity.replaceAll('->', '→')} | ${c.system} | ${points} | **${c.shape}** (${c.overallSlope.toFixed(2)} / ${c.tailSlope.toFixed(2)}) |`);
  }
  return lines.join('\n');
}

/** The goals of issue 22's cost curves, judged on the computed shapes and medians. */
export function curveGoals(rows: readonly SummaryRow[]): GoalResult[] {
  const curves = curvesOf(rows);
  const goals: GoalResult[] = [];
  const judge = (ok: boolean | undefined): GoalResult['verdict'] => (ok === undefined ? 'n/a' : ok ? 'PASS' : 'FAIL');
  const shapeText = (c: Curve | undefined): string => (c === undefined ? '–' : c.shape);
  const growth = (c: Curve | undefined): number | undefined => {
    if (c === undefined) return undefined;
    const first = c.points[0];
    const last = c.points.at(-1);
    return first === undefined || last === undefined ? undefined : last.median - first.median;
  };
  for (const [id, axis] of [['S1', 'databases'], ['S2', 'tables']] as const) {
    const scrape = findCurve(curves, id, '/metrics scrape, cached');
    const sql = findCurve(curves, id, 'SQL statements per collection');
    const perScrape = findCurve(curves, id, 'SQL statements per cached scrape');
    const rss = findCurve(curves, id, 'pgim RSS');
    const rssGrowth = growth(rss);
    const last = rss?.points.at(-1)?.x;
    const perScrapeMax = perScrape === undefined ? undefined : Math.max(...perScrape.points.map((p) => p.max));
    goals.push({
      benchmark: id,
      goal: `${axis}: cached /metrics scrape time flat, SQL work per TTL linear (no per-scrape SQL)${id === 'S1' ? ', RSS growth under 20 MB at 1,000 databases' : ''}`,
      measured:
        `scrape ${shapeText(scrape)}; SQL per collection ${shapeText(sql)}; statements per cached scrape max ${perScrapeMax ?? '–'}; ` +
        `RSS ${shapeText(rss)}, +${rssGrowth === undefined ? '–' : rssGrowth.toFixed(1)} MB at ${last?.toLocaleString('en-US') ?? '–'}`,
      verdict: judge(
        scrape && sql && perScrapeMax !== undefined && rssGrowth !== undefined
          ? scrape.shape === 'flat' && sql.shape !== 'worse than linear' && perScrapeMax === 0 && (id !== 'S1' || rssGrowth < 20)
          : undefined,
      ),
    });
  }
  const notWorse: readonly [BenchmarkId, string][] = [['S3', 'client connections'], ['S5', 'replicas']];
  for (const [id, axis] of notWorse) {
    const mine = curves.filter((c) => c.benchmark === id && c.system === 'pgim');
    const worse = mine.filter((c) => c.shape === 'worse than linear');
    goals.push({
      benchmark: id,
      goal: `${axis}: no cost grows worse than linear`,
      measured: mine.length === 0 ? '–' : `${mine.length} curves: ${worse.length === 0 ? 'none worse than linear' : `worse: ${worse.map((c) => c.quantity).join(', ')}`}`,
      verdict: judge(mine.length === 0 ? undefined : worse.length === 0),
    });
  }
  // The highest offered rate at which no run saw a blocked backend (every lower rate clean too).
  const cleanUpTo = (system: string): number | undefined => {
    const blocked = findCurve(curves, 'S4', 'backends blocked on the log pipe (samples)', system);
    let highest: number | undefined;
    for (const p of blocked?.points ?? []) {
      if (p.max > 0) break;
      highest = p.x;
    }
    return highest;
  };
  const s4Blocked = findCurve(curves, 'S4', 'backends blocked on the log pipe (samples)');
  const pgimClean = cleanUpTo('pgim');
  const floorClean = cleanUpTo('floor');
  const rssS4 = findCurve(curves, 'S4', 'pgim RSS');
  const rate = (x: number | undefined): string => (x === undefined ? 'none of the rates tried' : `${x.toLocaleString('en-US')} lines/s`);
  goals.push({
    benchmark: 'S4',
    goal: 'log rate: the highest csvlog line rate pgim relays with no backend ever blocked on the log pipe, at least the floor\'s (csvlog to a file); RSS there',
    measured:
      s4Blocked === undefined
        ? '–'
        : `pgim ${rate(pgimClean)} (RSS ${rssS4?.points.find((p) => p.x === pgimClean)?.median.toFixed(1) ?? '–'} MB, ${shapeText(rssS4)}); floor ${rate(floorClean)}`,
    verdict: judge(s4Blocked === undefined ? undefined : pgimClean !== undefined && (floorClean === undefined || pgimClean >= floorClean)),
  });
  return goals;
}

function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

/** The curves the SVG draws (the others are in the table and the JSON). */
const charted: readonly { benchmark: BenchmarkId; quantity: string }[] = [
  { benchmark: 'S1', quantity: '/metrics scrape, cached' },
  { benchmark: 'S1', quantity: 'SQL statements per collection' },
  { benchmark: 'S1', quantity: 'collection duration' },
  { benchmark: 'S1', quantity: 'pgim RSS' },
  { benchmark: 'S2', quantity: '/metrics scrape, cached' },
  { benchmark: 'S2', quantity: 'SQL time per collection' },
  { benchmark: 'S2', quantity: 'collection duration' },
  { benchmark: 'S2', quantity: 'pgim RSS' },
  { benchmark: 'S3', quantity: '/pg/status latency' },
  { benchmark: 'S3', quantity: '/readyz latency' },
  { benchmark: 'S3', quantity: 'backends query (cnpg_backends_total) time' },
  { benchmark: 'S4', quantity: 'lines relayed per second' },
  { benchmark: 'S4', quantity: 'backends blocked on the log pipe (samples)' },
  { benchmark: 'S4', quantity: 'pgim RSS' },
  { benchmark: 'S5', quantity: '/pg/status latency' },
  { benchmark: 'S5', quantity: '/metrics scrape, uncached (TTL 0)' },
];

/**
 * Line charts, one panel per charted curve, below the bar panels: x on a log scale through the points (they grow
 * by 10x or 2x), y linear from 0, with the min-max range as a band. Returns the SVG elements and their height.
 */
export function curvePanels(rows: readonly SummaryRow[], top: number, panelWidth: number, columns: number, format: (value: number, unit: Unit) => string): { parts: string[]; height: number } {
  const all = curvesOf(rows);
  const panels = charted.flatMap((c) => all.filter((curve) => curve.benchmark === c.benchmark && curve.quantity === c.quantity && curve.system === 'pgim'));
  if (panels.length === 0) return { parts: [], height: 0 };
  const panelHeight = 200;
  const parts: string[] = [`<text x="10" y="${top + 18}" font-size="15" font-weight="bold">Cost curves (issue 22): pgim medians, band min–max, x log scale</text>`];
  panels.forEach((curve, i) => {
    const x0 = (i % columns) * panelWidth + 10;
    const y0 = top + 30 + Math.floor(i / columns) * panelHeight;
    const plot = { left: x0 + 55, right: x0 + panelWidth - 30, top: y0 + 28, bottom: y0 + panelHeight - 40 };
    const xs = curve.points.map((p) => Math.log(p.x));
    const xMin = Math.min(...xs);
    const xSpan = Math.max(...xs) - xMin || 1;
    const yTop = Math.max(...curve.points.map((p) => p.max), 1e-9);
    const px = (x: number): number => plot.left + ((Math.log(x) - xMin) / xSpan) * (plot.right - plot.left);
    const py = (y: number): number => plot.bottom - (y / yTop) * (plot.bottom - plot.top);
    const line = curve.points.map((p) => `${px(p.x).toFixed(1)},${py(p.median).toFixed(1)}`).join(' ');
    const band = [...curve.points.map((p) => `${px(p.x).toFixed(1)},${py(p.max).toFixed(1)}`), ...[...curve.points].reverse().map((p) => `${px(p.x).toFixed(1)},${py(p.min).toFixed(1)}`)].join(' ');
    parts.push(
      `<text x="${x0}" y="${y0 + 14}" font-weight="bold">${escapeXml(`${curve.benchmark} ${curve.quantity} vs ${curve.axis}: ${curve.shape}`)}</text>`,
      `<line x1="${plot.left}" x2="${plot.right}" y1="${plot.bottom}" y2="${plot.bottom}" stroke="#444"/>`,
      `<line x1="${plot.left}" x2="${plot.left}" y1="${plot.top}" y2="${plot.bottom}" stroke="#444"/>`,
      `<text x="${plot.left - 4}" y="${plot.top + 4}" text-anchor="end">${escapeXml(format(yTop, curve.unit))}</text>`,
      `<text x="${plot.left - 4}" y="${plot.bottom}" text-anchor="end">0</text>`,
      `<polygon points="${band}" fill="#1f77b4" fill-opacity="0.15" stroke="none"/>`,
      `<polyline points="${line}" fill="none" stroke="#1f77b4" stroke-width="2"/>`,
      ...curve.points.flatMap((p) => [
        `<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.median).toFixed(1)}" r="3" fill="#1f77b4"/>`,
        `<text x="${px(p.x).toFixed(1)}" y="${plot.bottom + 14}" text-anchor="middle">${escapeXml(p.x.toLocaleString('en-US'))}</text>`,
        `<text x="${px(p.x).toFixed(1)}" y="${(py(p.median) - 6).toFixed(1)}" text-anchor="middle" font-size="9">${escapeXml(format(p.median, curve.unit))}</text>`,
      ]),
      `<text x="${(plot.left + plot.right) / 2}" y="${plot.bottom + 28}" text-anchor="middle">${escapeXml(curve.axis)}</text>`,
    );
  });
  return { parts, height: 40 + Math.ceil(panels.length / columns) * panelHeight };
}
