import { open, realpath } from 'node:fs/promises';
import { sep } from 'node:path';

/** Kubernetes' own rule for Secret and ConfigMap keys (`IsConfigMapKey`). */
const keyPattern = /^[-._a-zA-Z0-9]+$/;

export function isValidObjectKey(key: string): boolean {
  return key.length > 0 && key.length <= 253 && keyPattern.test(key) && key !== '.' && key !== '..' && !key.startsWith('..');
}

export class ConfinedReadError extends Error {
  constructor(
    readonly reason: 'missing' | 'escapes' | 'too-large' | 'not-a-file',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Reads `root/relative` through symlinks (a mounted Secret is `key -> ..data/key`), refusing any target that resolves
 * outside `root` and any file over `maxBytes`. The size is checked on the open handle, so a swap between check and
 * read cannot slip a larger file in.
 */
export async function readConfined(root: string, relative: string, maxBytes: number): Promise<Buffer> {
  let realRoot: string;
  let target: string;
  try {
    realRoot = await realpath(root);
    target = await realpath(`${root}${sep}${relative}`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ConfinedReadError('missing', 'does not exist');
    throw err;
  }
  if (!target.startsWith(realRoot + sep)) throw new ConfinedReadError('escapes', 'resolves outside its folder');
  const handle = await open(target, 'r');
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new ConfinedReadError('not-a-file', 'is not a regular file');
    if (stats.size > maxBytes) throw new ConfinedReadError('too-large', `is larger than ${maxBytes} bytes`);
    const buffer = Buffer.alloc(maxBytes + 1);
    const { bytesRead } = await handle.read(buffer, 0, maxBytes + 1, 0);
    if (bytesRead > maxBytes) throw new ConfinedReadError('too-large', `is larger than ${maxBytes} bytes`);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
