/**
 * pgim's one backoff: exponential with a cap and optional jitter. The API server retry loops, the status patch's
 * conflict retries (client-go's 10 ms × 5), the supervisor's crash restarts and its retried steps, and the primary
 * Lease's promotion retries all use it, so an API that is down, a Role that refuses a request or a postgres that
 * keeps crashing costs a few attempts a minute, never a hot loop.
 */
export interface BackoffOptions {
  /** Each delay is the previous one times this (default 2). */
  readonly factor?: number;
  /** 0.1 = up to 10 % more, so many pods restarted together do not retry in lockstep (default 0.1). */
  readonly jitter?: number;
}

/** The delay before retry number `attempt` (0 = the first): `firstMs × factor^attempt`, at most `maxMs`; no jitter. */
export function backoffDelay(firstMs: number, maxMs: number, attempt: number, factor = 2): number {
  return Math.min(firstMs * factor ** attempt, maxMs);
}

export class Backoff {
  private attempt = 0;
  private readonly factor: number;
  private readonly jitter: number;

  constructor(
    private readonly firstMs: number,
    private readonly maxMs: number,
    options: BackoffOptions = {},
  ) {
    this.factor = options.factor ?? 2;
    this.jitter = options.jitter ?? 0.1;
  }

  /** The delay before the next attempt; each call multiplies it, up to the cap. */
  next(): number {
    const base = backoffDelay(this.firstMs, this.maxMs, this.attempt, this.factor);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(base * (1 + Math.random() * this.jitter));
  }

  /** How many delays were handed out since the last reset (the attempt number in logs). */
  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
