import type { InstanceState, ManagedRolesStatus } from '../instance/state.js';
import type { PostgresReportedStatus } from '../postgres/status-queries.js';

/** Facts about the pgim binary, computed once at start. */
export interface ManagerInfo {
  version: string;
  /**
   * CNPG's `executableHash`: empty, on purpose. CNPG's operator compares it with its own manager's hash and, when
   * they differ and in-place updates are on, streams its Go binary to `PUT /update`; an empty hash is CNPG's
   * "instance manager which doesn't support automatic update", so the operator relies on rolling updates instead.
   */
  executableHash: string;
  /** Go's name for the CPU architecture (`amd64`, `arm64`), as CNPG reports `runtime.GOARCH`. */
  arch: string;
  node: string;
}

/** CNPG's `PostgresqlStatus` JSON (field names kept), plus pgim's supervisor facts. */
export type StatusDocument = Partial<PostgresReportedStatus> & {
  pod: { metadata: { name: string } };
  node: string;
  instanceManagerVersion: string;
  instanceArch: string;
  executableHash: string;
  sessionID: string;
  isPodReady: boolean;
  mightBeUnavailable: boolean;
  isPgRewindRunning: boolean;
  isInstanceManagerUpgrading: boolean;
  pendingRestartForDecrease: boolean;
  phase: string;
  postmasterPid?: number;
  postmasterStartTime?: string;
  postmasterStartTicks?: string;
  restartCount: number;
  uptimeSeconds: number;
  lastError?: string;
  /** Why the latest desired state was not applied; the instance runs on its last good configuration. */
  configurationError?: string;
  /** pgim: what a pending restart waits for (the replicas, the primary, the user: `primaryUpdateStrategy: supervised`). */
  pendingRestartWaitingFor?: string;
  /** pgim: why this replica's replay paused (insufficient hot-standby settings); it is not ready meanwhile. */
  replayPausedReason?: string;
  /** Accepted settings that weaken transport or authentication security: `{kind, field, message}` each. */
  securityWarnings: { kind: string; field: string; message: string }[];
  /** pgim: spec.managed.roles on this primary, as in the Cluster's `status.managedRolesStatus`. */
  managedRolesStatus?: ManagedRolesStatus;
  /** WAL files waiting for the archiver (`*.ready` in `pg_wal/archive_status`). */
  readyWalFiles?: number;
  /** While pgim restarts or stops PostgreSQL on purpose, a failed query is reported here instead of as a 500 (CNPG). */
  mightBeUnavailableMaskedError?: string;
};

export interface StatusExtras {
  readyWalFiles?: number;
  /** pg_rewind runs (postgres is stopped): CNPG then reports only this, and the file-based role. */
  isPgRewindRunning?: boolean;
  mightBeUnavailableMaskedError?: string;
  /** File-based role (no `standby.signal`), used when PostgreSQL cannot be asked. */
  isPrimary?: boolean;
}

export function buildStatusDocument(
  state: InstanceState,
  info: ManagerInfo,
  postgres: PostgresReportedStatus | undefined,
  extras: StatusExtras = {},
): StatusDocument {
  const doc: StatusDocument = {
    ...(postgres === undefined && extras.isPrimary !== undefined ? { isPrimary: extras.isPrimary } : {}),
    ...postgres,
    pod: { metadata: { name: state.podName } },
    node: info.node,
    instanceManagerVersion: info.version,
    instanceArch: info.arch,
    executableHash: info.executableHash,
    sessionID: state.sessionID,
    isPodReady: state.accepting && state.replayPausedReason === undefined,
    // CNPG's MightBeUnavailable: a planned restart or stop, and fencing (which stops postgres on purpose).
    mightBeUnavailable: state.phase === 'restarting' || state.phase === 'stopping' || state.phase === 'fenced',
    isPgRewindRunning: extras.isPgRewindRunning === true,
    isInstanceManagerUpgrading: false,
    pendingRestartForDecrease: postgres?.pendingRestartForDecrease ?? false,
    phase: state.phase,
    restartCount: state.restartCount,
    securityWarnings: [...state.securityWarnings],
    uptimeSeconds: Math.round((Date.now() - state.processStartedAt.getTime()) / 1000),
  };
  if (state.postmaster) {
    doc.postmasterPid = state.postmaster.pid;
    doc.postmasterStartTime = state.postmaster.startedAt;
    if (state.postmaster.startTicks !== undefined) doc.postmasterStartTicks = state.postmaster.startTicks;
  }
  if (state.lastError !== undefined) doc.lastError = state.lastError;
  if (state.configurationError !== undefined) doc.configurationError = state.configurationError;
  if (state.restartWaitingFor !== undefined) doc.pendingRestartWaitingFor = state.restartWaitingFor;
  if (state.replayPausedReason !== undefined) doc.replayPausedReason = state.replayPausedReason;
  if (state.managedRolesStatus !== undefined) doc.managedRolesStatus = state.managedRolesStatus;
  if (extras.readyWalFiles !== undefined) doc.readyWalFiles = extras.readyWalFiles;
  if (extras.mightBeUnavailableMaskedError !== undefined) doc.mightBeUnavailableMaskedError = extras.mightBeUnavailableMaskedError;
  return doc;
}
