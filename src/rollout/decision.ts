/**
 * Who restarts when for settings that need a restart, in CloudNativePG's order (its operator's rolling update and
 * its instance manager's `processConfigReloadAndManageRestart`, here decided by each instance for itself):
 *
 * - Replicas restart first, the primary last, after its replicas report the new values (or after a timeout).
 * - The hot-standby settings (`max_connections`, ...) must never be lower on a standby than on the primary:
 *   PostgreSQL pauses replay ("insufficient parameter settings") on a standby that meets a primary's higher value,
 *   and refuses to start one whose value is lower than the one in its control file. So a raise goes replicas first,
 *   a decrease primary first; a replica restarts only when its new values are at least the ones its control file
 *   holds from the primary (CNPG's pg_controldata gate for `pendingRestartForDecrease`).
 * - `supervised`: nothing restarts by itself; the instance says what waits.
 *
 * Pure: every fact (settings, control file, the replicas' reports, the clock) comes in as data.
 */

/** The settings a standby needs at least as high as its primary's (PostgreSQL's `CheckRequiredParameterValues`). */
export const hotStandbySettings = ['max_connections', 'max_prepared_transactions', 'max_locks_per_transaction', 'max_wal_senders', 'max_worker_processes'] as const;
export type HotStandbySetting = (typeof hotStandbySettings)[number];

export type Values = Partial<Record<HotStandbySetting, number>>;

export interface LocalFacts {
  readonly role: 'primary' | 'replica';
  readonly strategy: 'unsupervised' | 'supervised';
  /** Instances in the cluster, this one included. */
  readonly instances: number;
  /** Settings whose loaded value waits for a restart (`pg_settings.pending_restart`). */
  readonly pending: readonly string[];
  /** The hot-standby settings postgres runs with. */
  readonly running: Values;
  /** Their values after a restart (the loaded files), for the pending ones. */
  readonly next: Values;
  /** A replica's control file: the primary's values as last replayed (undefined on a primary or when unknown). */
  readonly controlFile: Values | undefined;
  /** A replica: replay is paused (`pg_get_wal_replay_pause_state() = 'paused'`). */
  readonly replayPaused: boolean;
  /** When this postmaster started (`pg_postmaster_start_time()`, ms). */
  readonly postmasterStartMs?: number | undefined;
}

/** What a primary learns from one replica. */
export interface ReplicaReport {
  readonly name: string;
  /** Undefined when the replica could not be asked (down, restarting, unreachable): `error` says why. */
  readonly running: Values | undefined;
  readonly pending: readonly string[];
  readonly error?: string;
  /** When its postmaster started (ms). */
  readonly postmasterStartMs?: number;
}

export interface RestartInput extends LocalFacts {
  /** A primary's replicas, asked just now (only when the primary has something pending). */
  readonly replicas: readonly ReplicaReport[];
  /** When this instance started waiting for its replicas (ms), undefined when it was not waiting. */
  readonly waitingSinceMs: number | undefined;
  readonly nowMs: number;
  /** How long a primary waits for its replicas before it restarts anyway. */
  readonly replicaTimeoutMs: number;
  /** `kubectl.kubernetes.io/restartedAt` on the Cluster (ms): every postmaster started before it restarts. */
  readonly restartRequestedAtMs?: number | undefined;
}

/** What `kubectl cnpg restart` writes on the Cluster (an RFC 3339 time): restart every instance, replicas first. */
export const restartAnnotation = 'kubectl.kubernetes.io/restartedAt';

/** A postmaster that started before the restart the Cluster asks for must restart. */
export function restartRequested(postmasterStartMs: number | undefined, requestedAtMs: number | undefined): boolean {
  return requestedAtMs !== undefined && postmasterStartMs !== undefined && postmasterStartMs < requestedAtMs;
}

