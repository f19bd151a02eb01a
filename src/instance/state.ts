import { randomUUID } from 'node:crypto';

export type Phase = 'starting' | 'bootstrapping' | 'running' | 'restarting' | 'promoting' | 'demoting' | 'fenced' | 'stopping' | 'stopped' | 'failed';

export interface PostmasterInfo {
  pid: number;
  /** Wall-clock time pgim spawned it. */
  startedAt: string;
  /** Kernel start time (`/proc/<pid>/stat` field 22), which pins the PID to this process. */
  startTicks: string | undefined;
}

/** CNPG's ManagedRoles status (`status.managedRolesStatus`), as the primary reports it. */
export interface ManagedRolesStatus {
  readonly byStatus?: Readonly<Record<string, readonly string[]>>;
  readonly cannotReconcile?: Readonly<Record<string, readonly string[]>>;
  readonly passwordStatus?: Readonly<Record<string, { readonly transactionID?: number; readonly resourceVersion?: string }>>;
}

/**
 * The one place that holds what pgim knows about its instance. The supervisor writes it; the status and metrics
 * servers only read it, so a probe never drives anything.
 */
export class InstanceState {
  readonly sessionID = randomUUID();
  readonly processStartedAt = new Date();
  phase: Phase = 'starting';
  postmaster: PostmasterInfo | undefined;
  /** Postmaster spawned (CNPG's `canCheckReadiness`). */
  postmasterSpawned = false;
  /** Accepting connections since the last spawn. */
  accepting = false;
  restartCount = 0;
  lastError: string | undefined;
  /** Why the latest desired state was not applied (the instance keeps its last good configuration). */
  configurationError: string | undefined;
  /** A loaded setting waits for a restart (`pending_restart`). */
  restartPending = false;
  /** What a pending restart waits for (the replicas, the primary, the user); undefined when nothing waits. */
  restartWaitingFor: string | undefined;
  /** A replica's replay paused for insufficient hot-standby settings: it is not ready. */
  replayPausedReason: string | undefined;
  /** Accepted settings that weaken transport or authentication security (render/security-warnings.ts). */
  securityWarnings: readonly { kind: string; field: string; message: string }[] = [];
  /** The TLS certificates in use, for expiry metrics and status. */
  certificates: { secret: string; notAfter: Date; serial: string }[] = [];
  /** spec.managed.roles as last reconciled on this primary; undefined when no role is managed here. */
  managedRolesStatus: ManagedRolesStatus | undefined;

  constructor(
    readonly clusterName: string,
    readonly podName: string,
  ) {}
}
