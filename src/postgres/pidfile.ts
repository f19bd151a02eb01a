import { readFile, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { processStartEpoch, readProcStat } from '../process/proc.js';
import { readlink } from 'node:fs/promises';

export type PidFileState =
  | { kind: 'none' }
  /** A postmaster of this PGDATA is running (same PID, same start time, working in PGDATA). */
  | { kind: 'live'; pid: number }
  /** The file names a dead PID, or a PID now used by another program. */
  | { kind: 'stale'; pid: number | undefined; reason: string };

/**
 * Reads postmaster.pid (line 1 PID, line 3 start time in epoch seconds) and decides whether it names a live
 * postmaster of this PGDATA: PID **and** start time **and** working directory must match, never `kill(pid, 0)`
 * alone, so a reused PID is recognised for what it is.
 */
export async function inspectPidFile(pgdata: string): Promise<PidFileState> {
  let text: string;
  try {
    text = await readFile(join(pgdata, 'postmaster.pid'), 'utf8');
  } catch {
    return { kind: 'none' };
  }
  const [pidLine, , startLine] = text.split('\n');
  const pid = Number(pidLine);
  if (!Number.isInteger(pid) || pid <= 0) return { kind: 'stale', pid: undefined, reason: 'unreadable PID' };
  const stat = await readProcStat(pid);
  if (!stat || stat.state === 'Z') return { kind: 'stale', pid, reason: 'process not running' };
  const started = await processStartEpoch(pid);
  const recorded = Number(startLine);
  if (started === undefined || !Number.isFinite(recorded) || Math.abs(started - recorded) > 2) {
    return { kind: 'stale', pid, reason: `PID reused by another process (${stat.comm})` };
  }
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => '');
  if (cwd !== (await realpath(pgdata))) return { kind: 'stale', pid, reason: `PID reused by another process (${stat.comm})` };
  return { kind: 'live', pid };
}

/** Removes a stale lock file (and the socket's lock file) that PostgreSQL would otherwise refuse to start past. */
export async function removeStaleLockFiles(pgdata: string, socketDir: string, port: number): Promise<void> {
  await rm(join(pgdata, 'postmaster.pid'), { force: true });
  await rm(join(socketDir, `.s.PGSQL.${port}.lock`), { force: true });
}
