import { join } from 'node:path';
import { execa } from 'execa';
import type { Logger } from 'pino';
import { logLines } from '../log/lines.js';
import { namedLogger } from '../log/logger.js';
import { trackChild } from '../process/children.js';

export interface ToolResult {
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
}

/**
 * Runs a PostgreSQL program from the bin dir with its output logged line by line under its own name.
 * Never throws for a non-zero exit: callers decide what an exit code means.
 */
export async function runTool(binDir: string, program: string, args: readonly string[], options: ToolOptions): Promise<ToolResult> {
  const logger = namedLogger(options.logger, program);
  const child = execa(join(binDir, program), args, {
    reject: false,
    env: options.env ?? process.env,
    extendEnv: false,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: { stdout: options.captureStdout === true, stderr: options.captureStderr === true },
    ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
    ...(options.cancelSignal === undefined ? {} : { cancelSignal: options.cancelSignal }),
    forceKillAfterDelay: 5000,
  });
  trackChild(child.pid, child.catch(() => undefined));
  const logged = Promise.all([
    options.captureStdout === true ? Promise.resolve() : logLines(child.stdout, logger, 'stdout'),
    options.captureStderr === true ? Promise.resolve() : logLines(child.stderr, logger, 'stderr'),
  ]);
  const result = await child;
  await logged;
  return {
    exitCode: result.exitCode,
    signal: result.signal,
    stdout: typeof result.stdout === 'string' ? result.stdout : '',
    stderr: typeof result.stderr === 'string' ? result.stderr : '',
  };
}
