import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../fs/package-root.js';

export async function packageVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

/** sha256 of the entry script, like CNPG's hash of its own binary: it tells which build an instance runs. */
export async function executableHash(): Promise<string> {
  const entry = process.argv[1];
  if (entry === undefined) return '';
  try {
    return createHash('sha256').update(await readFile(entry)).digest('hex');
  } catch {
    return '';
  }
}

export function nodeName(): string {
  return process.env.NODE_NAME ?? hostname();
}
