import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { ExitCode } from '../errors/index.js';
import { CannotStartError } from './cannot-start.js';

/** Where PostgreSQL 15's server binaries live: `PGIM_PG_BIN` if set, else Debian's path, then the PATH. */
export function findPgBinDir(env: NodeJS.ProcessEnv = process.env): string {
  // An explicit PGIM_PG_BIN is the only place looked at: a wrong one must not silently run other binaries.
  const explicit = env.PGIM_PG_BIN !== undefined && env.PGIM_PG_BIN !== '';
  const candidates = explicit ? [env.PGIM_PG_BIN] : ['/usr/lib/postgresql/15/bin', ...(env.PATH ?? '').split(':')];
  for (const dir of candidates) {
    if (dir === undefined || dir === '') continue;
    try {
      accessSync(join(dir, 'postgres'), constants.X_OK);
      accessSync(join(dir, 'initdb'), constants.X_OK);
      return dir;
    } catch {
      // not here; try the next one
    }
  }
  throw new CannotStartError(
    `PostgreSQL server binaries (postgres, initdb) not found ${explicit ? `in PGIM_PG_BIN (${env.PGIM_PG_BIN})` : 'in /usr/lib/postgresql/15/bin nor on the PATH'}: ` +
      'install postgresql-15 (scripts/install-deps.sh does) or set PGIM_PG_BIN',
    ExitCode.missingBinaries,
  );
}

/** The same search, undefined where no PostgreSQL is installed (`pgim render` on a workstation). */
export function tryFindPgBinDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  try {
    return findPgBinDir(env);
  } catch {
    return undefined;
  }
}
