import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../fs/package-root.js';

export async function packageVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

/**
 * CNPG's `executableHash`: the SHA-256 of the code this instance manager runs (the entry script; with the bundle,
 * that is pgim's code). It must not be empty: CloudNativePG's operator takes an instance that reports no hash for an
 * old instance manager and rolls its pod, again after every restart (seen with the real operator, v1.30.0).
 * The operator's in-place update (`ENABLE_INSTANCE_MANAGER_INPLACE_UPDATES`, off by default) would then offer its
 * Go binary to `PUT /update`, which pgim refuses (501): leave that setting off.
 */
export async function executableHash(entry: string | undefined = process.argv[1]): Promise<string> {
  const hash = createHash('sha256');
  try {
    hash.update(await readFile(entry ?? ''));
  } catch {
    // Not run from a file (a test harness): the version still identifies the code.
    hash.update(`pgim ${await packageVersion()}`);
  }
  return hash.digest('hex');
}

export function nodeName(): string {
  return process.env.NODE_NAME ?? hostname();
}

/** Node's `process.arch` in Go's `GOARCH` names, which CNPG's operator looks its manager binaries up by. */
const goArchitectures: Readonly<Record<string, string>> = {
  x64: 'amd64',
  arm64: 'arm64',
  ia32: '386',
  arm: 'arm',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips: 'mips',
  mipsel: 'mipsle',
};

export function goArch(nodeArch: string): string {
  return goArchitectures[nodeArch] ?? nodeArch;
}
