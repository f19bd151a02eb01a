/**
 * Wraps `fn` so that at most one call runs at a time and callers within `maxAgeMs` of the last settled call share its
 * result (a failure too). A burst of probes, status requests or scrapes then costs PostgreSQL one round of work.
 * `generation` names what a result belongs to; when it changes, the next caller starts a fresh call.
 */
export function coalesced<T>(
  fn: () => Promise<T>,
  maxAgeMs: number,
  generation: () => string = () => '',
  /** Whether a result may be shared for `maxAgeMs`; one that may not is only shared with concurrent callers. */
  keep: (value: T) => boolean = () => true,
): () => Promise<T> {
  let inflight: { generation: string; promise: Promise<T> } | undefined;
  let settled: { at: number; generation: string; promise: Promise<T> } | undefined;
  return () => {
    // A result from another generation (e.g. another postmaster) is never reused, however fresh.
    const current = generation();
    if (settled && settled.generation === current && Date.now() - settled.at < maxAgeMs) return settled.promise;
    if (inflight && inflight.generation === current) return inflight.promise;
    const promise = fn();
    const entry = { generation: current, promise };
    inflight = entry;
    const done = (kept: boolean): void => {
      if (inflight === entry) inflight = undefined;
      settled = kept ? { at: Date.now(), generation: current, promise } : undefined;
    };
    // This handler also marks a rejection as handled; every caller still sees it.
    promise.then(
      (value) => {
        done(keep(value));
      },
      () => {
        done(true);
      },
    );
    return promise;
  };
}

export class TimeoutError extends Error {}

/** Rejects with TimeoutError after `ms`; the underlying work is not cancelled, only no longer waited for. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new TimeoutError(`${what} timed out after ${ms} ms`));
    }, ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => {
    clearTimeout(timer);
  });
}
