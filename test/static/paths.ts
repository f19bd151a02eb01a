import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository (tests run from dist/test/static). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
