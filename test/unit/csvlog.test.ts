import { strict as assert } from 'node:assert';
import { CsvRecordSplitter, parseCsvRecord, splitCsv } from '../../src/log/csvlog.js';

/** A PostgreSQL 15 csvlog line (26 fields) as the logging collector writes it. */
const pg15 =
  '2026-11-27 20:38:10.484 UTC,"app","app",27741,"127.0.0.1:58538",6b09ea32.6c5d,4,"SELECT",2026-11-27 20:38:10 UTC,3/8,0,' +
  'ERROR,22012,"division by zero",,,,,,"select 1/0",,,"psql","client backend",,0';

describe('csvlog parsing', () => {
  it('maps a PostgreSQL 15 record to CNPG field names, omitting empty fields', () => {
    const parsed = parseCsvRecord(pg15);
    assert.ok(parsed.kind === 'record');
    assert.equal(parsed.logger, 'postgres');
    assert.equal(parsed.record.error_severity, 'ERROR');
    assert.equal(parsed.record.message, 'division by zero');
    assert.equal(parsed.record.query, 'select 1/0');
    assert.equal(parsed.record.backend_type, 'client backend');
    assert.equal(parsed.record.query_id, '0');
    assert.ok(!('detail' in parsed.record));
  });

  it('accepts the PostgreSQL 13 (24) and 12 (23) field sets', () => {
    const fields = splitCsv(pg15);
    const pg13 = parseCsvRecord(fields.slice(0, 24).map((f) => `"${f.replace(/"/g, '""')}"`).join(','));
    assert.equal(pg13.kind === 'record' && pg13.record.backend_type, 'client backend');
    const pg12 = parseCsvRecord(fields.slice(0, 23).map((f) => `"${f}"`).join(','));
    assert.equal(pg12.kind === 'record' && pg12.record.application_name, 'psql');
  });

  it('keeps commas, quotes and newlines inside quoted fields', () => {
    assert.deepEqual(splitCsv('a,"b,c","say ""hi""","l1\nl2",'), ['a', 'b,c', 'say "hi"', 'l1\nl2', '']);
  });

  it('parses pgaudit messages into record.audit with logger pgaudit', () => {
    const fields = splitCsv(pg15);
    fields[13] = 'AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.t,"select * from t",<not logged>';
    const parsed = parseCsvRecord(fields.map((f) => `"${f.replace(/"/g, '""')}"`).join(','));
    assert.ok(parsed.kind === 'record');
    assert.equal(parsed.logger, 'pgaudit');
    assert.deepEqual(parsed.record.audit, {
      audit_type: 'SESSION', statement_id: '1', substatement_id: '1', class: 'READ', command: 'SELECT',
      object_type: 'TABLE', object_name: 'public.t', statement: 'select * from t', parameter: '<not logged>',
    });
    assert.ok(!('message' in parsed.record));
  });

  it('returns anything else as raw text, never dropping it', () => {
    assert.deepEqual(parseCsvRecord('not a csv record'), { kind: 'raw', text: 'not a csv record' });
  });
});

describe('csvlog record splitting', () => {
  it('joins records split across chunks and keeps newlines inside quotes', () => {
    const out: string[] = [];
    const splitter = new CsvRecordSplitter();
    splitter.push('a,"multi\nli', (r) => out.push(r));
    splitter.push('ne",b\nc,d\n', (r) => out.push(r));
    assert.deepEqual(out, ['a,"multi\nline",b', 'c,d']);
  });

  it('bounds memory: a runaway quoted record is flushed as raw text', () => {
    const out: string[] = [];
    const splitter = new CsvRecordSplitter(100);
    splitter.push(`"${'x'.repeat(200)}`, (r) => out.push(r));
    assert.equal(out.length, 1);
    splitter.push('a,b\n', (r) => out.push(r));
    assert.deepEqual(out.slice(1), ['a,b']);
  });
});
