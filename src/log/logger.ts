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
    options.destination ?? pino.destination({ fd: 1, sync: true }),
  );
  const root = base.child({ logger: 'instance-manager' });
  unnamed.set(root, base);
  return root;
}

/** pino appends child bindings, so a name is bound on the unnamed base, never on top of another name. */
const unnamed = new WeakMap<Logger, Logger>();

/** A logger for one named component or child program (`logger` key), like CNPG's `log.WithName`. */
export function namedLogger(parent: Logger, name: string): Logger {
  const base = unnamed.get(parent) ?? parent;
  const named = base.child({ logger: name });
  unnamed.set(named, base);
  return named;
}
