import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { OutgoingHttpHeaders } from 'node:http';
import { isIPv6 } from 'node:net';
import { dirname, isAbsolute, join } from 'node:path';
import { KubeConfig, type User } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import type { KubernetesOptions } from '../../options/index.js';
import { serviceAccountDir } from './environment.js';

/** How pgim reaches the API server, and as whom. */
export interface ApiConnection {
  readonly kubeConfig: KubeConfig;
  readonly server: string;
  readonly namespace: string;
  /** For logs: `in-cluster` or `kubeconfig <path>`. */
  readonly source: string;
}

const tokenFileProvider = 'pgim-token-file';

type Authenticator = Parameters<KubeConfig['addAuthenticator']>[0];

/**
 * Reads a bearer token from its file on every request. A projected ServiceAccount token is rotated by the kubelet
 * (an atomic `..data` swap) well before it expires; reading it each time means a rotated token is used at once,
 * with no cache to go stale (client-node's own file auth keeps a copy for 60 s). The file is small and requests are
 * few, so the read costs nothing that matters.
 */
const tokenFileAuthenticator: Authenticator = {
  isAuthProvider(user: User): boolean {
    return (user.authProvider as { name?: unknown } | undefined)?.name === tokenFileProvider;
  },
  async applyAuthentication(user: User, opts: { headers?: OutgoingHttpHeaders }): Promise<void> {
    const path = (user.authProvider as { config: { path: string } }).config.path;
    const token = (await readFile(path, 'utf8')).trim();
    opts.headers = { ...opts.headers, Authorization: `Bearer ${token}` };
  },
};

function tokenFileUser(name: string, path: string): User {
  return { name, authProvider: { name: tokenFileProvider, config: { path } } };
}

/** The pod's own identity: the ServiceAccount token, the cluster CA and the namespace from the projected volume. */
function inClusterConfig(): { kubeConfig: KubeConfig; namespaceFromFile: string | undefined } {
  const dir = serviceAccountDir();
  const host = process.env.KUBERNETES_SERVICE_HOST ?? '';
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '';
  if (host === '' || port === '') throw new Error('in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set');
  const kubeConfig = new KubeConfig();
  kubeConfig.addAuthenticator(tokenFileAuthenticator);
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'in-cluster', server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`, caFile: join(dir, 'ca.crt'), skipTLSVerify: false }],
    users: [tokenFileUser('service-account', join(dir, 'token'))],
    contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'service-account' }],
    currentContext: 'in-cluster',
  });
  let namespaceFromFile: string | undefined;
  try {
    namespaceFromFile = readFileSync(join(dir, 'namespace'), 'utf8').trim() || undefined;
  } catch {
    namespaceFromFile = undefined;
  }
  return { kubeConfig, namespaceFromFile };
}

/** The `token-file` of the current context's user, if the kubeconfig names one (client-node reads it only once). */
function kubeconfigTokenFile(path: string, kubeConfig: KubeConfig): string | undefined {
  const doc = parseYaml(readFileSync(path, 'utf8')) as { users?: { name?: unknown; user?: { 'token-file'?: unknown } }[] } | null;
  const userName = kubeConfig.getCurrentUser()?.name;
  const entry = doc?.users?.find((user) => user.name === userName);
  const tokenFile = entry?.user?.['token-file'];
  if (typeof tokenFile !== 'string' || tokenFile === '') return undefined;
  return isAbsolute(tokenFile) ? tokenFile : join(dirname(path), tokenFile);
}

function kubeconfigFileConfig(path: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.addAuthenticator(tokenFileAuthenticator);
  try {
    kubeConfig.loadFromFile(path);
  } catch (err) {
    throw new Error(`kubeconfig ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const tokenFile = kubeconfigTokenFile(path, kubeConfig);
  const current = kubeConfig.getCurrentUser();
  if (tokenFile !== undefined && current !== null) {
    kubeConfig.loadFromOptions({
      clusters: kubeConfig.getClusters(),
      users: kubeConfig.getUsers().map((user) => (user.name === current.name ? tokenFileUser(user.name, tokenFile) : user)),
      contexts: kubeConfig.getContexts(),
      currentContext: kubeConfig.getCurrentContext(),
    });
  }
  return kubeConfig;
}

/** Resolves the API server, credentials and namespace. Throws a plain Error naming what is missing. */
export function loadConnection(options: KubernetesOptions): ApiConnection {
  let kubeConfig: KubeConfig;
  let fallbackNamespace: string | undefined;
  let source: string;
  if (options.kubeconfig === undefined) {
    const inCluster = inClusterConfig();
    kubeConfig = inCluster.kubeConfig;
    fallbackNamespace = inCluster.namespaceFromFile;
    source = `in-cluster (${serviceAccountDir()})`;
  } else {
    kubeConfig = kubeconfigFileConfig(options.kubeconfig);
    fallbackNamespace = kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace;
    source = `kubeconfig ${options.kubeconfig}`;
  }
  const server = kubeConfig.getCurrentCluster()?.server;
  if (server === undefined || server === '') throw new Error(`${source}: no current cluster (server) is set`);
  const namespace = options.namespace ?? fallbackNamespace;
  if (namespace === undefined || namespace === '') {
    throw new Error(`${source}: no namespace: set --namespace (NAMESPACE) or a namespace in the kubeconfig context`);
  }
  return { kubeConfig, server: server.replace(/\/+$/, ''), namespace, source };
}
