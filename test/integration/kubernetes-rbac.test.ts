import { strict as assert } from 'node:assert';
import type { AuditEvent, TestApiServer } from '../k8s/apiserver.js';
import { clustersGroup, createShippedLease, deployManifests, getCluster, listEvents, mintToken, namespacedPath, patchCluster, putSecret, type Json } from '../k8s/fixtures.js';
import { apiServerFor, crdVariants, releaseAllApiServers, requireK8sBinaries } from '../k8s/harness.js';
import { K8sInstance } from '../k8s/instance.js';
import { eventually } from '../../test-kit/env.js';
import type { PgimProcess } from '../../test-kit/pgim.js';

/**
 * Issue 24, item 15: the shipped Role (deploy/kubernetes/role.yaml, read as a user applies it) holds only what pgim
 * uses, proven both ways on a real kube-apiserver with RBAC authorization: every rule is used by a real pgim (the
 * API server's audit log), and every rule of CloudNativePG's Role that was cut answers 403 to the ServiceAccount.
 */

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** One permission: verb on group/resource[/subresource], optionally one named object. */
interface Permission {
  group: string;
  resource: string;
  subresource: string | undefined;
  verb: string;
  name: string | undefined;
}

function permissions(rules: readonly PolicyRule[]): Permission[] {
  return rules.flatMap((rule) =>
    rule.apiGroups.flatMap((group) =>
      rule.resources.flatMap((qualified) => {
        const [resource = '', subresource] = qualified.split('/');
        return rule.verbs.flatMap((verb) => (rule.resourceNames ?? [undefined]).map((name) => ({ group, resource, subresource, verb, name })));
      }),
    ),
  );
}

const describePermission = (p: Permission): string =>
  `${p.verb} ${p.resource}${p.subresource === undefined ? '' : `/${p.subresource}`}${p.group === '' ? '' : `.${p.group}`}${p.name === undefined ? '' : ` "${p.name}"`}`;

/**
 * CloudNativePG's instance-manager Role (pkg/specs/roles.go CreateRole, v1.30), for a Cluster `db` whose Secrets are
 * the five pgim knows: what role.yaml granted before it was cut.
 */
function cnpgRole(cluster: string): PolicyRule[] {
  const cnpg = 'postgresql.cnpg.io';
  return [
    { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'watch'], resourceNames: ['cnpg-default-monitoring', cluster] },
    { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'watch'], resourceNames: ['app', 'ca', 'replication', 'server', 'superuser'].map((s) => `${cluster}-${s}`) },
    { apiGroups: [cnpg], resources: ['clusters'], verbs: ['get', 'list', 'watch'], resourceNames: [cluster] },
    { apiGroups: [cnpg], resources: ['clusters/status'], verbs: ['get', 'patch', 'update', 'watch'], resourceNames: [cluster] },
    { apiGroups: [cnpg], resources: ['backups'], verbs: ['list', 'get', 'delete'] },
    { apiGroups: [cnpg], resources: ['backups/status'], verbs: ['get', 'patch', 'update'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
    { apiGroups: [cnpg], resources: ['databases', 'publications', 'subscriptions', 'databaseroles'], verbs: ['get', 'update', 'list', 'watch'] },
    { apiGroups: [cnpg], resources: ['databases/status', 'publications/status', 'subscriptions/status', 'databaseroles/status'], verbs: ['get', 'patch', 'update'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'update'], resourceNames: [cluster] },
    { apiGroups: [cnpg], resources: ['failoverquorums'], verbs: ['get', 'list', 'watch'], resourceNames: [cluster] },
    { apiGroups: [cnpg], resources: ['failoverquorums/status'], verbs: ['get', 'patch', 'update', 'watch'], resourceNames: [cluster] },
  ];
}

/** The backup rules role.yaml keeps for the Barman Cloud backups being built; pgim does not use them yet. */
function isBackupRule(p: Permission, cluster: string): boolean {
  return (p.group === 'postgresql.cnpg.io' && p.resource === 'backups') || (p.resource === 'secrets' && p.name === `${cluster}-backup-credentials`);
}

