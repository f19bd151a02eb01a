import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { eventually, freePort } from '../../test-kit/env.js';
import { ManagedProcess, type RawResponse, type TestApiServer } from '../k8s/apiserver.js';
import type { Json } from '../k8s/fixtures.js';

const run = promisify(execFile);

export const operatorNamespace = 'cnpg-system';
const operatorServiceAccount = 'cnpg-manager';

function ok(res: RawResponse, what: string): RawResponse {
  if ((res.status < 200 || res.status > 299) && res.status !== 409) throw new Error(`${what}: HTTP ${res.status}: ${res.text.slice(0, 2000)}`);
  return res;
}

/** Every CNPG CRD (the release's, from ../shared/data/cloudnative-pg/crds), created and Established. */
export async function installCnpgCrds(api: TestApiServer, crdDir: string): Promise<void> {
  const files = (await readdir(crdDir)).filter((f) => f.endsWith('.yaml')).sort();
  const names: string[] = [];
  for (const file of files) {
    const crd = parseYaml(await readFile(join(crdDir, file), 'utf8')) as Json & { metadata: { name: string } };
    ok(await api.request('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { method: 'POST', body: crd }), `create CRD ${file}`);
    names.push(crd.metadata.name);
  }
  for (const name of names) {
    await eventually(
      async () => {
        const got = await api.request(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
        const conditions = (got.body as { status?: { conditions?: { type: string; status: string }[] } } | undefined)?.status?.conditions ?? [];
        return conditions.some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined;
      },
      60_000,
      `CRD ${name} Established`,
    );
  }
  await eventually(async () => ((await api.request('/apis/postgresql.cnpg.io/v1/clusters')).status === 200 ? true : undefined), 30_000, 'clusters served');
}

/**
 * A CA (`ca.crt`) and a serving certificate for 127.0.0.1 (`apiserver.crt`/`apiserver.key`, openssl): the operator's
 * webhook server, the test kubelet's exec server. Returns the CA's PEM.
 */
export async function servingCertificates(dir: string, name = 'cnpg-webhook-service'): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const p = (file: string): string => join(dir, file);
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=pgim-test-${name}-ca`, '-keyout', p('ca.key'), '-out', p('ca.crt')]);
  await run('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-keyout', p('apiserver.key'), '-out', p('server.csr')]);
  await writeFile(p('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await run('openssl', ['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', p('ext.cnf'), '-out', p('apiserver.crt')]);
  return readFile(p('ca.crt'), 'utf8');
}

export interface OperatorFiles {
  /** The manager binary (scripts/build-cnpg-operator.sh). */
  readonly binary: string;
}

/**
 * CloudNativePG's operator (`manager controller`), unmodified, run out of cluster against the test control plane:
 * - its ClusterRole from the release (config/rbac/role.yaml) bound to the ServiceAccount cnpg-system/cnpg-manager,
 *   whose TokenRequest token is its only credential (a kubeconfig file in KUBECONFIG, which controller-runtime reads);
 * - its webhooks from the release (config/webhook/manifests.yaml), each pointed by URL at 127.0.0.1:<port> with the
 *   harness's CA, and WEBHOOK_CERT_DIR holding the serving certificate: the operator's supported mode for
 *   externally managed certificates (OLM, cert-manager), so it neither generates its own PKI nor patches the
 *   webhook configurations (its code is not changed);
 * - its working directory holds operator/manager_amd64 as its image does (the instance manager binaries it offers
 *   for in-place updates).
 */
export class CnpgOperator {
  private constructor(
    private readonly proc: ManagedProcess,
    readonly logPath: string,
  ) {}

  static async start(api: TestApiServer, files: OperatorFiles, dir: string): Promise<CnpgOperator> {
    const manifestDir = dirname(files.binary);
    await mkdir(dir, { recursive: true });
    ok(await api.request('/api/v1/namespaces', { method: 'POST', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: operatorNamespace } } }), 'operator namespace');
    ok(
      await api.request(`/api/v1/namespaces/${operatorNamespace}/serviceaccounts`, {
        method: 'POST',
        body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: operatorServiceAccount } },
      }),
      'operator ServiceAccount',
    );
    const role = parseYaml(await readFile(join(manifestDir, 'rbac-role.yaml'), 'utf8')) as Json & { metadata: Json };
    role.metadata = { name: 'cnpg-manager' };
    ok(await api.request('/apis/rbac.authorization.k8s.io/v1/clusterroles', { method: 'POST', body: role }), 'operator ClusterRole');
    ok(
      await api.request('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
        method: 'POST',
        body: {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRoleBinding',
          metadata: { name: 'cnpg-manager' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cnpg-manager' },
          subjects: [{ kind: 'ServiceAccount', name: operatorServiceAccount, namespace: operatorNamespace }],
        },
      }),
      'operator ClusterRoleBinding',
    );
    const token = ok(
      await api.request(`/api/v1/namespaces/${operatorNamespace}/serviceaccounts/${operatorServiceAccount}/token`, {
        method: 'POST',
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 86_400 } },
      }),
      'operator token',
    );
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, api.kubeconfigYaml({ token: (token.body as { status: { token: string } }).status.token }, operatorNamespace), { mode: 0o600 });

    const certDir = join(dir, 'webhook-certs');
    const caBundle = Buffer.from(await servingCertificates(certDir)).toString('base64');
    const webhookPort = await freePort();
    for (const doc of parseAllDocuments(await readFile(join(manifestDir, 'webhook-manifests.yaml'), 'utf8'))) {
      const config = doc.toJS() as (Json & { kind: string; metadata: { name: string }; webhooks: { clientConfig: { service?: { path: string }; url?: string; caBundle?: string } }[] }) | null;
      if (config === null) continue;
      config.metadata.name = `cnpg-${config.metadata.name}`;
      for (const hook of config.webhooks) {
        const path = hook.clientConfig.service?.path ?? '/';
        hook.clientConfig = { url: `https://127.0.0.1:${webhookPort}${path}`, caBundle };
      }
      const plural = config.kind === 'MutatingWebhookConfiguration' ? 'mutatingwebhookconfigurations' : 'validatingwebhookconfigurations';
      ok(await api.request(`/apis/admissionregistration.k8s.io/v1/${plural}`, { method: 'POST', body: config }), `create ${config.kind}`);
    }

    const workDir = join(dir, 'work');
    await mkdir(join(workDir, 'operator'), { recursive: true });
    await symlink(files.binary, join(workDir, 'operator', 'manager_amd64')).catch(() => undefined);
    const metricsPort = await freePort();
    const logPath = join(dir, 'operator.log');
    const proc = new ManagedProcess(
      'cnpg-operator',
      files.binary,
      ['controller', '--leader-elect=false', `--webhook-port=${webhookPort}`, `--metrics-bind-address=127.0.0.1:${metricsPort}`, '--log-level=debug'],
      logPath,
      {
        cwd: workDir,
        env: {
          PATH: process.env.PATH,
          HOME: dir,
          KUBECONFIG: kubeconfig,
          OPERATOR_NAMESPACE: operatorNamespace,
          WEBHOOK_CERT_DIR: certDir,
        },
      },
    );
    const operator = new CnpgOperator(proc, logPath);
    // Ready when its webhook server answers (it starts with the manager, after the caches).
    await eventually(
      async () => {
        if (!proc.running) throw new Error(`the CNPG operator exited:\n${(await proc.log()).slice(-4000)}`);
        const res = await api.request(`/apis/postgresql.cnpg.io/v1/namespaces/${operatorNamespace}/clusters?dryRun=All`, {
          method: 'POST',
          body: { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name: 'probe' }, spec: { instances: 1, storage: { size: '1Gi' } } },
        });
        return res.status === 201 ? true : undefined;
      },
      120_000,
      'the CNPG operator serving its webhooks',
    );
    return operator;
  }

  get running(): boolean {
    return this.proc.running;
  }

  async log(): Promise<string> {
    return this.proc.log();
  }

  async stop(): Promise<void> {
    await this.proc.stop();
  }
}
