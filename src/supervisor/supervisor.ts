import type { Logger } from 'pino';
import { Backoff, backoffDelay } from '../async/backoff.js';
import { sleep } from '../async/sleep.js';
import { errorMessage } from '../errors/index.js';
import type { Reaper } from '../process/reaper.js';
import { CannotStartError } from '../postgres/start-checks.js';
import type { InstanceState } from '../instance/state.js';
import type { OnPostgresExit } from '../options/index.js';
import type { Postmaster, PostmasterExit, ShutdownPlan } from '../postgres/postmaster.js';

/** The postmaster as the supervisor drives it. */
export type SupervisedPostmaster = Pick<Postmaster, 'pid' | 'startedAt' | 'startTicks' | 'exited' | 'running' | 'stop' | 'hurry'>;

/** What the supervisor needs of the instance (PostgresInstance; a fake in the supervisor's unit test). */
export interface SupervisedInstance {
  prepareStart(): Promise<void>;
  spawn(): Promise<SupervisedPostmaster>;
  waitAccepting(postmaster: SupervisedPostmaster, signal?: AbortSignal): Promise<void>;
  isStandby(): Promise<boolean>;
  checkpoint(timeoutMs: number): Promise<void>;
  /** Closes pgim's own held session, so a smart shutdown does not wait for it. */
  releaseHeldSession(): Promise<void>;
}

export interface SupervisorOptions {
  instance: SupervisedInstance;
  state: InstanceState;
  logger: Logger;
  onPostgresExit: OnPostgresExit;
  /** Swept after each postmaster exit, when the logging collector and backends become orphans. */
  reaper?: Reaper;
}

/** What the supervisor asks of the layer above it while it runs postgres: given to run(), so nothing binds late. */
export interface SupervisorHooks {
  /** Read at stop time, so a changed spec applies to the next shutdown. */
  shutdownPlan: () => ShutdownPlan;
  /** Work for each postmaster once it accepts connections (roles, passwords). */
  onAccepting: (isPrimary: boolean) => Promise<void>;
}

/**
 * The narrow control the reconciler and the role transitions have over postgres; the Supervisor implements it and
 * decides when each step happens.
 */
export interface PostgresControl {
  /**
   * Restarts postgres in place, counted as no crash: the stop (`plan`, default smart-then-fast), then `beforeStart`
   * if given (retried with backoff until it succeeds), then a start. Resolves once the stop is under way.
   */
  restart(reason: string, options?: { plan?: ShutdownPlan; beforeStart?: () => Promise<void> }): Promise<void>;
  /** Stops postgres fast (`plan`), runs `beforeStart` (wait for the new primary, rewind), starts it as a replica. */
  demote(plan: ShutdownPlan, beforeStart: () => Promise<void>): Promise<void>;
  /**
   * Fencing (CNPG's `cnpg.io/fencedInstances`): stop postgres (`plan`) and keep it stopped until the fence is
   * lifted; a crash-restart never happens while fenced.
   */
  fence(fenced: boolean, plan: ShutdownPlan): void;
  /** First call: stop cleanly, and pgim with it. Each further call: the next stronger shutdown mode, now. */
  stop(reason: string): void;
  /** Aborted once pgim is stopping: long steps (bootstrap, clone, rewind) end early. */
  readonly stopSignal: AbortSignal;
}

interface PlannedRestart {
  reason: string;
  /** Runs between the stop and the next start (a pg_rewind); retried with backoff until it succeeds. */
  beforeStart?: () => Promise<void>;
}

/**
 * Restart policy after an unexpected exit: at once, then 1 s doubling to 30 s; forgiven after 60 s up.
 * `PGIM_RESTART_DELAY_MS` scales the first step (tests that crash postgres ten times in a row use it).
 */
export const restartPolicy = {
  firstDelayMs: Number(process.env.PGIM_RESTART_DELAY_MS ?? 1000),
  maxDelayMs: 30_000,
  healthyAfterMs: 60_000,
} as const;

