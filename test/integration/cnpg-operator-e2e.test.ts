import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { get as httpsGet } from 'node:https';
import { promisify } from 'node:util';
import pg from 'pg';
import { lostOn, startAckedWriter } from '../../test-kit/acked-writer.js';
import { sleep } from '../../test-kit/env.js';
import { archivedWalNames, backupPartsMissing, backupSecretData, backupSecretName, backupSpec, S3Server } from '../../test-kit/s3.js';
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

  function clusterManifest(name: string, instances: number, extra: K8sObject = {}): K8sObject {
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
        ...extra,
      },
    };
  }

  async function applyCluster(ns: string, manifest: K8sObject): Promise<number> {
    const started = Date.now();
    const res = await h().plane.api.request(clustersPath(ns), { method: 'POST', body: manifest });
    assert.equal(res.status, 201, res.text);
    return started;
  }

  async function appSecret(ns: string, cluster: string, suffix = 'app'): Promise<Record<string, string>> {
    const res = await h().plane.api.request(`/api/v1/namespaces/${ns}/secrets/${cluster}-${suffix}`);
    assert.equal(res.status, 200, res.text);
    return Object.fromEntries(Object.entries((res.body as K8sObject).data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  }

  /** The operator's `<cluster>-superuser` Secret, for the `postgres` database (its dbname is `*`). */
  async function superuser(ns: string, cluster: string): Promise<Record<string, string>> {
    return { ...(await appSecret(ns, cluster, 'superuser')), dbname: 'postgres' };
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
    // A superuser to create a replication slot; slots followed every 5 s instead of CNPG's default 30.
    threeApplied = await applyCluster(ns, clusterManifest('three', 3, { enableSuperuserAccess: true, replicationSlots: { updateInterval: 5 } }));
    await waitHealthy(ns, 'three', 3, 420_000, 'three-1');
    const healthyMs = Date.now() - threeApplied;
    const cluster = await getCluster(ns, 'three');
    // CNPG's webhook turned on the liveness isolation check and the slot replicator: pgim runs with both.
    assert.equal(cluster.spec.probes?.liveness?.isolationCheck?.enabled, true, JSON.stringify(cluster.spec.probes));
    assert.equal(cluster.spec.replicationSlots?.synchronizeReplicas?.enabled, true, JSON.stringify(cluster.spec.replicationSlots));
    const reported = cluster.status.instancesReportedState as Record<string, { isPrimary: boolean }>;
    assert.deepEqual(Object.keys(reported).sort(), ['three-1', 'three-2', 'three-3']);
    assert.deepEqual(Object.entries(reported).filter(([, r]) => r.isPrimary).map(([pod]) => pod), ['three-1']);
    const jobs = ((await h().plane.api.request(`/apis/batch/v1/namespaces/${ns}/jobs`)).body as K8sObject).items as K8sObject[];
    // The operator removes the Jobs of a healthy Cluster; any left must have succeeded.
    for (const job of jobs) assert.ok((job.status?.succeeded ?? 0) >= 1, `${job.metadata.name as string} did not succeed`);
    // The primary's /pg/status (what the operator and `kubectl cnpg status` read): both replicas streaming.
    const replication = ((await instanceStatus(podIP(ns, 'three-1'))).replicationInfo ?? []) as K8sObject[];
    assert.deepEqual(replication.map((r) => [r.applicationName, r.state]).sort(), [['three-2', 'streaming'], ['three-3', 'streaming']]);
    // A consumer's slot on the primary is followed by both replicas (the next test promotes one of them).
    await psql(podIP(ns, 'three-1'), await superuser(ns, 'three'), "select pg_create_physical_replication_slot('e2e_consumer', true)");
    for (const replica of ['three-2', 'three-3']) {
      await waitFor(`e2e_consumer on ${replica}`, 120_000, async () => (await psql(podIP(ns, replica), await superuser(ns, 'three'), "select count(*) from pg_replication_slots where slot_name = 'e2e_consumer' and restart_lsn is not null")) === '1');
    }
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
    assert.equal(await psql(podIP(ns, 'three-2'), await superuser(ns, 'three'), "select count(*) from pg_replication_slots where slot_name = 'e2e_consumer'"), '1', "the consumer's slot is on the new primary");
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

  /** A merge patch of the Cluster's spec (what `kubectl patch --type merge` or an edited manifest sends). */
  async function patchSpec(ns: string, name: string, spec: K8sObject): Promise<void> {
    const res = await h().plane.api.request(clustersPath(ns, name), { method: 'PATCH', contentType: 'application/merge-patch+json', body: { spec } });
    assert.equal(res.status, 200, res.text);
  }

  function appClient(host: string, secret: Record<string, string>): pg.Client {
    const client = new pg.Client({ host, port: Number(secret.port ?? 5432), user: secret.username, password: secret.password, database: secret.dbname, ssl: { rejectUnauthorized: false }, connectionTimeoutMillis: 10_000 });
    client.on('error', () => undefined);
    return client;
  }

  /** The primary's view of its standbys (`/pg/status` replicationInfo): [name, state, syncState], sorted. */
  async function standbys(ns: string, primary: string): Promise<string[][]> {
    const replication = ((await instanceStatus(podIP(ns, primary))).replicationInfo ?? []) as K8sObject[];
    return replication.map((r) => [r.applicationName as string, r.state as string, r.syncState as string]).sort();
  }

  it('failover: the primary\'s pgim killed, the operator promotes a replica, no acknowledged write lost (synchronous), the old primary back as a replica', async () => {
    const ns = 'e2e-three';
    if (threeApplied === 0) throw new Error('the 3-instance Cluster did not come up');
    const oldPrimary = (await getCluster(ns, 'three')).status.currentPrimary as string;
    const others = ['three-1', 'three-2', 'three-3'].filter((p) => p !== oldPrimary);
    // Quorum commit on one of the two standbys, applied by the operator's flow (a reload, no restart).
    await patchSpec(ns, 'three', { postgresql: { synchronous: { method: 'any', number: 1, dataDurability: 'required' } } });
    await waitFor('both standbys in the quorum', 180_000, async () => JSON.stringify(await standbys(ns, oldPrimary)) === JSON.stringify(others.map((p) => [p, 'streaming', 'quorum'])));
    const secret = await appSecret(ns, 'three');
    await psql(podIP(ns, oldPrimary), secret, 'create table acked (id bigint primary key)');
    const writer = await startAckedWriter(async () => {
      const client = appClient(podIP(ns, oldPrimary), secret);
      await client.connect();
      return client;
    }, 'acked', 1);
    await waitFor('100 acknowledged commits', 120_000, () => Promise.resolve(writer.acked.length >= 100));
    // The primary's instance manager killed (the pod's other processes, postgres, go with it) and its container kept
    // down for 45 s, as on a node that failed: a container the kubelet restarts at once comes back as the primary
    // before the operator decides (CNPG's operator then rightly does not fail over; a CI run saw exactly that).
    h().kubelet.signalContainer(ns, oldPrimary, 'postgres', 'SIGKILL', 45_000);
    const killed = Date.now();
    await writer.finished;
    let newPrimary = '';
    await waitFor('the operator to promote a replica', 300_000, async () => {
      const status = (await getCluster(ns, 'three')).status as K8sObject;
      if (!others.includes(status.targetPrimary as string) || status.currentPrimary !== status.targetPrimary) return false;
      newPrimary = status.currentPrimary as string;
      return (await psql(podIP(ns, newPrimary), secret, 'select not pg_is_in_recovery()')) === 't';
    });
    const writableMs = Date.now() - killed;
    const check = appClient(podIP(ns, newPrimary), secret);
    await check.connect();
    try {
      assert.equal(await lostOn(check, 'acked', writer.acked), 0, `acknowledged rows missing on ${newPrimary} (of ${writer.acked.length})`);
    } finally {
      await check.end();
    }
    await waitHealthy(ns, 'three', 3, 300_000, newPrimary);
    const healthyMs = Date.now() - killed;
    // The former primary (its history may have forked: rewound) streams again, and has every acknowledged row.
    const rest = ['three-1', 'three-2', 'three-3'].filter((p) => p !== newPrimary);
    await waitFor(`both replicas streaming from ${newPrimary}`, 180_000, async () => JSON.stringify((await standbys(ns, newPrimary)).map(([n, s]) => [n, s])) === JSON.stringify(rest.map((p) => [p, 'streaming'])));
    const rejoinedMs = Date.now() - killed;
    await psql(podIP(ns, newPrimary), secret, 'insert into acked values (0)');
    // Every acknowledged id and the new primary's marker (a commit whose acknowledgement the kill lost may be there too).
    await waitFor(`${oldPrimary} to replay every acknowledged row`, 120_000, async () => {
      const client = appClient(podIP(ns, oldPrimary), secret);
      await client.connect();
      try {
        return (await lostOn(client, 'acked', [0, ...writer.acked])) === 0;
      } finally {
        await client.end();
      }
    });
    const cluster = await getCluster(ns, 'three');
    assert.equal(cluster.status.instancesReportedState?.[oldPrimary]?.isPrimary, false);
    process.stdout.write(
      `      [operator-e2e] failover ${oldPrimary} -> ${newPrimary}: ${writer.acked.length} acknowledged, 0 lost; writable ${writableMs} ms after the kill; Cluster healthy after ${healthyMs} ms; ${oldPrimary} streaming after ${rejoinedMs} ms\n`,
    );
  });

  /** name -> uid of the Cluster's instance pods. */
  async function instancePods(ns: string, cluster: string): Promise<Map<string, string>> {
    const res = await h().plane.api.request(`/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(`cnpg.io/cluster=${cluster},cnpg.io/podRole=instance`)}`);
    assert.equal(res.status, 200, res.text);
    return new Map(((res.body as K8sObject).items as K8sObject[]).filter((p) => p.metadata.deletionTimestamp === undefined).map((p) => [p.metadata.name as string, p.metadata.uid as string]));
  }

  /** The reasons of the operator's Events on the Cluster (RegisterPhase, rollouts, switchovers). */
  async function clusterEvents(ns: string, cluster: string): Promise<K8sObject[]> {
    const res = await h().plane.api.request(`/api/v1/namespaces/${ns}/events?fieldSelector=${encodeURIComponent(`involvedObject.kind=Cluster,involvedObject.name=${cluster}`)}`);
    assert.equal(res.status, 200, res.text);
    return (res.body as K8sObject).items as K8sObject[];
  }

  it('a parameter change (one reload, one restart: the operator\'s rolling restart) and an app password rotation, seen in PostgreSQL', async () => {
    const ns = 'e2e-three';
    if (threeApplied === 0) throw new Error('the 3-instance Cluster did not come up');
    const instances = ['three-1', 'three-2', 'three-3'];
    const before = await instancePods(ns, 'three');
    const primary = (await getCluster(ns, 'three')).status.currentPrimary as string;
    let secret = await appSecret(ns, 'three');
    const startTimes = new Map<string, string>();
    for (const pod of instances) startTimes.set(pod, await psql(podIP(ns, pod), secret, 'select pg_postmaster_start_time()'));
    const started = Date.now();
    const phases = new Set<string>();
    const notePhase = async (): Promise<void> => {
      const status = (await getCluster(ns, 'three')).status as K8sObject;
      phases.add(`${status.phase as string}${status.phaseReason ? `: ${status.phaseReason as string}` : ''}`);
    };
    await patchSpec(ns, 'three', { postgresql: { parameters: { log_min_duration_statement: '1500', shared_buffers: '64MB' } } });
    // The reload-only one: every instance has it without a restart.
    await waitFor('log_min_duration_statement reloaded everywhere', 180_000, async () => {
      await notePhase();
      for (const pod of instances) if ((await psql(podIP(ns, pod), secret, 'show log_min_duration_statement')) !== '1500ms') return false;
      return true;
    });
    const reloadedMs = Date.now() - started;
    // The restart: the operator's rolling update (replicas first, the primary last) until nothing is pending.
    await waitFor('shared_buffers applied everywhere, nothing pending, the Cluster healthy', 420_000, async () => {
      await notePhase();
      for (const pod of instances) {
        if ((await psql(podIP(ns, pod), secret, "select current_setting('shared_buffers') || (select count(*) from pg_settings where pending_restart)")) !== '64MB0') return false;
      }
      const c = await getCluster(ns, 'three');
      return c.status?.phase === 'Cluster in healthy state' && c.status?.readyInstances === 3;
    });
    const restartedMs = Date.now() - started;
    for (const pod of instances) assert.notEqual(await psql(podIP(ns, pod), secret, 'select pg_postmaster_start_time()'), startTimes.get(pod), `${pod} did not restart`);
    // The operator's rolling update: each replica Pod deleted and recreated on its PVC, then the primary restarted in
    // place at the operator's request (the phase "Primary instance is being restarted in-place"), not by pgim.
    const after = await instancePods(ns, 'three');
    for (const pod of instances) assert.equal(before.get(pod) !== after.get(pod), pod !== primary, `${pod}: recreated ${String(before.get(pod) !== after.get(pod))}`);
    const events = (await clusterEvents(ns, 'three')).map((e) => `${e.reason as string}: ${e.message as string}`);
    for (const pod of instances.filter((p) => p !== primary)) assert.ok(events.includes(`UpgradingInstance: Upgrading instance ${pod}`), events.join('\n'));
    process.stdout.write(`      [operator-e2e] parameters: reloaded everywhere after ${reloadedMs} ms; restarted everywhere, Cluster healthy after ${restartedMs} ms; phases seen: ${[...phases].join(' | ')}\n`);

    // The app user's password rotated in its Secret (owned by the Cluster: the operator keeps the new value).
    const rotated = `rotated-${Math.random().toString(36).slice(2)}`;
    const res = await h().plane.api.request(`/api/v1/namespaces/${ns}/secrets/three-app`, { method: 'PATCH', contentType: 'application/merge-patch+json', body: { stringData: { password: rotated } } });
    assert.equal(res.status, 200, res.text);
    const rotatedAt = Date.now();
    const old = secret;
    secret = { ...secret, password: rotated };
    const current = (await getCluster(ns, 'three')).status.currentPrimary as string;
    await waitFor('the new app password accepted', 180_000, async () => (await psql(podIP(ns, current), secret, 'select current_user')) === 'app');
    const rotationMs = Date.now() - rotatedAt;
    await assert.rejects(psql(podIP(ns, current), old, 'select 1'), /password authentication failed/);
    // Replicated like any role change: a replica accepts it too.
    const replica = instances.find((p) => p !== current) ?? '';
    await waitFor('a replica accepting the new password', 60_000, async () => (await psql(podIP(ns, replica), secret, 'select current_user')) === 'app');
    process.stdout.write(`      [operator-e2e] app password rotated: accepted ${rotationMs} ms after the Secret changed\n`);
  });

  it('a Backup object (barmanObjectStore) through the operator: taken in the pod it chose, completed, WAL archiving reported', async () => {
    const ns = 'e2e-three';
    if (threeApplied === 0) throw new Error('the 3-instance Cluster did not come up');
    const missing = backupPartsMissing();
    if (missing !== undefined) throw new Error(`backup parts missing: ${missing}`);
    const s3 = await S3Server.start();
    try {
      const secret = await h().plane.api.request(`/api/v1/namespaces/${ns}/secrets`, { method: 'POST', body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: backupSecretName }, stringData: backupSecretData(s3) } });
      assert.equal(secret.status, 201, secret.text);
      const started = Date.now();
      await patchSpec(ns, 'three', backupSpec(s3, 'e2e'));
      // The primary's archive_command uploads WAL; the Cluster's ContinuousArchiving condition says so.
      const app = await appSecret(ns, 'three');
      const primary = (await getCluster(ns, 'three')).status.currentPrimary as string;
      // archive_mode needs a restart (the operator's rolling update); then a completed segment is archived.
      await waitFor(`archive_mode on ${primary}`, 300_000, async () => (await psql(podIP(ns, primary), app, 'show archive_mode')) === 'on');
      // The app user cannot call pg_switch_wal(): a little more than one segment of WAL completes one.
      await psql(podIP(ns, primary), app, "create table filler as select g, repeat('x', 100) as pad from generate_series(1, 200000) g");
      await waitFor('ContinuousArchiving=True on the Cluster', 300_000, async () => {
        const conditions = ((await getCluster(ns, 'three')).status?.conditions ?? []) as K8sObject[];
        return conditions.some((c) => c.type === 'ContinuousArchiving' && c.status === 'True');
      });
      const archivingMs = Date.now() - started;
      const backupAt = Date.now();
      const created = await h().plane.api.request(`/apis/postgresql.cnpg.io/v1/namespaces/${ns}/backups`, {
        method: 'POST',
        // target primary: on a standby, pg_backup_stop waits for the primary to switch its segment (archive_timeout, 5 min).
        body: { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Backup', metadata: { name: 'first' }, spec: { cluster: { name: 'three' }, method: 'barmanObjectStore', target: 'primary' } },
      });
      assert.equal(created.status, 201, created.text);
      let backup: K8sObject = {};
      await waitFor('the Backup completed', 400_000, async () => {
        const res = await h().plane.api.request(`/apis/postgresql.cnpg.io/v1/namespaces/${ns}/backups/first`);
        backup = res.body as K8sObject;
        if (backup.status?.phase === 'failed') throw new Error(`the Backup failed: ${JSON.stringify(backup.status)}`);
        return backup.status?.phase === 'completed';
      }).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(backup.status)}`);
      });
      const backupMs = Date.now() - backupAt;
      const status = backup.status as K8sObject;
      // The operator chose the pod (the target) and ran `/controller/manager backup first` in it.
      assert.equal(status.instanceID?.podName, primary, JSON.stringify(status));
      assert.equal(status.method, 'barmanObjectStore');
      for (const field of ['backupId', 'beginWal', 'endWal', 'beginLSN', 'endLSN', 'startedAt', 'stoppedAt', 'destinationPath', 'serverName']) {
        assert.ok(typeof status[field] === 'string' && status[field] !== '', `status.${field}: ${JSON.stringify(status)}`);
      }
      assert.ok(h().kubelet.events.some((e) => e.includes(`exec in ${ns}/${status.instanceID.podName as string}/postgres: /controller/manager backup first`)), h().kubelet.events.join('\n'));
      await waitFor(`the backup's last WAL ${status.endWal as string} archived`, 180_000, async () => (await archivedWalNames(s3, 'e2e', 'three')).includes(status.endWal as string));
      process.stdout.write(`      [operator-e2e] backup: WAL archiving reported ${archivingMs} ms after spec.backup was set; Backup completed in ${backupMs} ms on ${status.instanceID.podName as string} (${status.beginWal as string}..${status.endWal as string})\n`);
    } finally {
      await s3.stop();
    }
  });
});
