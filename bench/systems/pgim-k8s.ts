import { join } from 'node:path';
import type { TestApiServer } from '../../test-kit/k8s/apiserver.js';
import { createShippedLease, mintToken, patchCluster, putSecret } from '../../test-kit/k8s/fixtures.js';
import { K8sInstance } from '../../test-kit/k8s/instance.js';
import { postgresUser } from '../../test-kit/env.js';
import { pgimArgs, pgimLaunch, pgimNodeArgs } from '../../test-kit/pgim.js';
import { isRoot, serviceDirectory } from '../env.js';
import { clusterParameters, type Login } from '../pg.js';
import type { TrackedProcess } from '../proc.js';
import { instanceName, type SystemContext } from './context.js';
import { expectStillRunning, stopDaemon } from './daemon.js';
import type { DatabaseSystem, StartedCommand, StatusEndpoints, StopTimings } from './types.js';

const clusterName = 'bench';
const appPassword = 'pgim-k8s-bench-app-pw';
/** The projected token a pod gets lives an hour and is refreshed by the kubelet; one benchmark session may take longer. */
const tokenSeconds = 24 * 3600;

export interface PgimK8sSettings {
  /** PostgreSQL parameters a benchmark adds to the Cluster's (B16: log_statement). */
  parameters?: Readonly<Record<string, string>>;
}

/**
 * pgim in Kubernetes mode, as a pod runs it, against the same kube-apiserver as `cnpg` (the like-for-like comparison
 * of issue 25): the Cluster (the same manifest as files-mode pgim's cluster.yaml), its app and superuser Secrets and
 * the primary Lease in a namespace of its own, the shipped ServiceAccount, Role and RoleBinding (deploy/kubernetes:
 * least privilege, named objects only), and the in-cluster connection pgim reads in a pod (KUBERNETES_SERVICE_HOST/PORT
 * and a ServiceAccount folder with a TokenRequest token, the API server's CA and the namespace). pgim reads and
 * watches its Cluster and Secrets, holds and renews the Lease, and patches the Cluster's status. Started as root it
 * drops to postgres itself, like files-mode pgim; its ports are its own, so it needs no network namespace.
 * Changes go through the API server, as the operator or a user would make them (`kubectl patch`, a Secret update).
 */
export class PgimK8sSystem implements DatabaseSystem {
  readonly kind = 'pgim-k8s';
  readonly label = 'pgim-k8s';
  readonly pgdata: string;
  readonly logFile: string;
  readonly endpoints: StatusEndpoints;
  private daemon: TrackedProcess | undefined;

  private constructor(
    private readonly context: SystemContext,
    private readonly api: TestApiServer,
    private readonly instance: K8sInstance,
  ) {
    this.pgdata = instance.paths.pgdata;
    this.logFile = join(instance.base, 'pgim.log');
    const status = `http://127.0.0.1:${instance.ports.statusPort}`;
    this.endpoints = { readiness: `${status}/readyz`, statusDocument: `${status}/pg/status`, metrics: `http://127.0.0.1:${instance.ports.metricsPort}/metrics` };
    context.processes.trackDataDirectory(this.pgdata);
  }

  static async create(context: SystemContext, settings: PgimK8sSettings = {}): Promise<PgimK8sSystem> {
    const plane = context.kubernetes;
    if (plane === undefined) throw new Error('pgim-k8s: no Kubernetes plane in this session');
    const api = await plane.api();
    const baseDir = await serviceDirectory(join(context.workDir, instanceName('pgim-k8s')), 0o755);
    const instance = await K8sInstance.create(api, {
      namespacePrefix: 'bench-pgim',
      clusterName,
      appPassword,
      baseDir,
      // As files-mode pgim's cluster.yaml (bench/systems/pgim.ts).
      cluster: { smartShutdownTimeout: 5, stopDelay: 30, parameters: { ...clusterParameters, ...settings.parameters } },
    });
    const system = new PgimK8sSystem(context, api, instance);
    try {
      await createShippedLease(api, instance.namespace, clusterName);
      await instance.writeCredentials({ kind: 'in-cluster' }, await mintToken(api, instance.namespace, clusterName, tokenSeconds));
    } catch (err) {
      await system.destroy();
      throw err;
    }
    return system;
  }

  get login(): Login {
    return { port: this.instance.ports.pgPort, user: 'app', password: appPassword, database: 'app' };
  }

  private command(command: 'run' | 'init'): { args: string[]; env: NodeJS.ProcessEnv } {
    const { args, env } = this.instance.launch({ kind: 'in-cluster' }, { env: { ...pgimLaunch.env, PGIM_LOG_LEVEL: 'info' } });
    return { args: pgimNodeArgs([command, ...pgimArgs(this.instance.paths, this.instance.ports), ...args, ...(isRoot ? ['--user', postgresUser] : [])]), env };
  }

  /** `pgim init` in Kubernetes mode: the bootstrap from the Cluster and its Secrets in the API server. */
  async initialise(): Promise<void> {
    const { args, env } = this.command('init');
    await this.context.processes.mustRun('pgim-k8s init', process.execPath, args, { logFile: this.logFile, env });
  }

  start(): Promise<StartedCommand> {
    if (this.daemon?.running === true) throw new Error(`${this.label} is already running`);
    const { args, env } = this.command('run');
    this.daemon = this.context.processes.spawn('pgim-k8s', process.execPath, args, { logFile: this.logFile, env });
    return Promise.resolve({});
  }

  stop(): Promise<StopTimings> {
    return stopDaemon(this.daemon, this.pgdata, this.label, this.logFile);
  }

  /** pgim restarts the postmaster itself: nothing to do. */
  recoverFromPostmasterKill(): Promise<void> {
    return expectStillRunning(this.daemon, this.label, this.logFile);
  }

  /** `kubectl patch cluster --type merge` of one parameter; pgim watches its Cluster. */
  async changeParameter(name: string, value: string): Promise<void> {
    await patchCluster(this.api, this.instance.namespace, clusterName, { spec: { postgresql: { parameters: { [name]: value } } } });
  }

  /** A new password in the `bench-app` Secret (`kubectl apply` of the Secret); pgim watches it and ALTERs the role. */
  async rotateAppPassword(password: string): Promise<void> {
    await putSecret(this.api, this.instance.namespace, `${clusterName}-app`, { username: 'app', password });
  }

  /** Before the first start: CNPG's three TLS Secrets, by their default names (the shipped Role names them). */
  async installCertificates(caCert: string, replication: { cert: string; key: string }, server: { cert: string; key: string }): Promise<void> {
    await putSecret(this.api, this.instance.namespace, `${clusterName}-ca`, { 'ca.crt': caCert }, 'Opaque');
    await putSecret(this.api, this.instance.namespace, `${clusterName}-replication`, { 'tls.crt': replication.cert, 'tls.key': replication.key }, 'kubernetes.io/tls');
    await this.replaceServerCertificate(server);
  }

  /** A new server certificate and key in the `bench-server` Secret, as cert-manager or the operator renews it. */
  async replaceServerCertificate(pair: { cert: string; key: string }): Promise<void> {
    await putSecret(this.api, this.instance.namespace, `${clusterName}-server`, { 'tls.crt': pair.cert, 'tls.key': pair.key }, 'kubernetes.io/tls');
  }

  daemonPid(): number | undefined {
    return this.daemon?.running === true ? this.daemon.pid : undefined;
  }

  async destroy(): Promise<void> {
    await this.daemon?.terminate(30_000);
    await this.api.request(`/api/v1/namespaces/${this.instance.namespace}`, { method: 'DELETE' }).catch(() => undefined);
    await this.instance.dispose();
  }
}
