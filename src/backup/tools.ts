import { spawn } from 'node:child_process';

/** The outcome of one barman-cloud tool run. */
export interface ToolResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Barman Cloud's tools, on PATH (Debian's barman-cli-cloud) unless PGIM_BARMAN_BIN names their folder. */
export function barmanTool(name: string): string {
  const dir = process.env.PGIM_BARMAN_BIN;
  return dir === undefined || dir === '' ? name : `${dir}/${name}`;
}

/**
 * Runs a tool with `env` added to the inherited environment. Secrets travel only in `env`; `args` are safe to log.
 * Output is captured (bounded) for parsing and for error messages. Never throws for a non-zero exit.
 *
 * node:child_process, not execa (pgim's usual way to run tools): `wal-archive` runs once per WAL segment, and
 * importing execa costs it about 0.3 s of start-up on this machine, more than the rest of its start.
 */
export function runTool(
  name: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  options: { cwd?: string; signal?: AbortSignal | undefined; maxOutputBytes?: number } = {},
): Promise<ToolResult> {
  const limit = options.maxOutputBytes ?? 4 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const child = spawn(barmanTool(name), args, {
      cwd: options.cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: options.signal,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      if ((outBytes += chunk.length) <= limit) out.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if ((errBytes += chunk.length) <= 65_536) err.push(chunk);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve({ code: code ?? (signal === null ? 1 : 128), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** The last meaningful line of a tool's stderr: what a user needs to see (`ERROR: ...`). */
export function toolError(name: string, result: ToolResult): string {
  const lines = result.stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const last = lines.findLast((l) => /error|fail|refus|denied|expected/i.test(l)) ?? lines.at(-1) ?? '';
  return `${name} exited with code ${result.code}${last === '' ? '' : `: ${last.slice(0, 500)}`}`;
}
