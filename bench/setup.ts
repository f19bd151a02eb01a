import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { isRoot, pgBinDir } from './env.js';

/** The Debian packages the Patroni comparison needs (Patroni 3.0.2 and etcd 3.4 in bookworm). */
export const patroniPackages = ['patroni', 'etcd-server'] as const;

export const installInstructions =
  `sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${patroniPackages.join(' ')}`;

/** First line of `command args`' output, or undefined when it cannot run. Short, synchronous, nothing left behind. */
function firstLine(command: string, args: readonly string[]): string | undefined {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 30_000 });
  if (result.error !== undefined || result.status !== 0) return undefined;
  return `${result.stdout}${result.stderr}`.trim().split('\n')[0];
}

export function patroniAvailable(): boolean {
  return firstLine('patroni', ['--version']) !== undefined && firstLine('etcd', ['--version']) !== undefined;
}

/**
 * Makes Patroni and etcd available: already there, or installed with apt-get when running as root. Otherwise prints
 * the command to run and returns false (the run goes on without Patroni).
 */
export function ensurePatroni(log: (line: string) => void): boolean {
  if (patroniAvailable()) return true;
  if (!isRoot) {
    log(`Patroni or etcd is missing and this is not root; install them with:\n  ${installInstructions}\nContinuing without Patroni.`);
    return false;
  }
  log(`installing ${patroniPackages.join(', ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', ...patroniPackages]]) {
    const result = spawnSync('apt-get', args, { env, stdio: ['ignore', 'inherit', 'inherit'], timeout: 600_000 });
    if (result.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${String(result.status)})`);
  }
  if (!patroniAvailable()) throw new Error('patroni or etcd still missing after apt-get install');
  return true;
}

export interface MachineInfo {
  cpuModel: string;
  nproc: number;
  memoryMiB: number;
  kernel: string;
  loadAverageAtStart: number[];
  runAsRoot: boolean;
  node: string;
  postgres: string | undefined;
  patroni: string | undefined;
  etcd: string | undefined;
  pgim: string;
}

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    return line?.split(':')[1]?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function pgimVersion(packageRoot: string): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version?: string };
  // Which commit was measured, and whether the work tree differed from it. --no-optional-locks keeps `git status`
  // from refreshing (writing) the index: the harness must never touch the repository's state.
  const commit = firstLine('git', ['-C', packageRoot, 'rev-parse', '--short', 'HEAD']);
  const changes = spawnSync('git', ['--no-optional-locks', '-C', packageRoot, 'status', '--porcelain', '--untracked-files=no'], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  const dirty = changes.status === 0 && changes.stdout.trim() !== '';
  return `${pkg.version ?? '?'}${commit === undefined ? '' : ` (commit ${commit}${dirty ? ' plus uncommitted changes in the work tree' : ''})`}`;
}

export function machineInfo(packageRoot: string, withPatroni: boolean): MachineInfo {
  return {
    cpuModel: cpuModel(),
    nproc: availableParallelism(),
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    kernel: release(),
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
    runAsRoot: isRoot,
    node: process.version,
    postgres: firstLine(join(pgBinDir, 'postgres'), ['--version']),
    patroni: withPatroni ? firstLine('patroni', ['--version']) : undefined,
    etcd: withPatroni ? firstLine('etcd', ['--version']) : undefined,
    pgim: pgimVersion(packageRoot),
  };
}
