import { execFile } from 'node:child_process';
import { chmod, chown, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import type { TestApiServer } from '../../test-kit/k8s/apiserver.js';
import { createNamespace, createObject, mintToken, namespacedPath, patchCluster, patchClusterStatus, putSecret, type Json } from '../../test-kit/k8s/fixtures.js';
import { cnpgDataDir } from '../../test-kit/k8s/paths.js';
import { sandboxScript } from '../../test-kit/sandbox.js';
import { generateClusterCertificates } from '../../src/tls/generate.js';
import { pgBinDir, removeTempDir, serviceDirectory, serviceUser } from '../env.js';
import { clusterParameters, pollUntil, type Login } from '../pg.js';
import { livePostmasterPid, type TrackedProcess } from '../proc.js';
import { PodNetwork, type KubernetesPlane } from './cnpg-plane.js';
import { instanceName, type SystemContext } from './context.js';
import { stopDaemon } from './daemon.js';
import type { DatabaseSystem, StartedCommand, StatusEndpoints, StopTimings } from './types.js';

const execFileAsync = promisify(execFile);

/** The name the manager reaches the API server by (in the API server's certificate; in the instance's /etc/hosts). */
const apiServiceName = 'kubernetes.default.svc';

const clusterName = 'bench';
const podName = `${clusterName}-1`;
const appPassword = 'cnpg-bench-app-pw';
/** CNPG reads the major version from the image tag; the binaries are this machine's PostgreSQL 15 all the same. */
const imageName = 'ghcr.io/cloudnative-pg/postgresql:15';
/** CNPG's fixed ports (PostgreSQL's is fixed in the configuration it renders): in the instance's own network namespace. */
const postgresPort = 5432;
const statusPort = 8000;
const metricsPort = 9187;

/** The host's folders the instance sees (its "image"): this machine's PostgreSQL and libraries. */
const imageDirs = ['usr', 'bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32', 'etc', 'opt', 'proc', 'sys', 'dev'];

/** What bench/cnpg-cluster-prep prints: CNPG's own code run on the Cluster (see its main.go). */
interface PreparedCluster {
  cluster: Json & { spec: Json; status?: Json };
  role: Json & { metadata: Json };
  initCommand: string[];
  runCommand: string[];
  env: { name: string; value?: string }[];
}

async function prepare(binary: string, cluster: Json): Promise<PreparedCluster> {
  const child = execFileAsync(binary, [], { maxBuffer: 16 * 2 ** 20 });
  child.child.stdin?.end(JSON.stringify(cluster));
  const { stdout } = await child;
  return JSON.parse(stdout) as PreparedCluster;
}

export interface CnpgSettings {
  /** PostgreSQL parameters a benchmark adds (B16: log_statement); CNPG refuses the ones it fixes. */
  parameters?: Readonly<Record<string, string>>;
}

/**
 * CloudNativePG v1.30.0's own instance manager, the peer a pgim user would otherwise run: `manager instance init`,
 * then `manager instance run`, as the initdb Job and the Pod's postgres container run them, against the session's
 * test kube-apiserver, with no operator and no kubelet. What the operator would have done is done once here: CNPG's
 * defaults applied to the Cluster (its webhook), the instance's ServiceAccount, Role (CNPG's) and RoleBinding, the
 * app Secret, the three TLS Secrets named in `status.certificates`, the default monitoring ConfigMap, and
 * `status.targetPrimary`, `status.image` and `status.pgDataImageInfo`. Each command runs as the postgres user in
 * a private mount namespace where `/controller`, `/var/lib/postgresql/data` and the ServiceAccount folder are this
 * instance's own folders (the paths are fixed in CNPG's code), and in its own network namespace (a pod's): its ports
 * are fixed (PostgreSQL 5432, status 8000, metrics 9187, and :8010 on localhost) and would otherwise collide with any
 * other PostgreSQL or CNPG instance on the machine.
 */
export class CnpgSystem implements DatabaseSystem {
  readonly kind = 'cnpg';
  readonly label = 'cnpg';
  readonly pgdata: string;
  readonly logFile: string;
  readonly endpoints: StatusEndpoints;
  readonly metricsUrl: string;
  private readonly dir: string;
  private daemon: TrackedProcess | undefined;

  private constructor(
    private readonly context: SystemContext,
    private readonly plane: KubernetesPlane,
    private readonly api: TestApiServer,
    readonly namespace: string,
    private readonly prepared: PreparedCluster,
    private readonly network: PodNetwork,
    dir: string,
  ) {
    this.dir = dir;
    // Where the manager's /var/lib/postgresql/data/pgdata shows from the host: /proc/PID/cwd of its PostgreSQL
    // processes reads <root>/var/lib/postgresql/data/pgdata (the mount point under the tmpfs root), so the volume
    // lives at that very path on the host and the harness's cwd checks (postmaster.pid, backends) match.
    this.pgdata = join(dir, 'root', 'var', 'lib', 'postgresql', 'data', 'pgdata');
    this.logFile = join(dir, 'cnpg.log');
    const base = `http://${network.podIp}:${statusPort}`;
    this.metricsUrl = `http://${network.podIp}:${metricsPort}/metrics`;
    this.endpoints = { readiness: `${base}/readyz`, statusDocument: `${base}/pg/status`, metrics: this.metricsUrl };
    context.processes.trackDataDirectory(this.pgdata);
  }

  static async create(context: SystemContext, settings: CnpgSettings = {}): Promise<CnpgSystem> {
    const plane = context.kubernetes;
    if (plane === undefined) throw new Error('cnpg: no Kubernetes plane in this session');
    const api = await plane.api();
    const namespace = await createNamespace(api, 'bench-cnpg');
    const defaultQueries = parseYaml(await readFile(join(cnpgDataDir, 'default-monitoring.yaml'), 'utf8')) as { data: { queries: string } };
    // The input a user would apply. The operator's defaulting adds the default monitoring ConfigMap only when the
    // operator is configured with one (its Helm chart and manifests are): named here as the defaulting would.
    const input: Json = {
      apiVersion: 'postgresql.cnpg.io/v1',
      kind: 'Cluster',
      metadata: { name: clusterName, namespace },
      spec: {
        instances: 1,
        imageName,
        storage: { size: '1Gi' },
        // As the other systems run (bench/README.md): smart shutdown first for 5 s, as pgim's benchmark settings.
        smartShutdownTimeout: 5,
        stopDelay: 30,
        postgresql: { parameters: { ...clusterParameters, ...settings.parameters } },
        monitoring: { customQueriesConfigMap: [{ name: 'cnpg-default-monitoring', key: 'queries' }] },
      },
    };
    const prepared = await prepare(plane.cnpgTools.clusterPrep, input);
    const dir = await serviceDirectory(join(context.workDir, instanceName('cnpg')), 0o755);
    const network = await PodNetwork.create(api.port);
    const system = new CnpgSystem(context, plane, api, namespace, prepared, network, dir);
    try {
      await system.createObjects(defaultQueries.data.queries);
      await system.prepareFolders();
    } catch (err) {
      await system.destroy();
      throw err;
    }
    return system;
  }

  /** What the operator creates for the Cluster's first instance. */
  private async createObjects(defaultQueries: string): Promise<void> {
    const { api, namespace } = this;
    const post = async (path: string, body: Json, what: string): Promise<void> => {
      await createObject(api, path, body, what);
    };
    await post(namespacedPath(namespace, 'serviceaccounts'), { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: clusterName } }, 'ServiceAccount');
    await post(namespacedPath(namespace, 'roles', undefined, 'rbac.authorization.k8s.io/v1'), { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', ...this.prepared.role }, 'Role');
    await post(
      namespacedPath(namespace, 'rolebindings', undefined, 'rbac.authorization.k8s.io/v1'),
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: clusterName },
        subjects: [{ kind: 'ServiceAccount', name: clusterName, namespace }],
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: clusterName },
      },
      'RoleBinding',
    );
    await post(namespacedPath(namespace, 'configmaps'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cnpg-default-monitoring' }, data: { queries: defaultQueries } }, 'ConfigMap');
    await putSecret(api, namespace, `${clusterName}-app`, { username: 'app', password: appPassword }, 'kubernetes.io/basic-auth');
    // The operator's CA, server and replication certificates (made here by the code behind `pgim certs`).
    const certDir = join(this.dir, 'certs');
    await generateClusterCertificates({ cluster: clusterName, instances: 1, hosts: [this.network.podIp], outDir: certDir });
    const read = async (secret: string, keys: string[]): Promise<Record<string, string>> =>
      Object.fromEntries(await Promise.all(keys.map(async (key) => [key, await readFile(join(certDir, secret, key), 'utf8')] as const)));
    await putSecret(api, namespace, `${clusterName}-ca`, await read(`${clusterName}-ca`, ['ca.crt', 'ca.key']), 'Opaque');
    await putSecret(api, namespace, `${clusterName}-server`, await read(`${clusterName}-server`, ['tls.crt', 'tls.key']), 'kubernetes.io/tls');
    await putSecret(api, namespace, `${clusterName}-replication`, await read(`${clusterName}-replication`, ['tls.crt', 'tls.key']), 'kubernetes.io/tls');
    // The status is the operator's: written below through the status subresource.
    await post(namespacedPath(namespace, 'clusters', undefined, 'postgresql.cnpg.io/v1'), { ...this.prepared.cluster, status: undefined }, 'Cluster');
    // The primary Lease: the operator creates it empty; the instance manager may only get and update it.
    await post(namespacedPath(namespace, 'leases', undefined, 'coordination.k8s.io/v1'), { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: clusterName } }, 'Lease');
    await this.patchStatus({
      instances: 1,
      latestGeneratedNode: 1,
      targetPrimary: podName,
      image: imageName,
      pgDataImageInfo: { image: imageName, majorVersion: 15 },
      certificates: {
        serverCASecret: `${clusterName}-ca`,
        clientCASecret: `${clusterName}-ca`,
        serverTLSSecret: `${clusterName}-server`,
        replicationTLSSecret: `${clusterName}-replication`,
        serverAltDNSNames: [],
      },
    });
  }

  /** /controller, the PGDATA volume and the ServiceAccount folder: the instance's own, the postgres user's. */
  private async prepareFolders(): Promise<void> {
    for (const sub of ['controller', 'controller/run', 'controller/log', 'controller/certificates', 'controller/tmp', 'root/var/lib/postgresql/data', 'volume']) {
      await serviceDirectory(join(this.dir, sub), 0o700);
    }
    // The harness (pg_controldata as postgres) reaches the volume from the host through these.
    for (const sub of ['root', 'root/var', 'root/var/lib', 'root/var/lib/postgresql']) await chmod(join(this.dir, sub), 0o755);
    await chmod(join(this.dir, 'controller'), 0o755);
    // The API server's certificate names kubernetes.default.svc: reached through the relay on the host's side.
    await writeFile(join(this.dir, 'hosts'), `127.0.0.1\tlocalhost\n::1\tlocalhost\n${this.network.podIp}\t${podName}\n${this.network.hostIp}\t${apiServiceName}\n`);
    await this.writeServiceAccount();
  }

  /** The projected ServiceAccount volume: a TokenRequest token, the API server's CA and the namespace. */
  private async writeServiceAccount(): Promise<void> {
    const sa = await serviceDirectory(join(this.dir, 'serviceaccount'), 0o755);
    const token = await mintToken(this.api, this.namespace, clusterName, 24 * 3600);
    const user = serviceUser();
    for (const [name, text] of [['token', token], ['ca.crt', this.api.caPem], ['namespace', this.namespace]] as const) {
      await writeFile(join(sa, name), text, { mode: 0o600 });
      if (user !== undefined) await chown(join(sa, name), user.uid, user.gid);
    }
  }

  get login(): Login {
    return { host: this.network.podIp, port: postgresPort, user: 'app', password: appPassword, database: 'app' };
  }

  /** The prepared command (`/controller/manager instance init|run ...`) in the instance's mount namespace. */
  private async spawn(name: string, argv: readonly string[]): Promise<TrackedProcess> {
    const user = serviceUser();
    if (user === undefined) throw new Error('cnpg needs root (mount namespace, postgres user)');
    const env: Record<string, string> = {
      ...Object.fromEntries(this.prepared.env.map((e) => [e.name, e.value ?? ''])),
      KUBERNETES_SERVICE_HOST: apiServiceName,
      KUBERNETES_SERVICE_PORT: String(this.api.port),
      PATH: `${pgBinDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: '/var/lib/postgresql',
      LC_ALL: 'C.UTF-8',
    };
    const script = sandboxScript({
      rootDir: join(this.dir, 'root'),
      hostDirs: imageDirs,
      hostTrees: [],
      mounts: [
        { hostPath: join(this.dir, 'controller'), containerPath: '/controller', readOnly: false },
        { hostPath: this.plane.cnpgTools.manager, containerPath: '/controller/manager', readOnly: true },
        { hostPath: join(this.dir, 'volume'), containerPath: '/var/lib/postgresql/data', readOnly: false },
        { hostPath: join(this.dir, 'serviceaccount'), containerPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true },
      ],
      hostsFile: join(this.dir, 'hosts'),
      uid: user.uid,
      gid: user.gid,
      argv,
      env,
      logPath: this.logFile,
    });
    // Before the tmpfs root hides it: the data volume (see `pgdata`) bound to `volume`, which the mount list uses.
    const volume = `mount --bind '${join(this.dir, 'root', 'var', 'lib', 'postgresql', 'data')}' '${join(this.dir, 'volume')}'`;
    const scriptPath = join(this.dir, `${name}.sh`);
    await writeFile(scriptPath, script.replace(/^set -eu\n/, `set -eu\n${volume}\n`), { mode: 0o700 });
    // nsenter execs unshare, which execs sh, which execs chroot, which execs the manager: the tracked PID is the manager's.
    return this.context.processes.spawn(`cnpg ${name}`, 'nsenter', [`--net=${this.network.path}`, 'unshare', '-m', '--propagation', 'private', '/bin/sh', scriptPath], { logFile: this.logFile, env });
  }

  async initialise(): Promise<void> {
    const init = await this.spawn('init', this.prepared.initCommand);
    const exit = await init.waitExit(300_000);
    if (exit === undefined) {
      await init.terminate(5_000);
      throw new Error(`cnpg instance init did not finish within 300 s; see ${this.logFile}`);
    }
    if (exit.code !== 0) throw new Error(`cnpg instance init failed (${exit.signal ?? `exit code ${String(exit.code)}`}); see ${this.logFile}`);
  }

  async start(): Promise<StartedCommand> {
    if (this.daemon?.running === true) throw new Error('cnpg is already running');
    this.daemon = await this.spawn('run', this.prepared.runCommand);
    return {};
  }

  stop(): Promise<StopTimings> {
    return stopDaemon(this.daemon, this.pgdata, this.label, this.logFile);
  }

  /**
   * CNPG's manager does not restart a crashed postmaster in its container: it exits, and the kubelet restarts the
   * container (at once the first time; CrashLoopBackOff after that). The harness does what the kubelet does: waits
   * for the manager to exit, then starts `instance run` again. Resolves with the time the manager exited.
   */
  async recoverFromPostmasterKill(): Promise<void> {
    const daemon = this.daemon;
    if (daemon === undefined) throw new Error('cnpg was not started');
    const exit = await daemon.waitExit(60_000);
    if (exit === undefined) throw new Error(`cnpg's manager still runs 60 s after its postmaster was killed; see ${this.logFile}`);
    this.managerExitedAt = performance.now();
    await this.start();
  }

  /** When the manager exited after the last postmaster kill (performance.now()), for B6's extra row. */
  managerExitedAt: number | undefined;

  /** `kubectl patch cluster --type merge` of one parameter: the instance manager reconciles it (no operator needed). */
  async changeParameter(name: string, value: string): Promise<void> {
    await patchCluster(this.api, this.namespace, clusterName, { spec: { postgresql: { parameters: { [name]: value } } } });
  }

  /**
   * What CNPG's operator does when a Secret of the Cluster changes: records its new resourceVersion in
   * `status.secretsResourceVersion`, which is what makes the instance manager reconcile (it watches the Cluster).
   * The harness does it at once; the operator would after its own watch fires.
   */
  private async recordSecretVersion(field: string, version: string): Promise<void> {
    await this.patchStatus({ secretsResourceVersion: { [field]: version } });
  }

  /** The operator's writes to the Cluster's status subresource. */
  private async patchStatus(status: Json): Promise<void> {
    await patchClusterStatus(this.api, this.namespace, clusterName, status);
  }

  /** A new password in the app Secret (`kubectl apply` of the Secret), and the operator's part (see above). */
  async rotateAppPassword(password: string): Promise<void> {
    const version = await putSecret(this.api, this.namespace, `${clusterName}-app`, { username: 'app', password }, 'kubernetes.io/basic-auth');
    await this.recordSecretVersion('applicationSecretVersion', version);
  }

  /** A new server certificate and key in the `bench-server` Secret, as cert-manager or the operator renews it. */
  async replaceServerCertificate(pair: { cert: string; key: string }): Promise<void> {
    const version = await putSecret(this.api, this.namespace, `${clusterName}-server`, { 'tls.crt': pair.cert, 'tls.key': pair.key }, 'kubernetes.io/tls');
    await this.recordSecretVersion('serverSecretVersion', version);
  }

  /** Before the first start: another CA and server certificate in the `bench-ca` and `bench-server` Secrets. */
  async installCertificates(caCert: string, caKey: string, pair: { cert: string; key: string }): Promise<void> {
    await putSecret(this.api, this.namespace, `${clusterName}-ca`, { 'ca.crt': caCert, 'ca.key': caKey }, 'Opaque');
    await this.replaceServerCertificate(pair);
  }

  daemonPid(): number | undefined {
    return this.daemon?.running === true ? this.daemon.pid : undefined;
  }

  /** Until the postmaster of this instance runs (or `timeoutMs` passes). */
  async waitPostmaster(timeoutMs: number): Promise<number> {
    let pid: number | undefined;
    await pollUntil('cnpg postmaster', async () => (pid = await livePostmasterPid(this.pgdata)) !== undefined, timeoutMs);
    return pid ?? -1;
  }

  async destroy(): Promise<void> {
    await this.daemon?.terminate(30_000);
    await this.api.request(`/api/v1/namespaces/${this.namespace}`, { method: 'DELETE' }).catch(() => undefined);
    await this.network.destroy();
    await removeTempDir(this.dir);
  }
}
