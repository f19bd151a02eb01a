import type { InstanceState } from '../instance/state.js';
import type { PingResult } from '../postgres/probes.js';
import { coalesced, withTimeout } from '../async/coalesce.js';
import type { ProbeStrategy } from '../cluster/observability.js';

/**
 * The readiness and startup probes with CNPG's strategies (`pg_isready`, `query`, `streaming`). Each check talks to
 * the local socket only, never to a remote service; it is coalesced (a burst of probes costs one check) and cached
 * for `cacheMs`, and it is bounded by `timeoutMs`, so a probe answers in time even when PostgreSQL does not.
 */
export interface ProbeChecks {
  /** In-process `pg_isready` (see pingLocal): no process per probe. */
  ping: () => Promise<PingResult>;
  /** A superuser session runs `SELECT 1`. */
  query: () => Promise<void>;
  /** CNPG's streaming check (see checkStreaming). */
  streaming: (maximumLag: number | undefined) => Promise<void>;
}

export interface ProbeResult {
  readonly ok: boolean;
  readonly message: string;
}

export interface ProbeOptions {
  readonly cacheMs: number;
  readonly timeoutMs: number;
}

export const defaultProbeOptions: ProbeOptions = { cacheMs: 1000, timeoutMs: 3000 };

type Check = (strategy: ProbeStrategy) => Promise<ProbeResult>;

export class Probes {
  private readonly cached = new Map<string, () => Promise<ProbeResult>>();

  constructor(
    private readonly state: InstanceState,
    private readonly checks: ProbeChecks,
    private readonly options: ProbeOptions = defaultProbeOptions,
  ) {}

  /** 500 until the postmaster has been spawned (CNPG's `canCheckReadiness`), then the strategy; pg_isready: exit 0 only. */
  async readiness(strategy: ProbeStrategy): Promise<ProbeResult> {
    if (!this.state.postmasterSpawned) return { ok: false, message: 'instance is not ready yet' };
    if (this.state.replayPausedReason !== undefined) return { ok: false, message: `readiness check failed: recovery has paused: ${this.state.replayPausedReason}` };
    const result = await this.run('readiness', strategy, async (s) => {
      if (s.type !== 'pg_isready') return this.strategyCheck(s);
      const code = await this.checks.ping();
      return code === 0 ? pass : { ok: false, message: `pg_isready exit code ${code}` };
    });
    return result.ok ? result : { ok: false, message: `readiness check failed: ${result.message}` };
  }

  /**
   * "Skipped" while pgim restarts or stops PostgreSQL on purpose (CNPG's MightBeUnavailable); pg_isready's
   * "rejecting" (exit 1) counts as started, because crash recovery is progress, not failure.
   */
  async startup(strategy: ProbeStrategy): Promise<ProbeResult> {
    if (this.state.phase === 'restarting' || this.state.phase === 'stopping') return { ok: true, message: 'Skipped' };
    if (!this.state.postmasterSpawned) return { ok: false, message: 'startup check failed: pg_isready exit code 2' };
    const result = await this.run('startup', strategy, async (s) => {
      if (s.type !== 'pg_isready') return this.strategyCheck(s);
      const code = await this.checks.ping();
      return code === 0 || code === 1 ? pass : { ok: false, message: `pg_isready exit code ${code}` };
    });
    return result.ok ? result : { ok: false, message: `startup check failed: ${result.message}` };
  }

  private async strategyCheck(strategy: ProbeStrategy): Promise<ProbeResult> {
    if (strategy.type === 'query') await this.checks.query();
    else await this.checks.streaming(strategy.maximumLag);
    return pass;
  }

  private run(probe: string, strategy: ProbeStrategy, check: Check): Promise<ProbeResult> {
    const key = `${probe}:${strategy.type}:${String(strategy.maximumLag)}`;
    let cached = this.cached.get(key);
    if (!cached) {
      cached = coalesced(
        () =>
          withTimeout(check(strategy), this.options.timeoutMs, `${strategy.type} check`).catch((err: unknown) => ({
            ok: false,
            message: err instanceof Error ? err.message : String(err),
          })),
        this.options.cacheMs,
        () => `${String(this.state.postmaster?.pid)}:${this.state.phase}`,
        // A failure is not cached: the probe after PostgreSQL becomes ready must see it, not a stale "not yet".
        (result) => result.ok,
      );
      this.cached.set(key, cached);
    }
    return cached();
  }
}

const pass: ProbeResult = { ok: true, message: 'OK' };
