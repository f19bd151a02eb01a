import { strict as assert } from 'node:assert';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eventually } from '../../test-kit/env.js';
import { query } from '../../test-kit/pgim.js';
import { startLocalCluster, type LocalCluster } from '../support/cluster.js';
import type { TestApiServer } from '../k8s/apiserver.js';
import { createShippedLease, getCluster, namespacedPath, patchCluster } from '../k8s/fixtures.js';
import { apiServerFor, crdVariants, releaseAllApiServers, requireCrdFile, requireK8sBinaries } from '../k8s/harness.js';
import { K8sInstance } from '../k8s/instance.js';

const sourceSecrets = { appPassword: 'k8s-src-app-pw', superuserPassword: 'k8s-src-su-pw' };
const replicaApp = 'k8s-rc-app-pw';
const replicaSuperuser = 'k8s-rc-su-pw';

/**
 * A replica cluster in Kubernetes mode, with CloudNativePG's real Cluster CRD on a real kube-apiserver: the
 * Cluster's `bootstrap.pg_basebackup`, `externalClusters` (TLS client certificate Secrets, which CNPG's Role names
 * too) and `spec.replica` are read from the API; the designated primary clones and follows a running pgim cluster,
 * and a merge patch `spec.replica.enabled: false` promotes it.
 */
describe('Kubernetes mode: a replica cluster of a running pgim cluster (real kube-apiserver, CNPG CRD)', function () {
  this.timeout(600_000);
  const cleanup: (() => Promise<unknown>)[] = [];
  const clusterName = 'rc';
  let server: TestApiServer;
  let source: LocalCluster;
  let instance: K8sInstance;
  const cnpg = crdVariants.find((v) => v.key === 'cnpg');

  const putOpaqueSecret = async (name: string, data: Record<string, Buffer>): Promise<void> => {
    const encoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.toString('base64')]));
    const res = await server.request(namespacedPath(instance.namespace, 'secrets'), { method: 'POST', body: { apiVersion: 'v1', kind: 'Secret', metadata: { name }, type: 'Opaque', data: encoded } });
    assert.equal(res.status, 201, res.text);
  };

  before(async function () {
    this.timeout(600_000);
    const binDir = await requireK8sBinaries(this);
    if (cnpg === undefined) throw new Error('no CNPG CRD variant');
    requireCrdFile(this, cnpg);
    server = await apiServerFor(binDir, cnpg);
    source = await startLocalCluster(1, { enableSuperuserAccess: true }, sourceSecrets);
    cleanup.push(() => source.stop());
    await query(source.instances[0]!.ports.pgPort, 'app', sourceSecrets.appPassword, 'CREATE TABLE origin AS SELECT generate_series(1, 50) AS n');
    const external = {
      name: 'origin',
      connectionParameters: { host: '127.0.0.1', port: String(source.instances[0]!.ports.pgPort), user: 'streaming_replica', dbname: 'postgres', sslmode: 'verify-ca' },
      sslCert: { name: 'origin-replication', key: 'tls.crt' },
      sslKey: { name: 'origin-replication', key: 'tls.key' },
      sslRootCert: { name: 'origin-ca', key: 'ca.crt' },
    };
    instance = await K8sInstance.create(server, {
      namespacePrefix: 'replica-cluster',
      clusterName,
      appPassword: replicaApp,
      superuserPassword: replicaSuperuser,
      cluster: {
        enableSuperuserAccess: true,
        spec: { bootstrap: { pg_basebackup: { source: 'origin' } }, replica: { enabled: true, source: 'origin' }, externalClusters: [external] },
      },
      // CNPG's Role names the Secrets of the externalClusters among those the instance may read.
      editRole: (role) => {
        const rules = role.rules as { resources: string[]; resourceNames?: string[] }[];
        rules.find((r) => r.resources.includes('secrets'))?.resourceNames?.push('origin-replication', 'origin-ca');
      },
    });
    cleanup.push(() => instance.dispose());
    const secrets = join(source.configDir, 'secrets');
    await putOpaqueSecret('origin-replication', {
      'tls.crt': await readFile(join(secrets, 'itest-replication', 'tls.crt')),
      'tls.key': await readFile(join(secrets, 'itest-replication', 'tls.key')),
    });
    await putOpaqueSecret('origin-ca', { 'ca.crt': await readFile(join(secrets, 'itest-ca', 'ca.crt')) });
    // The operator's part: the primary Lease a promotion takes.
    await createShippedLease(server, instance.namespace, clusterName);
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(instance.recentLog(60));
  });

  after(async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
    await releaseAllApiServers();
  });

  it('clones and follows the source as its designated primary, then promotes on spec.replica.enabled: false', async () => {
    const pgim = await instance.start();
    await pgim.waitReady(180_000);
    const port = instance.ports.pgPort;
    const count = async (password: string): Promise<string | undefined> =>
      (await query<{ n: string }>(port, 'postgres', password, 'SELECT count(*) AS n FROM origin').catch(() => []))[0]?.n;
    assert.equal(await count(sourceSecrets.superuserPassword), '50', 'cloned from the source');
    await query(source.instances[0]!.ports.pgPort, 'app', sourceSecrets.appPassword, 'INSERT INTO origin SELECT generate_series(51, 60)');
    await eventually(async () => ((await count(sourceSecrets.superuserPassword)) === '60' ? true : undefined), 60_000, 'the designated primary follows the source');
    const status = (await (await fetch(`${pgim.statusUrl}/pg/status`)).json()) as { isPrimary: boolean; isWalReceiverActive: boolean };
    assert.deepEqual([status.isPrimary, status.isWalReceiverActive], [false, true]);
    const cluster = await eventually(async () => {
      const c = await getCluster(server, instance.namespace, clusterName);
      return c.status?.currentPrimary === `${clusterName}-1` ? c : undefined;
    }, 60_000, 'status.currentPrimary names the designated primary');
    assert.ok(cluster);

    await patchCluster(server, instance.namespace, clusterName, { spec: { replica: { enabled: false } } });
    await eventually(async () => {
      const rows = await query<{ r: boolean }>(port, 'postgres', replicaSuperuser, 'SELECT pg_is_in_recovery() AS r').catch(() => []);
      return rows[0]?.r === false ? true : undefined;
    }, 120_000, 'promoted, with its own superuser password');
    await query(port, 'app', replicaApp, 'INSERT INTO origin VALUES (-1)');
    assert.equal(await count(replicaSuperuser), '61');
    const sourceRows = await query<{ n: string }>(source.instances[0]!.ports.pgPort, 'postgres', sourceSecrets.superuserPassword, 'SELECT count(*) AS n FROM origin');
    assert.equal(sourceRows[0]?.n, '60', 'the source is unaffected');
    assert.ok(!pgim.lines.some((l) => l.includes('"logger":"initdb"')), 'no initdb');
  });
});
