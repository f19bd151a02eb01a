import { strict as assert } from 'node:assert';
import { curveGoals, curvesOf, curveShape, pointMetric } from './curves.js';
import type { SummaryRow } from './report.js';

function row(metric: string, median: number, benchmark: SummaryRow['benchmark'] = 'S1'): SummaryRow {
  return { benchmark, metric, system: 'pgim', unit: 'ms', runs: 1, median, min: median, max: median, ratioToFloor: undefined, ratioToPatroni: undefined };
}

describe('bench cost curves: shapes computed from the points', () => {
  const xs = [1, 10, 100, 1000];

  it('a fixed cost, or one that grows under 1.5x over the range, is flat', () => {
    assert.equal(curveShape(xs.map((x) => ({ x, y: 5 }))).shape, 'flat');
    assert.equal(curveShape(xs.map((x, i) => ({ x, y: 60 + i * 3 }))).shape, 'flat');
    assert.equal(curveShape(xs.map((x) => ({ x, y: 0 }))).shape, 'flat');
  });

  it('a cost proportional to the work, or a fixed part plus a proportional one, is linear', () => {
    const proportional = curveShape(xs.map((x) => ({ x, y: 3 * x })));
    assert.equal(proportional.shape, 'linear');
    assert.ok(Math.abs(proportional.overallSlope - 1) < 1e-9);
    assert.equal(curveShape(xs.map((x) => ({ x, y: 50 + 0.4 * x }))).shape, 'linear');
    assert.equal(curveShape([10, 100, 500].map((x) => ({ x, y: 2 + Math.sqrt(x) }))).shape, 'linear');
  });

  it('a quadratic cost, even behind a large fixed part, is worse than linear on its tail', () => {
    assert.equal(curveShape(xs.map((x) => ({ x, y: x * x }))).shape, 'worse than linear');
    const hidden = curveShape(xs.map((x) => ({ x, y: 50 + 0.01 * x * x })));
    assert.equal(hidden.shape, 'worse than linear');
    assert.ok(hidden.tailSlope > 1.9 && hidden.overallSlope < 1.3, `only the tail shows it: ${JSON.stringify(hidden)}`);
    assert.equal(curveShape(xs.map((x) => ({ x, y: 50 + 0.5 * x }))).shape, 'linear', 'the same fixed part with a linear cost');
  });

  it('groups point samples back into curves and judges the S1 goal on them', () => {
    const rows: SummaryRow[] = [];
    for (const x of xs) {
      rows.push(row(pointMetric('/metrics scrape, cached', 'databases', x), 4));
      rows.push({ ...row(pointMetric('SQL statements per collection', 'databases', x), 50 + 3 * x), unit: 'count' });
      rows.push({ ...row(pointMetric('SQL statements per cached scrape', 'databases', x), 0), unit: 'count' });
      rows.push({ ...row(pointMetric('pgim RSS', 'databases', x), 70 + x / 100), unit: 'MB' });
    }
    const curves = curvesOf(rows);
    assert.deepEqual(curves.map((c) => [c.quantity, c.axis, c.points.length, c.shape]), [
      ['/metrics scrape, cached', 'databases', 4, 'flat'],
      ['SQL statements per collection', 'databases', 4, 'linear'],
      ['SQL statements per cached scrape', 'databases', 4, 'flat'],
      ['pgim RSS', 'databases', 4, 'flat'],
    ]);
    assert.equal(curveGoals(rows).find((g) => g.benchmark === 'S1')?.verdict, 'PASS');
    const heavier = rows.map((r) => (r.metric === pointMetric('pgim RSS', 'databases', 1000) ? { ...r, median: 95 } : r));
    assert.equal(curveGoals(heavier).find((g) => g.benchmark === 'S1')?.verdict, 'FAIL', 'RSS growth of 25 MB at 1,000 databases');
  });
});
