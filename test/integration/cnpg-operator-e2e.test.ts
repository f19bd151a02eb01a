import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { sleep } from '../../test-kit/env.js';
import { OperatorHarness, requireOperatorE2e } from '../operator-e2e/harness.js';

const run = promisify(execFile);

/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects are read as the API returns them. */
type K8sObject = Record<string, any>;

const clustersPath = (ns: string, name = ''): string => `/apis/postgresql.cnpg.io/v1/namespaces/${ns}/clusters${name === '' ? '' : `/${name}`}`;

/**
 * CloudNativePG's own operator (v1.30.0, unmodified) reconciling Clusters whose pods run pgim as their instance
 * manager, on a real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) with a test
 * kubelet (test/operator-e2e). The figures printed are wall times on a shared 2-core machine, never asserted.
 */
describe('CloudNativePG operator end to end (pods run pgim)', function () {
  this.timeout(600_000);
  let harness: OperatorHarness | undefined;

  before(async function () {
    const { k8sBinDir, operatorBinary } = await requireOperatorE2e(this);
    harness = await OperatorHarness.start(k8sBinDir, operatorBinary);
    process.stdout.write(`      [operator-e2e] control plane ready in ${harness.timings.controlPlaneMs} ms; CRDs + operator (webhooks serving) in ${harness.timings.operatorMs} ms\n`);
  });

  after(async () => {
    await harness?.stop();
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && harness !== undefined) process.stdout.write(`${await harness.diagnostics()}\n`);
  });

  const h = (): OperatorHarness => {
    if (harness === undefined) throw new Error('the harness did not start');
    return harness;
  };

  async function createNamespace(name: string): Promise<void> {
    const res = await h().plane.api.request('/api/v1/namespaces', { method: 'POST', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } });
    assert.equal(res.status, 201, res.text);
  }

  async function getCluster(ns: string, name: string): Promise<K8sObject> {
    const res = await h().plane.api.request(clustersPath(ns, name));
    assert.equal(res.status, 200, res.text);
    return res.body as K8sObject;
  }

  /** Polls until `check` holds; on timeout the message carries the Cluster's phase and the operator's log tail. */
  async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<number> {
    const started = Date.now();
    for (;;) {
      if (await check().catch(() => false)) return Date.now() - started;
      if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(250);
    }
  }

  async function waitHealthy(ns: string, name: string, instances: number, timeoutMs: number): Promise<number> {
    return waitFor(`Cluster ${ns}/${name} "Cluster in healthy state" with ${instances} ready instances`, timeoutMs, async () => {
      const c = await getCluster(ns, name);
      return c.status?.phase === 'Cluster in healthy state' && c.status?.readyInstances === instances;
    });
  }

  function clusterManifest(name: string, instances: number): K8sObject {
    return {
      apiVersion: 'postgresql.cnpg.io/v1',
      kind: 'Cluster',
      metadata: { name },
      spec: {
        instances,
        // The major version comes from the image tag; the test kubelet's "image" is this machine's PostgreSQL 15.
        imageName: 'ghcr.io/cloudnative-pg/postgresql:15',
        storage: { size: '1Gi' },
        bootstrap: { initdb: { database: 'app', owner: 'app' } },
      },
    };
  }

  async function applyCluster(ns: string, manifest: K8sObject): Promise<number> {
    const started = Date.now();
    const res = await h().plane.api.request(clustersPath(ns), { method: 'POST', body: manifest });
    assert.equal(res.status, 201, res.text);
    return started;
  }

  async function appSecret(ns: string, cluster: string): Promise<Record<string, string>> {
    const res = await h().plane.api.request(`/api/v1/namespaces/${ns}/secrets/${cluster}-app`);
    assert.equal(res.status, 200, res.text);
    return Object.fromEntries(Object.entries((res.body as K8sObject).data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  }

  async function psql(host: string, secret: Record<string, string>, sql: string): Promise<string> {
    const { stdout } = await run('psql', ['-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
      env: { ...process.env, PGHOST: host, PGPORT: secret.port ?? '5432', PGUSER: secret.username ?? '', PGPASSWORD: secret.password ?? '', PGDATABASE: secret.dbname ?? '', PGSSLMODE: 'require', PGCONNECT_TIMEOUT: '10' },
    });
    return stdout.trim();
  }

  it('instances: 1 — the initdb Job runs pgim, the pod is ready, the Cluster is healthy, the app Secret works', async () => {
    const ns = 'e2e-one';
    await createNamespace(ns);
    const applied = await applyCluster(ns, clusterManifest('one', 1));
    const jobMs = await waitFor('the initdb Job to complete', 300_000, async () => {
      const res = await h().plane.api.request(`/apis/batch/v1/namespaces/${ns}/jobs`);
      const jobs = ((res.body as K8sObject).items ?? []) as K8sObject[];
      return jobs.some((j) => j.metadata.name === 'one-1-initdb' && (j.status?.succeeded ?? 0) >= 1);
    });
    await waitHealthy(ns, 'one', 1, 300_000);
    const healthyMs = Date.now() - applied;
    const cluster = await getCluster(ns, 'one');
    assert.equal(cluster.status.currentPrimary, 'one-1');
    const ip = h().kubelet.podIP(ns, 'one-1');
    assert.ok(ip, 'the pod runs on the test kubelet');
    assert.equal(await psql(ip, await appSecret(ns, 'one'), 'select current_user'), 'app');
    process.stdout.write(`      [operator-e2e] instances: 1 — initdb Job done ${jobMs} ms after apply; healthy ${healthyMs} ms after apply\n`);
  });
});
