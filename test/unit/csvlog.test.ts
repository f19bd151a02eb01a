import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { CsvToJsonLines } from '../../src/log/csvlog-bytes.js';
import { formatCsvRecord, parseCsvRecord, splitCsv } from '../../src/log/csvlog.js';
import { createRootLogger, namedLogger, recordWriter } from '../../src/log/logger.js';
import { redactedOption } from '../../src/log/redact.js';

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

/** The straightforward per-character reader the fast scanners must agree with. */
function referenceSplitCsv(line: string): string[] {
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

/** Text made mostly of the characters that matter to CSV, so quoting edge cases come up often. */
const csvText = fc.string({ unit: fc.constantFrom('"', ',', '\n', 'a', 'é', '\\', '\u0001', '😀') });

describe('splitCsv agrees with the per-character reader (fast-check)', () => {
  it('splitCsv equals the per-character reader on any text', () => {
    fc.assert(fc.property(fc.oneof(csvText, fc.string()), (line) => {
      assert.deepEqual(splitCsv(line), referenceSplitCsv(line));
    }), { numRuns: 2000 });
  });


});

describe('recordWriter', () => {
  it("writes the same JSON line pino would, in one write per batch, and nothing below the logger's level", () => {
    const writes: string[] = [];
    const root = createRootLogger({ pod: 'pod-"1"', destination: { write: (data: string) => void writes.push(data) } });
    const parsed = parseCsvRecord(pg15);
    assert.ok(parsed.kind === 'record');
    namedLogger(root, 'postgres').info({ record: parsed.record }, 'record');
    const writer = recordWriter(root);
    const formatted = formatCsvRecord(pg15);
    assert.ok(formatted.kind === 'record');
    const ts = new Date().toISOString();
    writer.write(writer.line('postgres', ts, formatted.recordJson) + writer.line('pgaudit', ts, formatted.recordJson));
    assert.equal(writes.length, 2);
    const [fromPino, ours, audit] = [writes[0] ?? '', ...(writes[1] ?? '').split('\n')].map((line) => JSON.parse(line || '{}') as Record<string, unknown>);
    assert.ok(fromPino && ours && audit);
    assert.deepEqual(Object.keys(ours).sort(), Object.keys(fromPino).sort());
    assert.deepEqual({ ...ours, ts: undefined }, { ...fromPino, ts: undefined });
    assert.equal(ours.ts, ts);
    assert.equal(audit.logger, 'pgaudit');
    assert.equal(recordWriter(createRootLogger({ pod: 'p', level: 'warn', destination: { write: () => undefined } })).enabled, false);
  });
});

/** What the string path makes of one record: the JSON `record` text, or the raw text. */
function stringPath(text: string): string {
  const formatted = formatCsvRecord(text);
  return formatted.kind === 'record' ? `${formatted.logger}:${formatted.recordJson}` : `raw:${formatted.text}`;
}

/** Runs the byte converter over `stream` cut at `cuts`; fast lines and slow records, in order, as stringPath gives them. */
function convert(stream: Buffer, cuts: readonly number[], maxRecordBytes: number | undefined, engine: 'native' | 'js'): string[] {
  const out: string[] = [];
  const converter = new CsvToJsonLines(maxRecordBytes, engine);
  const prefix = Buffer.from('P{');
  let from = 0;
  for (const bound of [...cuts, stream.length]) {
    converter.push(stream.subarray(from, bound), prefix, {
      lines: (bytes) => {
        for (const line of bytes.toString('utf8').split('\n').slice(0, -1)) {
          assert.ok(line.startsWith('P{') && line.endsWith('}}'), line);
          out.push(`postgres:${line.slice(1, -1)}`);
        }
      },
      slow: (record) => {
        out.push(stringPath(record.toString('utf8')));
      },
    });
    from = bound;
  }
  return out;
}

const asciiText = fc.string({ unit: fc.constantFrom('"', ',', '\n', 'a', 'Z', ' ', '\\', '\u0001', '\t', '\r', '\u001f', '{', '/') });
const anyField = fc.oneof(asciiText, fc.string({ unit: fc.constantFrom('é', '😀', '"', ',', 'a') }), fc.constant(''), fc.constant('AUDIT: SESSION,1,1,READ,SELECT,,,select 1,<not logged>'));
const csvRecord = fc.constantFrom(23, 24, 26, 25, 1).chain((count) =>
  fc.array(fc.oneof(asciiText, anyField), { minLength: count, maxLength: count }).map((values) => values.map((v) => (v === '' ? '' : `"${v.replace(/"/g, '""')}"`)).join(',')),
);

for (const engine of ['native', 'js'] as const) {
  describe(`csvlog byte fast path (${engine}) agrees with the string path (fast-check)`, () => {
    it('gives the same JSON for every record, whatever the chunk boundaries', () => {
      fc.assert(
        fc.property(fc.array(csvRecord, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 8 }), (records, cuts) => {
          const stream = Buffer.from(records.map((r) => `${r}\n`).join(''));
          const bounds = [...new Set(cuts.map((c) => c % stream.length))].sort((a, b) => a - b);
          assert.deepEqual(convert(stream, bounds, undefined, engine), records.map(stringPath));
        }),
        { numRuns: 1500 },
      );
    });

    it('takes the PostgreSQL 15 record itself on the fast path', () => {
      let fastLines = 0;
      new CsvToJsonLines(undefined, engine).push(Buffer.from(`${pg15}\n`), Buffer.from('{'), {
        lines: (bytes) => {
          fastLines += bytes.toString().split('\n').length - 1;
        },
        slow: () => assert.fail('the common record went to the slow path'),
      });
      assert.equal(fastLines, 1);
    });

    it('grows its output for a record longer than its buffer (every byte escaped to \\u00XX)', () => {
      const fields = pg15.split(',');
      const huge = [...fields.slice(0, 13), `"${'\u0001'.repeat(300 * 1024)}"`, ...fields.slice(14)].join(',');
      assert.deepEqual(convert(Buffer.from(`${pg15}\n${huge}\n${pg15}\n`), [], 4 * 1024 * 1024, engine), [pg15, huge, pg15].map(stringPath));
    });

    it(`runs ${engine === 'native' ? 'in the addon (native/csvlog_json.c)' : 'in JavaScript'}`, () => {
      assert.equal(new CsvToJsonLines(undefined, engine).engine, engine);
    });

    it('bounds memory: a runaway quoted record is handed over as it is, and reading goes on', () => {
      const out = convert(Buffer.from(`"${'x'.repeat(200)}`), [], 100, engine);
      assert.deepEqual(out, [`raw:"${'x'.repeat(200)}`]);
      const stream = Buffer.from(`"${'x'.repeat(200)}\n${pg15}\n`);
      const flushed = convert(stream, [50, 150], 100, engine);
      assert.equal(flushed[0], `raw:"${'x'.repeat(149)}`, 'flushed once it outgrew the bound');
      assert.equal(flushed.at(-1), stringPath(pg15), 'the next record is read normally');
    });
  });
}

