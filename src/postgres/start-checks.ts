import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ExitCode } from '../errors/index.js';
import { runTool } from './tools.js';
import { CannotStartError } from './cannot-start.js';
import type { Logger } from 'pino';

export { CannotStartError } from './cannot-start.js';

/** PGDATA cannot be used as it is (exit 5): another major version, not the postgres user's, or not a cluster. */
export class UnusableDataDirectoryError extends CannotStartError {
  override readonly name = 'UnusableDataDirectoryError';
  constructor(message: string) {
    super(message, ExitCode.unusableDataDirectory);
  }
}

const uid = (): number => process.getuid?.() ?? -1;

/**
 * PGDATA's control file must belong to, and be readable by, the user pgim (and postgres) runs as. Without this,
 * pg_controldata's "permission denied" read as "no valid cluster", and a valid cluster was called junk.
 * A PGDATA that is not a cluster at all (no global/pg_control) passes: the caller decides about that.
 */
export async function checkDataDirectoryAccess(pgdata: string): Promise<void> {
  const control = join(pgdata, 'global', 'pg_control');
  let owner: number;
  try {
    owner = (await stat(control)).uid;
    await access(control, constants.R_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return;
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
    throw new UnusableDataDirectoryError(
      `PGDATA ${pgdata}: permission denied on global/pg_control: PGDATA is not accessible to uid ${uid()}, the user pgim and ` +
        'postgres run as; give the data directory to that user (chown -R). The cluster in it was left untouched',
    );
  }
  if (owner !== uid()) {
    throw new UnusableDataDirectoryError(
      `PGDATA ${pgdata}: global/pg_control belongs to uid ${owner}, not to uid ${uid()}, the user pgim and postgres run as ` +
        '(PostgreSQL refuses a data directory of another user); give the data directory to that user (chown -R). ' +
        'The cluster in it was left untouched',
    );
  }
}

/** The major version of the PostgreSQL binaries in `binDir` (`postgres -V`: "postgres (PostgreSQL) 15.18 …"). */
export async function serverMajorVersion(binDir: string, logger: Logger): Promise<string | undefined> {
  const result = await runTool(binDir, 'postgres', ['-V'], { logger, captureStdout: true, timeoutMs: 10_000 });
  return /\(PostgreSQL\)\s+(\d+)/.exec(result.stdout)?.[1];
}

/** PGDATA's PG_VERSION must name the binaries' major version: data files of another one never start. */
export async function checkDataDirectoryVersion(pgdata: string, binDir: string, serverMajor: string | undefined): Promise<void> {
  let dataMajor: string;
  try {
    dataMajor = (await readFile(join(pgdata, 'PG_VERSION'), 'utf8')).trim();
  } catch {
    return; // no PG_VERSION: not a cluster; the caller refuses it
  }
  if (serverMajor === undefined || dataMajor === serverMajor) return;
  throw new UnusableDataDirectoryError(
    `PGDATA ${pgdata} holds a PostgreSQL ${dataMajor} cluster, but ${binDir} is PostgreSQL ${serverMajor}: its data files are ` +
      `incompatible. Upgrade the cluster (pg_upgrade) or run pgim with PostgreSQL ${dataMajor}'s binaries (PGIM_PG_BIN); ` +
      'the cluster was left untouched',
  );
}

/** The hosts PostgreSQL binds for `listen_addresses` ('*' = every address; '' = Unix socket only). */
function bindHosts(listenAddresses: string): string[] {
  const hosts = listenAddresses.split(',').map((h) => h.trim()).filter((h) => h !== '');
  return hosts.flatMap((h) => (h === '*' ? ['0.0.0.0', '::'] : [h]));
}

function tryBind(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      resolve(err);
    });
    server.listen({ host, port, exclusive: true, ipv6Only: host === '::' }, () => {
      server.close(() => {
        resolve(undefined);
      });
    });
  });
}

/**
 * Before each start: is the PostgreSQL port free on every address postgres will listen on? Another program on it
 * makes the postmaster exit at once, start after start; that is a misconfiguration, not a crash.
 * Addresses that cannot exist here (no IPv6) are left to PostgreSQL, which skips them as well.
 */
export async function checkPortFree(listenAddresses: string, port: number): Promise<void> {
  for (const host of bindHosts(listenAddresses)) {
    const err = await tryBind(host, port);
    if (err?.code === 'EADDRINUSE') {
      throw new CannotStartError(
        `the PostgreSQL port ${port} is already in use on ${host} by another program: stop it, or give pgim another port (--pg-port / PGPORT)`,
        ExitCode.portInUse,
      );
    }
  }
}
