import { pollUntil, queryOnce } from '../pg.js';
import { initialiseAll, interleave, since, startReadWrite, withSystems } from './common.js';
import type { Benchmark } from './types.js';

/** A reload-level parameter (sighup context): no restart, a new value visible to every new session once loaded. */
const parameter = 'work_mem';

export const configChangeBenchmark: Benchmark = {
  id: 'B10',
  title: 'Reload-level parameter change -> applied',
  measures:
    'With the system running read-write, `work_mem` is changed to a new value per run the way its operator would: ' +
    'floor `ALTER SYSTEM SET` plus `SELECT pg_reload_conf()`; pgim a new cluster.yaml renamed into its config folder ' +
    '(as an editor or a ConfigMap update does); pgim-k8s and cnpg a merge patch of the Cluster in the API server ' +
    '(`kubectl patch cluster --type merge`); Patroni `PATCH /config`. Timed from the start of that change until a ' +
    'new session sees the value in `current_setting()` (10 ms poll).',
  async run(context, recorder) {
    await withSystems(context, async (systems) => {
      await initialiseAll(context, systems);
      try {
        for (const system of systems) await startReadWrite(system);
        await interleave(context, systems, async (system, run) => {
          // A value no earlier run used, so a stale setting can never look applied.
          const value = `${String(16 + run.index)}MB`;
          const t0 = performance.now();
          await system.changeParameter(parameter, value);
          const applied = await pollUntil(`${system.label}: ${parameter} = ${value}`, async () => {
            const rows = await queryOnce<{ value: string }>(system.login, `SELECT current_setting('${parameter}') AS value`, 1_000);
            return rows[0]?.value === value;
          }, 60_000);
          recorder.add(system.label, `${parameter} changed -> visible to a new session`, run, since(t0, applied), 'ms');
        });
      } finally {
        for (const system of systems) await system.stop().catch(() => undefined);
      }
    });
  },
};
