import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { writeConfigDir } from './config.js';
import { eventually, freePort, handToPostgres, makeTempDir } from './env.js';

export const pgimEntry = join(dirname(fileURLToPath(import.meta.url)), '..', 'cmd', 'pgim.js');

/**
 * How the shipped `pgim` command starts Node: its shebang line (`#!/usr/bin/env -S NAME=value node --flag`, see
 * cmd/pgim.ts) read back, so tests and benchmarks that spawn `node pgim.js` run it with the same environment and flags
 * (thread pool sizes) as the container and the npm bin do.
 */
export const pgimLaunch: { env: Record<string, string>; nodeArgs: string[] } = (() => {
  const words = (readFileSync(pgimEntry, 'utf8').split('\n', 1)[0] ?? '').split(' ').filter((word) => word !== '');
  words.shift(); // #!/usr/bin/env
  if (words[0] === '-S') words.shift();
  const env: Record<string, string> = {};
  for (let word = words.shift(); word !== undefined && word !== 'node'; word = words.shift()) {
    const [name, value] = word.split('=', 2);
    if (name !== undefined && value !== undefined) env[name] = value;
  }
  return { env, nodeArgs: words };
})();

/** `node [flags] pgim.js <args>` as the shipped command runs it. */
export function pgimNodeArgs(args: readonly string[]): string[] {
  return [...pgimLaunch.nodeArgs, pgimEntry, ...args];
}

export interface PgimPaths {
  configDir: string;
  pgdata: string;
  runtimeDir: string;
}

export interface PgimPorts {
  pgPort: number;
  statusPort: number;
  metricsPort: number;
}

export interface PgimExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function pgimArgs(paths: PgimPaths, ports: PgimPorts): string[] {
  return [
    '--config-dir', paths.configDir,
    '--pgdata', paths.pgdata,
    '--runtime-dir', paths.runtimeDir,
    '--pg-port', String(ports.pgPort),
    '--status-port', String(ports.statusPort),
    '--metrics-port', String(ports.metricsPort),
    '--listen-address', '127.0.0.1',
  ];
}

/** A real `pgim` process, with every output line kept for assertions (and for the secret sweep). */
export class PgimProcess {
  readonly lines: string[] = [];
  readonly exited: Promise<PgimExit>;
  private readonly child: ChildProcess;

  constructor(
    readonly command: string,
    readonly paths: PgimPaths,
    readonly ports: PgimPorts,
    extraArgs: string[] = [],
    env: NodeJS.ProcessEnv = {},
  ) {
    this.child = spawn(process.execPath, pgimNodeArgs([command, ...pgimArgs(paths, ports), ...extraArgs]), {
      env: { ...process.env, ...pgimLaunch.env, PGIM_LOG_LEVEL: 'debug', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (stream) createInterface({ input: stream }).on('line', (line) => this.lines.push(line));
    }
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        resolve({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get statusUrl(): string {
    return `http://127.0.0.1:${this.ports.statusPort}`;
  }

  get output(): string {
    return this.lines.join('\n');
  }

  /** Parsed JSON log lines (non-JSON lines skipped). */
  records(): Record<string, unknown>[] {
    return this.lines.flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  async waitForLog(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    return eventually(async () => Promise.resolve(this.lines.find((line) => pattern.test(line))), timeoutMs, `log line ${String(pattern)}`);
  }

  async waitReady(timeoutMs = 60_000): Promise<void> {
    await eventually(
      async () => {
        const exited = await Promise.race([this.exited, Promise.resolve(undefined)]);
        if (exited) throw new Error(`pgim exited (${JSON.stringify(exited)}):\n${this.lines.slice(-20).join('\n')}`);
        const res = await fetch(`${this.statusUrl}/readyz`);
        return res.status === 200 ? true : undefined;
      },
      timeoutMs,
      'pgim /readyz',
    );
  }

  async waitExit(timeoutMs = 60_000): Promise<PgimExit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`pgim did not exit within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGTERM and wait; if that fails, SIGKILL pgim and its postmaster so no test leaves processes behind. */
  async stop(timeoutMs = 60_000): Promise<PgimExit> {
    this.signal('SIGTERM');
    try {
      return await this.waitExit(timeoutMs);
    } catch (err) {
      this.signal('SIGKILL');
      await killPostmaster(this.paths.pgdata);
      throw err;
    }
  }
}

export async function postmasterPid(pgdata: string): Promise<number | undefined> {
  try {
    const first = (await readFile(join(pgdata, 'postmaster.pid'), 'utf8')).split('\n')[0];
    return first === undefined ? undefined : Number(first);
  } catch {
    return undefined;
  }
}

export async function killPostmaster(pgdata: string): Promise<void> {
  const pid = await postmasterPid(pgdata);
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGQUIT');
  } catch {
    // already gone
  }
}

export async function connect(port: number, user: string, password: string, database = 'app'): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port, user, password, database, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

export async function query<T extends pg.QueryResultRow>(port: number, user: string, password: string, sql: string): Promise<T[]> {
  const client = await connect(port, user, password);
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

/**
 * A temp folder with a files-mode config folder (handed to postgres), an empty PGDATA path and free ports: one
 * instance's worth, with a fast stop (smart shutdown 1 s).
 */
export async function prepareInstance(
  name: string,
  secrets: { appPassword: string; superuserPassword: string },
): Promise<{ base: string; paths: PgimPaths; ports: PgimPorts }> {
  const base = await makeTempDir(name);
  const paths = { configDir: join(base, 'config'), pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
  const ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
  await writeConfigDir(paths.configDir, { smartShutdownTimeout: 1, stopDelay: 20 }, secrets);
  await handToPostgres(paths.configDir);
  return { base, paths, ports };
}

/** `pgim run` as PID 1 of a new PID namespace (root only), its output collected, its exit awaited. */
export function runAsPid1(
  paths: PgimPaths,
  ports: PgimPorts,
  env: NodeJS.ProcessEnv,
): { child: ChildProcessByStdio<null, Readable, Readable>; output: string[]; exited: Promise<number | null> } {
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, pgimEntry, 'run', ...pgimArgs(paths, ports)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr.on('data', (d: Buffer) => output.push(d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { child, output, exited };
}
