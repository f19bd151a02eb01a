import { strict as assert } from 'node:assert';
import type pg from 'pg';
import { watchHaSlots } from '../../src/replication/ha-slot-watch.js';

/** A held session that answers the slot query with `present` and records what it was asked. */
function fakeSession(present: () => string[], asked: unknown[][]): <T>(fn: (client: pg.Client) => Promise<T>) => Promise<T> {
  const client = {
    query: (_text: string, values: unknown[]) => {
      asked.push(values);
      const wanted = values[0] as string[];
      return Promise.resolve({ rows: present().filter((s) => wanted.includes(s)).map((slot_name) => ({ slot_name })) });
    },
  } as unknown as pg.Client;
  return (fn) => fn(client);
}

const until = async (check: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(check());
};

describe('HA slot watch (the primary notices a lost slot without a spec change)', () => {
  it('reports the wanted slots that are missing, tick after tick, until they are back', async () => {
    let present = ['_cnpg_b'];
    const asked: unknown[][] = [];
    const reports: string[][] = [];
    const watch = watchHaSlots({ withSession: fakeSession(() => present, asked), wanted: () => ['_cnpg_b', '_cnpg_c'], onMissing: (m) => reports.push([...m]), intervalMs: 5 });
    try {
      await until(() => reports.length >= 2);
      assert.deepEqual(reports[0], ['_cnpg_c']);
      present = ['_cnpg_b', '_cnpg_c'];
      const seen = reports.length;
      await until(() => asked.length >= seen + 3);
      assert.ok(reports.length <= seen + 1, 'no report once every slot is there');
    } finally {
      watch.stop();
    }
  });

  it('asks nothing when no slot is wanted (a replica, a single instance), and survives a failing session', async () => {
    let wanted: string[] = [];
    const asked: unknown[][] = [];
    let failing = true;
    const reports: string[][] = [];
    const session = fakeSession(() => [], asked);
    const watch = watchHaSlots({
      withSession: (fn) => (failing ? Promise.reject(new Error('the database system is shutting down')) : session(fn)),
      wanted: () => wanted,
      onMissing: (m) => reports.push([...m]),
      intervalMs: 5,
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 40));
      assert.equal(asked.length, 0);
      wanted = ['_cnpg_b'];
      await new Promise((resolve) => setTimeout(resolve, 40));
      assert.equal(reports.length, 0, 'a failing session reports nothing');
      failing = false;
      await until(() => reports.length > 0);
      assert.deepEqual(reports[0], ['_cnpg_b']);
    } finally {
      watch.stop();
    }
  });

  it('sleeps while no slot can be wanted (a single instance) until woken by a new desired state', async () => {
    let applies = false;
    let wantedCalls = 0;
    const asked: unknown[][] = [];
    const reports: string[][] = [];
    const watch = watchHaSlots({
      withSession: fakeSession(() => [], asked),
      wanted: () => {
        wantedCalls++;
        return ['_cnpg_b'];
      },
      onMissing: (m) => reports.push([...m]),
      intervalMs: 5,
      applies: () => applies,
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 40));
      assert.equal(wantedCalls, 0, 'asleep: not even a tick');
      applies = true;
      watch.wake();
      await until(() => reports.length > 0);
      assert.deepEqual(reports[0], ['_cnpg_b']);
    } finally {
      watch.stop();
    }
  });
});
