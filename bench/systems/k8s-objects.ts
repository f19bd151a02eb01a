import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { sleep } from '../../test-kit/env.js';
import type { RawResponse, TestApiServer } from '../../test-kit/k8s/apiserver.js';

/** The API objects the cnpg system creates, as JSON (read loosely: the API server validates them). */
export type Json = Record<string, unknown>;

function ok(res: RawResponse, what: string): RawResponse {
  if (res.status < 200 || res.status > 299) throw new Error(`${what}: HTTP ${res.status}: ${res.text.slice(0, 1000)}`);
  return res;
}

/** `/api/v1/namespaces/NS/PLURAL[/NAME]`, or under `/apis/GROUP` for a group's resources. */
export function namespacedPath(namespace: string, plural: string, name?: string, group?: string): string {
  const base = group === undefined ? `/api/v1/namespaces/${namespace}/${plural}` : `/apis/${group}/namespaces/${namespace}/${plural}`;
  return name === undefined ? base : `${base}/${name}`;
}

export async function createNamespace(api: TestApiServer, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  ok(await api.request('/api/v1/namespaces', { method: 'POST', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } }), `create namespace ${name}`);
  return name;
}

export async function createObject(api: TestApiServer, path: string, body: Json, what: string): Promise<void> {
  ok(await api.request(path, { method: 'POST', body }), `create ${what}`);
}

/** A JSON merge patch (`kubectl patch --type merge`), of the object or of its status subresource. */
export async function mergePatch(api: TestApiServer, path: string, patch: Json, what: string): Promise<void> {
  ok(await api.request(path, { method: 'PATCH', body: patch, contentType: 'application/merge-patch+json' }), `patch ${what}`);
}

/** Creates the Secret, or replaces its data (`kubectl apply` of a changed Secret). */
export async function putSecret(api: TestApiServer, namespace: string, name: string, data: Readonly<Record<string, string>>, type: string): Promise<string> {
  const encoded = Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')]));
  let res = await api.request(namespacedPath(namespace, 'secrets'), { method: 'POST', body: { apiVersion: 'v1', kind: 'Secret', metadata: { name }, type, data: encoded } });
  if (res.status === 409) {
    res = await api.request(namespacedPath(namespace, 'secrets', name), { method: 'PATCH', body: { data: encoded }, contentType: 'application/merge-patch+json' });
  }
  const body = ok(res, `Secret ${name}`).body as { metadata?: { resourceVersion?: string } };
  return body.metadata?.resourceVersion ?? '';
}

/** A ServiceAccount token from the TokenRequest API (what the kubelet projects into a pod). */
export async function mintToken(api: TestApiServer, namespace: string, serviceAccount: string, expirationSeconds: number): Promise<string> {
  const res = ok(
    await api.request(namespacedPath(namespace, 'serviceaccounts', `${serviceAccount}/token`), {
      method: 'POST',
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } },
    }),
    `TokenRequest for ${namespace}/${serviceAccount}`,
  );
  const token = (res.body as { status?: { token?: string } }).status?.token;
  if (typeof token !== 'string') throw new Error('TokenRequest returned no token');
  return token;
}

/** Every CRD in `dir`, created and Established, and clusters.postgresql.cnpg.io served. */
export async function installCrds(api: TestApiServer, dir: string): Promise<void> {
  const names: string[] = [];
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort()) {
    const crd = parseYaml(await readFile(join(dir, file), 'utf8')) as Json & { metadata: { name: string } };
    const res = await api.request('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { method: 'POST', body: crd });
    if (res.status !== 409) ok(res, `create CRD ${file}`);
    names.push(crd.metadata.name);
  }
  const deadline = Date.now() + 60_000;
  const established = async (name: string): Promise<boolean> => {
    const got = await api.request(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
    const conditions = (got.body as { status?: { conditions?: { type: string; status: string }[] } } | undefined)?.status?.conditions ?? [];
    return conditions.some((c) => c.type === 'Established' && c.status === 'True');
  };
  for (const name of names) {
    while (!(await established(name))) {
      if (Date.now() > deadline) throw new Error(`CRD ${name} not Established within 60 s`);
      await sleep(100);
    }
  }
  while ((await api.request('/apis/postgresql.cnpg.io/v1/clusters')).status !== 200) {
    if (Date.now() > deadline) throw new Error('clusters.postgresql.cnpg.io not served within 60 s');
    await sleep(100);
  }
}
