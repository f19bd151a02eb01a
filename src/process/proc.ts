import { readFile, readdir, readlink, realpath } from 'node:fs/promises';

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

/** PIDs of processes whose working directory is `dir` (PostgreSQL backends chdir into PGDATA). */
export async function processesInDirectory(dir: string): Promise<number[]> {
  const target = await realpath(dir);
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if ((await readlink(`/proc/${entry}/cwd`)) === target) pids.push(Number(entry));
    } catch {
      // gone, or not ours to inspect
    }
  }
  return pids;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

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
