import { sleep } from '../env.js';
import { openIdleSessions, openTransaction, type Login, type OpenSessions } from '../pg.js';
import { PgimSystem } from '../systems/pgim.js';
import type { DatabaseSystem } from '../systems/types.js';
import { initialiseAll, interleave, startReadWrite, withSystems } from './common.js';
import type { Benchmark } from './types.js';

interface Workload {
  name: string;
  open: (login: Login) => Promise<OpenSessions | undefined>;
}

const workloads: readonly Workload[] = [
  { name: 'idle', open: () => Promise.resolve(undefined) },
  { name: '50 idle sessions', open: (login) => openIdleSessions(login, 50) },
  { name: 'open transaction', open: (login) => openTransaction(login) },
];

export const shutdownBenchmark: Benchmark = {
  id: 'B2',
  title: 'Clean shutdown',
  measures:
    'From the stop request (SIGTERM to the daemon; `pg_ctl stop -m fast -w` for the floor) to the postmaster being ' +
    'gone and to the daemon exiting (floor: pg_ctl returning), 3 s after the start reached read-write: with no ' +
    'client, with 50 idle sessions, and with one session inside an open transaction. pgim is measured twice: ' +
    'smartShutdownTimeout 5 s (smart first, as CNPG) and smartShutdownTimeout 0 (pgim skips smart: pg_ctl -m fast).',
  async run(context, recorder) {
    const settleMs = context.quick ? 500 : 3_000;
    await withSystems(context, async (systems) => {
      await initialiseAll(context, systems);
      const all: DatabaseSystem[] = [...systems];
      const pgim = systems.find((s): s is PgimSystem => s instanceof PgimSystem);
      let fastPgim: PgimSystem | undefined;
      if (pgim !== undefined) {
        fastPgim = await PgimSystem.create(context.systems, { smartShutdownTimeout: 0, label: 'pgim (smartShutdownTimeout 0)' }, pgim);
        all.splice(all.indexOf(pgim) + 1, 0, fastPgim);
      }
      context.note('B2: pgim runs with smartShutdownTimeout 5 s (CNPG default 180 s would wait 3 min for any client); "pgim (smartShutdownTimeout 0)" is the same pgim with the smart phase off.');
      try {
        await interleave(context, all, async (system, run) => {
          for (const workload of workloads) {
            await startReadWrite(system);
            // An operator's stop comes long after a start. Patroni stopped within ~1 s of its promotion needs ~10 s
            // to exit (its post-promotion HA cycle), 3 s later about 2 s: measure the settled case for everyone.
            await sleep(settleMs);
            const sessions = await workload.open(system.login);
            const timings = await system.stop();
            await sessions?.close();
            recorder.add(system.label, `${workload.name}: stop -> postmaster gone`, run, timings.postmasterGoneMs, 'ms');
            recorder.add(system.label, `${workload.name}: stop -> manager done`, run, timings.doneMs, 'ms');
          }
        });
      } finally {
        await fastPgim?.destroy();
      }
    });
  },
};
