/**
 * Prometheus text exposition (format 0.0.4) for families whose values come from SQL: counters and histograms there
 * are absolute values computed by PostgreSQL, which prom-client's incrementing metric objects cannot represent.
 */

export type FamilyType = 'gauge' | 'counter' | 'histogram' | 'untyped';

export type Labels = readonly (readonly [string, string])[];

export interface Sample {
  readonly labels: Labels;
  readonly value: number;
}

export interface HistogramSample {
  readonly labels: Labels;
  /** Upper bound -> cumulative count; `+Inf` (= count) is added when rendering. */
  readonly buckets: readonly (readonly [number, number])[];
  readonly sum: number;
  readonly count: number;
}

export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: FamilyType;
  readonly samples: Sample[];
  readonly histograms: HistogramSample[];
}

export const metricNamePattern = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
export const labelNamePattern = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function isValidLabelName(name: string): boolean {
  return labelNamePattern.test(name) && !name.startsWith('__');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabelValue(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function labelSet(labels: Labels, extra?: readonly [string, string]): string {
  const all = extra ? [...labels, extra] : labels;
  if (all.length === 0) return '';
  return `{${all.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(',')}}`;
}

export function renderFamily(family: Family): string {
  const lines = [`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`];
  for (const sample of family.samples) lines.push(`${family.name}${labelSet(sample.labels)} ${formatValue(sample.value)}`);
  for (const h of family.histograms) {
    for (const [bound, count] of h.buckets) {
      lines.push(`${family.name}_bucket${labelSet(h.labels, ['le', formatValue(bound)])} ${formatValue(count)}`);
    }
    lines.push(`${family.name}_bucket${labelSet(h.labels, ['le', '+Inf'])} ${formatValue(h.count)}`);
    lines.push(`${family.name}_sum${labelSet(h.labels)} ${formatValue(h.sum)}`);
    lines.push(`${family.name}_count${labelSet(h.labels)} ${formatValue(h.count)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The identity of a sample within its family, to drop duplicates (Prometheus rejects a repeated series). */
export function seriesKey(labels: Labels): string {
  return JSON.stringify(labels);
}
