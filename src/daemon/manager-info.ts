import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../fs/package-root.js';

export async function packageVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
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
