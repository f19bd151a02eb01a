import { currentTimeline, waitAccepting, waitReadWrite } from '../pg.js';
import { CnpgSystem } from '../systems/cnpg.js';
import { awaitedLater, failureOf, initialiseAll, interleave, killPostmaster, randomPause, since, startReadWrite, withSystems } from './common.js';
import type { Benchmark } from './types.js';

export const crashBenchmark: Benchmark = {
  id: 'B6',
  title: 'Postmaster kill -9 -> serving again',
  measures:
    'Each run starts the system, waits until read-write, pauses a random 0-2 s (random phase of any daemon loop), ' +
    'kill -9s the postmaster and times until a TCP login succeeds (accepting) and until read-write. The floor is ' +
    'restarted by the harness at once (wait for the old backends, then `pg_ctl start -w`): crash recovery plus pg_ctl, ' +
    'with no supervisor delay. CloudNativePG\'s manager (cnpg) does not restart PostgreSQL in place: it exits, and the ' +
    'harness starts `instance run` again at once, as the kubelet restarts a container the first time (later crashes ' +
    'wait for CrashLoopBackOff); its exit is timed too. Also counts new timelines per crash.',
  async run(context, recorder) {
    await withSystems(context, async (systems) => {
      await initialiseAll(context, systems);
      await interleave(context, systems, async (system, run) => {
        // A fresh daemon per run: every kill is a first crash (pgim backs off on repeated crashes; B13 shows that).
        await startReadWrite(system);
        const timelineBefore = await currentTimeline(system.login);
        const pauseMs = await randomPause(2_000);
        const t0 = await killPostmaster(system);
        const recovering = awaitedLater(system.recoverFromPostmasterKill());
        // A floor restart that fails should fail the run at once, not after the poll's time-out.
        const accepting = await Promise.race([waitAccepting(system.login, 120_000), failureOf(recovering)]);
        const readWrite = await waitReadWrite(system.login, 120_000);
        await recovering;
        recorder.add(system.label, 'kill -9 -> accepting', run, since(t0, accepting), 'ms');
        recorder.add(system.label, 'kill -9 -> read-write', run, since(t0, readWrite), 'ms');
        if (system instanceof CnpgSystem && system.managerExitedAt !== undefined) {
          recorder.add(system.label, 'kill -9 -> manager exited (the kubelet restarts the container)', run, since(t0, system.managerExitedAt), 'ms');
        }
        recorder.add(system.label, 'new timelines per crash', run, (await currentTimeline(system.login)) - timelineBefore, 'count');
        recorder.add(system.label, 'random pause before the kill', run, pauseMs, 'ms', { detail: true });
        await system.stop();
      });
    });
  },
};
