import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';

/**
 * Logs a child program's output line by line (`pipe: stdout|stderr`), as CNPG's `execlog.RunStreaming` does.
 * Resolves when the stream ends, so callers can wait for the last line before reporting the exit.
 */
export function logLines(stream: Readable | null | undefined, logger: Logger, pipe: 'stdout' | 'stderr'): Promise<void> {
  if (!stream) return Promise.resolve();
  const reader = createInterface({ input: stream, crlfDelay: Infinity });
  reader.on('line', (line) => {
    if (line.length === 0) return;
    // A program's own fatal message (postgres' "FATAL:  database files are incompatible…", "could not bind…") is
    // the cause of a failure: it goes out at error level, not buried among info lines.
    if (/\b(?:FATAL|PANIC):/.test(line)) logger.error({ pipe }, line);
    else logger.info({ pipe }, line);
  });
  return new Promise((resolve) => {
    reader.once('close', resolve);
  });
}
