import { join, resolve } from 'node:path';

export type OnPostgresExit = 'restart' | 'exit';

/** Everything about where and how this instance runs; resolved once from flags and environment. */
export interface InstanceOptions {
  readonly configDir: string;
  readonly pgdata: string;
  /** Undefined until the Cluster is read: the default is `<cluster>-1`. */
  readonly podName: string | undefined;
  readonly runtimeDir: string;
  readonly pgPort: number;
  readonly statusPort: number;
  readonly metricsPort: number;
  /** Address(es) PostgreSQL listens on; the status and metrics servers bind the same single address, or all. */
  readonly listenAddress: string;
  /** The OS user postgres runs as when pgim starts as root. */
  readonly user: string;
  readonly onPostgresExit: OnPostgresExit;
  readonly pgBinDir: string;
}

/** Folders under the runtime dir, as in CNPG's `/controller`. */
export interface RuntimeLayout {
  readonly root: string;
  /** unix_socket_directories */
  readonly socketDir: string;
  readonly logDir: string;
  readonly certificatesDir: string;
  readonly tmpDir: string;
  /** libpq passfile for the roles pgim can authenticate as (PGPASSFILE). */
  readonly pgpassFile: string;
}

export function runtimeLayout(runtimeDir: string): RuntimeLayout {
  const root = resolve(runtimeDir);
  return {
    root,
    socketDir: join(root, 'run'),
    logDir: join(root, 'log'),
    certificatesDir: join(root, 'certificates'),
    tmpDir: join(root, 'tmp'),
    pgpassFile: join(root, 'pgpass'),
  };
}

export function podNameFor(options: Pick<InstanceOptions, 'podName'>, clusterName: string): string {
  return options.podName ?? `${clusterName}-1`;
}
