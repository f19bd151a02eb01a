import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The source tree (run from dist/test-kit/k8s). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const deployDir = join(repoRoot, 'deploy', 'kubernetes');

/**
 * CloudNativePG's real CRD, a third-party test input kept outside the repository (`PGIM_CNPG_DATA_DIR` moves it).
 * Read from there, never copied into the project.
 */
export const cnpgDataDir = process.env.PGIM_CNPG_DATA_DIR ?? join(repoRoot, '..', 'shared', 'data', 'cloudnative-pg');
export const cnpgCrdPath = join(cnpgDataDir, 'postgresql.cnpg.io_clusters.yaml');
export const pgimCrdPath = join(deployDir, 'crd', 'postgresql.cnpg.io_clusters.yaml');
