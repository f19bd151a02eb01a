import { nativeCalls, type NativeProcessCalls } from '../process/native.js';
import { fieldCounts, fieldNamesByIndex, isFieldCount, messageIndex } from './csvlog.js';
import { redactedOption } from './redact.js';

/**
 * The log pipe's fast path: csvlog bytes straight to JSON-line bytes, one pass, no JS strings per record. Under
 * `log_statement = all` pgim relays tens of thousands of records a second on the cores PostgreSQL needs, and
 * decoding, slicing, concatenating and re-encoding strings (plus the garbage they leave) was most of that cost.
 *
 * It takes the common case only: an all-ASCII record with 23, 24 or 26 fields that is not a pgaudit line. Anything
 * else (non-ASCII text, a pgaudit record, a line that is not csvlog) is handed back whole to the string path, which
 * handles every case; unit tests check that both give the same JSON for what the fast path takes.
 *
 * The loop runs in the native addon (native/csvlog_json.c) when it is built: a quarter of the CPU per record.
 * The same loop in JavaScript below is what runs without it, and the reference the tests hold the C one to.
 */

const QUOTE = 0x22;
const COMMA = 0x2c;
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
const auditPrefix = Buffer.from('AUDIT: ');
const hex = Buffer.from('0123456789abcdef');

/** `"name":"`, and `,"name":"` for every field after the first one written. */
const keys = fieldNamesByIndex.map((name) => Buffer.from(`"${name}":"`));
const keysAfterFirst = fieldNamesByIndex.map((name) => Buffer.from(`,"${name}":"`));
const recordEnd = Buffer.from('}}\n');

export interface RelaySink {
  /**
   * JSON lines ready to be written, in order; valid only during the call (the buffer is reused). `mayHoldRedacted`
   * is false only when no line holds `redactedOption` (the native loop watches for it as it writes, so the lines
   * need no second scan); the JavaScript loop always says true.
   */
  lines(bytes: Buffer, mayHoldRedacted: boolean): void;
  /** One complete record the fast path does not take (its text, without the newline). */
  slow(record: Buffer): void;
}

const END = 0;
const SLOW = 1;

let nativeReady: NativeProcessCalls | undefined;

/** The addon's converter, given the field names once; undefined without the addon. */
function nativeConverter(): NativeProcessCalls | undefined {
  if (nativeReady === undefined) {
    const calls = nativeCalls();
    if (calls instanceof Error) return undefined;
    calls.csvSetFieldNames(fieldNamesByIndex, messageIndex, fieldCounts, redactedOption);
    nativeReady = calls;
  }
  return nativeReady;
}

export class CsvToJsonLines {
  private out = Buffer.allocUnsafe(256 * 1024);
  private pending: Buffer | undefined;
  private readonly native: NativeProcessCalls | undefined;
  private readonly state = new Uint32Array(5);

  constructor(
    private readonly maxRecordBytes = 1024 * 1024,
    engine: 'native' | 'js' = 'native',
  ) {
    this.native = engine === 'native' ? nativeConverter() : undefined;
  }

  /** Where the loop runs: 'js' when asked, or when the addon is not built. */
  get engine(): 'native' | 'js' {
    return this.native ? 'native' : 'js';
  }

  /**
   * Converts every complete record in `pending + chunk`; `prefix` opens each line up to `"record":{`. A partial
   * record at the end is kept for the next chunk; one longer than maxRecordBytes (a runaway quote) is handed to
   * `slow` as it is, so memory stays bounded.
   */
  push(chunk: Buffer, prefix: Buffer, sink: RelaySink): void {
    const input = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    const start = this.native ? this.convertNative(this.native, input, prefix, sink) : this.convertJs(input, prefix, sink);
    if (start < input.length) {
      const rest = input.subarray(start);
      if (rest.length > this.maxRecordBytes) sink.slow(rest);
      else this.pending = Buffer.from(rest);
    }
  }

  /** Converts what is complete; returns where the partial record left for the next chunk starts. */
  private convertNative(native: NativeProcessCalls, input: Buffer, prefix: Buffer, sink: RelaySink): number {
    const state = this.state;
    const prefixHolds = prefix.includes(redactedOption);
    let start = 0;
    let pos = 0;
    for (;;) {
      native.csvConvert(input, start, this.out, pos, prefix, state);
      [start, pos] = [state[0] ?? input.length, state[1] ?? 0];
      const result = state[2];
      if (result === END) break;
      // The lines converted so far go out first, in order; that also empties the buffer for what comes next.
      const flushed = pos > 0;
      if (flushed) sink.lines(this.out.subarray(0, pos), prefixHolds || state[4] !== 0);
      pos = 0;
      if (result === SLOW) {
        const next = state[3] ?? input.length;
        sink.slow(input.subarray(start, next - 1));
        start = next;
      } else if (!flushed) this.ensure(0, this.out.length + 1); // full: one record outgrew the whole buffer
    }
    if (pos > 0) sink.lines(this.out.subarray(0, pos), prefixHolds || state[4] !== 0);
    return start;
  }

