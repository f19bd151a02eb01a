import * as http from 'node:http';

/** Longer than Patroni's worst SYN-retransmit tails (1 s, 3 s, 7 s), so slow requests are measured, not dropped. */
const requestTimeoutMs = 15_000;

export interface RequestOutcome {
  status: number | undefined;
  ms: number;
}

/** One GET; the body is read to the end (a server is done when the last byte arrives). Never rejects. */
export function timedGet(url: string, agent: http.Agent | false, timeoutMs = requestTimeoutMs): Promise<RequestOutcome> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const done = (status: number | undefined): void => {
      resolve({ status, ms: performance.now() - t0 });
    };
    const req = http.get(url, { agent, timeout: timeoutMs }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => {
        done(res.statusCode);
      });
      res.on('error', () => {
        done(undefined);
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => {
      done(undefined);
    });
  });
}

export async function httpStatus(url: string, timeoutMs = 2_000): Promise<number | undefined> {
  return (await timedGet(url, false, timeoutMs)).status;
}

export interface LoadOptions {
  concurrency: number;
  durationMs: number;
  /** true: each client reuses one connection; false: a new TCP connection per request (what kubelet probes do). */
  keepAlive: boolean;
}

export interface LoadResult {
  /** Latency of every request, answered or failed, in ms (a failure is no faster for the waiting client). */
  latencies: number[];
  /** Requests that failed or got a status other than 200. */
  errors: number;
  elapsedMs: number;
}

/**
 * `concurrency` closed-loop clients, each sending its next request when the previous one is answered, for
 * `durationMs`. Requests still in flight at the end are waited for, so a stalled request counts with its full time.
 */
export async function runLoad(url: string, options: LoadOptions): Promise<LoadResult> {
  const agent = options.keepAlive ? new http.Agent({ keepAlive: true, maxSockets: options.concurrency }) : false;
  const latencies: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  const end = t0 + options.durationMs;
  const client = async (): Promise<void> => {
    while (performance.now() < end) {
      const outcome = await timedGet(url, agent);
      latencies.push(outcome.ms);
      if (outcome.status !== 200) errors += 1;
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, client));
  } finally {
    if (agent !== false) agent.destroy();
  }
  return { latencies, errors, elapsedMs: performance.now() - t0 };
}
