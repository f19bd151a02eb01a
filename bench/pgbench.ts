import { join } from 'node:path';
import { pgBinDir } from './env.js';
import type { Login } from './pg.js';
import type { ProcessRegistry } from './proc.js';

export interface PgbenchResult {
  tps: number;
  transactions: number;
}

/** pgbench over TCP with the system's own login; the password goes through the environment, never argv. */
function pgbenchArgs(login: Login, extra: readonly string[], clientEnv: NodeJS.ProcessEnv = {}): { args: string[]; env: NodeJS.ProcessEnv } {
  return {
    args: [...extra, '-h', login.host ?? '127.0.0.1', '-p', String(login.port), '-U', login.user, login.database],
    env: { ...clientEnv, PGPASSWORD: login.password },
  };
}

/** `pgbench -i -s SCALE` (quiet), in the login's database. */
export async function pgbenchInit(processes: ProcessRegistry, login: Login, scale: number, logFile: string): Promise<void> {
  const { args, env } = pgbenchArgs(login, ['-i', '-q', '-s', String(scale)]);
  await processes.mustRun('pgbench -i', join(pgBinDir, 'pgbench'), args, { env, logFile }, 300_000);
}

/**
 * One pgbench run; its report is parsed for the TPS (without connection time) and the transactions processed.
 * `clientEnv`: libpq settings beyond the login (e.g. `PGSSLMODE`); by default libpq's own (`sslmode=prefer`: TLS
 * whenever the server offers it).
 */
export async function pgbenchRun(
  processes: ProcessRegistry,
  login: Login,
  options: readonly string[],
  logFile: string,
  timeoutMs: number,
  clientEnv: NodeJS.ProcessEnv = {},
): Promise<PgbenchResult> {
  const { args, env } = pgbenchArgs(login, options, clientEnv);
  const report = await processes.output('pgbench', join(pgBinDir, 'pgbench'), args, { env, logFile }, timeoutMs);
  const tps = Number(/^tps = ([\d.]+) \(without initial connection time\)/m.exec(report)?.[1]);
  const transactions = Number(/^number of transactions actually processed: (\d+)/m.exec(report)?.[1]);
  if (!Number.isFinite(tps) || !Number.isFinite(transactions)) throw new Error(`pgbench printed no TPS:\n${report}`);
  return { tps, transactions };
}
