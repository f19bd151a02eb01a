import { currentTimeline, waitReadWrite } from '../pg.js';
import { initialiseAll, killPostmaster, rotate, since, startReadWrite, withSystems } from './common.js';
import type { Benchmark } from './types.js';

const restarts = 10;
const crashes = 3;

export const timelineBenchmark: Benchmark = {
  id: 'B13',
  title: 'Timeline churn',
  measures:
    `Timelines created by ${restarts} clean restarts (stop, start, read-write) followed by ${crashes} postmaster ` +
    'kill -9s in a row, read from the WAL file name of the running primary before and after. One pass per system ' +
    '(the count is deterministic); also times each restart and each crash to read-write.',
  async run(context, recorder) {
    await withSystems(context, async (systems) => {
      await initialiseAll(context, systems);
      const run = { index: 1, warmup: false };
      for (const system of rotate(systems, 0)) {
        context.log(`  ${system.label}: ${restarts} restarts, ${crashes} crashes`);
        await startReadWrite(system);
        const before = await currentTimeline(system.login);
        for (let i = 1; i <= restarts; i += 1) {
          await system.stop();
          const t0 = performance.now();
          await startReadWrite(system);
          recorder.add(system.label, 'restart -> read-write', { index: i, warmup: false }, since(t0), 'ms', { detail: true });
        }
        for (let i = 1; i <= crashes; i += 1) {
          const t0 = await killPostmaster(system);
          await system.recoverFromPostmasterKill();
          await waitReadWrite(system.login, 120_000);
          // Crashes in a row: pgim restarts at once after the first and backs off (1 s, 2 s) after the next ones.
          recorder.add(system.label, `crash ${i} in a row -> read-write`, run, since(t0), 'ms');
        }
        const after = await currentTimeline(system.login);
        recorder.add(system.label, `new timelines (${restarts} restarts + ${crashes} crashes)`, run, after - before, 'count');
        await system.stop();
      }
    });
  },
};
