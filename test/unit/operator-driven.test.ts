import { strict as assert } from 'node:assert';
import { isInstancePhase, operatorPhasePatch } from '../../src/controlplane/kubernetes/operator-phase.js';
import { decideUnderOperator, operatorPhaseReasons, operatorPhases, type OperatorRestartInput } from '../../src/rollout/operator-decision.js';

const replica: OperatorRestartInput = {
  role: 'replica',
  strategy: 'unsupervised',
  instances: 3,
  pending: [],
  running: { max_connections: 100 },
  next: {},
  self: 'db-2',
  clusterPhase: 'Cluster in healthy state',
  currentPrimary: 'db-1',
  targetPrimary: 'db-1',
  announced: [],
  inPlaceRestartDone: false,
};
const primary: OperatorRestartInput = { ...replica, role: 'primary', self: 'db-1' };
const applying = { phase: operatorPhases.applying, phaseReason: operatorPhaseReasons.configurationChanged };

/** CloudNativePG v1.30 instance_controller.go: what an instance does about restarts while the operator drives. */
describe('under CloudNativePG\'s operator: restarts and phases (decideUnderOperator)', () => {
  it('a replica never restarts by itself: it announces the pending restart once (the operator deletes its Pod)', () => {
    const pending = { ...replica, pending: ['shared_buffers'] };
    assert.deepEqual(decideUnderOperator(pending), { action: 'report', phase: applying });
    assert.deepEqual(decideUnderOperator({ ...pending, announced: ['shared_buffers'] }), { action: 'none' });
    // Not over the same phase (the first replica to spot it wrote it), nor over the operator's later phases.
    assert.deepEqual(decideUnderOperator({ ...pending, clusterPhase: operatorPhases.applying }), { action: 'none' });
    assert.deepEqual(decideUnderOperator({ ...pending, strategy: 'supervised' }), { action: 'report', phase: applying });
  });

  it('the primary of a cluster with replicas leaves the announcement to them; a single instance announces it', () => {
    assert.deepEqual(decideUnderOperator({ ...primary, pending: ['shared_buffers'] }), { action: 'none' });
    assert.deepEqual(decideUnderOperator({ ...primary, instances: 1, pending: ['shared_buffers'] }), { action: 'report', phase: applying });
  });

  it('the primary restarts in place when the operator asks (its phase), once, then reports it restarted', () => {
    const asked = { ...primary, clusterPhase: operatorPhases.inplacePrimaryRestart, pending: ['shared_buffers'], announced: ['shared_buffers'] };
    assert.deepEqual(decideUnderOperator(asked), {
      action: 'restart',
      reason: 'the operator asked for an in-place restart of the primary',
      then: { phase: operatorPhases.healthy, phaseReason: operatorPhaseReasons.restartedInPlace },
    });
    assert.deepEqual(decideUnderOperator({ ...asked, inPlaceRestartDone: true }), { action: 'none' });
    // Not during a switchover (current != target), not on a replica, not on a stale primary.
    assert.deepEqual(decideUnderOperator({ ...asked, targetPrimary: 'db-2' }), { action: 'none' });
    assert.deepEqual(decideUnderOperator({ ...asked, role: 'replica' }), { action: 'none' });
    assert.deepEqual(decideUnderOperator({ ...asked, currentPrimary: 'db-3', targetPrimary: 'db-3' }), { action: 'none' });
  });

  it('a lowered hot-standby setting: the primary restarts first (unsupervised) or waits for the user (supervised)', () => {
    const lowered = { ...primary, pending: ['max_connections'], running: { max_connections: 100 }, next: { max_connections: 50 } };
    assert.deepEqual(decideUnderOperator(lowered), {
      action: 'restart',
      reason: 'decrease of hot standby sensitive parameters: max_connections',
      then: { phase: operatorPhases.applying, phaseReason: operatorPhaseReasons.decrease },
    });
    assert.deepEqual(decideUnderOperator({ ...lowered, strategy: 'supervised' }), { action: 'report', phase: { phase: operatorPhases.waitingForUser, phaseReason: operatorPhaseReasons.supervised } });
    // A raise is the operator's rolling update (replicas first).
    assert.deepEqual(decideUnderOperator({ ...lowered, next: { max_connections: 200 } }), { action: 'none' });
  });

  it('nothing pending, nothing asked: nothing', () => {
    assert.deepEqual(decideUnderOperator(primary), { action: 'none' });
    assert.deepEqual(decideUnderOperator(replica), { action: 'none' });
  });
});

describe('under CloudNativePG\'s operator: the Cluster phase (operatorPhasePatch)', () => {
  const now = new Date('2026-12-05T08:00:00.123Z');
  const ready = { type: 'Ready', status: 'True', reason: 'ClusterIsReady', message: 'Cluster is Ready', lastTransitionTime: '2026-12-05T07:00:00Z' };
  const other = { type: 'ContinuousArchiving', status: 'True', reason: 'ContinuousArchivingSuccess', message: '', lastTransitionTime: '2026-12-05T07:00:00Z' };

  it('the operator\'s phases are never written over, nor are pgim\'s own phases written at all', () => {
    for (const phase of ['Switchover in progress', 'Failing over', 'Upgrading cluster']) {
      assert.equal(operatorPhasePatch({ phase, phaseReason: 'x' }, 'Cluster in healthy state', '', now), undefined);
    }
    assert.equal(isInstancePhase('Cluster in healthy state', ''), false);
    assert.equal(isInstancePhase('Invalid configuration', 'PostgreSQL refuses them'), false);
    assert.equal(isInstancePhase('Waiting for the primary Lease', 'held by db-1'), false);
    assert.equal(operatorPhasePatch({ phase: 'Failing over' }, 'Waiting for the primary Lease', 'held', now), undefined);
  });

  it('"Applying configuration" is written once, with Ready=False and the other conditions kept', () => {
    assert.equal(operatorPhasePatch({ phase: 'Applying configuration', phaseReason: 'anything' }, applying.phase, applying.phaseReason, now), undefined);
    const patch = operatorPhasePatch({ phase: 'Cluster in healthy state', conditions: [other, ready] }, applying.phase, applying.phaseReason, now);
    assert.deepEqual(patch, {
      phase: 'Applying configuration',
      phaseReason: 'PostgreSQL configuration changed',
      conditions: [other, { type: 'Ready', status: 'False', reason: 'ClusterIsNotReady', message: 'Cluster Is Not Ready', lastTransitionTime: '2026-12-05T08:00:00Z' }],
    });
  });

  it('after the in-place restart: healthy with Ready=True, the transition time kept when Ready did not change', () => {
    const patch = operatorPhasePatch({ phase: operatorPhases.inplacePrimaryRestart, conditions: [ready] }, operatorPhases.healthy, operatorPhaseReasons.restartedInPlace, now);
    assert.deepEqual(patch, { phase: operatorPhases.healthy, phaseReason: operatorPhaseReasons.restartedInPlace, conditions: [ready] });
    assert.equal(operatorPhasePatch({ phase: operatorPhases.healthy, phaseReason: operatorPhaseReasons.restartedInPlace }, operatorPhases.healthy, operatorPhaseReasons.restartedInPlace, now), undefined);
  });
});