function usedBy(events: readonly AuditEvent[], user: string, p: Permission): boolean {
  return events.some(
    (e) =>
      e.user.username === user &&
      e.verb === p.verb &&
      (e.objectRef?.apiGroup ?? '') === p.group &&
      e.objectRef?.resource === p.resource &&
      e.objectRef.subresource === p.subresource &&
      (p.name === undefined || e.objectRef.name === p.name) &&
      e.responseStatus?.code !== 403,
  );
}

/** A real request for one permission, as the ServiceAccount: what the API server answers. */
async function attempt(server: TestApiServer, token: string, namespace: string, p: Permission): Promise<number> {
  const version = p.group === '' ? 'v1' : p.group === 'coordination.k8s.io' ? `${p.group}/v1` : clustersGroup;
  const collection = namespacedPath(namespace, p.resource, undefined, p.group === '' ? undefined : version);
  const object = `${collection}/${p.name ?? 'any'}${p.subresource === undefined ? '' : `/${p.subresource}`}`;
  const body = { apiVersion: version, kind: 'Unknown', metadata: { name: p.name ?? 'any' } };
  const request = {
    get: { path: object },
    list: { path: collection },
    // A watch of a named object is a collection watch narrowed by name (what RBAC matches resourceNames against).
    watch: {
      path:
        p.subresource !== undefined
          ? `${object}?watch=true&timeoutSeconds=1`
          : p.name === undefined
            ? `${collection}?watch=true&timeoutSeconds=1`
            : `${collection}?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3D${p.name}`,
    },
    update: { path: object, method: 'PUT', body },
    patch: { path: object, method: 'PATCH', body: {}, contentType: 'application/merge-patch+json' },
    create: { path: collection, method: 'POST', body },
    delete: { path: object, method: 'DELETE' },
  }[p.verb];
  if (request === undefined) throw new Error(`no request for verb ${p.verb}`);
  const { path, ...options } = request;
  return (await server.request(path, { ...options, token, timeoutMs: 15_000 })).status;
}

