import { strict as assert } from 'node:assert';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { eventually, handToPostgres } from '../../test-kit/env.js';
import { connect, type PgimProcess } from '../../test-kit/pgim.js';
import type { TestApiServer } from '../k8s/apiserver.js';
import { getCluster, namespacedPath } from '../k8s/fixtures.js';
import { apiServerFor, crdVariants, releaseAllApiServers, requireCrdFile, requireK8sBinaries } from '../k8s/harness.js';
import { K8sInstance } from '../k8s/instance.js';

/**
 * Kubernetes mode (CNPG's own CRD on a real kube-apiserver): post-init SQL from a Secret and a ConfigMap read through
 * the API, and the primary's tablespace pass reported in the Cluster's `status.tablespacesStatus`.
 */
describe("Kubernetes mode: bootstrap.initdb post-init SQL refs and spec.tablespaces status (CNPG's CRD, real kube-apiserver)", function () {
  const clusterName = 'tbs';
  const cnpg = crdVariants.find((v) => v.key === 'cnpg');
  let server: TestApiServer;
  let instance: K8sInstance | undefined;
  let pgim: PgimProcess;

  before(async function () {
    this.timeout(40 * 60_000);
    const binDir = await requireK8sBinaries(this);
    if (cnpg === undefined) throw new Error('no CNPG CRD variant');
    requireCrdFile(this, cnpg);
    server = await apiServerFor(binDir, cnpg);
    instance = await K8sInstance.create(server, {
      namespacePrefix: 'initdb-tbs',
      clusterName,
      appPassword: 'app-pw-tbs',
      superuserPassword: 'su-pw-tbs',
      cluster: {
        enableSuperuserAccess: true,
        spec: {
          bootstrap: {
            initdb: {
              database: 'app',
              owner: 'app',
              dataChecksums: true,
              postInitSQL: ['CREATE TABLE ran(xid xid8 DEFAULT pg_current_xact_id(), what text)'],
              postInitSQLRefs: { secretRefs: [{ name: 'init-sql', key: 'one.sql' }], configMapRefs: [{ name: 'init-sql', key: 'two.sql' }] },
              postInitApplicationSQLRefs: { configMapRefs: [{ name: 'init-sql', key: 'app.sql' }] },
            },
          },
          tablespaces: [{ name: 'fast', owner: { name: 'app' }, storage: { size: '1Gi' } }, { name: 'orphan', owner: { name: 'nobody' }, storage: { size: '1Gi' } }],
        },
      },
      // The Role names the Secret and ConfigMap of the post-init SQL, as it names every object pgim reads.
      editRole: (role) => {
        const rules = role.rules as { resources: string[]; resourceNames?: string[] }[];
        rules.find((r) => r.resources.includes('secrets'))?.resourceNames?.push('init-sql');
        rules.find((r) => r.resources.includes('configmaps'))?.resourceNames?.push('init-sql');
      },
    });
    const secret = await server.request(namespacedPath(instance.namespace, 'secrets'), {
      method: 'POST',
      body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'init-sql' }, type: 'Opaque', stringData: { 'one.sql': "INSERT INTO ran(what) VALUES ('secret')" } },
    });
    assert.equal(secret.status, 201, secret.text);
    const created = await server.request(namespacedPath(instance.namespace, 'configmaps'), {
      method: 'POST',
      body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'init-sql' }, data: { 'two.sql': "INSERT INTO ran(what) VALUES ('configmap')", 'app.sql': 'CREATE TABLE from_configmap(id int)' } },
    });
    assert.equal(created.status, 201, created.text);
    // The operator's volumes: one mount point per tablespace under the root (here a temp folder, not /var/lib/postgresql).
    const root = join(instance.base, 'tablespaces');
    await mkdir(join(root, 'fast'), { recursive: true });
    await mkdir(join(root, 'orphan'), { recursive: true });
    await handToPostgres(root);
    pgim = await instance.start({ kind: 'kubeconfig' }, { env: { PGIM_TABLESPACES_DIR: root } });
    await pgim.waitReady(180_000);
  });

  after(async function () {
    this.timeout(120_000);
    await instance?.dispose();
    await releaseAllApiServers();
  });

  it('the post-init SQL ran in CNPG order, its Secret and ConfigMap read through the API server', async () => {
    const postgres = await connect(instance!.ports.pgPort, 'postgres', 'su-pw-tbs', 'postgres');
    try {
      assert.deepEqual((await postgres.query<{ what: string }>('SELECT what FROM ran ORDER BY xid::text::numeric')).rows.map((r) => r.what), ['secret', 'configmap']);
      assert.equal((await postgres.query<{ v: string }>("SELECT current_setting('data_checksums') AS v")).rows[0]?.v, 'on');
    } finally {
      await postgres.end();
    }
    const app = await connect(instance!.ports.pgPort, 'postgres', 'su-pw-tbs', 'app');
    try {
      assert.equal((await app.query("SELECT 1 FROM pg_tables WHERE tablename = 'from_configmap'")).rowCount, 1);
    } finally {
      await app.end();
    }
  });

  it("the Cluster's status.tablespacesStatus: one reconciled in its mount point, one pending with PostgreSQL's reason", async () => {
    const status = await eventually(async () => {
      const list = (await getCluster(server, instance!.namespace, clusterName)).status?.tablespacesStatus as unknown[] | undefined;
      return list?.length === 2 ? list : undefined;
    }, 60_000, 'status.tablespacesStatus');
    assert.deepEqual(status, [
      { name: 'fast', owner: 'app', state: 'reconciled' },
      { name: 'orphan', owner: 'nobody', state: 'pending', error: 'while creating tablespace orphan: role "nobody" does not exist' },
    ]);
    const client = await connect(instance!.ports.pgPort, 'postgres', 'su-pw-tbs', 'postgres');
    try {
      const { rows } = await client.query<{ l: string }>("SELECT pg_tablespace_location(oid) AS l FROM pg_tablespace WHERE spcname = 'fast'");
      assert.equal(rows[0]?.l, join(instance!.base, 'tablespaces', 'fast', 'data'));
    } finally {
      await client.end();
    }
  });
});
