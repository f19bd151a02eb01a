import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chown } from 'node:fs/promises';
import { userInfo } from 'node:os';

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

const lookedUp = new Map<string, OsUser>();

/** The user's line in /etc/passwd, if the file has one (read directly: no process to spawn). */
function passwdFileLine(name: string): string | undefined {
  try {
    return readFileSync('/etc/passwd', 'utf8').split('\n').find((line) => line.startsWith(`${name}:`));
  } catch {
    return undefined;
  }
}

/**
 * Looks a user up in /etc/passwd, then through NSS (`getent`), so LDAP or nss_wrapper users resolve like files
 * users; the file first because spawning getent was ~10 ms of every start as root (up to 90 ms on a loaded
 * machine), before postgres could be spawned. Once per name and process: the start-up path needs the same user
 * several times, and an account does not change under a process.
 */
export function lookupUser(name: string): OsUser {
  const known = lookedUp.get(name);
  if (known) return known;
  let line = passwdFileLine(name);
  if (line === undefined) {
    try {
      line = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim();
    } catch {
      throw new Error(`user "${name}" does not exist (set --user / PGIM_USER to the account postgres should run as)`);
    }
  }
  const [, , uid, gid, , home] = line.split(':');
  if (uid === undefined || gid === undefined) throw new Error(`user "${name}": unexpected passwd entry`);
  const user = { name, uid: Number(uid), gid: Number(gid), home: home ?? '/' };
  lookedUp.set(name, user);
  return user;
}

/**
 * The name PostgreSQL's peer authentication will see for this process. A UID with no passwd entry (OpenShift-style
 * arbitrary UIDs) cannot use peer auth at all, so it is an explicit error, never a match-all ident map.
 */
export function currentOsUserName(lookup: () => { username: string } = userInfo): string {
  try {
    return lookup().username;
  } catch {
    throw new Error(
      `UID ${String(process.getuid?.())} has no passwd entry; PostgreSQL needs one for initdb and peer authentication ` +
        '(add one, or use nss_wrapper)',
    );
  }
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Runs `work` with the effective uid, gid and groups of `user`, then becomes root again. For the first read of the
 * configuration, which must come before the folders exist (nothing is created for a configuration that is refused)
 * and so before the drop for good: every file is opened with the user's permissions, exactly as every later read
 * is, and the parsing runs without root's effective rights. Nothing else runs meanwhile (it is start-up).
 */
export async function asEffectiveUser<T>(user: OsUser, work: () => Promise<T>): Promise<T> {
  if (user.uid === 0) throw new Error(`user "${user.name}" is root; PostgreSQL refuses to run as root`);
  const groups = process.getgroups?.() ?? [];
  // glibc applies set*id calls to every thread, so the thread pool's file reads see these ids too.
  process.setgroups?.([user.gid]);
  process.setegid?.(user.gid);
  process.seteuid?.(user.uid);
  try {
    return await work();
  } finally {
    process.seteuid?.(0);
    process.setegid?.(0);
    process.setgroups?.(groups);
  }
}

/** Hands `paths` to `user`, then becomes that user for good (groups, gid, uid, in that order). */
export async function dropPrivileges(user: OsUser, paths: readonly string[]): Promise<void> {
  if (user.uid === 0) throw new Error(`user "${user.name}" is root; PostgreSQL refuses to run as root`);
  for (const path of paths) await chown(path, user.uid, user.gid);
  // Only the user's primary group: root's supplementary groups must not survive, and no others are needed.
  process.setgroups?.([user.gid]);
  process.setgid?.(user.gid);
  process.setuid?.(user.uid);
  process.env.HOME = user.home;
  process.env.USER = user.name;
  process.env.LOGNAME = user.name;
}