export function restartDelay(consecutiveCrashes: number, firstDelayMs: number = restartPolicy.firstDelayMs): number {
  if (consecutiveCrashes <= 1) return 0;
  return backoffDelay(firstDelayMs, restartPolicy.maxDelayMs, consecutiveCrashes - 2);
}

type Outcome = { kind: 'exited'; exit: PostmasterExit } | { kind: 'stop' };

/**
 * Decides *when*: start postgres, restart it after a crash (in process, with backoff; crash recovery keeps the
 * timeline), and stop it on request with CNPG's smart-then-fast deadlines. pgim returns only once postgres is gone.
 */
export class Supervisor implements PostgresControl {
  private readonly stopController = new AbortController();
  private current: SupervisedPostmaster | undefined;
  private markSpawned: (spawned: boolean) => void = () => undefined;
  /** True at the first postmaster spawn; false when run() ends without one. */
  readonly firstSpawn = new Promise<boolean>((resolve) => {
    this.markSpawned = resolve;
  });
  private plannedRestart: PlannedRestart | undefined;
  private fenced = false;
  private unfenced: (() => void) | undefined;
  /** Set by run(): no postmaster runs before, so nothing needs them before. */
  private hooks: SupervisorHooks | undefined;

  constructor(private readonly options: SupervisorOptions) {}

  stop(reason: string): void {
    const { logger } = this.options;
    if (!this.stopController.signal.aborted) {
      logger.info({ reason }, 'Received termination signal, shutting down');
      this.stopController.abort();
      return;
    }
    const mode = this.current?.hurry();
    if (mode !== undefined) logger.warn({ reason, mode }, 'Termination signal repeated: escalating shutdown');
  }

  async restart(reason: string, options: { plan?: ShutdownPlan; beforeStart?: () => Promise<void> } = {}): Promise<void> {
    const postmaster = this.current;
    if (postmaster?.running !== true || this.isStopping() || this.hooks === undefined) return;
    this.plannedRestart = { reason, ...(options.beforeStart === undefined ? {} : { beforeStart: options.beforeStart }) };
    this.options.state.phase = 'restarting';
    const plan = options.plan ?? this.hooks.shutdownPlan();
    await this.options.instance.releaseHeldSession();
    void postmaster.stop(plan);
  }

  demote(plan: ShutdownPlan, beforeStart: () => Promise<void>): Promise<void> {
    return this.restart('demotion', { plan, beforeStart });
  }

  fence(fenced: boolean, plan: ShutdownPlan): void {
    if (fenced === this.fenced) return;
    this.fenced = fenced;
    this.options.logger.info({ fenced }, fenced ? 'instance fenced: stopping postgres' : 'fence lifted: starting postgres');
    if (fenced) {
      const postmaster = this.current;
      if (postmaster?.running === true) {
        this.plannedRestart = { reason: 'fenced' };
        void this.options.instance.releaseHeldSession().then(() => postmaster.stop(plan));
      }
    } else {
      this.unfenced?.();
    }
  }

