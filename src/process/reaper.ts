import type { Logger } from 'pino';
import { isTrackedChild } from './children.js';
import { nativeCalls } from './native.js';
import { zombieChildren } from './proc.js';

/**
 * Why this process cannot do PID 1's duty of reaping orphans, or undefined (it can, or it is not PID 1). Without the
 * addon Node has no way to wait for a process it did not spawn, so `run` refuses to start as PID 1 rather than fill
 * the PID table with zombies unnoticed.
 */
export function pid1ReapingUnavailable(): string | undefined {
  if (process.pid !== 1) return undefined;
  const native = nativeCalls();
  if (!(native instanceof Error)) return undefined;
  return `pgim runs as PID 1 but cannot reap orphaned processes: ${native.message}. Build the addon (npm run build does), or start pgim under an init such as tini`;
}

/**
 * Reaps zombies that are re-parented to pgim: as PID 1 every orphan lands here, and as a child subreaper so do
 * orphaned postgres processes (the logging collector outlives a killed postmaster, for one). Each reap is a
 * waitpid on one specific zombie that Node did not spawn, never wait(-1).
 */
export class Reaper {
  private timer: NodeJS.Timeout | undefined;
  private scanning = false;
  /** Scan requests so far: one that arrives mid-scan makes the scan run once more. */
  private requests = 0;
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
    // Every SIGCHLD triggers a scan that reaps every zombie there is, and one arriving mid-scan triggers another, so
    // coalesced signals lose nothing; this slow sweep is only a safety net (it was every 5 s: idle CPU for nothing).
    this.timer = setInterval(this.onSignal, 60_000);
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
    if (native instanceof Error) return;
    // A SIGCHLD during a scan may be for a child the scan already passed: the running scan looks once more.
    this.requests++;
    if (this.scanning) return;
    this.scanning = true;
    try {
      let handled: number;
      do {
        handled = this.requests;
        for (const zombie of await zombieChildren()) {
          if (isTrackedChild(zombie.pid)) continue;
          const result = native.reap(zombie.pid);
          if (result) {
            this.reaped++;
            this.logger.debug({ pid: zombie.pid, comm: zombie.comm, code: result.code, signal: result.signal }, 'reaped an orphan');
          }
        }
      } while (this.requests !== handled);
    } finally {
      this.scanning = false;
    }
  }
}
