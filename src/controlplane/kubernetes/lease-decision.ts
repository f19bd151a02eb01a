/**
 * Whether an instance may take, renew or must leave the primary Lease: a pure function of the Lease as read, this
 * instance's identity, a local monotonic clock and what this instance saw of the Lease before. No I/O, so every
 * rule is unit-tested.
 */

/** The Lease's `spec`, as pgim reads it (coordination.k8s.io/v1). */
export interface LeaseView {
  /** `''` when nobody holds it (never taken, or released). */
  readonly holder: string;
  readonly renewTime: string | undefined;
  readonly acquireTime: string | undefined;
  readonly durationSeconds: number;
  readonly transitions: number;
}

/**
 * One state of another holder's record and when this instance first saw it, on its own monotonic clock. Only an
 * unchanged record counts: any renewal (a new renewTime) starts the wait again.
 */
export interface LeaseObservation {
  readonly record: string;
  readonly sinceMs: number;
}

export type LeaseDecision =
  /** Nobody holds it, or the holder has not renewed it for a whole lease duration as timed here. */
  | { readonly action: 'take' }
  /** This instance holds it already (possibly from before a restart of pgim in the same pod). */
  | { readonly action: 'renew' }
  /** Another holder's lease may still be valid: do not promote; ask again after `retryInMs` at the earliest. */
  | { readonly action: 'refuse'; readonly holder: string; readonly retryInMs: number };

/**
 * The rules of client-go's leader election, which CloudNativePG uses for this Lease: free or own → take/renew;
 * another holder → only once the same record has been seen unchanged for its full `leaseDurationSeconds`.
 *
 * Expiry is timed on the local clock from the first sighting, never by comparing the holder's `renewTime` with the
 * local wall clock: two machines' clocks can disagree by more than a lease duration, and a skewed clock must never
 * let a second instance take a lease that is still being renewed. The cost is that a dead holder's lease is taken
 * one lease duration after this instance first looked, even when its renewTime is long past.
 */
export function decideLease(
  lease: LeaseView,
  identity: string,
  nowMs: number,
  previous: LeaseObservation | undefined,
): { decision: LeaseDecision; observation: LeaseObservation | undefined } {
  if (lease.holder === identity) return { decision: { action: 'renew' }, observation: undefined };
  if (lease.holder === '') return { decision: { action: 'take' }, observation: undefined };
  const record = JSON.stringify([lease.holder, lease.renewTime, lease.acquireTime, lease.durationSeconds, lease.transitions]);
  const observation = previous?.record === record ? previous : { record, sinceMs: nowMs };
  const remaining = lease.durationSeconds * 1000 - (nowMs - observation.sinceMs);
  if (remaining <= 0) return { decision: { action: 'take' }, observation: undefined };
  return { decision: { action: 'refuse', holder: lease.holder, retryInMs: Math.ceil(remaining) }, observation };
}

/** What this instance writes into the Lease's spec when it takes or renews it. */
export function leaseSpecFor(
  lease: LeaseView,
  action: 'take' | 'renew',
  identity: string,
  durationSeconds: number,
  now: Date,
): Record<string, unknown> {
  const time = microTime(now);
  return {
    holderIdentity: identity,
    leaseDurationSeconds: durationSeconds,
    // A renewal keeps the time the lease was taken; a lease held before a restart without acquireTime gets one.
    acquireTime: action === 'renew' && lease.acquireTime !== undefined ? lease.acquireTime : time,
    renewTime: time,
    // As client-go counts: every change of holder, taking a released (empty) lease included.
    leaseTransitions: action === 'take' ? lease.transitions + 1 : lease.transitions,
  };
}

/** A released Lease, as client-go writes it: no holder, a 1 s duration, the transition count kept. */
export function releasedLeaseSpec(lease: LeaseView, now: Date): Record<string, unknown> {
  const time = microTime(now);
  return { holderIdentity: '', leaseDurationSeconds: 1, acquireTime: time, renewTime: time, leaseTransitions: lease.transitions };
}

/**
 * Kubernetes' MicroTime: RFC 3339 with exactly six fractional digits (the API server's parser requires six; a
 * JavaScript ISO string has three).
 */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