describe('least privilege: the shipped Role is exactly what pgim uses (real kube-apiserver, RBAC; issue 24, item 15)', function () {
  const clusterName = 'db';
  const variant = crdVariants.find((candidate) => candidate.key === 'pgim');
  let server: TestApiServer;
  let instance: K8sInstance | undefined;
  let pgim: PgimProcess;
  let shipped: Permission[];
  let serviceAccount: string;

  before(async function () {
    this.timeout(40 * 60_000);
    const binDir = await requireK8sBinaries(this);
    if (variant === undefined) throw new Error("pgim's CRD variant is missing");
    server = await apiServerFor(binDir, variant);
    const [role] = (await deployManifests('role.yaml', clusterName)) as (Json & { rules: PolicyRule[] })[];
    shipped = permissions(role?.rules ?? []);

    // A real instance, with everything the Role names in play: custom queries in the Cluster's own ConfigMap and
    // in cnpg-default-monitoring, the primary Lease, status patches, events; it runs as the ServiceAccount bound
    // to the shipped Role.
    const queries = 'up:\n  query: SELECT 1 AS v\n  metrics:\n    - v: {usage: GAUGE, description: "one"}\n';
    instance = await K8sInstance.create(server, {
      namespacePrefix: 'rbac-used',
      clusterName,
      appPassword: 'rbac-app-pw',
      cluster: {
        // Superuser access on: pgim reads <cluster>-superuser only then.
        enableSuperuserAccess: true,
        spec: {
          monitoring: {
            customQueriesConfigMap: [
              { name: 'cnpg-default-monitoring', key: 'queries' },
              { name: clusterName, key: 'queries' },
            ],
          },
        },
      },
    });
    const { namespace } = instance;
    serviceAccount = `system:serviceaccount:${namespace}:${clusterName}`;
    for (const name of ['cnpg-default-monitoring', clusterName]) {
      const res = await server.request(namespacedPath(namespace, 'configmaps'), {
        method: 'POST',
        body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { queries } },
      });
      assert.equal(res.status, 201, res.text);
    }
    await createShippedLease(server, namespace, clusterName);

    pgim = await instance.start({ kind: 'kubeconfig', tokenFile: true });
    await pgim.waitReady(180_000);
    // A live change: the WATCH delivers it, pgim applies it and reports the phase (status patch, an event).
    await patchCluster(server, namespace, clusterName, { spec: { postgresql: { parameters: { work_mem: '5MB' } } } });
    await eventually(async () => ((await getCluster(server, namespace, clusterName)).status?.phase === 'Cluster in healthy state' ? true : undefined), 60_000, 'the phase');
    await eventually(async () => ((await listEvents(server, namespace)).length > 0 ? true : undefined), 30_000, 'an event');
    // A clean stop frees the Lease (its update); then the audit log holds everything pgim did.
    assert.equal((await pgim.stop(60_000)).code, 0);
  });

  after(async function () {
    this.timeout(120_000);
    await instance?.dispose();
    await releaseAllApiServers();
  });

  it('every rule of the shipped Role is used by a real pgim (audit log); only the backup rules are kept unused, for backups', async () => {
    const events = await eventually(async () => {
      const all = await server.auditEvents();
      // The audit log is written asynchronously: wait until the Lease release (pgim's last request) is in it.
      return usedBy(all, serviceAccount, { group: 'coordination.k8s.io', resource: 'leases', subresource: undefined, verb: 'update', name: clusterName }) ? all : undefined;
    }, 30_000, "pgim's requests in the audit log");
    const unused = shipped.filter((p) => !usedBy(events, serviceAccount, p));
    assert.deepEqual(
      unused.filter((p) => !isBackupRule(p, clusterName)).map(describePermission),
      [],
      'rules nobody used: cut them from deploy/kubernetes/role.yaml',
    );
    assert.deepEqual(unused.map(describePermission).sort(), shipped.filter((p) => isBackupRule(p, clusterName)).map(describePermission).sort(), 'the backup rules are the only unused ones');
  });

  it('nothing pgim asked for was refused (no 403 for the ServiceAccount in the audit log)', async () => {
    const refused = (await server.auditEvents()).filter((e) => e.user.username === serviceAccount && e.responseStatus?.code === 403);
    assert.deepEqual(refused.map((e) => `${e.verb} ${e.requestURI}`), []);
  });

  it("what was cut from CloudNativePG's Role answers 403 to the ServiceAccount bound to the shipped Role", async function () {
    this.timeout(120_000);
    assert.ok(instance);
    const { namespace } = instance;
    const allowed = new Set(shipped.map(describePermission));
    const cut = permissions(cnpgRole(clusterName)).filter((p) => !allowed.has(describePermission(p)));
    // The cuts the issue names, so a Role that grew them back fails here even if CNPG's list changed.
    for (const expected of ['list clusters.postgresql.cnpg.io "db"', 'get databases.postgresql.cnpg.io', 'watch failoverquorums.postgresql.cnpg.io "db"', 'patch events']) {
      assert.ok(cut.some((p) => describePermission(p) === expected), `${expected} is cut`);
    }
    const token = await mintToken(server, namespace, clusterName);
    // Objects to act on, so an allowed request would have something to find.
    await putSecret(server, namespace, `${clusterName}-app`, { username: 'app', password: 'rbac-app-pw' });
    const answers: string[] = [];
    for (const p of cut) answers.push(`${describePermission(p)} -> ${await attempt(server, token, namespace, p)}`);
    assert.deepEqual(answers.filter((a) => !a.endsWith('-> 403')), [], answers.join('\n'));
    assert.ok(answers.length >= 40, `${answers.length} cut permissions tried`);
  });

  it('and what is kept still works for the same token (control: the 403s are the Role, not the token)', async () => {
    assert.ok(instance);
    const token = await mintToken(server, instance.namespace, clusterName);
    const keep: Permission[] = [
      { group: 'postgresql.cnpg.io', resource: 'clusters', subresource: undefined, verb: 'get', name: clusterName },
      { group: '', resource: 'secrets', subresource: undefined, verb: 'get', name: `${clusterName}-app` },
    ];
    for (const p of keep) assert.equal(await attempt(server, token, instance.namespace, p), 200, describePermission(p));
    // pgim's CRD serves no Backups yet: 404 (authorized, nothing there), not 403.
    const backups: Permission = { group: 'postgresql.cnpg.io', resource: 'backups', subresource: undefined, verb: 'list', name: undefined };
    assert.equal(await attempt(server, token, instance.namespace, backups), 404, describePermission(backups));
  });
});
