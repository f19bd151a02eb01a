import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { clusterManifest, type TestClusterOptions } from '../config.js';
import { eventually } from '../env.js';
import type { RawResponse, TestApiServer } from './apiserver.js';
import { deployDir } from './paths.js';

export type Json = Record<string, unknown>;

function ok(res: RawResponse, what: string): RawResponse {
  if (res.status < 200 || res.status > 299) throw new Error(`${what}: HTTP ${res.status}: ${res.text.slice(0, 2000)}`);
  return res;
}

/** The placeholder Cluster name in deploy/kubernetes; the tests use the shipped files with their own name. */
export const deployClusterName = 'pgim-example';

/** Parses deploy/kubernetes/<file> with the Cluster name replaced, exactly as a user would adapt it. */
export async function deployManifests(file: string, clusterName: string): Promise<Json[]> {
  const text = (await readFile(join(deployDir, file), 'utf8')).replaceAll(deployClusterName, clusterName);
  return parseAllDocuments(text).map((doc) => doc.toJS() as Json);
}

/** A fresh namespace (no controller-manager deletes one, so every test gets its own). */
export async function createNamespace(server: TestApiServer, prefix: string, labels: Record<string, string> = {}): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  ok(await server.request('/api/v1/namespaces', { method: 'POST', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } } }), `create namespace ${name}`);
  return name;
}

interface CrdObject extends Json {
  metadata: { name: string };
  spec: { group: string; names: { plural: string }; versions: { name: string; served?: boolean; storage?: boolean }[] };
}

async function createCrd(server: TestApiServer, path: string): Promise<CrdObject> {
  const crd = parseYaml(await readFile(path, 'utf8')) as CrdObject;
  const res = await server.request('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { method: 'POST', body: crd });
  if (res.status !== 409) ok(res, `create CRD from ${path}`);
  return crd;
}

/** Until the CRD is Established and its resource is served (the handler is registered a moment after Established). */
async function waitCrdServed(server: TestApiServer, crd: CrdObject): Promise<void> {
  await eventually(
    async () => {
      const got = await server.request(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
      const conditions = (got.body as { status?: { conditions?: { type: string; status: string }[] } } | undefined)?.status?.conditions ?? [];
      return conditions.some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined;
    },
    60_000,
    `CRD ${crd.metadata.name} Established`,
  );
  const version = crd.spec.versions.find((v) => v.storage === true) ?? crd.spec.versions[0];
  const list = `/apis/${crd.spec.group}/${version?.name ?? 'v1'}/${crd.spec.names.plural}`;
  await eventually(async () => ((await server.request(list)).status === 200 ? true : undefined), 60_000, `${crd.metadata.name} served`);
}

/** Creates a CRD from a YAML file and waits until it is Established and its resource is served. */
export async function installCrd(server: TestApiServer, path: string): Promise<void> {
  await waitCrdServed(server, await createCrd(server, path));
}

/** Every CRD in the folder (CloudNativePG's `crds/`), all created first, then each waited for. */
export async function installCrds(server: TestApiServer, dir: string): Promise<void> {
  const crds: CrdObject[] = [];
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort()) crds.push(await createCrd(server, join(dir, file)));
  for (const crd of crds) await waitCrdServed(server, crd);
}

export function namespacedPath(namespace: string, plural: string, name?: string, group?: string): string {
  const base = group === undefined ? `/api/v1/namespaces/${namespace}/${plural}` : `/apis/${group}/namespaces/${namespace}/${plural}`;
  return name === undefined ? base : `${base}/${name}`;
}

export const clustersGroup = 'postgresql.cnpg.io/v1';

/** ServiceAccount, Role and RoleBinding from deploy/kubernetes, for `clusterName`; `editRole` may cut the Role down. */
export async function applyInstanceIdentity(server: TestApiServer, namespace: string, clusterName: string, editRole: (role: Json) => void = () => undefined): Promise<void> {
  const targets: [string, string, string | undefined][] = [
    ['serviceaccount.yaml', 'serviceaccounts', undefined],
    ['role.yaml', 'roles', 'rbac.authorization.k8s.io/v1'],
    ['rolebinding.yaml', 'rolebindings', 'rbac.authorization.k8s.io/v1'],
  ];
  for (const [file, plural, group] of targets) {
    for (const object of await deployManifests(file, clusterName)) {
      if (plural === 'roles') editRole(object);
      ok(await server.request(namespacedPath(namespace, plural, undefined, group), { method: 'POST', body: object }), `create ${file}`);
    }
  }
}

/** Creates any object (`kubectl create`) at its collection path; the API server validates it. */
export async function createObject(server: TestApiServer, path: string, body: Json, what: string): Promise<Json> {
  return ok(await server.request(path, { method: 'POST', body }), `create ${what}`).body as Json;
}

export const leasesGroup = 'coordination.k8s.io/v1';

/** deploy/kubernetes/lease.yaml for this Cluster, created as the admin: the operator's part (pgim may only get and update it). */
export async function createShippedLease(server: TestApiServer, namespace: string, clusterName: string): Promise<void> {
  const [lease] = await deployManifests('lease.yaml', clusterName);
  if (lease === undefined) throw new Error('deploy/kubernetes/lease.yaml holds no object');
  await createObject(server, namespacedPath(namespace, 'leases', undefined, leasesGroup), lease, `Lease ${clusterName}`);
}

/** A real ServiceAccount JWT from the TokenRequest API (signed by kube-apiserver; no controller-manager needed). */
export async function mintToken(server: TestApiServer, namespace: string, serviceAccount: string, expirationSeconds = 3607): Promise<string> {
  const res = ok(
    await server.request(`/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`, {
      method: 'POST',
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } },
    }),
    `TokenRequest for ${namespace}/${serviceAccount}`,
  );
  const minted = (res.body as { status?: { token?: string } }).status?.token;
  if (typeof minted !== 'string') throw new Error('TokenRequest returned no token');
  return minted;
}

