import { sleep } from '../env.js';
import { connect, pollUntil, waitReadWrite } from '../pg.js';
import { signalPid } from '../proc.js';
import type { DatabaseSystem } from '../systems/types.js';
import { initialiseAll, interleave, randomPause, since, startReadWrite, withSystems } from './common.js';
import type { Benchmark } from './types.js';

/** A GET's body, or undefined when the request fails or answers other than 200 (a restarting server may do both). */
async function bodyOf(url: string): Promise<string | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    const text = await response.text();
    return response.status === 200 ? text : undefined;
  } catch {
    return undefined;
  }
}

/** The value of a family's first sample in a Prometheus exposition (Patroni labels its samples with the scope). */
function sample(exposition: string, name: string): string | undefined {
  const line = exposition.split('\n').find((text) => text.startsWith(`${name} `) || text.startsWith(`${name}{`));
  return line?.slice(line.lastIndexOf(' ') + 1);
}

/**
 * What each manager says about its postmaster's crashes, in its status document and in its metrics: pgim counts
 * them (`restartCount`, `pgim_postmaster_restarts_total`); Patroni shows the postmaster's start time and state
 * (`postmaster_start_time`/`state` in `/patroni`, `patroni_postmaster_start_time`/`patroni_postgres_running`).
 * A crash is reported once the value differs from the one read before the kill.
 */
function crashIndicators(system: DatabaseSystem): { status: (text: string) => string; metrics: (text: string) => string } {
  if (system.kind === 'pgim' || system.kind === 'pgim-k8s') {
    return {
      status: (text) => String((JSON.parse(text) as { restartCount?: number }).restartCount),
      metrics: (text) => String(sample(text, 'pgim_postmaster_restarts_total')),
    };
  }
  return {
    status: (text) => {
      const doc = JSON.parse(text) as { state?: string; postmaster_start_time?: string };
      return `${doc.state === 'running' ? 'running' : 'not running'} ${doc.postmaster_start_time}`;
    },
    metrics: (text) => `${sample(text, 'patroni_postgres_running') === '1' ? 'running' : 'not running'} ${sample(text, 'patroni_postmaster_start_time')}`,
  };
}

export const backendCrashBenchmark: Benchmark = {
  id: 'B7',
  title: 'Backend kill -9 -> reported by the status endpoint and the metrics',
  measures:
    'Each run starts the system, waits until read-write, opens one session, pauses a random 0-2 s and kill -9s that ' +
    'session\'s backend. The postmaster then ends every backend and, with `restart_after_crash off` (what pgim ' +
    'enforces, and every system here runs), exits; the manager starts it again. Timed from the kill, polled every ' +
    '10 ms: until the status document reports the crash (pgim `/pg/status` restartCount; Patroni `/patroni` state or ' +
    'postmaster_start_time changed), until the metrics do (pgim `pgim_postmaster_restarts_total`; Patroni ' +
    '`patroni_postgres_running`/`patroni_postmaster_start_time` changed), and until read-write again. No floor (nothing ' +
    'reports).',
  async run(context, recorder) {
    if (context.kinds.includes('floor')) context.note('B7: no floor (bare PostgreSQL has no status endpoint or metrics); shown as n/a.');
    if (context.kinds.includes('cnpg')) {
      // CNPG runs PostgreSQL with restart_after_crash off too, but its manager then exits (B6 shows it): nothing of it
      // is left to report the crash; the kubelet restarts the container.
      context.note("B7: no cnpg (CloudNativePG's manager exits with its postmaster, see B6); shown as n/a.");
    }
    await withSystems(context, async (systems) => {
      await initialiseAll(context, systems);
      await interleave(context, systems, async (system, run) => {
        const { endpoints } = system;
        if (endpoints?.metrics === undefined) throw new Error(`${system.label}: no status endpoint or metrics`);
        const { metrics } = endpoints;
        await startReadWrite(system);
        const indicators = crashIndicators(system);
        const read = async (url: string, indicator: (text: string) => string): Promise<string | undefined> => {
          const text = await bodyOf(url);
          return text === undefined ? undefined : indicator(text);
        };
        // Read-write comes before the servers answer (pgim starts them once PostgreSQL accepts): wait for both.
        let statusBefore: string | undefined;
        let metricsBefore: string | undefined;
        await pollUntil(`${system.label} status and metrics to answer`, async () => {
          statusBefore = await read(endpoints.statusDocument, indicators.status);
          metricsBefore = await read(metrics, indicators.metrics);
          return statusBefore !== undefined && metricsBefore !== undefined;
        }, 60_000);
        if (statusBefore === undefined || metricsBefore === undefined) throw new Error(`${system.label}: status or metrics not answering before the kill`);
        const session = await connect(system.login);
        const backend = (await session.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
        if (backend === undefined) throw new Error(`${system.label}: no backend pid`);
        const pauseMs = await randomPause(2_000);
        const t0 = performance.now();
        signalPid(backend, 'SIGKILL');
        const reported = (url: string, indicator: (text: string) => string, before: string, what: string): Promise<number> =>
          pollUntil(`${system.label} ${what} to report the crash`, async () => {
            const now = await read(url, indicator);
            return now !== undefined && now !== before;
          }, 60_000);
        const [statusAt, metricsAt] = await Promise.all([
          reported(endpoints.statusDocument, indicators.status, statusBefore, 'status document'),
          reported(metrics, indicators.metrics, metricsBefore, 'metrics'),
        ]);
        const readWrite = await waitReadWrite(system.login, 120_000);
        await session.end().catch(() => undefined);
        recorder.add(system.label, 'backend kill -9 -> status document reports it', run, since(t0, statusAt), 'ms');
        recorder.add(system.label, 'backend kill -9 -> metrics report it', run, since(t0, metricsAt), 'ms');
        recorder.add(system.label, 'backend kill -9 -> read-write', run, since(t0, readWrite), 'ms');
        recorder.add(system.label, 'random pause before the kill', run, pauseMs, 'ms', { detail: true });
        // Patroni needs a moment after a restart before a SIGTERM is handled promptly (see B2).
        await sleep(context.quick ? 500 : 3_000);
        await system.stop();
      });
    }, context.kinds.filter((kind) => kind !== 'floor' && kind !== 'cnpg'));
  },
};
