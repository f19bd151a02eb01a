import { parseDocument } from 'yaml';
import { z } from 'zod';
import { fieldPath } from '../cluster/parse.js';
import { isValidLabelName, metricNamePattern } from './exposition.js';
import { parseVersionRange } from './matching.js';

/** CloudNativePG's custom-queries YAML (`pkg/management/postgres/metrics/parser.go`), validated up front. */

export type ColumnUsage = 'DISCARD' | 'LABEL' | 'COUNTER' | 'GAUGE' | 'MAPPEDMETRIC' | 'DURATION' | 'HISTOGRAM';

const usages: readonly ColumnUsage[] = ['DISCARD', 'LABEL', 'COUNTER', 'GAUGE', 'MAPPEDMETRIC', 'DURATION', 'HISTOGRAM'];

export interface ColumnDefinition {
  readonly column: string;
  readonly usage: ColumnUsage;
  readonly description: string;
  /** The family name (`cnpg_<query>_<column>`); empty for LABEL and DISCARD columns. */
  readonly metricName: string;
  readonly mapping: ReadonlyMap<string, number>;
}

export interface QueryDefinition {
  /** The YAML key: identifies the query in errors and in pgim's per-query series. */
  readonly name: string;
  /** Which ConfigMap/Secret key (or built-in set) it came from. */
  readonly source: string;
  readonly query: string;
  readonly predicateQuery: string | undefined;
  readonly primaryOnly: boolean;
  readonly runOnServer: string | undefined;
  readonly targetDatabases: readonly string[];
  readonly columns: readonly ColumnDefinition[];
  /** LABEL columns in declaration order: the label set of every family of this query. */
  readonly labelColumns: readonly string[];
  /** Columns the result must have: the declared ones plus `_bucket`, `_sum`, `_count` for each HISTOGRAM. */
  readonly expectedColumnCount: number;
  /** `max_rows`: more rows than this (per database) fail the query; undefined = the default limit. */
  readonly maxRows?: number | undefined;
}

export class QueriesParseError extends Error {
  constructor(
    readonly source: string,
    readonly path: string,
    problem: string,
  ) {
    super(path === '' ? `${source}: ${problem}` : `${source}: ${path}: ${problem}`);
  }
}

const columnSchema = z
  .object({
    usage: z.string({ error: 'must be a string' }),
    description: z.string().default(''),
    metric_mapping: z.record(z.string(), z.number()).optional(),
    name: z.string().optional(),
  })
  .loose();

const querySchema = z
  .object({
    query: z.string({ error: 'is required' }).min(1, 'must not be empty'),
    name: z.string().optional(),
    primary: z.boolean().default(false),
    // The legacy spelling CNPG still honours.
    master: z.boolean().default(false),
    runonserver: z.string().optional(),
    target_databases: z.array(z.string()).default([]),
    predicate_query: z.string().optional(),
    // pgim's own key: the rows this query may return per database (default defaultMaxRows in query-runner.ts).
    max_rows: z.number({ error: 'must be a whole number' }).int('must be a whole number').min(1, 'must be at least 1').max(1_000_000, 'must be at most 1000000').optional(),
    metrics: z.array(z.record(z.string(), columnSchema)).default([]),
  })
  .loose();

export interface ParsedQueries {
  readonly queries: QueryDefinition[];
  /** Queries refused one by one (the rest of the document is used). */
  readonly errors: QueriesParseError[];
}

/**
 * Parses one YAML document of queries. A document that is not YAML or not a mapping throws QueriesParseError; a
 * single bad query is refused on its own and reported in `errors`, so one typo does not take the others down.
 */
export function parseQueries(text: string, source: string, namespace = 'cnpg'): ParsedQueries {
  const doc = parseDocument(text, { prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) throw new QueriesParseError(source, '', `invalid YAML: ${syntax.code} at offset ${syntax.pos[0]}`);
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  if (raw === null || raw === undefined) return { queries: [], errors: [] };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new QueriesParseError(source, '', 'must be a mapping of query names to queries');
  const queries: QueryDefinition[] = [];
  const errors: QueriesParseError[] = [];
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    try {
      queries.push(toDefinition(name, value, source, namespace));
    } catch (err) {
      if (!(err instanceof QueriesParseError)) throw err;
      errors.push(err);
    }
  }
  return { queries, errors };
}

function toDefinition(name: string, value: unknown, source: string, namespace: string): QueryDefinition {
  const parsed = querySchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new QueriesParseError(source, fieldPath([name, ...(issue?.path ?? [])]), issue?.message ?? 'invalid');
  }
  const q = parsed.data;
  if (q.runonserver !== undefined && parseVersionRange(q.runonserver) === undefined) {
    throw new QueriesParseError(source, `${name}.runonserver`, `"${q.runonserver}" is not a version range`);
  }
  const prefix = `${namespace}_${q.name ?? name}`;
  const columns: ColumnDefinition[] = [];
  let extraColumns = 0;
  q.metrics.forEach((entry, index) => {
    for (const [column, spec] of Object.entries(entry)) {
      const path = `${name}.metrics[${index}].${column}`;
      const usage = spec.usage.toUpperCase() as ColumnUsage;
      if (!usages.includes(usage)) throw new QueriesParseError(source, `${path}.usage`, `"${spec.usage}" is not one of ${usages.join(', ')}`);
      let metricName = '';
      if (usage !== 'LABEL' && usage !== 'DISCARD') {
        metricName = `${prefix}_${spec.name ?? column}${usage === 'DURATION' ? '_milliseconds' : ''}`;
        if (!metricNamePattern.test(metricName)) throw new QueriesParseError(source, path, `"${metricName}" is not a valid metric name`);
      }
      if (usage === 'LABEL' && !isValidLabelName(column)) throw new QueriesParseError(source, path, `"${column}" is not a valid label name`);
      if (usage === 'MAPPEDMETRIC' && spec.metric_mapping === undefined) {
        throw new QueriesParseError(source, `${path}.metric_mapping`, 'is required for MAPPEDMETRIC');
      }
      if (usage === 'HISTOGRAM') extraColumns += 3;
      columns.push({ column, usage, description: spec.description, metricName, mapping: new Map(Object.entries(spec.metric_mapping ?? {})) });
    }
  });
  const labelColumns = columns.filter((c) => c.usage === 'LABEL').map((c) => c.column);
  if (new Set(columns.map((c) => c.column)).size !== columns.length) {
    throw new QueriesParseError(source, `${name}.metrics`, 'declares a column twice');
  }
  return {
    name,
    source,
    query: q.query,
    predicateQuery: q.predicate_query,
    primaryOnly: q.primary || q.master,
    runOnServer: q.runonserver,
    targetDatabases: q.target_databases,
    columns,
    labelColumns,
    expectedColumnCount: columns.length + extraColumns,
    maxRows: q.max_rows,
  };
}

/** Later sources win by query name, as in CNPG. */
export function mergeQueries(sets: readonly (readonly QueryDefinition[])[]): QueryDefinition[] {
  const byName = new Map<string, QueryDefinition>();
  for (const set of sets) for (const q of set) byName.set(q.name, q);
  return [...byName.values()];
}