export function clusterObject(name: string, options: TestClusterOptions = {}): Json {
  return clusterManifest({ ...options, name });
}

export async function createCluster(server: TestApiServer, namespace: string, object: Json): Promise<Json> {
  return createObject(server, namespacedPath(namespace, 'clusters', undefined, clustersGroup), object, 'Cluster');
}

export async function getCluster(server: TestApiServer, namespace: string, name: string): Promise<Json & { status?: Json; metadata: Json }> {
  return ok(await server.request(namespacedPath(namespace, 'clusters', name, clustersGroup)), `get Cluster ${name}`).body as Json & { status?: Json; metadata: Json };
}

/** A JSON merge patch of the Cluster (spec or metadata), as `kubectl patch --type merge` sends it. */
export async function patchCluster(server: TestApiServer, namespace: string, name: string, patch: Json): Promise<Json> {
  return ok(
    await server.request(namespacedPath(namespace, 'clusters', name, clustersGroup), { method: 'PATCH', body: patch, contentType: 'application/merge-patch+json' }),
    `patch Cluster ${name}`,
  ).body as Json;
}

export async function patchClusterStatus(server: TestApiServer, namespace: string, name: string, status: Json): Promise<Json> {
  return ok(
    await server.request(`${namespacedPath(namespace, 'clusters', name, clustersGroup)}/status`, {
      method: 'PATCH',
      body: { status },
      contentType: 'application/merge-patch+json',
    }),
    `patch Cluster ${name} status`,
  ).body as Json;
}

/**
 * Creates the Secret, or replaces its data (`kubectl apply` of a changed Secret). `type` applies at creation.
 * Resolves with the Secret's new resourceVersion (CNPG's operator records it in the Cluster's status).
 */
export async function putSecret(server: TestApiServer, namespace: string, name: string, data: Readonly<Record<string, string>>, type = 'kubernetes.io/basic-auth'): Promise<string> {
  const encoded = Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')]));
  let res = await server.request(namespacedPath(namespace, 'secrets'), {
    method: 'POST',
    body: { apiVersion: 'v1', kind: 'Secret', metadata: { name }, type, data: encoded },
  });
  if (res.status === 409) {
    res = await server.request(namespacedPath(namespace, 'secrets', name), { method: 'PATCH', body: { data: encoded }, contentType: 'application/merge-patch+json' });
  }
  const body = ok(res, `Secret ${name}`).body as { metadata?: { resourceVersion?: string } };
  return body.metadata?.resourceVersion ?? '';
}

export interface EventSummary {
  readonly reason: string;
  readonly type: string;
  readonly message: string;
  readonly involvedObject: { readonly kind?: string; readonly name?: string; readonly uid?: string };
  readonly reportingComponent?: string;
}

export async function listEvents(server: TestApiServer, namespace: string): Promise<EventSummary[]> {
  const res = ok(await server.request(namespacedPath(namespace, 'events')), 'list events');
  return ((res.body as { items?: EventSummary[] }).items ?? []);
}
