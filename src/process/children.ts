/**
 * PIDs of the children Node spawned and waits for itself (libuv reaps those). The reaper must never wait on one of
 * them, or Node would lose its exit status: every spawn site registers here synchronously, before any tick in which
 * a reap could run.
 */
const tracked = new Set<number>();

export function trackChild(pid: number | undefined, exited: Promise<unknown>): void {
  if (pid === undefined) return;
  tracked.add(pid);
  void exited.finally(() => tracked.delete(pid));
}

export function isTrackedChild(pid: number): boolean {
  return tracked.has(pid);
}
