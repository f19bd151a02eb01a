import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { logLines } from '../log/lines.js';
import { namedLogger } from '../log/logger.js';
import { trackChild } from '../process/children.js';

export interface ToolResult {
  /** Undefined when the program could not be started or was ended by a signal. */
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  /** Only with `captureStderr`. */
  stderr: string;
}

export interface ToolOptions {
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** Keep stdout for the caller (pg_controldata) instead of logging it. */
  captureStdout?: boolean;
  /** Keep stderr for the caller (a config check's diagnostics) instead of logging it. */
  captureStderr?: boolean;
  timeoutMs?: number;
  cancelSignal?: AbortSignal;
  /** Run as this user (pgim itself runs as root: `pgim render`); PostgreSQL's programs refuse root. */
  runAs?: { uid: number; gid: number };
}

/** A program asked to stop (timeout, cancel) gets SIGTERM, so it can clean up, then SIGKILL after this long. */
const forceKillAfterMs = 5000;

function collect(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve) => {
    stream.once('close', () => {
      resolve(Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, ''));
    });
  });
}

/**
 * Runs a PostgreSQL program from the bin dir with its output logged line by line under its own name.
 * Never throws for a non-zero exit: callers decide what an exit code means. Built on node:child_process (not a
 * wrapper library): this is the one place pgim runs programs, and every module loaded costs start-up time and
 * resident memory for the life of the container.
 */
export async function runTool(binDir: string, program: string, args: readonly string[], options: ToolOptions): Promise<ToolResult> {
  const logger = namedLogger(options.logger, program);
  const child = spawn(join(binDir, program), args, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], ...options.runAs });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (err) => {
      logger.error({ error: err.message }, `cannot run ${program}`);
      resolve({ code: null, signal: null });
    });
    child.once('close', (code, signal) => {
      resolve({ code, signal });
    });
  });
  trackChild(child.pid, exited);

  const timers: NodeJS.Timeout[] = [];
  const terminate = (): void => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    timers.push(setTimeout(() => child.kill('SIGKILL'), forceKillAfterMs));
  };
  if (options.timeoutMs !== undefined) timers.push(setTimeout(terminate, options.timeoutMs));
  if (options.cancelSignal?.aborted === true) terminate();
  options.cancelSignal?.addEventListener('abort', terminate, { once: true });

  const [stdout, stderr] = await Promise.all([
    options.captureStdout === true ? collect(child.stdout) : logLines(child.stdout, logger, 'stdout').then(() => ''),
    options.captureStderr === true ? collect(child.stderr) : logLines(child.stderr, logger, 'stderr').then(() => ''),
  ]);
  const { code, signal } = await exited;
  for (const timer of timers) clearTimeout(timer);
  options.cancelSignal?.removeEventListener('abort', terminate);
  return { exitCode: code ?? undefined, signal: signal ?? undefined, stdout, stderr };
}
