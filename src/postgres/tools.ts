import { join } from 'node:path';
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

/**
 * Runs a PostgreSQL program from the bin dir with its output logged line by line under its own name. Never throws
 * for a non-zero exit: callers decide what an exit code means. This (with execa) is the one way pgim runs external
 * programs; only the postmaster has its own spawn (src/postgres/postmaster.ts). execa is imported here, on first
 * use, so it never costs the start path of a restart: initdb, pg_basebackup, pg_rewind and pg_controldata run
 * later or only on a first start.
 */
export async function runTool(binDir: string, program: string, args: readonly string[], options: ToolOptions): Promise<ToolResult> {
  const { execa } = await import('execa');
  const logger = namedLogger(options.logger, program);
  const captureStdout = options.captureStdout === true;
  const captureStderr = options.captureStderr === true;
  const subprocess = execa(join(binDir, program), args, {
    env: options.env ?? process.env,
    extendEnv: false,
    stdin: 'ignore',
    // Captured output is buffered by execa; the rest is read here and logged as it comes.
    buffer: { stdout: captureStdout, stderr: captureStderr },
    reject: false,
    // pgim handles its own signals and stops its tools through cancelSignal: no exit hooks of execa's.
    cleanup: false,
    ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
    ...(options.cancelSignal === undefined ? {} : { cancelSignal: options.cancelSignal }),
    killSignal: 'SIGTERM',
    forceKillAfterDelay: forceKillAfterMs,
    ...options.runAs,
  });
  trackChild(subprocess.pid, subprocess);
  const logged = Promise.all([
    captureStdout ? undefined : logLines(subprocess.stdout, logger, 'stdout'),
    captureStderr ? undefined : logLines(subprocess.stderr, logger, 'stderr'),
  ]);
  const [result] = await Promise.all([subprocess, logged]);
  if (result.exitCode === undefined && result.signal === undefined && !result.isCanceled && !result.timedOut) {
    logger.error({ error: result.originalMessage }, `cannot run ${program}`);
  }
  return {
    exitCode: result.exitCode,
    signal: result.signal,
    stdout: captureStdout ? result.stdout : '',
    stderr: captureStderr ? result.stderr : '',
  };
}
