import type { Logger } from 'pino';
import { errorMessage } from '../errors/index.js';
import type { InstanceState } from '../instance/state.js';
import type { OnPostgresExit } from '../options/index.js';
import type { PostgresInstance } from '../postgres/instance.js';
import type { Postmaster, PostmasterExit, ShutdownPlan } from '../postgres/postmaster.js';

export interface SupervisorOptions {
  instance: PostgresInstance;
  state: InstanceState;
  logger: Logger;
  onPostgresExit: OnPostgresExit;
  /** Read at stop time, so a changed spec applies to the next shutdown. */
  shutdownPlan: () => ShutdownPlan;
  /** Work for each postmaster once it accepts connections (roles, passwords). */
  onAccepting: (isPrimary: boolean) => Promise<void>;
}

/** Restart policy after an unexpected exit: at once, then 1 s doubling to 30 s; forgiven after 60 s up. */
export const restartPolicy = {
  firstDelayMs: 1000,
  maxDelayMs: 30_000,
  healthyAfterMs: 60_000,
  previousProcessesTimeoutMs: 15_000,
} as const;

export function restartDelay(consecutiveCrashes: number): number {
  if (consecutiveCrashes <= 1) return 0;
  return Math.min(restartPolicy.firstDelayMs * 2 ** (consecutiveCrashes - 2), restartPolicy.maxDelayMs);
}

type Outcome = { kind: 'exited'; exit: PostmasterExit } | { kind: 'stop' };

/**
 * Decides *when*: start postgres, restart it after a crash (in process, with backoff; crash recovery keeps the
 * timeline), and stop it on request with CNPG's smart-then-fast deadlines. pgim returns only once postgres is gone.
 */
export class Supervisor {
  private readonly stopController = new AbortController();
  private current: Postmaster | undefined;
  private plannedRestart: string | undefined;

  constructor(private readonly options: SupervisorOptions) {}

  /** First call: stop cleanly. Each further call: the next stronger shutdown mode, now. */
  requestStop(reason: string): void {
    const { logger } = this.options;
    if (!this.stopController.signal.aborted) {
      logger.info({ reason }, 'Received termination signal, shutting down');
      this.stopController.abort();
      return;
    }
    const mode = this.current?.hurry();
    if (mode !== undefined) logger.warn({ reason, mode }, 'Termination signal repeated: escalating shutdown');
  }

  /** Restarts postgres in place: the smart-then-fast stop, then an immediate start, counted as no crash. */
  requestRestart(reason: string): Promise<void> {
    const postmaster = this.current;
    if (postmaster?.running !== true || this.isStopping()) return Promise.resolve();
    this.plannedRestart = reason;
    this.options.state.phase = 'restarting';
    void postmaster.stop(this.options.shutdownPlan());
    return Promise.resolve();
  }

  /** Forwards a reload request (SIGHUP) to the running postmaster. */
  reload(): void {
    if (this.current?.running === true) process.kill(this.current.pid, 'SIGHUP');
  }

  private isStopping(): boolean {
    return this.stopController.signal.aborted;
  }

  get stopSignal(): AbortSignal {
    return this.stopController.signal;
  }

  async run(): Promise<number> {
    const { instance, state, logger } = this.options;
    let consecutiveCrashes = 0;
    while (!this.stopSignal.aborted) {
      await instance.waitForPreviousProcesses(restartPolicy.previousProcessesTimeoutMs);
      if (this.isStopping()) break;
      const postmaster = await instance.spawn();
      this.current = postmaster;
      const upSince = Date.now();
      state.postmaster = { pid: postmaster.pid, startedAt: postmaster.startedAt.toISOString(), startTicks: postmaster.startTicks };
      state.postmasterSpawned = true;
      state.accepting = false;
      state.phase = 'running';
      logger.info({ pid: postmaster.pid }, 'postmaster started');
      void this.afterStart(postmaster);

      const outcome = await this.nextOutcome(postmaster);
      if (outcome.kind === 'stop') return this.shutdown(postmaster);

      state.postmasterSpawned = false;
      state.accepting = false;
      if (this.plannedRestart !== undefined) {
        logger.info({ reason: this.plannedRestart }, 'postmaster stopped for an in-place restart');
        this.plannedRestart = undefined;
        continue;
      }
      state.lastExit = { at: new Date().toISOString(), code: outcome.exit.code, signal: outcome.exit.signal };
      logger.error({ exitCode: outcome.exit.code, signal: outcome.exit.signal, pid: postmaster.pid }, 'postmaster exited unexpectedly');
      if (this.options.onPostgresExit === 'exit') {
        state.phase = 'failed';
        return 1;
      }
      consecutiveCrashes = Date.now() - upSince >= restartPolicy.healthyAfterMs ? 1 : consecutiveCrashes + 1;
      const delay = restartDelay(consecutiveCrashes);
      state.phase = 'restarting';
      state.restartCount += 1;
      logger.info({ delayMs: delay, restartCount: state.restartCount }, 'restarting postgres');
      await this.sleepUnlessStopping(delay);
    }
    state.phase = 'stopped';
    return 0;
  }

  private async nextOutcome(postmaster: Postmaster): Promise<Outcome> {
    const stop = new Promise<Outcome>((resolve) => {
      if (this.stopSignal.aborted) resolve({ kind: 'stop' });
      this.stopSignal.addEventListener('abort', () => {
        resolve({ kind: 'stop' });
      });
    });
    return Promise.race([postmaster.exited.then((exit): Outcome => ({ kind: 'exited', exit })), stop]);
  }

  /** Post-start work on a primary; failures are reported, never fatal (the next start tries again). */
  private async afterStart(postmaster: Postmaster): Promise<void> {
    const { instance, state, logger } = this.options;
    try {
      await instance.waitAccepting(postmaster, this.stopSignal);
      state.accepting = true;
      logger.info('postgres is accepting connections');
      await this.options.onAccepting(!(await instance.isStandby()));
      state.lastError = undefined;
    } catch (err) {
      if (!postmaster.running || this.stopSignal.aborted) return;
      state.lastError = errorMessage(err);
      logger.error({ error: state.lastError }, 'post-start configuration failed');
    }
  }

  private async shutdown(postmaster: Postmaster): Promise<number> {
    const { instance, state, logger } = this.options;
    state.phase = 'stopping';
    const plan = this.options.shutdownPlan();
    if (state.accepting && !(await instance.isStandby())) {
      // A checkpoint now makes the shutdown checkpoint short, so the smart/fast deadlines go to clients, not I/O.
      await instance.checkpoint(Math.min(plan.fastSeconds, 60) * 1000).catch((err: unknown) => {
        logger.warn({ error: errorMessage(err) }, 'checkpoint before shutdown failed');
      });
    }
    const exit = await postmaster.stop(plan);
    state.postmasterSpawned = false;
    state.accepting = false;
    state.phase = 'stopped';
    logger.info({ exitCode: exit.code, signal: exit.signal }, 'postmaster stopped');
    return exit.code === 0 ? 0 : 1;
  }

  private sleepUnlessStopping(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.stopSignal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
