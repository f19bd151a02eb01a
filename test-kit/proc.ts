import { readdir, readFile, readlink } from 'node:fs/promises';

export interface ProcEntry {
  pid: number;
  ppid: number;
  state: string;
  comm: string;
}

/** Every process on the host (/proc), for process-tree assertions. */
export async function processTable(): Promise<ProcEntry[]> {
  const out: ProcEntry[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      out.push({ pid: Number(name), comm: stat.slice(stat.indexOf('(') + 1, close), state: fields[0] ?? '', ppid: Number(fields[1]) });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** All descendants of `root` (not including it). */
export async function descendants(root: number): Promise<ProcEntry[]> {
  const table = await processTable();
  const found: ProcEntry[] = [];
  let frontier = [root];
  while (frontier.length > 0) {
    const next = table.filter((p) => frontier.includes(p.ppid));
    found.push(...next);
    frontier = next.map((p) => p.pid);
  }
  return found;
}

/** True when `pid` no longer runs: no /proc entry, or a zombie nobody has reaped yet (a re-parented postmaster). */
export async function isGone(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

/** Live processes whose working directory is under `prefix` (a postmaster's is its PGDATA, even once deleted). */
export async function processesWorkingUnder(prefix: string): Promise<(ProcEntry & { cwd: string })[]> {
  const found: (ProcEntry & { cwd: string })[] = [];
  for (const entry of await processTable()) {
    if (entry.state === 'Z' || entry.state === 'X') continue;
    const cwd = await readlink(`/proc/${entry.pid}/cwd`).catch(() => '');
    if (cwd.startsWith(prefix)) found.push({ ...entry, cwd });
  }
  return found;
}
