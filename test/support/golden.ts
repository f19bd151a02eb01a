import { strict as assert } from 'node:assert';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** test/golden in the source tree (tests run from dist/test). */
export const goldenDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'golden');

/** Compares with test/golden/<name>; `UPDATE_GOLDEN=1` rewrites the file instead (then review the diff). */
export async function assertGolden(name: string, actual: string): Promise<void> {
  const path = join(goldenDir, name);
  if (process.env.UPDATE_GOLDEN === '1') {
    await writeFile(path, actual);
    return;
  }
  const expected = await readFile(path, 'utf8');
  assert.equal(actual, expected, `golden file ${name} differs (UPDATE_GOLDEN=1 to accept)`);
}
