import { readlinkSync } from 'node:fs';
import { readFile, readdir, realpath } from 'node:fs/promises';
import { sleep } from '../async/sleep.js';

/**
 * The kernel's start time of a process (clock ticks since boot, field 22 of /proc/<pid>/stat). A PID plus its start
 * time names one process for good, where a PID alone may have been reused by another program.
 */
export async function processStartTicks(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

/**
 * PIDs of processes whose working directory is `dir` (PostgreSQL backends chdir into PGDATA). Every start of
 * postgres asks this, so the /proc links are read synchronously: one readlink is a few microseconds in the kernel,
 * while each asynchronous one was a round trip through libuv's thread pool (~30 ms for 200 processes on a busy host,
 * against ~2 ms).
 */
export async function processesInDirectory(dir: string): Promise<number[]> {
  const target = await realpath(dir);
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`) === target) pids.push(Number(entry));
    } catch {
      // gone, or not ours to inspect
    }
  }
  return pids;
}


/**
 * Waits until no process works in `dir`, up to `timeoutMs`. Backends of a postmaster that was killed notice its
 * death and exit on their own; a new postmaster must not start while they still hold the shared memory.
 */
export async function waitForDirectoryRelease(dir: string, timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await processesInDirectory(dir);
    if (left.length === 0 || Date.now() >= deadline) return left;
    await sleep(20);
  }
}

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  startTicks: string;
}

/** Fields of /proc/<pid>/stat that pgim uses; undefined when the process is gone. */
export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    return {
      pid,
      comm: stat.slice(stat.indexOf('(') + 1, close),
      state: fields[0] ?? '',
      ppid: Number(fields[1]),
      startTicks: fields[19] ?? '',
    };
  } catch {
    return undefined;
  }
}

/**
 * This process's children, from `/proc/self/task/<tid>/children` (every thread: a re-parented orphan may land on
 * any of them); undefined where the kernel lacks that file (CONFIG_PROC_CHILDREN).
 */
async function childPids(): Promise<number[] | undefined> {
  const childrenOf = (task: string): Promise<string> => readFile(`/proc/self/task/${task}/children`, 'utf8');
  let main: string;
  try {
    main = await childrenOf(String(process.pid));
  } catch {
    return undefined;
  }
  const lists = [main];
  for (const task of await readdir('/proc/self/task')) {
    // A thread that ended since the listing has no children left to report.
    if (task !== String(process.pid)) lists.push(await childrenOf(task).catch(() => ''));
  }
  return [...new Set(lists.join(' ').split(' ').filter((pid) => pid.trim() !== '').map(Number))];
}

/**
 * Zombie children of this process (state Z, parent us). Reads only our children's stat files where the kernel lists
 * them: a sweep of every process in /proc was most of an idle pgim's CPU time.
 */
export async function zombieChildren(): Promise<ProcStat[]> {
  const zombies: ProcStat[] = [];
  const candidates = (await childPids()) ?? (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry)).map(Number);
  for (const pid of candidates) {
    const stat = await readProcStat(pid);
    if (stat?.state === 'Z' && stat.ppid === process.pid) zombies.push(stat);
  }
  return zombies;
}

/** Seconds since the epoch at which a process started (boot time + its start ticks at 100 Hz). */
export async function processStartEpoch(pid: number): Promise<number | undefined> {
  const stat = await readProcStat(pid);
  if (!stat) return undefined;
  const btime = /^btime (\d+)$/m.exec(await readFile('/proc/stat', 'utf8'))?.[1];
  if (btime === undefined) return undefined;
  return Number(btime) + Number(stat.startTicks) / 100;
}
