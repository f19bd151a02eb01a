import { sleep } from '../env.js';
import { currentTimeline, pollUntil, waitReadWrite } from '../pg.js';
import { livePostmasterPid, signalPid, waitForDirectoryRelease, waitGone } from '../proc.js';
import type { DatabaseSystem } from '../systems/types.js';
import { initialiseAll, interleave, since, startReadWrite, withSystems } from './common.js';
import type { Benchmark } from './types.js';

/** Until the harness has seen the killed daemon exit (a new start is refused while it counts as running). */
async function waitDaemonExit(system: DatabaseSystem): Promise<void> {
  await pollUntil(`${system.label} to exit`, () => Promise.resolve(system.daemonPid() === undefined), 10_000);
}

async function readinessOk(url: string): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
  await response.arrayBuffer();
  return response.status === 200;
}

export const daemonKillBenchmark: Benchmark = {
  id: 'B9',
  title: 'Manager kill -9 with a primary running',
  measures:
    'Each run starts the system, waits until read-write, then kill -9s the manager only (pgim\'s node process, ' +
    'Patroni\'s python) and times until the postmaster is gone and until no PostgreSQL process is left in PGDATA ' +
    '(polled every 2 ms / 5 ms). A postmaster still running when the watch window ends (10 s; 2 s with --quick) is ' +
    'counted as "left running unsupervised", and whether it still takes writes then. The manager is then started ' +
    'again: -> read-write, -> readiness 200 (pgim `/readyz`, Patroni `/health`), new timelines over the whole run. No ' +
    'floor (there is no manager to kill).',
  async run(context, recorder) {
    if (context.kinds.includes('floor')) context.note('B9: no floor (nothing supervises bare PostgreSQL); shown as n/a.');
    if (context.kinds.includes('cnpg')) {
      context.note(
        "B9: no cnpg. CloudNativePG's manager is PID 1 of its container: when it dies the kernel ends the container's PID " +
          'namespace and PostgreSQL with it, and the kubelet starts a new container. The harness runs it without a PID ' +
          'namespace (postmaster.pid must hold host PIDs for the other benchmarks), so a figure here would be the harness\'s, not CNPG\'s.',
      );
    }
    const windowMs = context.quick ? 2_000 : 10_000;
    await withSystems(context, async (systems) => {
      await initialiseAll(context, systems);
      await interleave(context, systems, async (system, run) => {
        await startReadWrite(system);
        const timelineBefore = await currentTimeline(system.login);
        const daemon = system.daemonPid();
        const postmaster = await livePostmasterPid(system.pgdata);
        if (daemon === undefined || postmaster === undefined) throw new Error(`${system.label}: no manager or postmaster to watch`);
        const t0 = performance.now();
        signalPid(daemon, 'SIGKILL');
        const gone = await waitGone(postmaster, windowMs);
        const goneAt = performance.now();
        if (gone) {
          recorder.add(system.label, 'kill -9 of the manager -> postmaster gone', run, since(t0, goneAt), 'ms');
          const left = await waitForDirectoryRelease(system.pgdata, windowMs);
          if (left.length === 0) recorder.add(system.label, 'kill -9 of the manager -> no PostgreSQL process left', run, since(t0), 'ms');
        }
        recorder.add(system.label, `postmaster left running unsupervised (after ${windowMs / 1000} s)`, run, gone ? 0 : 1, 'count');
        if (!gone) {
          // What a client sees from the orphan: a primary that still takes writes with nobody managing it.
          const writable = await waitReadWrite(system.login, 2_000).then(() => 1, () => 0);
          recorder.add(system.label, 'orphaned postmaster still read-write', run, writable, 'count');
        }
        await waitDaemonExit(system);
        const t1 = performance.now();
        await system.start();
        const readWrite = await waitReadWrite(system.login, 120_000);
        recorder.add(system.label, 'manager restarted -> read-write', run, since(t1, readWrite), 'ms');
        if (system.endpoints !== undefined) {
          const { readiness } = system.endpoints;
          const ready = await pollUntil(`${system.label} readiness`, () => readinessOk(readiness), 60_000);
          recorder.add(system.label, 'manager restarted -> readiness 200', run, since(t1, ready), 'ms');
        }
        recorder.add(system.label, 'new timelines (kill + restart)', run, (await currentTimeline(system.login)) - timelineBefore, 'count');
        // Patroni needs a moment after a (re)promotion before a SIGTERM is handled promptly (see B2).
        await sleep(context.quick ? 500 : 3_000);
        await system.stop();
      });
    }, context.kinds.filter((kind) => kind !== 'floor' && kind !== 'cnpg'));
  },
};
