import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestClusterOptions } from '../config.js';
import { freePort, handToPostgres, makeTempDir, removeTempDir } from '../env.js';
import { killPostmaster, PgimProcess, type PgimPaths, type PgimPorts } from '../pgim.js';
import type { TestApiServer } from './apiserver.js';
import { applyInstanceIdentity, clusterObject, createCluster, createNamespace, mintToken, putSecret, type Json } from './fixtures.js';

export interface InstanceSetup {
  readonly namespacePrefix: string;
  readonly clusterName: string;
  readonly cluster?: TestClusterOptions;
  readonly appPassword: string;
  readonly superuserPassword?: string;
  /** Cuts the shipped Role down (or up) before it is created. */
  readonly editRole?: (role: Json) => void;
  /** Skip creating the Cluster object (a test that wants pgim to wait for it). */
  readonly withoutCluster?: boolean;
  /** Join this existing namespace (a second Cluster beside another one) instead of creating one. */
  readonly namespace?: string;
  /** An existing folder for PGDATA, the runtime dir and the credentials (the bench's own), instead of a new temp dir. */
  readonly baseDir?: string;
}

export type Connection =
  /** `--kubeconfig` with the ServiceAccount's token inline (or a token file pgim re-reads), optionally via a relay port. */
  | { readonly kind: 'kubeconfig'; readonly serverPort?: number; readonly tokenFile?: boolean }
  /** The in-cluster code path: KUBERNETES_SERVICE_HOST/PORT and a ServiceAccount folder (token, ca.crt, namespace). */
  | { readonly kind: 'in-cluster' };

/**
 * One pgim instance against the test API server: a fresh namespace, the shipped ServiceAccount/Role/RoleBinding for
 * the Cluster, its Secrets and the Cluster object, a TokenRequest token, and a kubeconfig (or ServiceAccount folder)
 * the postgres OS user can read, since pgim drops to it when the tests run as root.
 */
export class K8sInstance {
  /** Instances not yet disposed: a failed test prints their recent log lines. */
  static readonly live = new Set<K8sInstance>();
  pgim: PgimProcess | undefined;
  token = '';

  private constructor(
    readonly server: TestApiServer,
    readonly namespace: string,
    readonly clusterName: string,
    readonly base: string,
    readonly paths: PgimPaths,
    readonly ports: PgimPorts,
  ) {}

  static async create(server: TestApiServer, setup: InstanceSetup): Promise<K8sInstance> {
    const namespace = setup.namespace ?? (await createNamespace(server, setup.namespacePrefix));
    const base = setup.baseDir ?? (await makeTempDir(`k8s-${setup.namespacePrefix}`));
    const paths = { configDir: '', pgdata: join(base, 'pgdata'), runtimeDir: join(base, 'runtime') };
    const ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
    const instance = new K8sInstance(server, namespace, setup.clusterName, base, paths, ports);
    K8sInstance.live.add(instance);
    await applyInstanceIdentity(server, namespace, setup.clusterName, setup.editRole);
    await putSecret(server, namespace, `${setup.clusterName}-app`, { username: 'app', password: setup.appPassword });
    await putSecret(server, namespace, `${setup.clusterName}-superuser`, { username: 'postgres', password: setup.superuserPassword ?? 'unused-superuser-pw' });
    if (setup.withoutCluster !== true) await createCluster(server, namespace, clusterObject(setup.clusterName, setup.cluster));
    instance.token = await mintToken(server, namespace, setup.clusterName);
    return instance;
  }

  get podName(): string {
    return `${this.clusterName}-1`;
  }

  get kubeconfigPath(): string {
    return join(this.base, 'kube', 'kubeconfig');
  }

  get tokenPath(): string {
    return join(this.base, 'kube', 'token');
  }

  /** Writes what pgim authenticates with, readable by the postgres OS user. */
  async writeCredentials(connection: Connection, token = this.token): Promise<void> {
    const dir = join(this.base, 'kube');
    await mkdir(dir, { recursive: true });
    await writeFile(this.tokenPath, token, { mode: 0o600 });
    if (connection.kind === 'kubeconfig') {
      const yaml = this.server.kubeconfigYaml(connection.tokenFile === true ? { tokenFile: this.tokenPath } : { token }, this.namespace);
      const port = connection.serverPort;
      await writeFile(this.kubeconfigPath, port === undefined ? yaml : yaml.replace(`https://127.0.0.1:${this.server.port}`, `https://127.0.0.1:${port}`), { mode: 0o600 });
    } else {
      await writeFile(join(dir, 'ca.crt'), this.server.caPem);
      await writeFile(join(dir, 'namespace'), this.namespace);
    }
    await handToPostgres(dir);
  }

  /**
   * What `pgim run|init` takes after the paths and ports to be this instance, and its environment
   * (`--config-dir ''`: the empty value counts as unset, as in the pod template). In-cluster, as in a pod:
   * KUBERNETES_SERVICE_HOST/PORT and the ServiceAccount folder. `clusterName` overrides the Cluster pgim is told to
   * run (a test that wants the Role to refuse it).
   */
  launch(connection: Connection, options: { env?: NodeJS.ProcessEnv; clusterName?: string } = {}): { args: string[]; env: NodeJS.ProcessEnv } {
    const identity = ['--cluster-name', options.clusterName ?? this.clusterName, '--pod-name', this.podName];
    const extraEnv = options.env ?? {};
    return connection.kind === 'kubeconfig'
      ? { args: ['--kubeconfig', this.kubeconfigPath, '--namespace', this.namespace, ...identity], env: { KUBECONFIG: '', ...extraEnv } }
      : {
          args: identity,
          env: {
            KUBECONFIG: '',
            KUBERNETES_SERVICE_HOST: '127.0.0.1',
            KUBERNETES_SERVICE_PORT: String(this.server.port),
            PGIM_SERVICE_ACCOUNT_DIR: join(this.base, 'kube'),
            ...extraEnv,
          },
        };
  }

  /** Spawns pgim in Kubernetes mode (see `launch`). */
  async start(connection: Connection = { kind: 'kubeconfig' }, options: { env?: NodeJS.ProcessEnv; clusterName?: string } = {}): Promise<PgimProcess> {
    await this.writeCredentials(connection);
    const { args, env } = this.launch(connection, options);
    const pgim = new PgimProcess('run', this.paths, this.ports, args, env);
    this.pgim = pgim;
    return pgim;
  }

  /** pgim's last log lines, without PostgreSQL's own records (for a failed test's report). */
  recentLog(count = 40): string {
    const lines = this.pgim?.lines.filter((line) => !line.includes('"logger":"postgres"') && !line.includes('"logger":"initdb"')) ?? [];
    return lines.slice(-count).join('\n');
  }

  /** Stops pgim (SIGKILL and the postmaster too if it hangs) and removes the temp folders. */
  async dispose(): Promise<void> {
    K8sInstance.live.delete(this);
    if (this.pgim) {
      const exit = await this.pgim.stop().catch(() => undefined);
      if (!exit) await killPostmaster(this.paths.pgdata);
    }
    await removeTempDir(this.base);
  }
}
