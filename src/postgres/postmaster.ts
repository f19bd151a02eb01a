import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { logLines } from '../log/lines.js';
import { namedLogger } from '../log/logger.js';
import { trackChild } from '../process/children.js';
import { processStartTicks } from '../process/proc.js';
import { sleep } from '../async/sleep.js';

export type ShutdownMode = 'smart' | 'fast' | 'immediate';

/** PostgreSQL's shutdown signals (what `pg_ctl stop -m` sends). */
const shutdownSignal: Readonly<Record<ShutdownMode, NodeJS.Signals>> = {
  smart: 'SIGTERM',
  fast: 'SIGINT',
  immediate: 'SIGQUIT',
};
const modeOrder: readonly ShutdownMode[] = ['smart', 'fast', 'immediate'];

export interface PostmasterExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ShutdownPlan {
  /** 0 skips the smart phase. */
  smartSeconds: number;
  fastSeconds: number;
}

export interface SpawnOptions {
  binDir: string;
  pgdata: string;
  /** Extra `-c name=value` settings, e.g. a socket-only bootstrap start. */
  settings?: Readonly<Record<string, string>>;
  env: NodeJS.ProcessEnv;
  logger: Logger;
}

// unref(): a grace timer only bounds a wait (the last output lines); it must never keep pgim alive past the
// postmaster (it held every exit 200 ms).

/** util-linux `setpriv` (in every Debian-based PostgreSQL image), if present. */
const parentDeathWrapper = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
});

/**
 * One postmaster, started directly (never through `pg_ctl start`) as a child in its own session and process group,
 * so a terminal's Ctrl-C reaches pgim only and pgim alone decides how postgres stops.
 */
export class Postmaster {
  readonly pid: number;
  readonly startedAt = new Date();
  /** Kernel start time, to tell this process from a later one that reuses its PID. */
  startTicks: string | undefined;
  readonly exited: Promise<PostmasterExit>;
  private exitInfo: PostmasterExit | undefined;
  private strongestSent = -1;

  private constructor(private readonly child: ChildProcess, logger: Logger) {
    if (child.pid === undefined) throw new Error('postgres could not be started');
    this.pid = child.pid;
    const output = Promise.all([logLines(child.stdout, logger, 'stdout'), logLines(child.stderr, logger, 'stderr')]);
    const exit = new Promise<PostmasterExit>((resolve) => {
      child.once('exit', (code, signal) => {
        resolve({ code, signal });
      });
    });
    // Resolve on the exit itself (a crash is seen at once); the last output lines follow within a tick.
    this.exited = exit.then(async (info) => {
      this.exitInfo = info;
      // Stop waiting at 200 ms; the timer is cleared once the output ends, so it never holds pgim's exit.
      const drained = new AbortController();
      const outputEnded = output.finally(() => {
        drained.abort();
      });
      await Promise.race([outputEnded, sleep(200, drained.signal)]);
      return info;
    });
  }

  static async spawn(options: SpawnOptions): Promise<Postmaster> {
    const args = [join(options.binDir, 'postgres'), '-D', options.pgdata];
    for (const [name, value] of Object.entries(options.settings ?? {})) args.push('-c', `${name}=${value}`);
    // setpriv sets a parent-death signal and execs postgres (same PID): if pgim dies, even by SIGKILL, the kernel
    // sends the postmaster SIGQUIT (immediate shutdown), so it never runs on as an unsupervised primary.
    const [command, ...commandArgs] = parentDeathWrapper === undefined ? args : [parentDeathWrapper, '--pdeathsig', 'SIGQUIT', '--', ...args];
    const child = spawn(command ?? 'postgres', commandArgs, {
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    trackChild(child.pid, new Promise((resolve) => child.once('exit', resolve)));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    const postmaster = new Postmaster(child, namedLogger(options.logger, 'postgres'));
    postmaster.startTicks = await processStartTicks(postmaster.pid);
    return postmaster;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** Sends the signal for `mode` unless a stronger one was already sent. */
  signal(mode: ShutdownMode): void {
    const rank = modeOrder.indexOf(mode);
    if (!this.running || rank <= this.strongestSent) return;
    this.strongestSent = rank;
    this.child.kill(shutdownSignal[mode]);
  }

  /** The next stronger shutdown mode, now (a second SIGTERM or Ctrl-C means "hurry"). */
  hurry(): ShutdownMode | undefined {
    const next = modeOrder[this.strongestSent + 1];
    if (next !== undefined) this.signal(next);
    return next;
  }

  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }

  async waitExit(timeoutMs: number): Promise<boolean> {
    if (!this.running) return true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => {
        resolve(false);
      }, timeoutMs);
    });
    const done = await Promise.race([this.exited.then(() => true as const), timedOut]);
    clearTimeout(timer);
    return done;
  }

  /**
   * CNPG's smart-then-fast sequence, ending in immediate: smart for `smartSeconds` (skipped when it is 0 or not
   * shorter than the fast budget), fast for `fastSeconds`, then immediate, then SIGKILL as a last resort.
   */
  async stop(plan: ShutdownPlan): Promise<PostmasterExit> {
    const steps: [ShutdownMode, number][] = [];
    if (plan.smartSeconds > 0 && plan.smartSeconds < plan.fastSeconds) steps.push(['smart', plan.smartSeconds]);
    steps.push(['fast', plan.fastSeconds], ['immediate', 30]);
    for (const [mode, seconds] of steps) {
      this.signal(mode);
      if (await this.waitExit(seconds * 1000)) return this.exited;
    }
    this.kill();
    return this.exited;
  }
}
