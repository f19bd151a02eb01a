import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { ensureDirectory } from './atomic.js';

/**
 * Creates the runtime dir's root and sets its mode, like ensureDirectory, but also accepts a mount point pgim does
 * not own and so cannot chmod: a tmpfs that Compose or podman mounts for a non-root container belongs to root with
 * mode 1777 (Docker's `uid=` tmpfs option is refused by podman, podman's `U` by Docker, so a portable compose.yaml
 * cannot give it to uid 26). Such a folder is used when pgim can write it and its sticky bit keeps other users from
 * removing or replacing what pgim puts in it; everything pgim creates inside is 0700 or 0600. A folder every user may
 * write without the sticky bit is refused, naming the fix.
 */
export async function ensureRuntimeRoot(dir: string, mode: number): Promise<void> {
  try {
    await ensureDirectory(dir, mode);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
  }
  const info = await stat(dir);
  const uid = process.getuid?.() ?? -1;
  const fix = `mount it owned by uid ${String(uid)} (Docker: tmpfs uid=${String(uid)}; podman: U) or with mode 1777`;
  try {
    await access(dir, constants.W_OK | constants.X_OK);
  } catch {
    throw new Error(`runtime dir ${dir} (owner uid ${String(info.uid)}, mode 0${(info.mode & 0o7777).toString(8)}) is not writable by uid ${String(uid)}: ${fix}`);
  }
  if ((info.mode & 0o002) !== 0 && (info.mode & 0o1000) === 0) {
    throw new Error(`runtime dir ${dir} (owner uid ${String(info.uid)}, mode 0${(info.mode & 0o7777).toString(8)}) is writable by every user without the sticky bit, and uid ${String(uid)} cannot change that: ${fix}`);
  }
}
