import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, chown, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const isRoot = process.getuid?.() === 0;

/** The account pgim drops to when the tests run as root (CI does). */
export const postgresUser = process.env.PGIM_TEST_USER ?? 'postgres';

export function userIds(name: string): { uid: number; gid: number } {
  const [, , uid, gid] = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim().split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** A temp folder the postgres account can traverse, so a root test run can hand its children to that user. */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `pgim-${prefix}-`));
  await chmod(dir, 0o755);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Gives a tree to the postgres account when running as root (what a mounted volume with fsGroup looks like). */
export async function handToPostgres(path: string): Promise<void> {
  if (!isRoot) return;
  const { uid, gid } = userIds(postgresUser);
  const walk = async (p: string): Promise<void> => {
    await chown(p, uid, gid);
    if ((await stat(p)).isDirectory()) for (const entry of await readdir(p)) await walk(join(p, entry));
  };
  await walk(path);
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => {
      resolve(false);
    });
    server.listen(port, '127.0.0.1', () => {
      server.close(() => {
        resolve(true);
      });
    });
  });
}

/** The first port of the kernel's ephemeral range (outgoing connections take their local ports from it). */
function ephemeralRangeStart(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

/**
 * A free TCP port on 127.0.0.1, taken below the kernel's ephemeral range. A port from that range (what listen(0)
 * gives) can be handed to an outgoing connection: a poller connecting to 127.0.0.1:P before P listens can then
 * connect to itself (TCP simultaneous open), hang, and keep the server from binding P. Seen in this suite.
 */
export async function freePort(): Promise<number> {
  const low = 10_000;
  const high = Math.max(low + 1000, ephemeralRangeStart());
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = randomInt(low, high);
    if (await canBind(port)) return port;
  }
  throw new Error(`no free port found in ${low}-${high - 1}`);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a value (not undefined) or `timeoutMs` passes. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ''}`);
    }
    await sleep(50);
  }
}
