import { strict as assert } from 'node:assert';
import { DivergenceWatch, type ReplicaState } from '../../src/role/divergence.js';

describe('DivergenceWatch: when a replica is rewound onto its primary', () => {
  const timing = { checkEveryMs: 1000, notStreamingForMs: 10_000, cooldownMs: 60_000 };
  function watch(replica: () => ReplicaState | undefined, primary: () => number | undefined): { watch: DivergenceWatch; reports: unknown[] } {
    const reports: unknown[] = [];
    const w = new DivergenceWatch({ replica: () => Promise.resolve(replica()), primaryTimeline: () => Promise.resolve(primary()) }, (t) => reports.push(t), timing);
    return { watch: w, reports };
  }

  it('reports a replica that has not streamed for the grace period while the primary is on a later timeline, once per cooldown', async () => {
    const { watch: w, reports } = watch(() => ({ streaming: false, timeline: 2 }), () => 3);
    assert.equal(await w.check(0), false, 'first sight of not streaming only starts the clock');
    assert.equal(await w.check(9_999), false);
    assert.equal(await w.check(10_000), true);
    assert.deepEqual(reports, [{ replica: 2, primary: 3 }]);
    assert.equal(await w.check(20_000), false, 'a new clock after a report');
    assert.equal(await w.check(40_000), false, 'within the cooldown');
    assert.equal(await w.check(70_001), true, 'still forked after the cooldown');
  });

  it('leaves alone a streaming replica, one on the same timeline, a primary that does not answer, and non-replicas', async () => {
    for (const [replica, primary] of [
      [{ streaming: true, timeline: 2 }, 3],
      [{ streaming: false, timeline: 3 }, 3],
      [{ streaming: false, timeline: 2 }, undefined],
      [undefined, 3],
    ] as const) {
      const { watch: w, reports } = watch(() => replica, () => primary);
      for (const t of [0, 10_000, 20_000, 100_000]) await w.check(t);
      assert.deepEqual(reports, [], JSON.stringify({ replica, primary }));
    }
  });

  it('restarts the clock when streaming resumes', async () => {
    let streaming = false;
    const { watch: w, reports } = watch(() => ({ streaming, timeline: 1 }), () => 2);
    await w.check(0);
    streaming = true;
    await w.check(5_000);
    streaming = false;
    await w.check(6_000);
    assert.equal(await w.check(12_000), false, 'only 6 s since streaming stopped again');
    assert.equal(await w.check(16_000), true);
    assert.equal(reports.length, 1);
  });

  it('sleeps on a primary (no timer, no probe) and starts looking once woken as a replica', async () => {
    let isReplica = false;
    const probes = { count: 0 };
    const w = new DivergenceWatch(
      {
        applies: () => isReplica,
        replica: () => {
          probes.count++;
          return Promise.resolve({ streaming: true, timeline: 1 });
        },
        primaryTimeline: () => Promise.resolve(1),
      },
      () => undefined,
      { checkEveryMs: 5, notStreamingForMs: 10_000, cooldownMs: 60_000 },
    );
    w.start();
    try {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const seen = (): number => probes.count;
      assert.equal(seen(), 0);
      isReplica = true;
      w.wake();
      for (let i = 0; i < 200 && seen() < 2; i++) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.ok(seen() >= 2, `${seen()} probes once a replica`);
    } finally {
      w.stop();
    }
  });
});
