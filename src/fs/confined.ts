import { constants, statSync } from 'node:fs';
import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { sep } from 'node:path';

/** Kubernetes' own rule for Secret and ConfigMap keys (`IsConfigMapKey`). */
const keyPattern = /^[-._a-zA-Z0-9]+$/;

export function isValidObjectKey(key: string): boolean {
  return key.length > 0 && key.length <= 253 && keyPattern.test(key) && key !== '.' && key !== '..' && !key.startsWith('..');
}

export class ConfinedReadError extends Error {
  constructor(
    readonly reason: 'missing' | 'escapes' | 'too-large' | 'not-a-file' | 'unreadable',
    message: string,
  ) {
    super(message);
  }
}

/** EACCES and EPERM become a ConfinedReadError that names the user, so the caller can report it as bad input. */
export function permissionDenied(err: unknown): ConfinedReadError | undefined {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'EACCES' && code !== 'EPERM') return undefined;
  return new ConfinedReadError('unreadable', `cannot be read by uid ${String(process.geteuid?.())} (permission denied)`);
}

/**
 * Only a regular file is ever opened, and never in a way that can wait: opening a FIFO blocks until a writer comes
 * (for ever, holding a thread of the pool), and a device can do anything. So: stat first and refuse anything else;
 * then open without blocking; then check the open handle is the file that was checked.
 */
const openFlags = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/**
 * Reads `root/relative` through symlinks (a mounted Secret is `key -> ..data/key`), refusing any target that resolves
 * outside `root`, then reads it as readRegularFile does.
 */
export async function readConfined(root: string, relative: string, maxBytes: number): Promise<Buffer> {
  let realRoot: string;
  let target: string;
  try {
    realRoot = await realpath(root);
    target = await realpath(`${root}${sep}${relative}`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ConfinedReadError('missing', 'does not exist');
    throw permissionDenied(err) ?? err;
  }
  if (!target.startsWith(realRoot + sep)) throw new ConfinedReadError('escapes', 'resolves outside its folder');
  // The target is resolved: a symlink there now would be a swap since, and is refused (O_NOFOLLOW).
  return readRegularFile(target, maxBytes, constants.O_NOFOLLOW);
}

/**
 * Reads a regular file of at most `maxBytes`, refusing anything else with a ConfinedReadError. The size is checked on
 * the open handle, so a swap between check and read cannot slip a larger file in.
 */
export async function readRegularFile(path: string, maxBytes: number, extraFlags = 0): Promise<Buffer> {
  const notAFile = new ConfinedReadError('not-a-file', 'is not a regular file (a FIFO, socket, device or folder is never read)');
  let handle: FileHandle | undefined;
  let size: number;
  try {
    const checked = await stat(path);
    if (!checked.isFile()) throw notAFile;
    handle = await open(path, openFlags | extraFlags);
    const opened = await handle.stat();
    if (!opened.isFile() || opened.ino !== checked.ino || opened.dev !== checked.dev) throw notAFile;
    size = opened.size;
  } catch (err) {
    await handle?.close();
    if (err instanceof ConfinedReadError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfinedReadError('missing', 'does not exist');
    if (code === 'ELOOP') throw notAFile;
    throw permissionDenied(err) ?? err;
  }
  try {
    if (size > maxBytes) throw new ConfinedReadError('too-large', `is larger than ${maxBytes} bytes`);
    return await readUpTo(handle, size, maxBytes);
  } finally {
    await handle.close();
  }
}

/**
 * The file's bytes, read as `size` (its size on the open handle) says plus one byte, so a file that grew since is
 * still read to its end and refused past `maxBytes`. Sized to the file, not to `maxBytes`: a buffer of the limit was
 * 1 MiB zeroed per read, and its subarray kept the whole MiB alive for as long as the caller kept the bytes (the
 * Kubernetes client's CA, held by every open watch request: ~10 MB of an idle pgim's RSS).
 */
async function readUpTo(handle: FileHandle, size: number, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for (let want = size + 1; ; want = Math.min(Math.max(want, 64 * 1024), maxBytes + 1 - total)) {
    const chunk = Buffer.alloc(want);
    const { bytesRead } = await handle.read(chunk, 0, want, total);
    total += bytesRead;
    if (total > maxBytes) throw new ConfinedReadError('too-large', `is larger than ${maxBytes} bytes`);
    chunks.push(bytesRead === want ? chunk : chunk.subarray(0, bytesRead));
    // A regular file reads short only at its end.
    if (bytesRead < want) break;
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total);
}

/** The synchronous guard for paths handed to a library that reads them itself (a kubeconfig): a regular file or an error. */
export function assertRegularFileSync(path: string): void {
  if (!statSync(path).isFile()) throw new ConfinedReadError('not-a-file', 'is not a regular file (a FIFO, socket, device or folder is never read)');
}
