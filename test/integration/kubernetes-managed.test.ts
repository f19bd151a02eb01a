import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { eventually } from '../../test-kit/env.js';
import { connect, query, type PgimProcess } from '../../test-kit/pgim.js';
import type { TestApiServer } from '../k8s/apiserver.js';
import { clustersGroup, getCluster, installCrd, namespacedPath, patchCluster, patchClusterStatus, putSecret } from '../k8s/fixtures.js';
import { apiServerFor, crdVariants, releaseAllApiServers, requireCrdFile, requireK8sBinaries } from '../k8s/harness.js';
import { K8sInstance } from '../k8s/instance.js';
import { cnpgDataDir } from '../k8s/paths.js';

interface ManagedRolesStatus {
  byStatus?: Record<string, string[]>;
  cannotReconcile?: Record<string, string[]>;
  passwordStatus?: Record<string, { transactionID?: number; resourceVersion?: string }>;
}

/**
 * Issue 19 in Kubernetes mode, on a real kube-apiserver with CloudNativePG's CRDs and the shipped least-privilege
 * Role (plus the Secrets this Cluster names): managed roles with CNPG's `status.managedRolesStatus` patched on the
 * Cluster (item 1), monitoring queries from a Secret (item 4), the pooler integration that follows
 * `status.poolerIntegrations` as CNPG's operator writes it for a Pooler object (item 8), and `cnpg.io/reloadedAt`
 * (item 7).
 */
