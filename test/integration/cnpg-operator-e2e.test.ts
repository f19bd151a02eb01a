import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { get as httpsGet } from 'node:https';
import { promisify } from 'node:util';
import { sleep } from '../../test-kit/env.js';
import { OperatorHarness, requireOperatorE2e } from '../operator-e2e/harness.js';

const run = promisify(execFile);

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-return -- Kubernetes objects are read loosely, as the API returns them. */
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

  /** The operator's own verdict: phase "Cluster in healthy state", condition Ready=True, `instances` ready pods. */
  async function waitHealthy(ns: string, name: string, instances: number, timeoutMs: number, primary?: string): Promise<number> {
    return waitFor(`Cluster ${ns}/${name} healthy (Ready=True) with ${instances} ready instances${primary === undefined ? '' : ` and ${primary} primary`}`, timeoutMs, async () => {
      const c = await getCluster(ns, name);
      const ready = ((c.status?.conditions ?? []) as K8sObject[]).some((cond) => cond.type === 'Ready' && cond.status === 'True');
      return ready && c.status?.phase === 'Cluster in healthy state' && c.status?.readyInstances === instances && (primary === undefined || c.status?.currentPrimary === primary);
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
        // CNPG's webhook enables both by default; pgim refuses them (exit 3, field named) as not implemented.
        probes: { liveness: { isolationCheck: { enabled: false } } },
        replicationSlots: { synchronizeReplicas: { enabled: false } },
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

  /** GET https://<pod IP>:8000/pg/status (public; pgim's serving certificate is issued by the Cluster's CA). */
  function instanceStatus(ip: string): Promise<K8sObject> {
    return new Promise((resolve, reject) => {
      const req = httpsGet({ host: ip, port: 8000, path: '/pg/status', rejectUnauthorized: false, timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as K8sObject);
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      });
      req.on('error', reject);
    });
  }

  function podIP(ns: string, pod: string): string {
    const ip = h().kubelet.podIP(ns, pod);
    if (ip === undefined) throw new Error(`pod ${ns}/${pod} does not run on the test kubelet`);
    return ip;
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
    await waitFor('the initdb Job to complete', 300_000, async () => {
      const res = await h().plane.api.request(`/apis/batch/v1/namespaces/${ns}/jobs/one-1-initdb`);
      return ((res.body as K8sObject).status?.succeeded ?? 0) >= 1;
    });
    const jobMs = Date.now() - applied;
    await waitHealthy(ns, 'one', 1, 300_000, 'one-1');
    const healthyMs = Date.now() - applied;
    const cluster = await getCluster(ns, 'one');
    // Written by the operator from its TLS calls to https://<pod IP>:8000/pg/status with its client certificate.
    assert.equal(cluster.status.instancesReportedState?.['one-1']?.isPrimary, true, JSON.stringify(cluster.status));
    assert.deepEqual(cluster.status.instancesStatus?.healthy, ['one-1']);
    assert.ok(((cluster.status.conditions ?? []) as K8sObject[]).some((c) => c.type === 'ConsistentSystemID' && c.status === 'True'));
    assert.equal(await psql(podIP(ns, 'one-1'), await appSecret(ns, 'one'), 'select current_user'), 'app');
    process.stdout.write(`      [operator-e2e] instances: 1 — initdb Job done ${jobMs} ms after the Cluster was created; healthy after ${healthyMs} ms\n`);
  });

  let threeApplied = 0;
  it('instances: 3 — two join Jobs, three ready pods, replicas streaming over TLS, the Cluster healthy', async () => {
    const ns = 'e2e-three';
    await createNamespace(ns);
    threeApplied = await applyCluster(ns, clusterManifest('three', 3));
    await waitHealthy(ns, 'three', 3, 420_000, 'three-1');
    const healthyMs = Date.now() - threeApplied;
    const cluster = await getCluster(ns, 'three');
    const reported = cluster.status.instancesReportedState as Record<string, { isPrimary: boolean }>;
    assert.deepEqual(Object.keys(reported).sort(), ['three-1', 'three-2', 'three-3']);
    assert.deepEqual(Object.entries(reported).filter(([, r]) => r.isPrimary).map(([pod]) => pod), ['three-1']);
    const jobs = ((await h().plane.api.request(`/apis/batch/v1/namespaces/${ns}/jobs`)).body as K8sObject).items as K8sObject[];
    // The operator removes the Jobs of a healthy Cluster; any left must have succeeded.
    for (const job of jobs) assert.ok((job.status?.succeeded ?? 0) >= 1, `${job.metadata.name as string} did not succeed`);
    // The primary's /pg/status (what the operator and `kubectl cnpg status` read): both replicas streaming.
    const replication = ((await instanceStatus(podIP(ns, 'three-1'))).replicationInfo ?? []) as K8sObject[];
    assert.deepEqual(replication.map((r) => [r.applicationName, r.state]).sort(), [['three-2', 'streaming'], ['three-3', 'streaming']]);
    process.stdout.write(`      [operator-e2e] instances: 3 — healthy after ${healthyMs} ms\n`);
  });

  it('switchover as kubectl cnpg promote does it: new primary writable, the old one streaming, healthy again', async () => {
    const ns = 'e2e-three';
    if (threeApplied === 0) throw new Error('the 3-instance Cluster did not come up');
    const started = Date.now();
    // The plugin's promote: a status update of targetPrimary and the phase (pkg/.../promote).
    const res = await h().plane.api.request(`${clustersPath(ns, 'three')}/status`, {
      method: 'PATCH',
      contentType: 'application/merge-patch+json',
      body: { status: { targetPrimary: 'three-2', phase: 'Switchover in progress', phaseReason: 'Switching over to three-2' } },
    });
    assert.equal(res.status, 200, res.text);
    const secret = await appSecret(ns, 'three');
    await waitFor('three-2 writable', 180_000, async () => (await psql(podIP(ns, 'three-2'), secret, 'select not pg_is_in_recovery()')) === 't');
    const writableMs = Date.now() - started;
    await psql(podIP(ns, 'three-2'), secret, 'create table switched (x int); insert into switched values (1)');
    await waitFor('the former primary to replay the write', 180_000, async () => (await psql(podIP(ns, 'three-1'), secret, 'select count(*) from switched')) === '1');
    await waitFor('the operator to see three-2 as the only primary', 180_000, async () => {
      const reported = (await getCluster(ns, 'three')).status?.instancesReportedState as Record<string, { isPrimary: boolean }> | undefined;
      return Object.entries(reported ?? {}).filter(([, r]) => r.isPrimary).map(([pod]) => pod).join() === 'three-2';
    });
    await waitHealthy(ns, 'three', 3, 300_000, 'three-2');
    const healthyMs = Date.now() - started;
    // Healthy does not mean both replicas stream at this instant (the former primary may still be reconnecting).
    await waitFor('both replicas streaming from three-2', 120_000, async () => {
      const replication = ((await instanceStatus(podIP(ns, 'three-2'))).replicationInfo ?? []) as K8sObject[];
      return JSON.stringify(replication.map((r) => [r.applicationName, r.state]).sort()) === JSON.stringify([['three-1', 'streaming'], ['three-3', 'streaming']]);
    });
    process.stdout.write(`      [operator-e2e] switchover: three-2 writable ${writableMs} ms after the promote; Cluster healthy again after ${healthyMs} ms\n`);
  });
});
