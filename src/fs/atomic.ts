import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface WriteResult {
  /** False when the file already held these bytes with this mode: nothing was written. */
  changed: boolean;
}

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function currentContent(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Replaces `path` so that a reader (or a crash) sees the old bytes or the new ones, never a mix: a temp file in the
 * same folder, fsync, rename, fsync the folder. On any failure (ENOSPC included) the original stays and the temp file
 * is removed. Unchanged bytes are not rewritten, so mtimes and inotify stay quiet.
 */
export async function writeFileAtomic(path: string, data: string | Buffer, mode: number): Promise<WriteResult> {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const existing = await currentContent(path);
  if (existing?.equals(bytes)) {
    await chmod(path, mode);
    return { changed: false };
  }
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    try {
      await handle.writeFile(bytes);
      await handle.chmod(mode); // the umask may have narrowed or, for 0600 files, must not widen it
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await fsyncDirectory(dir);
  return { changed: true };
}

/** Temp files writeFileAtomic leaves only when the process died between write and rename. */
const staleTemp = /^\..+\.[0-9a-f]{12}\.tmp$/;

/** Removes such leftovers from `dir`; the files they were meant to replace are intact (old or new). */
export async function removeStaleTempFiles(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(dir).catch(() => [])) {
    if (!staleTemp.test(name)) continue;
    await rm(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Creates `dir` and sets its mode, whatever the umask. Missing parents get ordinary modes (0755 under the usual
 * umask): a private mode on a parent would lock out the user pgim hands `dir` to.
 */
export async function ensureDirectory(dir: string, mode: number): Promise<void> {
  await mkdir(dirname(dir), { recursive: true });
  try {
    // Not recursive: under a read-only mount this reports EROFS, where a recursive mkdir says ENOENT.
    await mkdir(dir, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  await chmod(dir, mode);
}
