import { connect, pollUntil, queryOnce, type Login } from '../pg.js';
import { CnpgSystem } from '../systems/cnpg.js';
import { FloorSystem } from '../systems/floor.js';
import { PgimK8sSystem } from '../systems/pgim-k8s.js';
import { PgimSystem } from '../systems/pgim.js';
import type { DatabaseSystem } from '../systems/types.js';
import { initialiseAll, interleave, since, startReadWrite, withSystems } from './common.js';
import type { Benchmark } from './types.js';

/** True when a login with these credentials succeeds (a refused password is the expected failure, not an error). */
async function canLogIn(login: Login): Promise<boolean> {
  try {
    const client = await connect(login, 1_000);
    await client.end().catch(() => undefined);
    return true;
  } catch {
    return false;
  }
}

/**
 * Rotates the password of the system's login role the way its operator would: pgim from its Secret (a file renamed
 * into place), pgim-k8s and CloudNativePG's manager from their app Secret in the API server, the floor with `ALTER ROLE` over a
 * session of that role.
 */
async function rotate(system: DatabaseSystem, current: Login, password: string): Promise<void> {
  if (system instanceof PgimSystem || system instanceof PgimK8sSystem || system instanceof CnpgSystem) return system.rotateAppPassword(password);
  if (system instanceof FloorSystem) {
    // The password is the benchmark's own constant-shaped string (letters, digits, dashes): no quoting issue.
    await queryOnce(current, `ALTER ROLE ${current.user} PASSWORD '${password}'`);
    return;
  }
  throw new Error(`${system.label}: no password rotation to measure`);
}

export const passwordRotationBenchmark: Benchmark = {
  id: 'B12',
  title: 'Password rotation -> new password works, old one refused',
  measures:
    'With the system running, the password of its login role is changed to a new value per run: pgim by a new ' +
    '`password` file renamed into its `<cluster>-app` Secret folder (what a Secret update does), pgim-k8s and cnpg by a ' +
    'new password in their `<cluster>-app` Secret in the API server (their manager watches the Secret), the floor by ' +
    '`ALTER ROLE ... PASSWORD` (the manual step). From the start of the change until a login with the new password ' +
    'succeeds (10 ms poll), and until the old one is refused as well. Patroni: n/a (a manual procedure: ALTER ROLE ' +
    'and an edit of patroni.yml).',
  async run(context, recorder) {
    if (context.kinds.includes('patroni')) context.note('B12: Patroni has no password rotation of its own (manual procedure); shown as n/a.');
    const kinds = context.kinds.filter((kind) => kind !== 'patroni');
    await withSystems(context, async (systems) => {
      await initialiseAll(context, systems);
      const logins = new Map<DatabaseSystem, Login>();
      try {
        for (const system of systems) {
          await startReadWrite(system);
          logins.set(system, system.login);
        }
        await interleave(context, systems, async (system, run) => {
          const old = logins.get(system) ?? system.login;
          const next = { ...old, password: `bench-rotated-${String(run.index)}-${String(Date.now())}` };
          const t0 = performance.now();
          await rotate(system, old, next.password);
          const newWorks = await pollUntil(`${system.label}: the new password to work`, () => canLogIn(next), 30_000);
          const oldRefused = await pollUntil(`${system.label}: the old password to be refused`, async () => !(await canLogIn(old)), 30_000);
          logins.set(system, next);
          recorder.add(system.label, 'password changed -> new one works', run, since(t0, newWorks), 'ms');
          recorder.add(system.label, 'password changed -> old one refused', run, since(t0, oldRefused), 'ms');
        });
      } finally {
        for (const system of systems) await system.stop().catch(() => undefined);
      }
    }, kinds);
  },
};
