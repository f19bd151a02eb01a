import { strict as assert } from 'node:assert';
import { decideRestart, decreasedSettings, insufficientSettings, type RestartInput } from '../../src/rollout/decision.js';
import { parseControlFileSettings } from '../../src/rollout/facts.js';
import { idleCheckIntervalMs, nextCheckDelayMs, primaryIdleCheckIntervalMs, restartCheckIntervalMs } from '../../src/rollout/coordinator.js';

const base: RestartInput = {
  role: 'primary',
  strategy: 'unsupervised',
  instances: 3,
  pending: [],
  running: { max_connections: 50, max_wal_senders: 10 },
  next: {},
  controlFile: undefined,
  replayPaused: false,
  replicas: [],
  waitingSinceMs: undefined,
  nowMs: 1_000_000,
  replicaTimeoutMs: 300_000,
};
const raise: Partial<RestartInput> = { pending: ['max_connections'], next: { max_connections: 60 } };
const lower: Partial<RestartInput> = { pending: ['max_connections'], running: { max_connections: 60 }, next: { max_connections: 40 } };
const decide = (change: Partial<RestartInput>) => decideRestart({ ...base, ...change });
const replica = (name: string, max_connections: number | undefined, pending: string[] = []) => ({ name, running: max_connections === undefined ? undefined : { max_connections }, pending, ...(max_connections === undefined ? { error: 'connection refused' } : {}) });

describe('restart decision (who restarts when for pending settings, CNPG order)', () => {
  it('nothing pending: nothing to do', () => {
    assert.deepEqual(decide({}), { action: 'none' });
    assert.deepEqual(decide({ role: 'replica', controlFile: { max_connections: 50 } }), { action: 'none' });
  });

  it('a raise: replicas restart first (their new value covers the primary\'s)', () => {
    const d = decide({ ...raise, role: 'replica', controlFile: { max_connections: 50 } });
    assert.equal(d.action, 'restart');
  });

  it('a raise: the primary waits for every replica to report the new value and nothing pending', () => {
    const waiting = decide({ ...raise, replicas: [replica('pg-2', 60), replica('pg-3', 50, ['max_connections'])] });
    assert.ok(waiting.action === 'wait' && !waiting.forUser && /the replicas to restart first for max_connections: pg-3 \(pending: max_connections\)$/.test(waiting.waitingFor), JSON.stringify(waiting));
    const unreachable = decide({ ...raise, replicas: [replica('pg-2', 60), replica('pg-3', undefined)] });
    assert.ok(unreachable.action === 'wait' && unreachable.waitingFor.endsWith('pg-3 (connection refused)'));
    const notYet = decide({ ...raise, replicas: [replica('pg-2', 60), replica('pg-3', 50)] });
    assert.ok(notYet.action === 'wait' && notYet.waitingFor.endsWith('pg-3 (max_connections 50 < 60)'), 'a replica that has not loaded the raise yet');
    assert.equal(decide({ ...raise, replicas: [replica('pg-2', 60), replica('pg-3', 70)] }).action, 'restart');
  });

  it('a primary waits at most the timeout (injected clock), then restarts', () => {
    const replicas = [replica('pg-2', undefined)];
    assert.equal(decide({ ...raise, replicas, waitingSinceMs: base.nowMs - 299_999 }).action, 'wait');
    const late = decide({ ...raise, replicas, waitingSinceMs: base.nowMs - 300_000 });
    assert.ok(late.action === 'restart' && /did not apply them within 300 s: pg-2 \(connection refused\)/.test(late.reason));
  });

  it('a single instance restarts at once', () => {
    assert.equal(decide({ ...raise, instances: 1 }).action, 'restart');
    assert.equal(decide({ pending: ['shared_buffers'], instances: 1 }).action, 'restart');
  });

  it('a decrease: the primary restarts first, without waiting for its replicas', () => {
    const d = decide({ ...lower, replicas: [replica('pg-2', 60, ['max_connections'])] });
    assert.ok(d.action === 'restart' && d.phaseReason === 'Decrease of hot standby sensitive parameters');
    assert.deepEqual(decreasedSettings({ ...base, ...lower }), ['max_connections']);
  });

  it('a decrease: a replica waits until its control file shows the primary\'s lower value, then restarts', () => {
    const before = decide({ ...lower, role: 'replica', controlFile: { max_connections: 60 } });
    assert.ok(before.action === 'wait' && /the primary to restart first with lower settings \(max_connections 40 < 60 on the primary\)/.test(before.waitingFor));
    assert.equal(decide({ ...lower, role: 'replica', controlFile: { max_connections: 40 } }).action, 'restart');
  });

  it('a replica whose replay paused for insufficient settings says why, and restarts when its new values suffice', () => {
    const paused = { role: 'replica' as const, replayPaused: true, controlFile: { max_connections: 60 } };
    const restart = decide({ ...raise, ...paused });
    assert.ok(restart.action === 'restart' && restart.replayPausedReason === 'hot standby is not possible because of insufficient parameter settings: max_connections 50 < 60 on the primary');
    const stuck = decide({ ...paused });
    assert.ok(stuck.action === 'wait' && stuck.replayPausedReason !== undefined, 'no new value: a restart would not help');
    assert.deepEqual(decide({ ...paused, controlFile: { max_connections: 50 } }), { action: 'none' }, 'paused by a user, not by settings');
    assert.deepEqual(insufficientSettings({ max_connections: 50, max_wal_senders: 10 }, { max_connections: 50, max_wal_senders: 12 }), ['max_wal_senders 10 < 12 on the primary']);
  });

  it('supervised: nothing restarts by itself, and each instance says what waits', () => {
    const primary = decide({ ...raise, strategy: 'supervised', replicas: [replica('pg-2', 60)] });
    assert.ok(primary.action === 'wait' && primary.forUser && /the user to restart the primary for max_connections \(primaryUpdateStrategy: supervised\)/.test(primary.waitingFor));
    const decrease = decide({ ...lower, strategy: 'supervised' });
    assert.ok(decrease.action === 'wait' && /supervised switchover/.test(decrease.waitingFor));
    const replicaWait = decide({ ...raise, strategy: 'supervised', role: 'replica', replayPaused: true, controlFile: { max_connections: 60 } });
    assert.ok(replicaWait.action === 'wait' && replicaWait.forUser && replicaWait.replayPausedReason !== undefined);
  });

  it("reads pg_controldata's hot-standby settings", () => {
    const raw = 'max_connections setting:              60\nmax_worker_processes setting:         8\nmax_wal_senders setting:              10\nmax_prepared_xacts setting:           0\nmax_locks_per_xact setting:           64\n';
    assert.deepEqual(parseControlFileSettings(raw), { max_connections: 60, max_prepared_transactions: 0, max_locks_per_transaction: 64, max_wal_senders: 10, max_worker_processes: 8 });
  });
});

