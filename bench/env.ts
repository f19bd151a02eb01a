import { chown, mkdir } from 'node:fs/promises';
import { isRoot, postgresUser, userIds } from '../test-kit/env.js';

export { freePort, isRoot, makeTempDir, removeTempDir, sleep } from '../test-kit/env.js';

/** The PostgreSQL binaries every system uses (pgim reads the same variable). */
export const pgBinDir = process.env.PGIM_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface ServiceUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

let cachedUser: ServiceUser | undefined;

/**
 * The account PostgreSQL, Patroni and etcd run as when the harness runs as root (postgres refuses root); undefined
 * otherwise, when everything simply runs as the current user.
 */
export function serviceUser(): ServiceUser | undefined {
  if (!isRoot) return undefined;
  if (cachedUser === undefined) {
    const { uid, gid } = userIds(postgresUser);
    cachedUser = { name: postgresUser, uid, gid, home: '/var/lib/postgresql' };
  }
  return cachedUser;
}

/** Client settings a parent shell may have exported; they must not steer the systems under test. */
const clientVariables = ['PGPASSWORD', 'PGPASSFILE', 'PGHOST', 'PGHOSTADDR', 'PGUSER', 'PGDATABASE', 'PGSERVICE', 'PGOPTIONS', 'PGDATA', 'PGPORT'];

export function pgEnvironment(user: ServiceUser | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C.UTF-8' };
  for (const name of clientVariables) env[name] = undefined;
  if (user !== undefined) {
    env.HOME = user.home;
    env.USER = user.name;
    env.LOGNAME = user.name;
  }
  return env;
}

/** A folder the service account owns (0700 unless told), e.g. a data directory or a socket directory. */
export async function serviceDirectory(path: string, mode = 0o700): Promise<string> {
  await mkdir(path, { recursive: true, mode });
  const user = serviceUser();
  if (user !== undefined) await chown(path, user.uid, user.gid);
  return path;
}

/** Hands one file to the service account (a config file Patroni or etcd must read). */
export async function handFileToServiceUser(path: string): Promise<void> {
  const user = serviceUser();
  if (user !== undefined) await chown(path, user.uid, user.gid);
}
