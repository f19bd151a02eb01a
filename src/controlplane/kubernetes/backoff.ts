/**
 * Exponential backoff with a cap and jitter: every retry loop that talks to the API server uses it, so an API that
 * is down, or a Role that refuses a request, costs a few requests a minute, never a hot loop.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly firstMs: number,
    private readonly maxMs: number,
    /** 0.1 = up to 10 % more, so many pods restarted together do not retry in lockstep. */
    private readonly jitter = 0.1,
  ) {}

  /** The delay before the next attempt; each call doubles it, up to the cap. */
  next(): number {
    const base = Math.min(this.firstMs * 2 ** this.attempt, this.maxMs);
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

/** Resolves after `ms`, or at once when `signal` aborts (never rejects: callers check the signal). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
