import { stat } from 'node:fs/promises';

// What `pgim wal-archive` and `pgim wal-restore` share: both run as PostgreSQL's archive/restore command, outside the
// daemon, and log to stderr where the logging collector hands their lines to pgim's log pipe.

type Level = 'debug' | 'info' | 'warn' | 'error';
const levels: Record<Level, number> = { debug: 20, info: 30, warn: 40, error: 50 };

/** One JSON line on stderr, in pgim's log shape, under `logger`. */
export function stderrLogger(logger: string): (level: Level, msg: string, fields?: Record<string, unknown>) => void {
  return (level, msg, fields = {}) => {
    process.stderr.write(`${JSON.stringify({ level: levels[level], time: Date.now(), logger, msg, ...fields })}\n`);
  };
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
