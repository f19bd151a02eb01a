import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestClusterOptions } from '../../test-kit/config.js';
import { freePort, handToPostgres, makeTempDir, removeTempDir } from '../../test-kit/env.js';
import { killPostmaster, PgimProcess, pgimEntry, postmasterPid, type PgimPaths, type PgimPorts } from '../../test-kit/pgim.js';
import type { TestApiServer } from './apiserver.js';
import { applyInstanceIdentity, clusterObject, createCluster, createNamespace, createShippedLease, leasesGroup, mintToken, namespacedPath, putSecret } from './fixtures.js';

export { leasesGroup };

/** One instance of a ReplicatedK8sCluster: its pgim (replaced on a restart), ports and folders. */
export interface K8sNode {
  readonly name: string;
  readonly paths: PgimPaths;
  readonly ports: PgimPorts;
  pgim: PgimProcess;
}

/**
 * N pgim instances of one Cluster in Kubernetes mode on one machine: the shipped ServiceAccount, Role (which also
 * names the `<cluster>-hosts` ConfigMap telling each instance where the others listen), RoleBinding and Lease, the
 * app/superuser Secrets, the TLS Secrets `pgim certs` makes (uploaded as the operator would create them), and the
 * Cluster object. `start()` launches the instances in order, each ready before the next (the first bootstraps, the
 * others clone it).
 */
export class ReplicatedK8sCluster {
  readonly nodes = new Map<string, K8sNode>();

  private constructor(
    readonly server: TestApiServer,
    readonly namespace: string,
    readonly clusterName: string,
    private readonly base: string,
  ) {}

  static async create(
    server: TestApiServer,
    setup: {
      namespacePrefix: string;
      clusterName: string;
      instances: number;
      appPassword: string;
      superuserPassword: string;
      cluster: TestClusterOptions;
      /** The instances reach the API server on this port of 127.0.0.1 (a TcpProxy the test can close) instead of its own. */
      apiServerPort?: number;
    },
  ): Promise<ReplicatedK8sCluster> {
    const { clusterName } = setup;
    const namespace = await createNamespace(server, setup.namespacePrefix);
    const cluster = new ReplicatedK8sCluster(server, namespace, clusterName, await makeTempDir(`k8s-${setup.namespacePrefix}`));
    for (let n = 1; n <= setup.instances; n++) {
      const name = `${clusterName}-${n}`;
      const paths = { configDir: '', pgdata: join(cluster.base, `pgdata-${name}`), runtimeDir: join(cluster.base, `runtime-${name}`) };
      const ports = { pgPort: await freePort(), statusPort: await freePort(), metricsPort: await freePort() };
      cluster.nodes.set(name, { name, paths, ports, pgim: undefined as unknown as PgimProcess });
    }
    await applyInstanceIdentity(server, namespace, clusterName, (role) => {
      const rules = role.rules as { resources: string[]; resourceNames?: string[] }[];
      rules.find((rule) => rule.resources.includes('configmaps'))?.resourceNames?.push(`${clusterName}-hosts`);
    });
    await putSecret(server, namespace, `${clusterName}-app`, { username: 'app', password: setup.appPassword });
    await putSecret(server, namespace, `${clusterName}-superuser`, { username: 'postgres', password: setup.superuserPassword });
    const certs = join(cluster.base, 'certs');
    execFileSync(process.execPath, [pgimEntry, 'certs', '--cluster', clusterName, '--instances', String(setup.instances), '--out', certs], { encoding: 'utf8' });
    for (const secret of await readdir(certs)) {
      const data: Record<string, string> = {};
      for (const key of await readdir(join(certs, secret))) data[key] = (await readFile(join(certs, secret, key))).toString('base64');
      const res = await server.request(namespacedPath(namespace, 'secrets'), { method: 'POST', body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: secret }, type: 'Opaque', data } });
      assert.equal(res.status, 201, res.text);
    }
    // Each instance's PostgreSQL, and its status server (`<instance>.status`, which a primary's isolation check pings).
    const hosts = Object.fromEntries(
      [...cluster.nodes.values()].flatMap((node) => [
        [node.name, `127.0.0.1:${node.ports.pgPort}`],
        [`${node.name}.status`, `127.0.0.1:${node.ports.statusPort}`],
      ]),
    );
    const configMap = await server.request(namespacedPath(namespace, 'configmaps'), {
      method: 'POST',
      body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${clusterName}-hosts` }, data: hosts },
    });
    assert.equal(configMap.status, 201, configMap.text);
    await createCluster(server, namespace, clusterObject(clusterName, setup.cluster));
    await createShippedLease(server, namespace, clusterName);
    const kube = join(cluster.base, 'kube');
    await mkdir(kube, { recursive: true });
    const kubeconfig = server.kubeconfigYaml({ token: await mintToken(server, namespace, clusterName) }, namespace);
    const viaPort = setup.apiServerPort === undefined ? kubeconfig : kubeconfig.replace(`server: ${server.url}`, `server: https://127.0.0.1:${setup.apiServerPort}`);
    await writeFile(join(kube, 'kubeconfig'), viaPort, { mode: 0o600 });
    await handToPostgres(kube);
    return cluster;
  }

  node(name: string): K8sNode {
    const found = this.nodes.get(name);
    if (found === undefined) throw new Error(`no instance ${name}`);
    return found;
  }

  /** Launches (or relaunches) one instance's pgim; resolves once its readiness probe answers 200. */
  async startNode(name: string, readyTimeoutMs = 180_000): Promise<PgimProcess> {
    const node = this.node(name);
    node.pgim = new PgimProcess(
      'run',
      node.paths,
      node.ports,
      ['--kubeconfig', join(this.base, 'kube', 'kubeconfig'), '--namespace', this.namespace, '--cluster-name', this.clusterName, '--pod-name', name],
      { KUBECONFIG: '' },
    );
    await node.pgim.waitReady(readyTimeoutMs);
    return node.pgim;
  }

  async start(): Promise<void> {
    for (const name of this.nodes.keys()) await this.startNode(name);
  }

  /** A lost node: kill -9 of pgim and of its postmaster (nothing is released, the Lease included). */
  async killHard(name: string): Promise<void> {
    const node = this.node(name);
    const postmaster = await postmasterPid(node.paths.pgdata);
    node.pgim.signal('SIGKILL');
    if (postmaster !== undefined) {
      try {
        process.kill(postmaster, 'SIGKILL');
      } catch {
        // gone with pgim already
      }
    }
    await node.pgim.waitExit();
  }

  /** pgim's last log lines of every instance, without PostgreSQL's own records (for a failed test's report). */
  recentLogs(count = 40): string {
    return [...this.nodes.values()]
      .map(({ name, pgim }) => `--- pgim ${name}:\n${(pgim as PgimProcess | undefined)?.lines.filter((line) => !line.includes('"logger":"postgres"') && !line.includes('"logger":"pg_')).slice(-count).join('\n') ?? ''}`)
      .join('\n');
  }

  async dispose(): Promise<void> {
    for (const { pgim, paths } of this.nodes.values()) {
      if ((pgim as PgimProcess | undefined) !== undefined) await pgim.stop().catch(() => killPostmaster(paths.pgdata));
    }
    await removeTempDir(this.base);
  }
}
