import { waitReadWrite } from '../pg.js';
import { createSystem } from '../systems/index.js';
import { rotate, schedule, since } from './common.js';
import type { Benchmark } from './types.js';

export const bootstrapBenchmark: Benchmark = {
  id: 'B14',
  title: 'Bootstrap from an empty folder',
  measures:
    'From an empty data directory to a read-write primary: initdb + configuration + `pg_ctl start -w` for the floor; ' +
    'one `pgim run` (initdb, roles, restart with TCP) for pgim; one `patroni` (initdb via the DCS bootstrap, promote, ' +
    'post-bootstrap roles) on a fresh scope for Patroni; one `pgim run` in Kubernetes mode for pgim-k8s; ' +
    '`manager instance init` (the initdb Job) then `manager instance run` ' +
    "(the Pod) for CloudNativePG's instance manager, which never bootstraps from `instance run`.",
  async run(context, recorder) {
    for (const run of schedule(context)) {
      context.log(`  run ${run.warmup ? 'warm-up' : `${run.index}/${context.runs}`}`);
      for (const kind of rotate(context.kinds, run.index)) {
        const system = await createSystem(kind, context.systems);
        try {
          const t0 = performance.now();
          // The floor has no manager to bootstrap for it: the harness runs initdb itself, inside the timed window.
          // CNPG bootstraps in a separate Job (`instance init`) before the Pod starts: both are in the window too.
          if (kind === 'floor' || kind === 'cnpg') await system.initialise();
          const started = await system.start();
          const readWrite = await waitReadWrite(system.login, 120_000);
          recorder.add(system.label, 'empty folder -> read-write', run, since(t0, readWrite), 'ms');
          await started.commandDone;
        } finally {
          await system.destroy();
        }
      }
    }
  },
};
