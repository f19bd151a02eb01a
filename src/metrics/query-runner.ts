import type pg from 'pg';
import Cursor from 'pg-cursor';
import { parseGoDuration } from '../cluster/units.js';
import { seriesKey, type Family, type FamilyType, type HistogramSample, type Labels, type Sample } from './exposition.js';
import type { ColumnDefinition, QueryDefinition } from './queries-parser.js';

/** Every value as PostgreSQL's text, converted here by type OID: one conversion path, no driver-specific parsing. */
const rawText: pg.CustomTypesConfig = { getTypeParser: () => (value: string) => value };

/**
 * Forces the extended protocol: a user query can never carry a second statement (`...; COMMIT; DELETE ...`).
 * The main query runs through a portal (fetchLimited), which is the extended protocol too.
 */
type ArrayQuery = pg.QueryArrayConfig & { queryMode: 'extended' };

const oid = { bool: 16, date: 1082, timestamp: 1114, timestamptz: 1184 } as const;

/** A decimal number as PostgreSQL prints one (no hex, no `Infinity`, no empty string). */
function decimal(text: string): number | undefined {
  if (!/^[-+0-9.eE]+$/.test(text) || !/[0-9]/.test(text)) return undefined;
  const n = Number(text);
  return Number.isNaN(n) ? undefined : n;
}

function epochSeconds(text: string, typeId: number): number | undefined {
  if (text === 'infinity') return Infinity;
  if (text === '-infinity') return -Infinity;
  let iso = text.replace(' ', 'T');
  if (typeId === oid.timestamptz) iso = iso.replace(/([+-]\d\d)$/, '$1:00').replace(/([+-]\d\d)(\d\d)$/, '$1:$2');
  else if (typeId === oid.timestamp) iso = `${iso}Z`;
  else iso = `${iso}T00:00:00Z`;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}

/** CNPG's `DBToFloat64`: NULL is NaN, booleans 1/0, times Unix seconds, numbers as such; anything else is refused. */
export function toNumber(text: string | null, typeId: number): number | undefined {
  if (text === null) return NaN;
  if (typeId === oid.bool) return text === 't' ? 1 : 0;
  if (typeId === oid.date || typeId === oid.timestamp || typeId === oid.timestamptz) return epochSeconds(text, typeId);
  if (text === 'NaN') return NaN;
  if (text === 'Infinity') return Infinity;
  if (text === '-Infinity') return -Infinity;
  return decimal(text);
}

/** CNPG's `DBToString` for labels: NULL is empty, times are Unix seconds. */
export function toLabel(text: string | null, typeId: number): string {
  if (text === null) return '';
  if (typeId === oid.bool) return text === 't' ? 'true' : 'false';
  if (typeId === oid.date || typeId === oid.timestamp || typeId === oid.timestamptz) return String(epochSeconds(text, typeId) ?? text);
  return text;
}

/** A one-dimensional PostgreSQL array of numbers (`{1,2.5,3}`), for HISTOGRAM columns. */
export function parseNumberArray(text: string | null): number[] | undefined {
  if (text === null || !text.startsWith('{') || !text.endsWith('}')) return undefined;
  const inner = text.slice(1, -1).trim();
  if (inner === '') return [];
  const values = inner.split(',').map((v) => toNumber(v.trim().replace(/^"|"$/g, ''), 0));
  return values.some((v) => v === undefined) ? undefined : (values as number[]);
}

function familyType(column: ColumnDefinition): FamilyType {
  if (column.usage === 'COUNTER') return 'counter';
  if (column.usage === 'HISTOGRAM') return 'histogram';
  return 'gauge';
}

export class FamilySet {
  readonly families = new Map<string, Family>();
  private readonly seen = new Map<string, Set<string>>();

  family(name: string, help: string, type: FamilyType): Family {
    let family = this.families.get(name);
    if (family && family.type !== type) {
      throw new QueryShapeError(`family ${name} is already a ${family.type} from another query`);
    }
    if (!family) {
      family = { name, help, type, samples: [], histograms: [] };
      this.families.set(name, family);
      this.seen.set(name, new Set());
    }
    return family;
  }

  /** False when this series already exists (the same query on two databases without a telling label). */
  claim(name: string, labels: Labels): boolean {
    const seen = this.seen.get(name);
    const key = seriesKey(labels);
    if (!seen || seen.has(key)) return false;
    seen.add(key);
    return true;
  }
}

export class QueryShapeError extends Error {}

function columnValue(column: ColumnDefinition, text: string | null, typeId: number): number | undefined {
  switch (column.usage) {
    case 'MAPPEDMETRIC':
      return text === null ? undefined : column.mapping.get(text);
    case 'DURATION': {
      if (text === null || text === '-1') return undefined;
      const seconds = parseGoDuration(text);
      return seconds === undefined ? undefined : Math.floor(seconds * 1000);
    }
    default:
      return toNumber(text, typeId);
  }
}

