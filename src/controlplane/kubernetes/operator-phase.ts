import { isRecord } from './resources.js';

/**
 * When CloudNativePG's operator drives the instances, the Cluster's phase is the operator's ("Switchover in
 * progress", "Failing over", "Upgrading cluster", ...). An instance writes only what CNPG's instance manager writes
 * (internal/management/controller/instance_controller.go), each with the optimistic lock and the `Ready` condition
 * that follows the phase (`clusterstatus.SetClusterReadyCondition`):
 */
const instancePhases: readonly { phase: string; phaseReason: string }[] = [
  // A pending restart spotted after a reload (never written over the same phase).
  { phase: 'Applying configuration', phaseReason: 'PostgreSQL configuration changed' },
  // The primary restarted by itself for a lowered hot-standby setting.
  { phase: 'Applying configuration', phaseReason: 'Decrease of hot standby sensitive parameters' },
  // The same under `primaryUpdateStrategy: supervised`.
  { phase: 'Waiting for user action', phaseReason: 'User must issue a supervised switchover' },
  // The in-place restart the operator asked for ("Primary instance is being restarted in-place") is done.
  { phase: 'Cluster in healthy state', phaseReason: 'Primary instance restarted in-place' },
];

/** Whether an instance may write this phase while the operator drives the cluster. */
export function isInstancePhase(phase: string, phaseReason: string): boolean {
  return instancePhases.some((p) => p.phase === phase && p.phaseReason === phaseReason);
}

/**
 * The status patch for `phase` given the Cluster's current status, or undefined when nothing is to be written:
 * a phase an instance does not own, "Applying configuration" over itself, or the same phase and reason again.
 */
export function operatorPhasePatch(status: Record<string, unknown>, phase: string, phaseReason: string, now: Date): Record<string, unknown> | undefined {
  if (!isInstancePhase(phase, phaseReason)) return undefined;
  if (phase === 'Applying configuration' && status.phase === phase && phaseReason === 'PostgreSQL configuration changed') return undefined;
  if (status.phase === phase && status.phaseReason === phaseReason) return undefined;
  const ready =
    phase === 'Cluster in healthy state'
      ? { type: 'Ready', status: 'True', reason: 'ClusterIsReady', message: 'Cluster is Ready' }
      : { type: 'Ready', status: 'False', reason: 'ClusterIsNotReady', message: 'Cluster Is Not Ready' };
  const existing = Array.isArray(status.conditions) ? (status.conditions as unknown[]).filter(isRecord) : [];
  const old = existing.find((c) => c.type === 'Ready');
  // meta.SetStatusCondition: the transition time moves only when the status does.
  const lastTransitionTime = old !== undefined && old.status === ready.status && typeof old.lastTransitionTime === 'string' ? old.lastTransitionTime : now.toISOString().replace(/\.\d+Z$/, 'Z');
  const conditions = [...existing.filter((c) => c.type !== 'Ready'), { ...old, ...ready, lastTransitionTime }];
  return { phase, phaseReason, conditions };
}