  private waitWhileFenced(): Promise<void> {
    if (!this.fenced || this.isStopping()) return Promise.resolve();
    this.options.state.phase = 'fenced';
    return new Promise((resolve) => {
      this.unfenced = resolve;
      this.stopSignal.addEventListener('abort', () => {
        resolve();
      });
    });
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

  /** Runs postgres until pgim stops (or postgres exits for good); resolves with pgim's exit code. */
  async run(hooks: SupervisorHooks): Promise<number> {
    this.hooks = hooks;
    try {
      return await this.supervise(hooks);
    } finally {
      this.markSpawned(false);
    }
  }

  private async supervise(hooks: SupervisorHooks): Promise<number> {
    const { instance, state, logger } = this.options;
    let consecutiveCrashes = 0;
    while (!this.stopSignal.aborted) {
      await this.waitWhileFenced();
      if (this.isStopping()) break;
      try {
        await instance.prepareStart();
      } catch (err) {
        // No space for WAL, the port taken: another start would fail the same way, so pgim ends with its code.
        if (!(err instanceof CannotStartError)) throw err;
        state.phase = 'failed';
        state.lastError = err.message;
        logger.error({ error: err.message, exitCode: err.exitCode }, 'refusing to start postgres');
        return err.exitCode;
      }
      if (this.isStopping()) break;
      const postmaster = await instance.spawn();
      this.current = postmaster;
      const upSince = Date.now();
      state.postmaster = { pid: postmaster.pid, startedAt: postmaster.startedAt.toISOString(), startTicks: postmaster.startTicks };
      state.postmasterSpawned = true;
      state.accepting = false;
      state.phase = 'running';
      logger.info({ pid: postmaster.pid }, 'postmaster started');
      this.markSpawned(true);
      void this.afterStart(postmaster, hooks);

      const outcome = await this.nextOutcome(postmaster);
      if (outcome.kind === 'stop') return this.shutdown(postmaster, hooks.shutdownPlan());

      state.postmasterSpawned = false;
      state.accepting = false;
      void this.options.reaper?.scan();
      const planned = this.plannedRestart;
      if (planned !== undefined) {
        this.plannedRestart = undefined;
        logger.info({ reason: planned.reason }, 'postmaster stopped for an in-place restart');
        if (planned.beforeStart) await this.retryUntilDone(planned.beforeStart, planned.reason);
        continue;
      }
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
      if (delay > 0) await sleep(delay, this.stopSignal);
    }
    state.phase = 'stopped';
    return 0;
  }

  private async nextOutcome(postmaster: SupervisedPostmaster): Promise<Outcome> {
    const stop = new Promise<Outcome>((resolve) => {
      if (this.stopSignal.aborted) resolve({ kind: 'stop' });
      this.stopSignal.addEventListener('abort', () => {
        resolve({ kind: 'stop' });
      });
    });
    return Promise.race([postmaster.exited.then((exit): Outcome => ({ kind: 'exited', exit })), stop]);
  }

  /** Post-start work on a primary; failures are reported, never fatal (the next start tries again). */
  private async afterStart(postmaster: SupervisedPostmaster, hooks: SupervisorHooks): Promise<void> {
    const { instance, state, logger } = this.options;
    try {
      await instance.waitAccepting(postmaster, this.stopSignal);
      state.accepting = true;
      logger.info('postgres is accepting connections');
      await hooks.onAccepting(!(await instance.isStandby()));
      state.lastError = undefined;
    } catch (err) {
      if (!postmaster.running || this.stopSignal.aborted) return;
      state.lastError = errorMessage(err);
      logger.error({ error: state.lastError }, 'post-start configuration failed');
    }
  }

  private async shutdown(postmaster: SupervisedPostmaster, plan: ShutdownPlan): Promise<number> {
    const { instance, state, logger } = this.options;
    state.phase = 'stopping';
    if (state.accepting && !(await instance.isStandby())) {
      // A checkpoint now makes the shutdown checkpoint short, so the smart/fast deadlines go to clients, not I/O.
      await instance.checkpoint(Math.min(plan.fastSeconds, 60) * 1000).catch((err: unknown) => {
        logger.warn({ error: errorMessage(err) }, 'checkpoint before shutdown failed');
      });
    }
    await instance.releaseHeldSession();
    const exit = await postmaster.stop(plan);
    state.postmasterSpawned = false;
    state.accepting = false;
    state.phase = 'stopped';
    logger.info({ exitCode: exit.code, signal: exit.signal }, 'postmaster stopped');
    return exit.code === 0 ? 0 : 1;
  }

  /** Runs `step` until it succeeds (1 s doubling to 30 s between tries) or pgim stops. */
  private async retryUntilDone(step: () => Promise<void>, what: string): Promise<void> {
    const backoff = new Backoff(1000, restartPolicy.maxDelayMs, { jitter: 0 });
    for (let attempt = 1; !this.isStopping(); attempt++) {
      try {
        await step();
        return;
      } catch (err) {
        const delay = backoff.next();
        this.options.state.lastError = errorMessage(err);
        this.options.logger.warn({ error: errorMessage(err), attempt, delayMs: delay, step: what }, 'step before start failed; retrying');
        await sleep(delay, this.stopSignal);
      }
    }
  }
}
