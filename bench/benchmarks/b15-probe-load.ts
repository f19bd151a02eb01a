import { join } from 'node:path';
import { sleep } from '../env.js';
import { runLoad } from '../http-load.js';
import { pgbenchRun } from '../pgbench.js';
import { maximum, percentile } from '../stats.js';
import { awaitedLater, initialiseAll, interleave, startWithPgbenchTables, withSystems } from './common.js';
import type { Benchmark } from './types.js';

/** pgbench's clients: more than the 2 vCPUs by far, so PostgreSQL takes all the CPU there is. */
const loadClients = ['-c', '16', '-j', '2'];
/** The probe starts after pgbench has connected and stops before it ends, so it only sees the saturated phase. */
const rampMs = 1_000;

export const probeUnderLoadBenchmark: Benchmark = {
  id: 'B15',
  title: 'Readiness probe latency under pgbench load',
  measures:
    'After `pgbench -i -s 1`, each run gives every system in turn `pgbench -S -n -c 16 -j 2 -T 15` (5 s with ' +
    '--quick), which saturates the CPUs; from 1 s after its start until 1 s before its end one closed-loop client ' +
    'probes the readiness endpoint (pgim `/readyz`, Patroni `/health`) with a new TCP connection per request, as ' +
    'kubelet does: p99 and max latency, probes that failed, and the TPS pgbench got meanwhile. No floor.',
  async run(context, recorder) {
    if (context.kinds.includes('floor')) context.note('B15: no floor (bare PostgreSQL has no probe endpoint); shown as n/a.');
    const seconds = context.quick ? 5 : 15;
    await withSystems(
      context,
      async (systems) => {
        await initialiseAll(context, systems);
        try {
          await startWithPgbenchTables(context, systems, 1);
          await interleave(context, systems, async (system, run) => {
            const readiness = system.endpoints?.readiness;
            if (readiness === undefined) throw new Error(`${system.label} has no readiness endpoint`);
            const load = awaitedLater(
              pgbenchRun(
                context.systems.processes,
                system.login,
                ['-S', '-n', ...loadClients, '-T', String(seconds)],
                join(context.systems.workDir, `pgbench-${system.label}.log`),
                (seconds + 120) * 1_000,
              ),
            );
            await sleep(rampMs);
            const probes = await runLoad(readiness, { concurrency: 1, durationMs: seconds * 1_000 - 2 * rampMs, keepAlive: false });
            const { tps } = await load;
            if (probes.latencies.length > 0) {
              recorder.add(system.label, 'readiness under load: p50', run, percentile(probes.latencies, 50), 'ms', { detail: true });
              recorder.add(system.label, 'readiness under load: p99', run, percentile(probes.latencies, 99), 'ms');
              recorder.add(system.label, 'readiness under load: max', run, maximum(probes.latencies), 'ms');
            }
            recorder.add(system.label, 'readiness under load: failed probes', run, probes.errors, 'count');
            recorder.add(system.label, 'pgbench -S TPS meanwhile', run, tps, 'tx/s', { detail: true });
          });
        } finally {
          for (const system of systems) await system.stop().catch(() => undefined);
        }
      },
      context.kinds.filter((kind) => kind !== 'floor'),
    );
  },
};
