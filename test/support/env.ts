import { execFileSync } from 'node:child_process';
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

/** A free TCP port on 127.0.0.1 (the kernel picks it; released before use). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
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
