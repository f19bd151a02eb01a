import { strict as assert } from 'node:assert';
import { pino } from 'pino';
import { InstanceState } from '../../src/instance/state.js';
import type { PostmasterExit, ShutdownPlan } from '../../src/postgres/postmaster.js';
import { restartDelay, Supervisor, type SupervisedInstance, type SupervisedPostmaster } from '../../src/supervisor/supervisor.js';

describe('restart policy', () => {
  it('restarts at once after a first crash, then backs off 1 s doubling to 30 s', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map((n) => restartDelay(n, 1000)), [0, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  });
});

/** A postmaster that lives until it is stopped or crashed; what happened to it is recorded in `events`. */
class FakePostmaster implements SupervisedPostmaster {
  readonly startedAt = new Date();
  readonly startTicks = undefined;
  running = true;
  readonly exited: Promise<PostmasterExit>;
  private exit: (exit: PostmasterExit) => void = () => undefined;

  constructor(
    readonly pid: number,
    private readonly events: string[],
  ) {
    this.exited = new Promise((resolve) => {
      this.exit = resolve;
    });
  }

  crash(): void {
    this.events.push(`crash ${this.pid}`);
    this.end({ code: null, signal: 'SIGKILL' });
  }

  stop(plan: ShutdownPlan): Promise<PostmasterExit> {
    this.events.push(`stop ${this.pid} smart=${plan.smartSeconds} fast=${plan.fastSeconds}`);
    this.end({ code: 0, signal: null });
    return this.exited;
  }

  hurry(): undefined {
    return undefined;
  }

  private end(exit: PostmasterExit): void {
    this.running = false;
    this.exit(exit);
  }
}

class FakeInstance implements SupervisedInstance {
  readonly events: string[] = [];
  readonly postmasters: FakePostmaster[] = [];
  standby = false;

  prepareStart(): Promise<void> {
    return Promise.resolve();
  }

  spawn(): Promise<FakePostmaster> {
    const postmaster = new FakePostmaster(1000 + this.postmasters.length, this.events);
    this.postmasters.push(postmaster);
    this.events.push(`spawn ${postmaster.pid}`);
    return Promise.resolve(postmaster);
  }

  waitAccepting(): Promise<void> {
    return Promise.resolve();
  }

  isStandby(): Promise<boolean> {
    return Promise.resolve(this.standby);
  }

  checkpoint(): Promise<void> {
    this.events.push('checkpoint');
    return Promise.resolve();
  }

  releaseHeldSession(): Promise<void> {
    this.events.push('release session');
    return Promise.resolve();
  }

  get latest(): FakePostmaster {
    return this.postmasters[this.postmasters.length - 1]!;
  }
}

const plan: ShutdownPlan = { smartSeconds: 180, fastSeconds: 1800 };

