import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/** Kernel clock ticks per second (utime/stime unit in /proc/PID/stat). */
const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

export interface Footprint {
  rssMb: number;
  pssMb: number;
  threads: number;
  /** utime + stime so far, in ms. */
  cpuMs: number;
}

function kilobytes(text: string, label: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${label}:`));
  const value = Number(line?.slice(label.length + 1).trim().split(/\s+/)[0]);
  if (!Number.isFinite(value)) throw new Error(`no ${label} line`);
  return value;
}

/** One process only (not its children: PostgreSQL is measured the same under every manager). */
export async function footprint(pid: number): Promise<Footprint> {
  const [status, rollup, stat] = await Promise.all([
    readFile(`/proc/${pid}/status`, 'utf8'),
    readFile(`/proc/${pid}/smaps_rollup`, 'utf8'),
    readFile(`/proc/${pid}/stat`, 'utf8'),
  ]);
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command name is cut off.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return {
    rssMb: kilobytes(status, 'VmRSS') / 1024,
    pssMb: kilobytes(rollup, 'Pss') / 1024,
    threads: kilobytes(status, 'Threads'),
    cpuMs: (ticks * 1000) / ticksPerSecond,
  };
}
