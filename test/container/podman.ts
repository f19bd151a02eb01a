/**
 * Real podman for the container tests: the image scripts/image.sh built (PGIM_TEST_IMAGE, set by scripts/test.sh),
 * podman's settings from scripts/lib/podman.sh (CONTAINERS_CONF), unique names per test run, and cleanup of exactly
 * what a suite created. Other jobs on the machine may run containers too: nothing here lists or removes anything it did
 * not name itself.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isRoot } from '../../test-kit/env.js';

export const isCi = process.env.CI === 'true';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** scripts/lib/podman.sh's containers.conf (runc, cgroupfs, explicit ulimits), where scripts/image.sh wrote it. */
function containersConf(): string | undefined {
  if (process.env.CONTAINERS_CONF) return process.env.CONTAINERS_CONF;
  const written = join(homedir(), '.cache', 'pgim', 'podman', 'containers.conf');
  return existsSync(written) ? written : undefined;
}

export function toolEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const conf = containersConf();
  return { ...process.env, ...(conf === undefined ? {} : { CONTAINERS_CONF: conf }), ...extra };
}

/** Runs a program to its end; never throws for its exit code. stdin is closed. */
export function run(program: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { env: options.env ?? toolEnv(), cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `podman ARGS`; throws with podman's stderr on a non-zero exit. */
export async function podman(args: string[], timeoutMs?: number): Promise<string> {
  const result = await run('podman', args, timeoutMs === undefined ? {} : { timeoutMs });
  if (result.code !== 0) throw new Error(`podman ${args.join(' ')}: exit ${String(result.code)}: ${result.stderr.trim().slice(-2000)}`);
  return result.stdout;
}

/** A name no other test run uses: containers, volumes, networks and Compose projects get it as a prefix. */
export function uniqueName(what: string): string {
  return `pgimtest-${what}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/**
 * In a `before` hook: the image to test, or a skipped suite with a loud message. Under CI=true a missing image or
 * podman fails instead: CI must run these tests.
 */
export function requireImage(context: Mocha.Context): string {
  const image = process.env.PGIM_TEST_IMAGE;
  const reason =
    image === undefined || image === ''
      ? 'PGIM_TEST_IMAGE is not set (scripts/test.sh builds the image with scripts/image.sh and sets it)'
      : !isRoot
        ? 'the container tests run podman as root (rootless podman needs other settings); CI runs as root'
        : undefined;
  if (reason === undefined && image !== undefined) return image;
  if (isCi) throw new Error(`CI=true and the container tests cannot run: ${reason ?? ''}`);
  console.log(`    SKIPPED: ${reason ?? ''}`);
  context.skip();
}

/** Removes what a suite created, by name, ignoring what is already gone. */
export async function removeAll(names: { containers?: string[]; volumes?: string[]; networks?: string[] }): Promise<void> {
  if (names.containers?.length) await run('podman', ['rm', '--force', '--time', '0', '--ignore', ...names.containers]);
  if (names.volumes?.length) await run('podman', ['volume', 'rm', '--force', ...names.volumes]);
  for (const network of names.networks ?? []) await run('podman', ['network', 'rm', '--force', network]);
}

export interface NamespaceProcess {
  /** PID on the host. */
  pid: number;
  /** PID inside the container's PID namespace. */
  nspid: number;
  /** Parent's PID inside the namespace (0 for its init). */
  nsppid: number;
  name: string;
  state: string;
  uids: number[];
  gids: number[];
  cmdline: string[];
}

async function processStatus(pid: number): Promise<Map<string, string> | undefined> {
  try {
    const text = await readFile(`/proc/${String(pid)}/status`, 'utf8');
    return new Map(text.split('\n').filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
  } catch {
    return undefined;
  }
}

/** The host PID of the container's PID 1. */
export async function containerPid(container: string): Promise<number> {
  const pid = Number((await podman(['inspect', '--format', '{{.State.Pid}}', container])).trim());
  if (!(pid > 0)) throw new Error(`${container} is not running`);
  return pid;
}

/** The PID namespace of a host process (`pid:[4026532…]`). */
export async function pidNamespace(pid: number): Promise<string> {
  return readlink(`/proc/${String(pid)}/ns/pid`);
}

/** Every process in the PID namespace of the host process `pid1`, read from the host's /proc. */
export async function namespaceProcesses(pid1: number): Promise<NamespaceProcess[]> {
  return processesIn(await pidNamespace(pid1));
}

/** Every process in a PID namespace (see pidNamespace), read from the host's /proc. */
export async function processesIn(namespace: string): Promise<NamespaceProcess[]> {
  const hostToNs = new Map<number, number>();
  const found: (NamespaceProcess & { hostPpid: number })[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      if ((await readlink(`/proc/${entry}/ns/pid`)) !== namespace) continue;
    } catch {
      continue;
    }
    const status = await processStatus(pid);
    if (status === undefined) continue;
    const nspids = (status.get('NSpid') ?? '').split(/\s+/).map(Number);
    const nspid = nspids.at(-1) ?? 0;
    hostToNs.set(pid, nspid);
    const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0').filter((a) => a !== '');
    found.push({
      pid,
      nspid,
      nsppid: 0,
      hostPpid: Number(status.get('PPid') ?? 0),
      name: status.get('Name') ?? '',
      state: (status.get('State') ?? '').slice(0, 1),
      uids: (status.get('Uid') ?? '').split(/\s+/).map(Number),
      gids: (status.get('Gid') ?? '').split(/\s+/).map(Number),
      cmdline,
    });
  }
  return found.map(({ hostPpid, ...p }) => ({ ...p, nsppid: hostToNs.get(hostPpid) ?? 0 }));
}