/** Turns a result into samples of the query's families (conversion rules as CNPG's `QueryCollector.collect`). */
export function addResult(set: FamilySet, def: QueryDefinition, fields: readonly pg.FieldDef[], rows: readonly (string | null)[][]): void {
  if (fields.length !== def.expectedColumnCount) {
    throw new QueryShapeError(`returned ${fields.length} columns but the mapping declares ${def.expectedColumnCount}`);
  }
  const index = new Map(fields.map((f, i) => [f.name, i]));
  const missing = def.columns.find((c) => !index.has(c.column));
  if (missing) throw new QueryShapeError(`returned no column named "${missing.column}"`);
  const typeOf = (name: string): number => fields[index.get(name) ?? -1]?.dataTypeID ?? 0;
  const cell = (row: readonly (string | null)[], name: string): string | null => row[index.get(name) ?? -1] ?? null;
  for (const row of rows) {
    const labels: Labels = def.labelColumns.map((c) => [c, toLabel(cell(row, c), typeOf(c))] as const);
    for (const column of def.columns) {
      if (column.usage === 'LABEL' || column.usage === 'DISCARD') continue;
      const family = set.family(column.metricName, column.description, familyType(column));
      if (column.usage === 'HISTOGRAM') {
        const histogram = toHistogram(row, column.column, labels, cell);
        if (histogram && set.claim(column.metricName, labels)) family.histograms.push(histogram);
        continue;
      }
      const value = columnValue(column, cell(row, column.column), typeOf(column.column));
      if (value === undefined || !set.claim(column.metricName, labels)) continue;
      const sample: Sample = { labels, value };
      family.samples.push(sample);
    }
  }
}

function toHistogram(
  row: readonly (string | null)[],
  column: string,
  labels: Labels,
  cell: (row: readonly (string | null)[], name: string) => string | null,
): HistogramSample | undefined {
  const bounds = parseNumberArray(cell(row, column));
  const counts = parseNumberArray(cell(row, `${column}_bucket`));
  const sum = toNumber(cell(row, `${column}_sum`), 0);
  const count = toNumber(cell(row, `${column}_count`), 0);
  if (!bounds || !counts || sum === undefined || count === undefined) return undefined;
  const buckets = bounds.slice(0, counts.length).map((bound, i) => [bound, counts[i] ?? 0] as const);
  return { labels, buckets, sum, count };
}

export interface RunLimits {
  /** `statement_timeout` and `lock_timeout` of each query, so one slow query cannot stall the collection. */
  readonly timeoutMs: number;
}

/**
 * The rows one query may return per database, unless it sets its own `max_rows`: every row can be a series, so a
 * query returning 50,000 rows would make 50,000 series and hold them all in memory.
 */
export const defaultMaxRows = 5000;

/** A query returned more rows than its limit: nothing of it is exported, and it counts as a failed run. */
export class RowLimitError extends Error {}

/**
 * Fetches at most `maxRows + 1` rows through a portal (pg-cursor: Execute with a row count), so a query over its
 * limit never makes the server send, nor pgim hold, the rest of its result.
 */
async function fetchLimited(client: pg.Client, text: string, maxRows: number): Promise<{ fields: pg.FieldDef[]; rows: (string | null)[][] }> {
  const cursor = client.query(new Cursor<(string | null)[]>(text, [], { rowMode: 'array', types: rawText }));
  // A failed read needs no close: the cursor has already sent Sync, and the error ends it.
  const result = await new Promise<{ fields: pg.FieldDef[]; rows: (string | null)[][] }>((resolve, reject) => {
    cursor.read(maxRows + 1, (err, rows, full) => {
      if (err) reject(err);
      else resolve({ fields: full.fields, rows });
    });
  });
  await cursor.close();
  if (result.rows.length > maxRows) {
    throw new RowLimitError(`returned more than ${maxRows} rows (its max_rows); none of them were exported`);
  }
  return result;
}

/**
 * Runs one query in a read-only transaction with a pinned search_path, as `pg_monitor` (CNPG's `createMonitoringTx`),
 * after its predicate. Returns false when the predicate said to skip it.
 */
export async function runQuery(client: pg.Client, def: QueryDefinition, set: FamilySet, limits: RunLimits): Promise<boolean> {
  const timeout = Math.max(1, Math.floor(limits.timeoutMs));
  await client.query(
    `BEGIN TRANSACTION READ ONLY; SET LOCAL statement_timeout = ${timeout}; SET LOCAL lock_timeout = ${timeout};
     SET LOCAL search_path = pg_catalog, public, pg_temp; SET LOCAL standard_conforming_strings = on; SET LOCAL ROLE pg_monitor`,
  );
  try {
    if (def.predicateQuery !== undefined) {
      const predicate: ArrayQuery = { text: def.predicateQuery, rowMode: 'array', types: rawText, queryMode: 'extended' };
      const result = await client.query<(string | null)[]>(predicate);
      const first = result.rows[0]?.[0];
      if (result.fields[0]?.dataTypeID !== oid.bool || first !== 't') {
        await client.query('COMMIT');
        return false;
      }
    }
    const result = await fetchLimited(client, def.query, def.maxRows ?? defaultMaxRows);
    await client.query('COMMIT');
    addResult(set, def, result.fields, result.rows);
    return true;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
