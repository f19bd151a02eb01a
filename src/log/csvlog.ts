/**
 * PostgreSQL csvlog records -> CNPG's JSON `record` object. Field sets: 23 (PG <= 12), 24 (PG 13, backend_type),
 * 26 (PG 14+, leader_pid and query_id).
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

const auditFields = ['audit_type', 'statement_id', 'substatement_id', 'class', 'command', 'object_type', 'object_name', 'statement', 'parameter', 'rows'];

export type LogRecord = Record<string, string | Record<string, string>>;

export type ParsedLine =
  | { kind: 'record'; logger: 'postgres' | 'pgaudit'; record: LogRecord }
  /** Not a csvlog record (wrong field count, stray text): emitted as it is, never dropped. */
  | { kind: 'raw'; text: string };

/**
 * Splits one complete CSV record into fields (RFC 4180 quoting as PostgreSQL writes it: `"` doubled inside
 * quoted fields; newlines only inside quotes).
 */
export function splitCsv(line: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line.charAt(i);
    if (quoted) {
      if (c === '"') {
        if (line[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      fields.push(field);
      field = '';
    } else field += c;
  }
  fields.push(field);
  return fields;
}

function auditOf(message: string): Record<string, string> | undefined {
  const match = /^AUDIT: (.*)$/s.exec(message);
  if (!match?.[1]) return undefined;
  const values = splitCsv(match[1]);
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

/**
 * Turns a byte stream into complete csvlog records: a record ends at a newline outside quotes. Memory stays
 * bounded: a record longer than `maxRecordBytes` (a runaway quote) is flushed as raw text.
 */
export class CsvRecordSplitter {
  private buffer = '';
  private quoted = false;
  private scanned = 0;

  constructor(private readonly maxRecordBytes = 1024 * 1024) {}

  push(chunk: string, emit: (record: string) => void): void {
    this.buffer += chunk;
    let start = 0;
    for (let i = this.scanned; i < this.buffer.length; i++) {
      const c = this.buffer[i];
      if (c === '"') this.quoted = !this.quoted;
      else if (c === '\n' && !this.quoted) {
        emit(this.buffer.slice(start, i));
        start = i + 1;
      }
    }
    this.buffer = this.buffer.slice(start);
    this.scanned = this.buffer.length;
    if (this.buffer.length > this.maxRecordBytes) {
      emit(this.buffer);
      this.buffer = '';
      this.scanned = 0;
      this.quoted = false;
    }
  }
}
