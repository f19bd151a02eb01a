import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let found: string | undefined;

/**
 * pgim's install folder (the one holding its package.json). The code runs either from tsc's per-file output
 * (dist/src/...) or from the bundle's chunks (dist/cmd/chunks/), so the depth differs: walk up instead of counting.
 */
export function packageRoot(): string {
  if (found !== undefined) return found;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}: pgim's install is incomplete`);
    dir = parent;
  }
  found = dir;
  return dir;
}
