import { join, resolve } from 'node:path';
import type { CnpgExpectations } from './cnpg-invocation.js';

export type OnPostgresExit = 'restart' | 'exit';

/** Kubernetes mode: the desired state comes from the API server instead of a config folder. */
export interface KubernetesOptions {
  /** A kubeconfig file; undefined means the in-cluster config (the pod's ServiceAccount token). */
  readonly kubeconfig: string | undefined;
  /** Undefined: the kubeconfig context's namespace, or the ServiceAccount's own. */
  readonly namespace: string | undefined;
  /** The Cluster this instance belongs to (CLUSTER_NAME). */
  readonly clusterName: string;
  /** Started through CloudNativePG's command line (`instance run|init|join|...`): its operator drives the cluster. */
  readonly operatorDriven?: boolean;
}

/** Everything about where and how this instance runs; resolved once from flags and environment. */
export interface InstanceOptions {
  /** Files mode's config folder; empty in Kubernetes mode. */
  readonly configDir: string;
  /** Set in Kubernetes mode (and only then). */
  readonly kubernetes?: KubernetesOptions | undefined;
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
  /** `--status-tls`: the status API over TLS 1.3 with the `<cluster>-server` certificate (CNPG's --status-port-tls). */
  readonly statusTls?: boolean;
  /** `--metrics-tls`: /metrics over TLS 1.3 (also on with spec.monitoring.tls.enabled). */
  readonly metricsTls?: boolean;
  /**
   * Where each tablespace's folder is (`<dir>/<name>/data`): `--tablespaces-dir`; by default CNPG's mount root
   * `/var/lib/postgresql/tablespaces` in Kubernetes mode, `<PGDATA>-tablespaces` beside PGDATA in files mode.
   */
  readonly tablespacesDir?: string | undefined;
  /** CNPG's `instance init --initdb-flags` (checked options only), appended to pgim's initdb command line. */
  readonly initdbFlags?: readonly string[];
  /** CNPG's `--post-init-*-sql-refs-folder`: where its Job mounted the post-init SQL Secrets and ConfigMaps. */
  readonly postInitRefsFolders?: PostInitRefsFolders;
  /** What a CNPG invocation said about the Cluster (`--cluster-name`, `--app-db-name`, ...): checked against it. */
  readonly cnpg?: CnpgExpectations;
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

/** Folders of post-init SQL files per database (CNPG's Job mounts; each file run in name order). */
export interface PostInitRefsFolders {
  readonly postgres?: string;
  readonly template?: string;
  readonly application?: string;
}

/** CNPG's tablespace mount root (pkg/specs PgTablespaceVolumePath). */
export const kubernetesTablespacesDir = '/var/lib/postgresql/tablespaces';

/** The tablespaces root of an instance: `--tablespaces-dir`, or the mode's default (see InstanceOptions). */
export function tablespacesRoot(options: Pick<InstanceOptions, 'tablespacesDir' | 'kubernetes' | 'pgdata'>): string {
  if (options.tablespacesDir !== undefined && options.tablespacesDir !== '') return resolve(options.tablespacesDir);
  return options.kubernetes === undefined ? `${resolve(options.pgdata)}-tablespaces` : kubernetesTablespacesDir;
}
