import type { Login } from '../pg.js';

/** The ways of running the same PostgreSQL binaries that the benchmarks compare. */
export type SystemKind = 'floor' | 'pgim' | 'patroni' | 'cnpg' | 'pgim-k8s';

/** `pgim-k8s` is pgim in Kubernetes mode against the same API server as `cnpg`: the like-for-like comparison. */
export const allSystemKinds: readonly SystemKind[] = ['floor', 'pgim', 'patroni', 'cnpg', 'pgim-k8s'];

/** The systems that run against the session's kube-apiserver. */
export const kubernetesKinds: readonly SystemKind[] = ['cnpg', 'pgim-k8s'];

/** What a start looks like from outside: the process that was launched, and when its own command finished. */
export interface StartedCommand {
  /** Resolves when a foreground start command returns (`pg_ctl start -w`); daemons have none. */
  commandDone?: Promise<void>;
}

export interface StopTimings {
  /** Stop requested (SIGTERM, or pg_ctl stop) -> the postmaster process is gone. */
  postmasterGoneMs: number;
  /** Stop requested -> the daemon exited (or `pg_ctl stop` returned). */
  doneMs: number;
}

/** HTTP endpoints a daemon serves; the floor has none. */
export interface StatusEndpoints {
  /** 200 once PostgreSQL is usable: pgim `/readyz`, Patroni `/health`. */
  readiness: string;
  /** A JSON status document that queries PostgreSQL: pgim `/pg/status`, Patroni `/patroni`. */
  statusDocument: string;
  /** Prometheus metrics, scraped every 30 s during the idle footprint windows (B3): pgim :9187, Patroni `/metrics`. */
  metrics?: string;
}

/**
 * One PostgreSQL instance with its own data directory and ports, run by one system. Every method returns once its
 * action is issued or done; the benchmarks take the times around them.
 */
export interface DatabaseSystem {
  readonly kind: SystemKind;
  /** How results name it, e.g. `pgim` or `pgim (smartShutdownTimeout 0)`. */
  readonly label: string;
  readonly login: Login;
  readonly pgdata: string;
  readonly endpoints: StatusEndpoints | undefined;
  /** Bootstraps an empty data directory the way this system does it, and leaves PostgreSQL stopped. */
  initialise(): Promise<void>;
  /** Starts on the existing data directory (or, for the daemons, bootstraps an empty one first). */
  start(): Promise<StartedCommand>;
  /** A clean stop as an operator would ask for it: SIGTERM to the daemon, `pg_ctl stop -m fast` for the floor. */
  stop(): Promise<StopTimings>;
  /** After the harness kills the postmaster: the floor restarts it by hand (no supervisor); daemons do it alone. */
  recoverFromPostmasterKill(): Promise<void>;
  /**
   * Changes a reload-level parameter the way an operator of this system does: floor `ALTER SYSTEM` plus
   * `pg_reload_conf()`; pgim its cluster.yaml, rewritten atomically; Patroni `PATCH /config`. Resolves once the
   * change is handed over; the benchmark polls PostgreSQL for when it applies.
   */
  changeParameter(name: string, value: string): Promise<void>;
  /** The manager's own process (pgim's node, Patroni's python); undefined for the floor. */
  daemonPid(): number | undefined;
  /** Where this system's logs are, for error messages. */
  readonly logFile: string;
  /** Stops whatever still runs (no timing) and removes its folder. */
  destroy(): Promise<void>;
}
