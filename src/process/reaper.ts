import type { Logger } from 'pino';
import { isTrackedChild } from './children.js';
import { nativeCalls } from './native.js';
import { zombieChildren } from './proc.js';

/**
 * Reaps zombies that are re-parented to pgim: as PID 1 every orphan lands here, and as a child subreaper so do
 * orphaned postgres processes (the logging collector outlives a killed postmaster, for one). Each reap is a
 * waitpid on one specific zombie that Node did not spawn, never wait(-1).
 */
export class Reaper {
  private timer: NodeJS.Timeout | undefined;
  private scanning = false;
  reaped = 0;

  constructor(private readonly logger: Logger) {}

  start(): void {
    const native = nativeCalls();
    if (native instanceof Error) {
      const level = process.pid === 1 ? 'error' : 'warn';
      this.logger[level]({ error: native.message }, 'zombie reaping is off');
      return;
    }
    if (process.pid !== 1) {
      try {
        native.setChildSubreaper();
      } catch (err) {
        this.logger.warn({ error: (err as Error).message }, 'could not become a child subreaper');
      }
    }
    process.on('SIGCHLD', this.onSignal);
    // SIGCHLD can coalesce; a slow sweep catches whatever a burst left behind.
    this.timer = setInterval(this.onSignal, 5000);
    this.timer.unref();
  }

  stop(): void {
    process.off('SIGCHLD', this.onSignal);
    clearInterval(this.timer);
  }

  private readonly onSignal = (): void => {
    void this.scan();
  };

  async scan(): Promise<void> {
    const native = nativeCalls();
    if (native instanceof Error || this.scanning) return;
    this.scanning = true;
    try {
      for (const zombie of await zombieChildren()) {
        if (isTrackedChild(zombie.pid)) continue;
        const result = native.reap(zombie.pid);
        if (result) {
          this.reaped++;
          this.logger.debug({ pid: zombie.pid, comm: zombie.comm, code: result.code, signal: result.signal }, 'reaped an orphan');
        }
      }
    } finally {
      this.scanning = false;
    }
  }
}
