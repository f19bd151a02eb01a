import { livePostmasterPid, waitGone, type TrackedProcess } from '../proc.js';
import type { StopTimings } from './types.js';

/**
 * SIGTERM to a managing daemon, timed from the signal to the postmaster's disappearance and to the daemon's exit.
 * The postmaster PID is read first: once the daemon stops it, postmaster.pid is gone.
 */
export async function stopDaemon(daemon: TrackedProcess | undefined, pgdata: string, label: string, logFile: string): Promise<StopTimings> {
  if (daemon?.running !== true) throw new Error(`${label} is not running`);
  const pid = await livePostmasterPid(pgdata);
  const t0 = performance.now();
  daemon.signal('SIGTERM');
  const gone = pid === undefined ? Promise.resolve(t0) : waitGone(pid, 120_000).then(() => performance.now());
  const exit = await daemon.waitExit(120_000);
  const done = performance.now();
  if (exit === undefined) throw new Error(`${label} did not exit within 120 s after SIGTERM; see ${logFile}`);
  if (exit.code !== 0) throw new Error(`${label} exited with ${exit.signal ?? `code ${String(exit.code)}`} after SIGTERM; see ${logFile}`);
  return { postmasterGoneMs: (await gone) - t0, doneMs: done - t0 };
}

/** After a postmaster kill, for a manager that restarts PostgreSQL itself (pgim): it must still be running. */
export function expectStillRunning(daemon: TrackedProcess | undefined, label: string, logFile: string): Promise<void> {
  if (daemon?.running !== true) return Promise.reject(new Error(`${label} exited after the postmaster was killed; see ${logFile}`));
  return Promise.resolve();
}
