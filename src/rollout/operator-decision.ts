import { decreasedSettings, type LocalFacts } from './decision.js';

/**
 * Under CloudNativePG's operator the rolling restart is the operator's: it deletes each replica Pod that reports a
 * pending restart (the new Pod starts with the new settings) and then asks the primary for an in-place restart by
 * setting the phase "Primary instance is being restarted in-place" (or switches over first). The instance only
 * says what it sees, as CNPG's instance manager does (internal/management/controller/instance_controller.go,
 * `restartPrimaryInplaceIfRequested`, `processConfigReloadAndManageRestart`, `triggerRestartForDecrease`):
 *
 * - the primary restarts in place when the phase asks for it, then writes "Cluster in healthy state" / "Primary
 *   instance restarted in-place";
 * - a hot-standby setting lowered on the primary: it restarts first by itself (unsupervised) and writes "Applying
 *   configuration" / "Decrease of hot standby sensitive parameters", or writes "Waiting for user action" / "User must
 *   issue a supervised switchover" (supervised);
 * - any other pending restart: "Applying configuration" / "PostgreSQL configuration changed", written by the first
 *   replica to see it (never by the primary of a cluster with replicas, never over that same phase);
 * - a replica never restarts by itself, and the restart annotation (`kubectl cnpg restart`) is the operator's.
 *
 * Pure: the facts come in, the action goes out.
 */

/** CloudNativePG's phase strings and reasons that its instance manager writes. */
export const operatorPhases = {
  inplacePrimaryRestart: 'Primary instance is being restarted in-place',
  applying: 'Applying configuration',
  waitingForUser: 'Waiting for user action',
  healthy: 'Cluster in healthy state',
} as const;

export const operatorPhaseReasons = {
  restartedInPlace: 'Primary instance restarted in-place',
  configurationChanged: 'PostgreSQL configuration changed',
  decrease: 'Decrease of hot standby sensitive parameters',
  supervised: 'User must issue a supervised switchover',
} as const;

export interface OperatorRestartInput extends Pick<LocalFacts, 'role' | 'strategy' | 'instances' | 'pending' | 'running' | 'next'> {
  readonly self: string;
  /** The Cluster's `status.phase`, `currentPrimary`, `targetPrimary`. */
  readonly clusterPhase: string | undefined;
  readonly currentPrimary: string | undefined;
  readonly targetPrimary: string | undefined;
  /** The pending settings already announced after the last configuration change (so a phase is written once). */
  readonly announced: readonly string[];
  /** This instance already restarted for the in-place request still shown (its phase write may not be seen yet). */
  readonly inPlaceRestartDone: boolean;
}

export interface OperatorPhase {
  readonly phase: string;
  readonly phaseReason: string;
}

export type OperatorRestartDecision =
  | { readonly action: 'none' }
  /** Only a phase to write (once per change of the pending set). */
  | { readonly action: 'report'; readonly phase: OperatorPhase }
  /** Restart postgres in place (smart, then fast), then write the phase. */
  | { readonly action: 'restart'; readonly reason: string; readonly then: OperatorPhase };

export function decideUnderOperator(input: OperatorRestartInput): OperatorRestartDecision {
  const isCurrentPrimary = input.role === 'primary' && input.currentPrimary === input.self;
  if (isCurrentPrimary && input.clusterPhase === operatorPhases.inplacePrimaryRestart && input.currentPrimary === input.targetPrimary && !input.inPlaceRestartDone) {
    return { action: 'restart', reason: 'the operator asked for an in-place restart of the primary', then: { phase: operatorPhases.healthy, phaseReason: operatorPhaseReasons.restartedInPlace } };
  }
  if (input.pending.length === 0) return { action: 'none' };
  if (input.pending.join() === input.announced.join()) return { action: 'none' };
  if (input.role === 'primary' && decreasedSettings(input).length > 0) {
    if (input.strategy === 'unsupervised') {
      return { action: 'restart', reason: `decrease of hot standby sensitive parameters: ${decreasedSettings(input).join(', ')}`, then: { phase: operatorPhases.applying, phaseReason: operatorPhaseReasons.decrease } };
    }
    return { action: 'report', phase: { phase: operatorPhases.waitingForUser, phaseReason: operatorPhaseReasons.supervised } };
  }
  // The replicas spot the change first; the primary of a cluster with replicas leaves it to them.
  if (input.clusterPhase === operatorPhases.applying || (input.role === 'primary' && input.instances > 1)) return { action: 'none' };
  return { action: 'report', phase: { phase: operatorPhases.applying, phaseReason: operatorPhaseReasons.configurationChanged } };
}
