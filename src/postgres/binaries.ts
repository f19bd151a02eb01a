import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

/** Where PostgreSQL 15's server binaries live: `PGIM_PG_BIN`, then Debian's path, then the PATH. */
export function findPgBinDir(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = [env.PGIM_PG_BIN, '/usr/lib/postgresql/15/bin', ...(env.PATH ?? '').split(':')];
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
  throw new Error(
    'PostgreSQL server binaries not found: install postgresql-15 (scripts/install-deps.sh does) or set PGIM_PG_BIN',
  );
}
