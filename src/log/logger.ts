import { writeSync } from 'node:fs';
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** CNPG's level names; pino's `warn` is `warning` there. */
const levelNames: Readonly<Record<string, string>> = {
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warn: 'warning',
  error: 'error',
  fatal: 'error',
};

export interface LoggerOptions {
  pod: string;
  level?: string;
  destination?: pino.DestinationStream;
}

/**
 * JSON lines with CNPG's keys (`level`, `ts` RFC 3339, `logger`, `msg`, `logging_pod`), so log pipelines built for
 * CloudNativePG parse pgim's output unchanged. Synchronous stdout: a PID 1 that dies must not lose its last lines.
 */
export function createRootLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? pino.destination({ fd: 1, sync: true });
  const base = pino(
    {
      level: options.level ?? process.env.PGIM_LOG_LEVEL ?? 'info',
      messageKey: 'msg',
      base: { logging_pod: options.pod },
      timestamp: () => `,"ts":"${new Date().toISOString()}"`,
      formatters: {
        level: (label) => ({ level: levelNames[label] ?? label }),
      },
      // Defence in depth: no code path logs these, but a future mistake must not leak one.
      redact: { paths: ['password', '*.password', 'secret', '*.secret', 'env.PGPASSWORD'], censor: '[redacted]' },
    },
    destination,
  );
  const root = base.child({ logger: 'instance-manager' });
  unnamed.set(root, base);
  outputs.set(base, { destination, pod: options.pod });
  return root;
}

/** pino appends child bindings, so a name is bound on the unnamed base, never on top of another name. */
const unnamed = new WeakMap<Logger, Logger>();
const outputs = new WeakMap<Logger, { destination: pino.DestinationStream; pod: string }>();

/** A logger for one named component or child program (`logger` key), like CNPG's `log.WithName`. */
export function namedLogger(parent: Logger, name: string): Logger {
  const base = unnamed.get(parent) ?? parent;
  const named = base.child({ logger: name });
  unnamed.set(named, base);
  return named;
}

/**
 * Writes pre-serialised `msg: "record"` lines (the log pipe's hot path) to the same destination as `logger`, in
 * the same shape pino gives them. With `log_statement = all` pgim relays tens of thousands of records a second on
 * PostgreSQL's cores, and pino's per-call work (bindings, redaction, one write per line) was most of that cost:
 * here a whole batch of records is one write.
 */
export interface RecordWriter {
  /** False when `info` is below the configured level: the caller then skips formatting too. */
  readonly enabled: boolean;
  /** A record line up to and including `"record":`. */
  prefix(loggerName: string, ts: string): string;
  /** One JSON line (with its newline) for a record whose JSON text is already built. */
  line(loggerName: string, ts: string, recordJson: string): string;
  write(lines: string): void;
  /** Lines already encoded; consumed before returning (the caller reuses the buffer). */
  writeBytes(lines: Buffer): void;
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** All of `bytes` to `fd`, waiting out EAGAIN (a non-blocking stdout that is full) as pino's own sync writes do. */
function writeAllSync(fd: number, bytes: Buffer): void {
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(fd, bytes, offset);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return; // stdout is gone: nothing left to tell
      Atomics.wait(sleepCell, 0, 0, 1);
    }
  }
}

export function recordWriter(logger: Logger): RecordWriter {
  const base = unnamed.get(logger) ?? logger;
  const output = outputs.get(base);
  if (!output) throw new Error('recordWriter needs a logger made by createRootLogger');
  const pod = JSON.stringify(output.pod);
  const suffixes = new Map<string, string>();
  const prefix = (loggerName: string, ts: string): string => {
    let suffix = suffixes.get(loggerName);
    if (suffix === undefined) {
      suffix = `","logging_pod":${pod},"logger":${JSON.stringify(loggerName)},"msg":"record","record":`;
      suffixes.set(loggerName, suffix);
    }
    return `{"level":"info","ts":"${ts}${suffix}`;
  };
  const { destination } = output;
  // pino's sync file destination writes each line at once, so writing to its descriptor here keeps the order.
  const fd = (destination as { fd?: unknown }).fd;
  return {
    enabled: logger.isLevelEnabled('info'),
    prefix,
    line: (loggerName, ts, recordJson) => `${prefix(loggerName, ts)}${recordJson}}\n`,
    write(lines) {
      if (lines !== '') destination.write(lines);
    },
    writeBytes(lines) {
      if (lines.length === 0) return;
      if (typeof fd === 'number') writeAllSync(fd, lines);
      else destination.write(lines.toString('utf8'));
    },
  };
}
