import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile, readlink, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { processesInDirectory } from '../src/process/proc.js';
import { sleep } from '../test-kit/env.js';
import { isGone } from '../test-kit/proc.js';
import { pgEnvironment, serviceUser } from './env.js';

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  /** Run as the PostgreSQL service account (only changes anything when the harness runs as root). */
  asServiceUser?: boolean;
  /** stdout and stderr go to this file (appended); the harness never buffers a daemon's output. */
  logFile?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Stopped after everything else at cleanup (etcd: Patroni needs it to shut down cleanly). */
  stopLast?: boolean;
  /** Keep stdout in memory (a short tool's report, e.g. pg_controldata); stderr still goes to `logFile`. */
  captureStdout?: boolean;
}

/** One child process the harness started, known by PID until it has exited. */
export class TrackedProcess {
  readonly pid: number;
  readonly exited: Promise<ProcessExit>;
  private exitInfo: ProcessExit | undefined;
  private readonly stdoutChunks: Buffer[] = [];

  constructor(readonly name: string, private readonly child: ChildProcess, readonly stopLast = false) {
    if (child.pid === undefined) throw new Error(`${name} could not be started`);
    this.pid = child.pid;
    child.stdout?.on('data', (chunk: Buffer) => this.stdoutChunks.push(chunk));
    this.exited = new Promise((resolve) => {
      // With a piped stdout, 'close' comes after the last byte was read; 'exit' may come before it.
      child.once(child.stdout === null ? 'exit' : 'close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** What the process printed on stdout, when spawned with `captureStdout`. */
  get stdout(): string {
    return Buffer.concat(this.stdoutChunks).toString('utf8');
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Resolves with the exit, or undefined when it has not exited within `timeoutMs`. */
  async waitExit(timeoutMs: number): Promise<ProcessExit | undefined> {
    if (this.exitInfo !== undefined) return this.exitInfo;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        resolve(undefined);
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGTERM, then SIGKILL of its whole process group after `graceMs`. */
  async terminate(graceMs: number): Promise<void> {
    if (!this.running) return;
    this.signal('SIGTERM');
    if ((await this.waitExit(graceMs)) !== undefined) return;
    killGroup(this.pid, 'SIGKILL');
    await this.waitExit(5_000);
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}


/** Polls every 2 ms (cheap /proc reads) so shutdown figures are not rounded to a coarse poll interval. */
export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await isGone(pid)) return true;
    await sleep(2);
  }
  return isGone(pid);
}

/** The postmaster's PID from `postmaster.pid`, if the file exists. */
export async function postmasterPidOf(pgdata: string): Promise<number | undefined> {
  try {
    const first = (await readFile(join(pgdata, 'postmaster.pid'), 'utf8')).split('\n')[0];
    const pid = Number(first);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The PID of the postmaster running in `pgdata`, checked against the process's working directory, so a stale
 * postmaster.pid whose PID now belongs to another program is never signalled.
 */
export async function livePostmasterPid(pgdata: string): Promise<number | undefined> {
  const pid = await postmasterPidOf(pgdata);
  if (pid === undefined || (await isGone(pid))) return undefined;
  try {
    return (await readlink(`/proc/${pid}/cwd`)) === (await realpath(pgdata)) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Every process and data directory the harness is responsible for. `stopAll` runs at the end of a run, on a failure
 * and on Ctrl-C: daemons first (they stop their own postmasters), then any postmaster still running in a registered
 * data directory (pg_ctl and Patroni detach theirs from us, so PIDs from postmaster.pid are the only handle).
 */
export class ProcessRegistry {
  private readonly processes = new Set<TrackedProcess>();
  private readonly dataDirectories = new Set<string>();

  spawn(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): TrackedProcess {
    const user = options.asServiceUser === true ? serviceUser() : undefined;
    const fd = options.logFile === undefined ? undefined : openSync(options.logFile, 'a', 0o644);
    const output = fd ?? 'ignore';
    const stdout = options.captureStdout === true ? 'pipe' : output;
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        env: { ...pgEnvironment(user), ...options.env },
        stdio: ['ignore', stdout, output],
        // Its own process group, so a terminal's Ctrl-C reaches the harness only and cleanup can kill the group.
        detached: true,
        ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
        ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }),
      });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    const tracked = new TrackedProcess(name, child, options.stopLast === true);
    this.processes.add(tracked);
    void tracked.exited.then(() => this.processes.delete(tracked));
    return tracked;
  }

  /** Runs a short-lived program to completion; its output goes to `logFile`. */
  async run(name: string, command: string, args: readonly string[], options: SpawnOptions = {}, timeoutMs = 120_000): Promise<ProcessExit> {
    const child = this.spawn(name, command, args, options);
    const exit = await child.waitExit(timeoutMs);
    if (exit !== undefined) return exit;
    await child.terminate(2_000);
    throw new Error(`${name} did not finish within ${timeoutMs} ms`);
  }

  /** Runs a short-lived program and returns its stdout; fails on a non-zero exit. */
  async output(name: string, command: string, args: readonly string[], options: SpawnOptions = {}, timeoutMs = 30_000): Promise<string> {
    const child = this.spawn(name, command, args, { ...options, captureStdout: true });
    const exit = await child.waitExit(timeoutMs);
    if (exit === undefined) {
      await child.terminate(2_000);
      throw new Error(`${name} did not finish within ${timeoutMs} ms`);
    }
    if (exit.code !== 0) throw new Error(`${name} failed (${exit.signal ?? `exit code ${String(exit.code)}`})`);
    return child.stdout;
  }

  /** Like `run`, but fails on a non-zero exit and names the log to read. */
  async mustRun(name: string, command: string, args: readonly string[], options: SpawnOptions = {}, timeoutMs = 120_000): Promise<void> {
    const exit = await this.run(name, command, args, options, timeoutMs);
    if (exit.code !== 0) {
      throw new Error(`${name} failed (${exit.signal ?? `exit code ${String(exit.code)}`})${options.logFile === undefined ? '' : `; see ${options.logFile}`}`);
    }
  }

  trackDataDirectory(pgdata: string): void {
    this.dataDirectories.add(pgdata);
  }

  get running(): readonly TrackedProcess[] {
    return [...this.processes].filter((p) => p.running);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.running.filter((p) => !p.stopLast).map((p) => p.terminate(15_000)));
    for (const pgdata of this.dataDirectories) {
      const pid = await livePostmasterPid(pgdata);
      if (pid === undefined) continue;
      // Immediate shutdown first (PostgreSQL cleans its shared memory), SIGKILL if that does not end it.
      signalPid(pid, 'SIGQUIT');
      if (!(await waitGone(pid, 5_000))) signalPid(pid, 'SIGKILL');
    }
    await Promise.all(this.running.map((p) => p.terminate(5_000)));
  }
}


/**
 * Waits until no process works in `dir` (the backends of a killed postmaster exit on their own once they notice,
 * and a new postmaster must not meet their shared memory). Returns the PIDs still there at the deadline.
 */
export async function waitForDirectoryRelease(dir: string, timeoutMs: number): Promise<number[]> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const left = await processesInDirectory(dir);
    if (left.length === 0 || performance.now() >= deadline) return left;
    await sleep(5);
  }
}

/** The last lines of a log file, to put into an error message (a failed benchmark should say why). */
export async function logTail(path: string, lines = 12): Promise<string> {
  try {
    const text = (await readFile(path, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
    return `\n--- last lines of ${path} ---\n${text}`;
  } catch {
    return ` (no log at ${path})`;
  }
}

export function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}