  private convertJs(input: Buffer, prefix: Buffer, sink: RelaySink): number {
    let pos = 0;
    let start = 0;
    const flush = (): void => {
      if (pos > 0) sink.lines(this.out.subarray(0, pos), true);
      pos = 0;
    };
    while (start < input.length) {
      const end = this.convertRecord(input, start, pos, prefix);
      if (end.kind === 'partial') break;
      if (end.kind === 'done') pos = end.pos;
      else {
        flush();
        sink.slow(input.subarray(start, end.next - 1));
      }
      start = end.next;
    }
    flush();
    return start;
  }

  private ensure(pos: number, more: number): void {
    if (pos + more <= this.out.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.out.length * 2, pos + more));
    this.out.copy(bigger, 0, 0, pos);
    this.out = bigger;
  }

  /**
   * One record from `start`: `done` with the output position after its JSON line, `slow` when the string path
   * must take it, `partial` when its newline has not arrived yet; `next` is the input position after the newline.
   */
  private convertRecord(input: Buffer, start: number, outStart: number, prefix: Buffer): { kind: 'done'; pos: number; next: number } | { kind: 'slow'; next: number } | { kind: 'partial' } {
    // One flat loop, no closures or calls per byte: this runs for every byte PostgreSQL logs.
    this.ensure(outStart, prefix.length + 64);
    let out = this.out;
    let limit = out.length - 64;
    let pos = outStart + prefix.copy(out, outStart);
    let field = 0;
    let written = 0;
    let fast = true;
    let quoted = false;
    let fieldOut = pos;
    let key = keys[0];
    pos += key?.copy(out, pos) ?? 0;
    let contentStart = pos;
    for (let i = start; i < input.length; i++) {
      const byte = input[i] ?? NEWLINE;
      if (quoted) {
        if (byte === QUOTE) {
          // A doubled quote is one quote of content; a single one ends the quoted section.
          if (input[i + 1] !== QUOTE) {
            quoted = false;
            continue;
          }
          i++;
        }
      } else if (byte === QUOTE) {
        quoted = true;
        continue;
      } else if (byte === COMMA || byte === NEWLINE) {
        if (fast) {
          // Close the field: an empty one is left out, as parseCsvRecord does.
          if (pos === contentStart) pos = fieldOut;
          else {
            out[pos++] = QUOTE;
            written++;
          }
        }
        field++;
        if (byte === NEWLINE) {
          if (!fast || !isFieldCount(field)) return { kind: 'slow', next: i + 1 };
          pos += recordEnd.copy(out, pos);
          return { kind: 'done', pos, next: i + 1 };
        }
        if (!fast) continue;
        key = written === 0 ? keys[field] : keysAfterFirst[field];
        if (key === undefined) {
          fast = false;
          continue;
        }
        // A pgaudit record (message `AUDIT: ...`, always quoted) gets its own shape: the string path builds it.
        if (field === messageIndex && i + 2 + auditPrefix.length <= input.length && input.compare(auditPrefix, 0, auditPrefix.length, i + 2, i + 2 + auditPrefix.length) === 0) {
          fast = false;
          continue;
        }
        fieldOut = pos;
        pos += key.copy(out, pos);
        contentStart = pos;
        continue;
      }
      if (!fast) continue;
      if (byte >= 0x80) {
        fast = false;
        continue;
      }
      if (pos > limit) {
        this.ensure(pos, 64);
        out = this.out;
        limit = out.length - 64;
      }
      if (byte >= 0x20 && byte !== QUOTE && byte !== BACKSLASH) out[pos++] = byte;
      else if (byte >= 0x20) {
        out[pos++] = BACKSLASH;
        out[pos++] = byte;
      } else pos = escapeControl(out, pos, byte);
    }
    return { kind: 'partial' };
  }
}

/** JSON.stringify's escapes for control characters: the short forms where JSON has them, \u00XX otherwise. */
function escapeControl(out: Buffer, at: number, byte: number): number {
  let pos = at;
  out[pos++] = BACKSLASH;
  const short = byte === 0x08 ? 0x62 : byte === 0x09 ? 0x74 : byte === 0x0a ? 0x6e : byte === 0x0c ? 0x66 : byte === 0x0d ? 0x72 : 0;
  if (short !== 0) {
    out[pos++] = short;
    return pos;
  }
  out[pos++] = 0x75;
  out[pos++] = 0x30;
  out[pos++] = 0x30;
  out[pos++] = hex[byte >> 4] ?? 0x30;
  out[pos++] = hex[byte & 0xf] ?? 0x30;
  return pos;
}
