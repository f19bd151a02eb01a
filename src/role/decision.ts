/**
 * Which role change this instance makes: a pure function of what it knows now (CloudNativePG's `reconcilePrimary`
 * and `reconcileOldPrimary`, Patroni's `rewind.py`). No I/O, so every case is unit-tested; RoleTransitions
 * (./transitions.ts) gathers the facts and carries the action out.
 */

export interface RoleFacts {
  /** `status.targetPrimary` names this instance. */
  readonly isTarget: boolean;
  /** `pg_is_in_recovery()`; undefined while postgres does not accept connections (nothing can change then). */
  readonly inRecovery: boolean | undefined;
  /** CNPG's `cnpg.io/fencedInstances` names this instance (or `*`). */
  readonly fenced: boolean;
  /** The primary Lease: asked for only when a promotion needs it. */
  readonly lease: 'not asked' | 'held' | 'refused';
  /** This replica did not stream while its primary runs on a later timeline: its history forked (DivergenceWatch). */
  readonly forked: boolean;
  /** The target of a replica cluster (`spec.replica`): its designated primary, which stays in recovery. */
  readonly designatedPrimary?: boolean;
}

export type RoleAction =
  /** Target, in recovery, Lease not asked yet: ask for it, then decide again. */
  | 'acquire lease'
  /** Target, in recovery, Lease held: promote in place. */
  | 'promote'
  /** Target, in recovery, Lease refused: stay a replica; try again later. */
  | 'wait for lease'
  /** Not the target but running as a primary: checkpoint, stop fast, rewind onto the new primary, start as a replica. */
  | 'demote'
  /** A replica whose history forked: stop, rewind onto the primary, start again. */
  | 'rewind'
  /** The running primary and the target: hold the Lease, as CNPG acquires it on every reconcile of the target. */
  | 'keep lease'
  /** A replica that is not the target: free a Lease it may have taken for a promotion that did not happen. */
  | 'release lease'
  /** The designated primary of a replica cluster runs as a primary: demoting it is not implemented; nothing changes. */
  | 'refuse demotion'
  /** postgres does not accept connections: nothing to change now. */
  | 'none';

export interface RoleDecision {
  /**
   * Whether postgres must be kept stopped. Applied first and on its own: a fence stops postgres, lifting it starts
   * postgres again; the role rules below still run while a fencing stop is under way, as they always have.
   */
  readonly fence: boolean;
  readonly action: RoleAction;
}

export function decideRole(facts: RoleFacts): RoleDecision {
  return { fence: facts.fenced, action: roleAction(facts) };
}

function roleAction({ isTarget, inRecovery, lease, forked, designatedPrimary }: RoleFacts): RoleAction {
  if (inRecovery === undefined) return 'none';
  // A replica cluster's designated primary follows the source cluster: the target, and in recovery all along.
  if (isTarget && designatedPrimary === true) return inRecovery ? 'keep lease' : 'refuse demotion';
  if (isTarget && inRecovery) return lease === 'not asked' ? 'acquire lease' : lease === 'held' ? 'promote' : 'wait for lease';
  if (!isTarget && !inRecovery) return 'demote';
  if (isTarget) return 'keep lease';
  return forked ? 'rewind' : 'release lease';
}

/** CNPG's fencing annotation: a JSON list of instance names, or `["*"]` for all. */
export const fencedInstancesAnnotation = 'cnpg.io/fencedInstances';

/** Whether the annotation fences `self`; an unreadable value fences nobody. */
export function isFenced(annotations: Readonly<Record<string, string>>, self: string): boolean {
  const raw = annotations[fencedInstancesAnnotation];
  if (raw === undefined || raw === '') return false;
  try {
    const list = JSON.parse(raw) as unknown;
    return Array.isArray(list) && (list.includes('*') || list.includes(self));
  } catch {
    return false;
  }
}