describe('the native converter on arbitrary bytes (fast-check)', () => {
  it('gives exactly what the JavaScript loop gives, for any bytes, any chunk boundaries and a small record bound', () => {
    assert.equal(new CsvToJsonLines(undefined, 'native').engine, 'native', 'the addon is built');
    const bytes = fc.uint8Array({ maxLength: 600 }).map((array) => Buffer.from(array));
    const csvish = fc.array(fc.oneof(bytes, fc.constantFrom(...['"', ',', '\n', '""', 'AUDIT: ', '\\', `${pg15}\n`].map((text) => Buffer.from(text)))), { maxLength: 12 }).map((parts) => Buffer.concat(parts));
    fc.assert(
      fc.property(csvish, fc.array(fc.nat(), { maxLength: 6 }), fc.constantFrom(64, 300, 1024 * 1024), (stream, cuts, maxRecordBytes) => {
        if (stream.length === 0) return;
        const bounds = [...new Set(cuts.map((c) => c % stream.length))].sort((a, b) => a - b);
        assert.deepEqual(convert(stream, bounds, maxRecordBytes, 'native'), convert(stream, bounds, maxRecordBytes, 'js'));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('the native converter tells which lines need redaction', () => {
  it('never says "none" for lines that hold the redacted option, whatever the bytes and chunk boundaries', () => {
    const pieces = ['"', ',', '\n', '""', 'ldapbindpasswd=', 'ldapbind', 'passwd=', '=', 'ldap"bind"passwd=', `${pg15}\n`];
    const stream = fc
      .array(fc.oneof(fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)), fc.constantFrom(...pieces.map((text) => Buffer.from(text)))), { maxLength: 16 })
      .map((parts) => Buffer.concat(parts));
    let flagged = 0;
    fc.assert(
      fc.property(stream, fc.array(fc.nat(), { maxLength: 4 }), (input, cuts) => {
        const converter = new CsvToJsonLines(undefined, 'native');
        const bounds = [...new Set(cuts.map((c) => c % Math.max(1, input.length)))].sort((a, b) => a - b);
        let from = 0;
        for (const bound of [...bounds, input.length]) {
          converter.push(input.subarray(from, bound), Buffer.from('{'), {
            lines: (bytes, mayHoldRedacted) => {
              if (mayHoldRedacted) flagged += 1;
              else assert.equal(bytes.includes(redactedOption), false, bytes.toString());
            },
            slow: () => undefined,
          });
          from = bound;
        }
      }),
      { numRuns: 3000 },
    );
    assert.ok(flagged > 0, 'some lines held the option');
  });

  it('says "none" for ordinary records, so they are written without a second scan', () => {
    const seen: boolean[] = [];
    new CsvToJsonLines(undefined, 'native').push(Buffer.from(`${pg15}\n${pg15.replace('division by zero', 'a = b')}\n`), Buffer.from('{'), {
      lines: (_bytes, mayHoldRedacted) => seen.push(mayHoldRedacted),
      slow: () => assert.fail('fast path expected'),
    });
    assert.deepEqual(seen, [false]);
  });
});
