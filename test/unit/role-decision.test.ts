import { strict as assert } from 'node:assert';
import { decideRole, fencedInstancesAnnotation, isFenced, type RoleFacts } from '../../src/role/decision.js';

const facts = (overrides: Partial<RoleFacts>): RoleFacts => ({
  isTarget: false,
  inRecovery: true,
  fenced: false,
  lease: 'not asked',
  forked: false,
  ...overrides,
});

describe('role decision (CNPG reconcilePrimary / reconcileOldPrimary)', () => {
  it('the target in recovery asks for the Lease, promotes once it holds it, and waits while it is refused', () => {
    assert.equal(decideRole(facts({ isTarget: true })).action, 'acquire lease');
    assert.equal(decideRole(facts({ isTarget: true, lease: 'held' })).action, 'promote');
    assert.equal(decideRole(facts({ isTarget: true, lease: 'refused' })).action, 'wait for lease');
  });

  it('the target already running as a primary keeps the Lease (CNPG acquires it on every reconcile of the target)', () => {
    assert.equal(decideRole(facts({ isTarget: true, inRecovery: false })).action, 'keep lease');
    assert.equal(decideRole(facts({ isTarget: true, inRecovery: false, lease: 'held' })).action, 'keep lease');
  });

  it('a primary that is no longer the target demotes, whatever the Lease says', () => {
    for (const lease of ['not asked', 'held', 'refused'] as const) assert.equal(decideRole(facts({ inRecovery: false, lease })).action, 'demote');
  });

  it('a replica that is not the target frees any Lease it took, or rewinds when its history forked', () => {
    assert.equal(decideRole(facts({})).action, 'release lease');
    assert.equal(decideRole(facts({ forked: true })).action, 'rewind');
  });

  it('a forked history never rewinds the target, nor a primary', () => {
    assert.equal(decideRole(facts({ isTarget: true, forked: true, lease: 'held' })).action, 'promote');
    assert.equal(decideRole(facts({ isTarget: true, inRecovery: false, forked: true })).action, 'keep lease');
    assert.equal(decideRole(facts({ inRecovery: false, forked: true })).action, 'demote');
  });

  it('nothing changes while postgres does not accept connections', () => {
    for (const isTarget of [true, false]) {
      for (const fenced of [true, false]) assert.equal(decideRole(facts({ isTarget, inRecovery: undefined, fenced, forked: true })).action, 'none');
    }
  });

  it('the fence is its own step: it follows the annotation, and the role rules still apply while the stop is under way', () => {
    assert.deepEqual(decideRole(facts({ fenced: true })), { fence: true, action: 'release lease' });
    assert.deepEqual(decideRole(facts({ fenced: true, inRecovery: false })), { fence: true, action: 'demote' });
    assert.deepEqual(decideRole(facts({ fenced: false, isTarget: true, lease: 'held' })), { fence: false, action: 'promote' });
  });
});

describe('fencing annotation (cnpg.io/fencedInstances)', () => {
  it('fences the instances it names, or all with "*"; an unreadable value fences nobody', () => {
    const with_ = (value: string): Record<string, string> => ({ [fencedInstancesAnnotation]: value });
    assert.equal(isFenced(with_('["demo-1"]'), 'demo-1'), true);
    assert.equal(isFenced(with_('["demo-2"]'), 'demo-1'), false);
    assert.equal(isFenced(with_('["*"]'), 'demo-1'), true);
    assert.equal(isFenced(with_(''), 'demo-1'), false);
    assert.equal(isFenced(with_('not json'), 'demo-1'), false);
    assert.equal(isFenced(with_('{"demo-1":true}'), 'demo-1'), false);
    assert.equal(isFenced({}, 'demo-1'), false);
  });
});