describe('restart decision: kubectl.kubernetes.io/restartedAt (kubectl cnpg restart)', () => {
  const asked = { restartRequestedAtMs: 500_000 };
  const started = (ms: number) => ({ postmasterStartMs: ms });

  it('a postmaster started before the annotation restarts; one started after it does not (once per annotation)', () => {
    assert.equal(decide({ ...asked, ...started(400_000), role: 'replica' }).action, 'restart');
    assert.deepEqual(decide({ ...asked, ...started(600_000), role: 'replica' }), { action: 'none' });
    assert.deepEqual(decide({ ...started(400_000), role: 'replica' }), { action: 'none' }, 'no annotation');
  });

  it('replicas first: the primary waits until every replica restarted since the annotation', () => {
    const restarted = { ...replica('pg-2', 50), postmasterStartMs: 600_000 };
    const old = { ...replica('pg-3', 50), postmasterStartMs: 400_000 };
    const waiting = decide({ ...asked, ...started(400_000), replicas: [restarted, old] });
    assert.ok(waiting.action === 'wait' && waiting.waitingFor.endsWith('pg-3 (not restarted since kubectl.kubernetes.io/restartedAt)'), JSON.stringify(waiting));
    assert.equal(decide({ ...asked, ...started(400_000), replicas: [restarted, { ...old, postmasterStartMs: 650_000 }] }).action, 'restart');
    assert.equal(decide({ ...asked, ...started(400_000), instances: 1 }).action, 'restart');
  });

  it('supervised: waits for the user, as for pending settings', () => {
    const d = decide({ ...asked, ...started(400_000), strategy: 'supervised', role: 'replica' });
    assert.ok(d.action === 'wait' && d.forUser && d.waitingFor.includes('kubectl.kubernetes.io/restartedAt'));
  });

  it('checks again soon while something waits; otherwise a replica every 5 s (its replay can pause) and a primary every 30 s', () => {
    assert.equal(nextCheckDelayMs(true, 'primary'), restartCheckIntervalMs);
    assert.equal(nextCheckDelayMs(true, 'replica'), restartCheckIntervalMs);
    assert.equal(nextCheckDelayMs(false, 'replica'), idleCheckIntervalMs);
    assert.equal(nextCheckDelayMs(false, undefined), idleCheckIntervalMs, 'a postmaster not asked yet may be a replica');
    assert.equal(nextCheckDelayMs(false, 'primary'), primaryIdleCheckIntervalMs);
  });
});