/** The annotation's time, or undefined when it is absent or not a time (then nothing is asked). */
export function parseRestartedAt(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/** CloudNativePG's phase reasons where it has one. */
export type RestartDecision =
  | { readonly action: 'none'; readonly replayPausedReason?: string }
  | { readonly action: 'restart'; readonly reason: string; readonly phaseReason: string; readonly replayPausedReason?: string }
  | { readonly action: 'wait'; readonly waitingFor: string; readonly forUser: boolean; readonly replayPausedReason?: string };

const list = (names: readonly string[]): string => names.join(', ');

function compare(values: Values, names: readonly HotStandbySetting[], pick: (name: HotStandbySetting) => number | undefined, lower: boolean): HotStandbySetting[] {
  return names.filter((name) => {
    const value = values[name];
    const other = pick(name);
    return value !== undefined && other !== undefined && (lower ? value < other : value > other);
  });
}

/** Hot-standby settings whose pending value is lower than the running one (CNPG's `pendingRestartForDecrease`). */
export function decreasedSettings(facts: Pick<LocalFacts, 'pending' | 'running' | 'next'>): HotStandbySetting[] {
  const pending = hotStandbySettings.filter((name) => facts.pending.includes(name));
  return compare(facts.next, pending, (name) => facts.running[name], true);
}

/** A replica's settings that are lower than its primary's (from its control file): why its replay pauses. */
export function insufficientSettings(running: Values, controlFile: Values | undefined): string[] {
  if (controlFile === undefined) return [];
  return compare(running, hotStandbySettings, (name) => controlFile[name], true).map((name) => `${name} ${String(running[name])} < ${String(controlFile[name])} on the primary`);
}

function decideReplica(input: RestartInput): RestartDecision {
  const insufficient = input.replayPaused ? insufficientSettings(input.running, input.controlFile) : [];
  const replayPausedReason = insufficient.length === 0 ? undefined : `hot standby is not possible because of insufficient parameter settings: ${list(insufficient)}`;
  const pausedFor = replayPausedReason === undefined ? {} : { replayPausedReason };
  if (input.pending.length === 0) {
    // Paused, yet the loaded files hold the same low values: a restart would not help (the files must change).
    return replayPausedReason === undefined ? { action: 'none' } : { action: 'wait', waitingFor: 'a configuration with hot-standby settings at least as high as the primary\'s', forUser: false, ...pausedFor };
  }
  if (input.strategy === 'supervised') {
    return { action: 'wait', waitingFor: `the user to restart this replica for ${list(input.pending)} (primaryUpdateStrategy: supervised)`, forUser: true, ...pausedFor };
  }
  // After a restart postgres runs with the new values; the ones below its control file's would not even start.
  const afterRestart: Values = { ...input.running, ...input.next };
  const tooLow = insufficientSettings(afterRestart, input.controlFile);
  if (tooLow.length > 0) {
    return { action: 'wait', waitingFor: `the primary to restart first with lower settings (${list(tooLow)})`, forUser: false, ...pausedFor };
  }
  const reason = replayPausedReason ?? `settings need a restart: ${list(input.pending)}`;
  return { action: 'restart', reason, phaseReason: 'PostgreSQL configuration changed', ...pausedFor };
}

/** Whether a replica reports every raised hot-standby value and nothing pending. */
function replicaApplied(input: RestartInput, replica: ReplicaReport): string | undefined {
  if (replica.running === undefined) return `${replica.name} (${replica.error ?? 'not reachable'})`;
  if (restartRequested(replica.postmasterStartMs, input.restartRequestedAtMs)) return `${replica.name} (not restarted since ${restartAnnotation})`;
  if (replica.pending.length > 0) return `${replica.name} (pending: ${list(replica.pending)})`;
  const raised = hotStandbySettings.filter((name) => input.pending.includes(name));
  const below = compare(replica.running, raised, (name) => input.next[name], true);
  return below.length === 0 ? undefined : `${replica.name} (${list(below.map((name) => `${name} ${String(replica.running?.[name])} < ${String(input.next[name])}`))})`;
}

function decidePrimary(input: RestartInput): RestartDecision {
  if (input.pending.length === 0) return { action: 'none' };
  const decreased = decreasedSettings(input);
  if (input.strategy === 'supervised') {
    const what = decreased.length > 0 ? 'a supervised switchover or restart of the primary (decrease of hot standby sensitive parameters)' : 'the user to restart the primary';
    return { action: 'wait', waitingFor: `${what} for ${list(input.pending)} (primaryUpdateStrategy: supervised)`, forUser: true };
  }
  if (decreased.length > 0) {
    return { action: 'restart', reason: `decrease of ${list(decreased)}: the primary restarts first`, phaseReason: 'Decrease of hot standby sensitive parameters' };
  }
  if (input.instances <= 1) return { action: 'restart', reason: `settings need a restart: ${list(input.pending)}`, phaseReason: 'PostgreSQL configuration changed' };
  const waiting = input.replicas.flatMap((replica) => replicaApplied(input, replica) ?? []);
  if (waiting.length === 0) return { action: 'restart', reason: `settings need a restart: ${list(input.pending)}; the replicas have applied them`, phaseReason: 'PostgreSQL configuration changed' };
  const since = input.waitingSinceMs ?? input.nowMs;
  if (input.nowMs - since >= input.replicaTimeoutMs) {
    return { action: 'restart', reason: `settings need a restart: ${list(input.pending)}; replicas did not apply them within ${String(Math.round(input.replicaTimeoutMs / 1000))} s: ${list(waiting)}`, phaseReason: 'PostgreSQL configuration changed' };
  }
  return { action: 'wait', waitingFor: `the replicas to restart first for ${list(input.pending)}: ${list(waiting)}`, forUser: false };
}

/**
 * A restart the Cluster asks for (`kubectl.kubernetes.io/restartedAt`) counts as one more setting pending a restart:
 * the same order (replicas first, the primary once they restarted), the same `supervised` wait.
 */
export function decideRestart(input: RestartInput): RestartDecision {
  const asked = restartRequested(input.postmasterStartMs, input.restartRequestedAtMs) ? { ...input, pending: [...input.pending, restartAnnotation] } : input;
  return asked.role === 'primary' ? decidePrimary(asked) : decideReplica(asked);
}
