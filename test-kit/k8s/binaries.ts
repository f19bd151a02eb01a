import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot } from './paths.js';

export type BinaryLookup = { readonly dir: string } | { readonly skipReason: string };

/** CI must run the Kubernetes tests; anywhere else a machine without Go or cached binaries skips them, loudly. */
export const isCi = process.env.CI === 'true';

/** Whether `path` exists and is executable (searchable, for a folder). */
export async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds kube-apiserver and etcd: `PGIM_K8S_BIN_DIR` if set, else scripts/build-k8s-test-binaries.sh, which prints
 * its cache folder at once when the binaries are there and builds them with Go otherwise (minutes, cold). Its
 * progress goes to this process's stderr, so a long build is visible.
 */
export async function locateK8sBinaries(): Promise<BinaryLookup> {
  const given = process.env.PGIM_K8S_BIN_DIR;
  if (given !== undefined && given !== '') {
    const ok = (await executable(join(given, 'kube-apiserver'))) && (await executable(join(given, 'etcd')));
    return ok ? { dir: given } : { skipReason: `PGIM_K8S_BIN_DIR=${given} does not hold executable kube-apiserver and etcd` };
  }
  const script = join(repoRoot, 'scripts', 'build-k8s-test-binaries.sh');
  const result = await new Promise<{ code: number | null; stdout: string; error?: Error }>((resolve) => {
    const child = spawn(script, [], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.once('error', (error) => {
      resolve({ code: null, stdout, error });
    });
    child.once('exit', (code) => {
      resolve({ code, stdout });
    });
  });
  if (result.code !== 0) {
    const why = result.error?.message ?? `exit code ${String(result.code)} (see its message above)`;
    return { skipReason: `scripts/build-k8s-test-binaries.sh failed: ${why}` };
  }
  const dir = result.stdout.trim().split('\n').pop() ?? '';
  const ok = dir !== '' && (await executable(join(dir, 'kube-apiserver'))) && (await executable(join(dir, 'etcd')));
  return ok ? { dir } : { skipReason: `scripts/build-k8s-test-binaries.sh printed "${dir}", which lacks the binaries` };
}
