import { strict as assert } from 'node:assert';
import { decideLease, leaseSpecFor, microTime, releasedLeaseSpec, type LeaseView } from '../../src/controlplane/kubernetes/lease-decision.js';
import { readLeaseView } from '../../src/controlplane/kubernetes/lease.js';
import { PrimaryLeaseError } from '../../src/controlplane/types.js';

const held = (holder: string, renewTime = '2026-01-01T00:00:00.000000Z', durationSeconds = 15): LeaseView => ({
  holder,
  renewTime,
  acquireTime: '2026-01-01T00:00:00.000000Z',
  durationSeconds,
  transitions: 3,
});

describe('primary Lease decision (client-go / CloudNativePG rules)', () => {
  it('takes a Lease nobody holds at once, and renews its own', () => {
    assert.deepEqual(decideLease(held(''), 'db-2', 0, undefined).decision, { action: 'take' });
    assert.deepEqual(decideLease(held('db-2'), 'db-2', 0, undefined).decision, { action: 'renew' });
  });

  it("refuses another holder's Lease until the same record has stayed unchanged for its whole duration, on the local clock", () => {
    const lease = held('db-1', '2020-01-01T00:00:00.000000Z', 15);
    const first = decideLease(lease, 'db-2', 1000, undefined);
    // A renewTime years in the past does not count: only what this instance has watched does.
    assert.deepEqual(first.decision, { action: 'refuse', holder: 'db-1', retryInMs: 15_000 });
    const later = decideLease(lease, 'db-2', 10_000, first.observation);
    assert.deepEqual(later.decision, { action: 'refuse', holder: 'db-1', retryInMs: 6000 });
    assert.deepEqual(decideLease(lease, 'db-2', 16_000, later.observation).decision, { action: 'take' });
  });

  it('starts the wait again when the holder renews (a new renewTime)', () => {
    const first = decideLease(held('db-1', 'a'), 'db-2', 0, undefined);
    const renewed = decideLease(held('db-1', 'b'), 'db-2', 14_000, first.observation);
    assert.deepEqual(renewed.decision, { action: 'refuse', holder: 'db-1', retryInMs: 15_000 });
    assert.deepEqual(decideLease(held('db-1', 'b'), 'db-2', 20_000, renewed.observation).decision, { action: 'refuse', holder: 'db-1', retryInMs: 9000 });
    assert.deepEqual(decideLease(held('db-1', 'b'), 'db-2', 29_000, renewed.observation).decision, { action: 'take' });
  });

  it('uses the duration the holder wrote, and a new holder is a new record', () => {
    const short = decideLease(held('db-1', 'a', 2), 'db-3', 0, undefined);
    assert.deepEqual(short.decision, { action: 'refuse', holder: 'db-1', retryInMs: 2000 });
    assert.deepEqual(decideLease(held('db-2', 'a', 2), 'db-3', 2500, short.observation).decision, { action: 'refuse', holder: 'db-2', retryInMs: 2000 });
  });

  it('writes holder, duration, acquire and renew times and counts transitions as client-go does', () => {
    const now = new Date('2026-11-27T23:00:00.123Z');
    assert.deepEqual(leaseSpecFor(held('db-1'), 'take', 'db-2', 15, now), {
      holderIdentity: 'db-2',
      leaseDurationSeconds: 15,
      acquireTime: '2026-11-27T23:00:00.123000Z',
      renewTime: '2026-11-27T23:00:00.123000Z',
      leaseTransitions: 4,
    });
    const renewed = leaseSpecFor(held('db-2'), 'renew', 'db-2', 15, now);
    assert.equal(renewed.acquireTime, '2026-01-01T00:00:00.000000Z', 'a renewal keeps acquireTime');
    assert.equal(renewed.leaseTransitions, 3);
    assert.deepEqual(releasedLeaseSpec(held('db-2'), now), {
      holderIdentity: '',
      leaseDurationSeconds: 1,
      acquireTime: '2026-11-27T23:00:00.123000Z',
      renewTime: '2026-11-27T23:00:00.123000Z',
      leaseTransitions: 3,
    });
  });

  it('formats MicroTime with six fractional digits', () => {
    assert.equal(microTime(new Date('2026-01-02T03:04:05.006Z')), '2026-01-02T03:04:05.006000Z');
  });

  it('reads an empty spec as free, and names a malformed field', () => {
    assert.deepEqual(readLeaseView({ spec: {} }, 'Lease ns/db'), { holder: '', renewTime: undefined, acquireTime: undefined, durationSeconds: 15, transitions: 0 });
    assert.throws(() => readLeaseView({ spec: { leaseDurationSeconds: 'long' } }, 'Lease ns/db'), (err: unknown) => {
      assert.ok(err instanceof PrimaryLeaseError);
      assert.equal(err.message, 'Lease ns/db: spec.leaseDurationSeconds: is not a non-negative integer');
      return true;
    });
    assert.throws(() => readLeaseView({ spec: { holderIdentity: 7 } }, 'Lease ns/db'), /Lease ns\/db: spec\.holderIdentity: is not a string/);
  });
});