describe('Kubernetes mode: managed roles, queries from Secrets, pooler integration, reload annotation (real kube-apiserver, CNPG CRDs)', function () {
  this.timeout(600_000);
  const clusterName = 'db';
  const superPassword = 'k8s-managed-su-pw';
  let alicePassword = 'k8s-alice-pw-1';
  let server: TestApiServer;
  let instance: K8sInstance;
  let pgim: PgimProcess;
  const cnpg = crdVariants.find((v) => v.key === 'cnpg');

  const managedStatus = async (): Promise<ManagedRolesStatus | undefined> => (await getCluster(server, instance.namespace, clusterName)).status?.managedRolesStatus as ManagedRolesStatus | undefined;
  const secretVersion = async (name: string): Promise<string> => {
    const res = await server.request(namespacedPath(instance.namespace, 'secrets', name));
    return (res.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
  };
  const canLogIn = async (user: string, password: string): Promise<boolean> => {
    try {
      await query(instance.ports.pgPort, user, password, 'SELECT 1');
      return true;
    } catch {
      return false;
    }
  };
  const su = async <T extends object>(sql: string): Promise<T[]> => {
    const client = await connect(instance.ports.pgPort, 'postgres', superPassword, 'postgres');
    try {
      return (await client.query<T & Record<string, unknown>>(sql)).rows;
    } finally {
      await client.end();
    }
  };
  /** An Opaque Secret (putSecret writes basic-auth ones, which must hold username and password). */
  const putQueries = async (queries: string): Promise<void> => {
    const data = { queries: Buffer.from(queries).toString('base64') };
    const created = await server.request(namespacedPath(instance.namespace, 'secrets'), { method: 'POST', body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'queries-secret' }, type: 'Opaque', data } });
    if (created.status === 201) return;
    const patched = await server.request(namespacedPath(instance.namespace, 'secrets', 'queries-secret'), { method: 'PATCH', body: { data }, contentType: 'application/merge-patch+json' });
    assert.equal(patched.status, 200, patched.text);
  };
  const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${instance.ports.metricsPort}/metrics`)).text();

  before(async function () {
    this.timeout(40 * 60_000);
    const binDir = await requireK8sBinaries(this);
    if (cnpg === undefined) throw new Error('no CNPG CRD variant');
    requireCrdFile(this, cnpg);
    server = await apiServerFor(binDir, cnpg);
    await installCrd(server, join(cnpgDataDir, 'crds', 'postgresql.cnpg.io_poolers.yaml'));
    instance = await K8sInstance.create(server, {
      namespacePrefix: 'managed',
      clusterName,
      appPassword: 'k8s-managed-app-pw',
      superuserPassword: superPassword,
      cluster: {
        enableSuperuserAccess: true,
        spec: {
          managed: { roles: [{ name: 'alice', login: true, comment: 'from the API', passwordSecret: { name: 'alice-pw' } }, { name: 'bob', passwordSecret: { name: 'bob-pw' } }] },
          monitoring: { customQueriesSecret: [{ name: 'queries-secret', key: 'queries' }] },
        },
      },
      // As with CNPG's Role, every Secret the Cluster names is granted by name.
      editRole: (role) => {
        const rules = role.rules as { resources: string[]; resourceNames?: string[] }[];
        rules.find((r) => r.resources.includes('secrets'))?.resourceNames?.push('alice-pw', 'bob-pw', 'queries-secret');
      },
    });
    await putSecret(server, instance.namespace, 'alice-pw', { username: 'alice', password: alicePassword });
    await putQueries('from_secret:\n  query: SELECT 11 AS answer\n  metrics:\n    - answer: {usage: GAUGE, description: "from a Secret"}\n');
    pgim = await instance.start();
    await pgim.waitReady(120_000);
  });

  after(async () => {
    await instance.dispose();
    await releaseAllApiServers();
  });

  it("patches CNPG's managedRolesStatus on the Cluster: byStatus, cannotReconcile, passwordStatus with the Secret's resourceVersion", async () => {
    const status = await eventually(async () => {
      const s = await managedStatus();
      return s?.byStatus?.reconciled?.includes('alice') === true && s.cannotReconcile?.bob !== undefined ? s : undefined;
    }, 60_000, 'alice reconciled and bob unreconcilable in the Cluster status');
    assert.equal(await canLogIn('alice', alicePassword), true);
    assert.deepEqual(status.cannotReconcile?.bob?.length, 1);
    assert.match(status.cannotReconcile.bob[0] ?? '', /^failed to get password secret bob-pw: /);
    assert.equal(status.passwordStatus?.alice?.resourceVersion, await secretVersion('alice-pw'));
    const [row] = await su<{ xmin: string }>("SELECT xmin::text AS xmin FROM pg_authid WHERE rolname = 'alice'");
    assert.equal(status.passwordStatus.alice.transactionID, Number(row?.xmin));
    assert.ok(status.byStatus?.reserved?.includes('postgres') === true);
    assert.ok(status.byStatus['pending-reconciliation']?.includes('bob') === true);
    // The same in /pg/status.
    const doc = (await (await fetch(`${pgim.statusUrl}/pg/status`)).json()) as { managedRolesStatus?: ManagedRolesStatus };
    assert.deepEqual(doc.managedRolesStatus?.byStatus, status.byStatus);
  });

  it('applies a rotated Secret once, records its new resourceVersion, and clears what is fixed (keys gone from the status)', async () => {
    alicePassword = 'k8s-alice-pw-2';
    await putSecret(server, instance.namespace, 'alice-pw', { username: 'alice', password: alicePassword });
    await putSecret(server, instance.namespace, 'bob-pw', { username: 'bob', password: 'k8s-bob-pw' });
    const version = await secretVersion('alice-pw');
    const status = await eventually(async () => {
      const s = await managedStatus();
      return s?.passwordStatus?.alice?.resourceVersion === version && s.cannotReconcile === undefined && s.byStatus?.['pending-reconciliation'] === undefined ? s : undefined;
    }, 60_000, 'the new version applied, bob reconciled, cannotReconcile and pending-reconciliation gone');
    assert.ok(status.byStatus?.reconciled?.includes('bob') === true);
    assert.equal(await canLogIn('alice', alicePassword), true);
    assert.equal(await canLogIn('alice', 'k8s-alice-pw-1'), false);
    assert.ok(!pgim.output.includes(alicePassword) && !pgim.output.includes('k8s-bob-pw'), 'no password in the log');
  });

  it('keeps applied password versions across a pgim restart (passwordStatus read back from the Cluster)', async () => {
    const [before] = await su<{ xmin: string }>("SELECT xmin::text AS xmin FROM pg_authid WHERE rolname = 'alice'");
    await pgim.stop();
    pgim = await instance.start();
    await pgim.waitReady(120_000);
    // /pg/status shows managedRolesStatus once the new pgim's first pass over the roles is done.
    await eventually(async () => {
      const doc = (await (await fetch(`${pgim.statusUrl}/pg/status`)).json()) as { managedRolesStatus?: ManagedRolesStatus };
      return doc.managedRolesStatus?.byStatus?.reconciled?.includes('alice') === true ? true : undefined;
    }, 60_000, 'the first pass of the restarted pgim');
    const [after] = await su<{ xmin: string }>("SELECT xmin::text AS xmin FROM pg_authid WHERE rolname = 'alice'");
    assert.equal(after?.xmin, before?.xmin, 'the same Secret version is not applied again after a restart');
  });

  it('serves monitoring queries from a Secret (customQueriesSecret) and follows its changes', async () => {
    await eventually(async () => (/^cnpg_from_secret_answer 11$/m.test(await scrape()) ? true : undefined), 30_000, 'the query from the Secret');
    await putQueries('from_secret:\n  query: SELECT 12 AS answer\n  metrics:\n    - answer: {usage: GAUGE, description: "from a Secret"}\n');
    await eventually(async () => (/^cnpg_from_secret_answer 12$/m.test(await scrape()) ? true : undefined), 30_000, 'the changed Secret');
  });

  it("creates cnpg_pooler_pgbouncer and user_search once the operator lists a Pooler in status.poolerIntegrations", async () => {
    const created = await server.request(namespacedPath(instance.namespace, 'poolers', undefined, clustersGroup), {
      method: 'POST',
      body: { apiVersion: clustersGroup, kind: 'Pooler', metadata: { name: 'db-pooler-rw' }, spec: { cluster: { name: clusterName }, type: 'rw', pgbouncer: { poolMode: 'session' } } },
    });
    assert.equal(created.status, 201, created.text);
    const exists = async (): Promise<boolean> =>
      (await su<{ ok: boolean }>("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cnpg_pooler_pgbouncer') AND EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'user_search') AS ok"))[0]?.ok === true;
    assert.equal(await exists(), false);
    // What CNPG's operator writes for that Pooler (cluster_status.go getPoolerIntegrationsNeeded).
    await patchClusterStatus(server, instance.namespace, clusterName, { poolerIntegrations: { pgBouncerIntegration: { secrets: ['db-pooler-rw'] } } });
    await eventually(async () => ((await exists()) ? true : undefined), 30_000, 'the pooler role and function');
  });

  it('cnpg.io/reloadedAt: reloads and sets every password again from its Secret', async () => {
    await su("ALTER ROLE app PASSWORD 'changed-by-hand'");
    await patchCluster(server, instance.namespace, clusterName, { metadata: { annotations: { 'cnpg.io/reloadedAt': new Date().toISOString() } } });
    await eventually(async () => ((await canLogIn('app', 'k8s-managed-app-pw')) ? true : undefined), 30_000, "the app owner's password again");
  });
});
