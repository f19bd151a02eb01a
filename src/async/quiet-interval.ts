/**
 * A periodic task that sleeps while it has nothing to look at: `tick` runs every `intervalMs` (the next wait starts
 * once a tick has settled, so ticks never overlap) while `active()` is true; when it is false no timer is armed at
 * all, and the task only wakes when `wake()` finds it active again. The owner calls `wake()` whenever what `active`
 * reads may have changed (a new desired state). An idle pgim's wake-ups are its idle CPU: a watch that can find
 * nothing (synchronous replication off, a single instance, no backup configured) costs nothing this way.
 */
export interface QuietInterval {
  /** Re-reads `active()`: arms the timer if it became true (first tick after `intervalMs`), disarms it if false. */
  wake(): void;
  stop(): void;
}

export function quietInterval(tick: () => unknown, intervalMs: number, active: () => boolean): QuietInterval {
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let stopped = false;
  const arm = (): void => {
    timer = setTimeout(() => {
      timer = undefined;
      running = true;
      void Promise.resolve()
        .then(tick)
        .catch(() => undefined)
        .finally(() => {
          running = false;
          if (!stopped && active()) arm();
        });
    }, intervalMs);
    timer.unref();
  };
  const wake = (): void => {
    if (stopped || running) return;
    if (!active()) {
      clearTimeout(timer);
      timer = undefined;
    } else if (timer === undefined) arm();
  };
  wake();
  return {
    wake,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
