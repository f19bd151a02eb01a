/**
 * PostgreSQL csvlog records -> CNPG's JSON `record` object. Field sets: 23 (PG <= 12), 24 (PG 13, backend_type),
 * 26 (PG 14+, leader_pid and query_id).
 *
 * This runs once per log line, and with `log_statement = all` that is tens of thousands of lines a second on the
 * cores PostgreSQL needs: scanning uses indexOf and slices (native string search) rather than a per-character loop.
 */
const baseFields = [
  'log_time', 'user_name', 'database_name', 'process_id', 'connection_from', 'session_id', 'session_line_num',
  'command_tag', 'session_start_time', 'virtual_transaction_id', 'transaction_id', 'error_severity', 'sql_state_code',
  'message', 'detail', 'hint', 'internal_query', 'internal_query_pos', 'context', 'query', 'query_pos', 'location',
  'application_name',
] as const;
const fieldSets: ReadonlyMap<number, readonly string[]> = new Map<number, readonly string[]>([
  [23, baseFields],
  [24, [...baseFields, 'backend_type']],
  [26, [...baseFields, 'backend_type', 'leader_pid', 'query_id']],
]);
export const messageIndex = baseFields.indexOf('message');
/** Field names by position: the same in every field set, which differ only in how many trailing fields they have. */
export const fieldNamesByIndex: readonly string[] = [...baseFields, 'backend_type', 'leader_pid', 'query_id'];

export const fieldCounts: readonly number[] = [...fieldSets.keys()];

export function isFieldCount(count: number): boolean {
  return fieldSets.has(count);
}

const auditFields = ['audit_type', 'statement_id', 'substatement_id', 'class', 'command', 'object_type', 'object_name', 'statement', 'parameter', 'rows'];

export type LogRecord = Record<string, string | Record<string, string>>;

export type ParsedLine =
  | { kind: 'record'; logger: 'postgres' | 'pgaudit'; record: LogRecord }
  /** Not a csvlog record (wrong field count, stray text): emitted as it is, never dropped. */
  | { kind: 'raw'; text: string };

const QUOTE = 34;

/**
 * Splits one complete CSV record into fields (RFC 4180 quoting as PostgreSQL writes it: `"` doubled inside
 * quoted fields; newlines only inside quotes). Text after a closing quote, or a quote inside an unquoted field,
 * is kept as part of the field, as a lenient reader would.
 */
export function splitCsv(line: string): string[] {
  const fields: string[] = [];
  let i = 0;
  // The next quote at or after i, searched again only once passed (Infinity: none left).
  let nextQuote = -1;
  for (;;) {
    let field = '';
    // A field is any mix of unquoted runs and quoted sections, up to a comma outside quotes.
    for (;;) {
      if (line.charCodeAt(i) === QUOTE) {
        let from = i + 1;
        for (;;) {
          const close = line.indexOf('"', from);
          if (close < 0) {
            field += line.slice(from);
            i = line.length;
            break;
          }
          if (line.charCodeAt(close + 1) === QUOTE) {
            field += line.slice(from, close + 1);
            from = close + 2;
          } else {
            field += line.slice(from, close);
            i = close + 1;
            break;
          }
        }
      }
      const comma = line.indexOf(',', i);
      const end = comma < 0 ? line.length : comma;
      if (nextQuote < i) {
        const found = line.indexOf('"', i);
        nextQuote = found < 0 ? Infinity : found;
      }
      if (nextQuote < end) {
        field += line.slice(i, nextQuote);
        i = nextQuote;
        continue;
      }
      field += line.slice(i, end);
      i = end;
      break;
    }
    fields.push(field);
    if (i >= line.length) return fields;
    i++;
  }
}

function auditOf(message: string): Record<string, string> | undefined {
  if (!message.startsWith('AUDIT: ')) return undefined;
  const values = splitCsv(message.slice('AUDIT: '.length));
  if (values.length !== 9 && values.length !== 10) return undefined;
  const audit: Record<string, string> = {};
  values.forEach((value, i) => {
    const name = auditFields[i];
    if (name !== undefined && value !== '') audit[name] = value;
  });
  return audit;
}

export function parseCsvRecord(text: string): ParsedLine {
  const values = splitCsv(text);
  const names = fieldSets.get(values.length);
  if (!names) return { kind: 'raw', text };
  const record: LogRecord = {};
  names.forEach((name, i) => {
    const value = values[i];
    if (value !== undefined && value !== '') record[name] = value;
  });
  const audit = typeof record.message === 'string' ? auditOf(record.message) : undefined;
  if (audit) {
    record.audit = audit;
    delete record.message;
    return { kind: 'record', logger: 'pgaudit', record };
  }
  return { kind: 'record', logger: 'postgres', record };
}

export type FormattedLine = { kind: 'record'; logger: 'postgres' | 'pgaudit'; recordJson: string } | { kind: 'raw'; text: string };

/** The log pipe's string path (records the byte fast path in csvlog-bytes.ts does not take): the JSON of `record`. */
export function formatCsvRecord(text: string): FormattedLine {
  const parsed = parseCsvRecord(text);
  return parsed.kind === 'raw' ? parsed : { kind: 'record', logger: parsed.logger, recordJson: JSON.stringify(parsed.record) };
}