/** Resolves once `check` holds, polling the event loop (the fakes settle within a few ticks). */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('Supervisor loop (fake postmaster)', () => {
  let instance: FakeInstance;
  let state: InstanceState;
  let accepted: boolean[];

  const supervisor = (onPostgresExit: 'restart' | 'exit' = 'restart'): { supervisor: Supervisor; done: Promise<number> } => {
    const s = new Supervisor({ instance, state, logger: pino({ level: 'silent' }), onPostgresExit });
    const done = s.run({
      shutdownPlan: () => plan,
      onAccepting: (isPrimary) => {
        accepted.push(isPrimary);
        return Promise.resolve();
      },
    });
    return { supervisor: s, done };
  };

  beforeEach(() => {
    instance = new FakeInstance();
    state = new InstanceState('demo', 'demo-1');
    accepted = [];
  });

  it('starts postgres, runs the accepting hook, and on stop checkpoints a primary and stops it with the plan', async () => {
    const { supervisor: s, done } = supervisor();
    assert.equal(await s.firstSpawn, true);
    await until(() => state.accepting, 'accepting');
    assert.deepEqual(accepted, [true]);
    assert.equal(state.phase, 'running');
    s.stop('SIGTERM');
    assert.equal(await done, 0);
    assert.deepEqual(instance.events, ['spawn 1000', 'checkpoint', 'release session', 'stop 1000 smart=180 fast=1800']);
    assert.equal(state.phase, 'stopped');
    assert.equal(s.stopSignal.aborted, true);
  });

  it('restarts a crashed postmaster at once and counts it; with --on-postgres-exit=exit it exits 1 instead', async () => {
    const restarting = supervisor();
    await restarting.supervisor.firstSpawn;
    instance.latest.crash();
    await until(() => instance.postmasters.length === 2, 'the restart');
    assert.equal(state.restartCount, 1);
    restarting.supervisor.stop('SIGTERM');
    assert.equal(await restarting.done, 0);

    instance = new FakeInstance();
    state = new InstanceState('demo', 'demo-1');
    const exiting = supervisor('exit');
    await exiting.supervisor.firstSpawn;
    instance.latest.crash();
    assert.equal(await exiting.done, 1);
    assert.equal(state.phase, 'failed');
    assert.equal(instance.postmasters.length, 1);
  });

  it('an in-place restart stops with the given plan, runs beforeStart, starts again, and is not a crash', async () => {
    const { supervisor: s, done } = supervisor();
    await s.firstSpawn;
    const fast = { smartSeconds: 0, fastSeconds: 3600 };
    await s.restart('demotion', {
      plan: fast,
      beforeStart: () => {
        instance.events.push('rewind');
        return Promise.resolve();
      },
    });
    await until(() => instance.postmasters.length === 2, 'the second start');
    assert.deepEqual(instance.events.slice(0, 5), ['spawn 1000', 'release session', 'stop 1000 smart=0 fast=3600', 'rewind', 'spawn 1001']);
    assert.equal(state.restartCount, 0);
    s.stop('SIGTERM');
    await done;
  });

  it('retries a failing beforeStart until it succeeds, then starts', async () => {
    const { supervisor: s, done } = supervisor();
    await s.firstSpawn;
    let tries = 0;
    await s.demote({ smartSeconds: 0, fastSeconds: 1 }, () => {
      tries += 1;
      return tries < 2 ? Promise.reject(new Error('primary not reachable')) : Promise.resolve();
    });
    await until(() => instance.postmasters.length === 2, 'the start after the retry');
    assert.equal(tries, 2);
    assert.equal(state.lastError, undefined, 'the accepting hook of the new postmaster clears the retry error');
    s.stop('SIGTERM');
    await done;
  });

  it('a fence stops postgres and keeps it stopped; lifting it starts postgres again', async () => {
    const { supervisor: s, done } = supervisor();
    await s.firstSpawn;
    s.fence(true, { smartSeconds: 0, fastSeconds: 5 });
    await until(() => state.phase === 'fenced', 'the fenced phase');
    assert.equal(instance.postmasters.length, 1);
    assert.equal(instance.latest.running, false);
    s.fence(true, { smartSeconds: 0, fastSeconds: 5 });
    assert.equal(instance.postmasters.length, 1, 'fencing twice changes nothing');
    s.fence(false, { smartSeconds: 0, fastSeconds: 5 });
    await until(() => instance.postmasters.length === 2 && state.phase === 'running', 'the start after the fence');
    s.stop('SIGTERM');
    assert.equal(await done, 0);
  });

  it('a stop while fenced ends the wait without starting postgres', async () => {
    const { supervisor: s, done } = supervisor();
    await s.firstSpawn;
    s.fence(true, plan);
    await until(() => state.phase === 'fenced', 'the fenced phase');
    s.stop('SIGTERM');
    assert.equal(await done, 0);
    assert.equal(instance.postmasters.length, 1);
  });

  it('a restart before postgres runs, or once pgim is stopping, does nothing', async () => {
    const s = new Supervisor({ instance, state, logger: pino({ level: 'silent' }), onPostgresExit: 'restart' });
    await s.restart('too early');
    assert.deepEqual(instance.events, []);
    s.stop('SIGTERM');
    assert.equal(await s.run({ shutdownPlan: () => plan, onAccepting: () => Promise.resolve() }), 0);
    assert.equal(await s.firstSpawn, false);
    assert.deepEqual(instance.events, []);
  });
});
