import { httpStatus } from '../http-load.js';
import { controlFileTimeline, currentTimeline, pollUntil, waitAccepting, waitReadWrite } from '../pg.js';
import { awaitedLater, initialiseAll, interleave, since, withSystems } from './common.js';
import type { Benchmark } from './types.js';

export const startBenchmark: Benchmark = {
  id: 'B1',
  title: 'Start on an existing PGDATA',
  measures:
    'From launching the start (`pg_ctl start -w`, `pgim run`, `patroni`) on a cleanly stopped data directory to: a ' +
    'TCP login succeeding (accepting), the status endpoint answering 200 (daemons), `pg_is_in_recovery()` false ' +
    '(read-write), and for the floor `pg_ctl start -w` returning. Also counts new timelines per start.',
  async run(context, recorder) {
    await withSystems(context, async (systems) => {
      await initialiseAll(context, systems);
      await interleave(context, systems, async (system, run) => {
        const timelineBefore = await controlFileTimeline(context.systems.processes, system.pgdata);
        const t0 = performance.now();
        const started = await system.start();
        const commandReturned = started.commandDone && awaitedLater(started.commandDone.then(() => performance.now()));
        const endpoints = system.endpoints;
        const healthy = endpoints === undefined
          ? undefined
          : awaitedLater(pollUntil(`${system.label} readiness endpoint`, async () => (await httpStatus(endpoints.readiness, 1_000)) === 200, 120_000));
        const accepting = await waitAccepting(system.login, 120_000);
        const readWrite = await waitReadWrite(system.login, 120_000);
        recorder.add(system.label, 'start -> accepting', run, since(t0, accepting), 'ms');
        recorder.add(system.label, 'start -> read-write', run, since(t0, readWrite), 'ms');
        if (healthy !== undefined) recorder.add(system.label, 'start -> readiness 200', run, since(t0, await healthy), 'ms');
        if (commandReturned !== undefined) recorder.add(system.label, 'start -> pg_ctl start -w returned', run, since(t0, await commandReturned), 'ms');
        recorder.add(system.label, 'new timelines per start', run, (await currentTimeline(system.login)) - timelineBefore, 'count');
        await system.stop();
      });
    });
  },
};
