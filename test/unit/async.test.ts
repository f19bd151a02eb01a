import { strict as assert } from 'node:assert';
import { Backoff, backoffDelay } from '../../src/async/backoff.js';
import { quietInterval } from '../../src/async/quiet-interval.js';
import { serialised } from '../../src/async/serial.js';
import { sleep } from '../../src/async/sleep.js';

describe('async helpers: the one sleep, backoff and serialised runner', () => {
  it('backoff: first × factor^n up to the cap; jitter only adds, at most its share', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((n) => backoffDelay(1000, 10_000, n)), [1000, 2000, 4000, 8000, 10_000, 10_000]);
    assert.deepEqual([0, 1, 2].map((n) => backoffDelay(10, Infinity, n, 5)), [10, 50, 250]);
    const exact = new Backoff(250, 1000, { jitter: 0 });
    assert.deepEqual([exact.next(), exact.next(), exact.next(), exact.next()], [250, 500, 1000, 1000]);
    assert.equal(exact.attempts, 4);
    exact.reset();
    assert.equal(exact.next(), 250);
    const jittered = new Backoff(1000, 60_000);
    for (let i = 0; i < 50; i++) {
      const delay = jittered.next();
      jittered.reset();
      assert.ok(delay >= 1000 && delay <= 1100, `${delay} within 10 % above 1000`);
    }
  });

  it('sleep: resolves after the time, or at once when its signal aborts (also when already aborted)', async () => {
    const controller = new AbortController();
    const t0 = Date.now();
    const waiting = sleep(60_000, controller.signal);
    controller.abort();
    await waiting;
    await sleep(60_000, controller.signal);
    await sleep(5);
    assert.ok(Date.now() - t0 < 30_000);
  });

  it('serialised: runs never overlap, a burst during a run becomes one more run, and each call waits for a run that started after it', async () => {
    let active = 0;
    let runs = 0;
    let release: () => void = () => undefined;
    const run = serialised(async () => {
      active += 1;
      assert.equal(active, 1, 'never two runs at once');
      runs += 1;
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      active -= 1;
    });
    const first = run();
    const burst = [run(), run(), run()];
    assert.equal(runs, 1);
    release();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(runs, 2, 'the burst became one more run');
    release();
    await Promise.all([first, ...burst]);
    assert.equal(runs, 2);
    const later = run();
    release();
    await later;
    assert.equal(runs, 3);
  });

  it('quietInterval: ticks only while active, never overlapping; asleep, only wake() re-arms it', async () => {
    let active = false;
    let ticks = 0;
    let concurrent = 0;
    let overlapped = false;
    const task = quietInterval(
      async () => {
        ticks++;
        concurrent++;
        overlapped ||= concurrent > 1;
        await sleep(15);
        concurrent--;
      },
      2,
      () => active,
    );
    await sleep(40);
    assert.equal(ticks, 0, 'inactive from the start: no tick');
    active = true;
    await sleep(40);
    assert.equal(ticks, 0, 'becoming active is not seen without wake()');
    task.wake();
    task.wake(); // idempotent: still one timer
    await eventuallyTrue(() => ticks >= 3);
    assert.equal(overlapped, false, 'a slow tick delays the next one');
    active = false;
    const settled = ticks + 1; // at most the tick under way
    await sleep(60);
    assert.ok(ticks <= settled, `asleep after it found nothing to do (${ticks} ticks)`);
    const asleep = ticks;
    await sleep(40);
    assert.equal(ticks, asleep);
    active = true;
    task.wake();
    await eventuallyTrue(() => ticks > asleep);
    task.stop();
    const stopped = ticks + 1;
    await sleep(60);
    assert.ok(ticks <= stopped, 'stop() ends it');
    task.wake();
    await sleep(40);
    assert.ok(ticks <= stopped, 'wake() after stop() does nothing');
  });
});

async function eventuallyTrue(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await sleep(10);
  assert.ok(check());
}
