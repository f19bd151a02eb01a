import { readFileSync } from 'node:fs';
import type { OutgoingHttpHeaders } from 'node:http';
import type { RequestOptions } from 'node:https';
import { isIPv6 } from 'node:net';
import { dirname, isAbsolute, join } from 'node:path';
import type { KubeConfig, User } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { assertRegularFileSync, readRegularFile } from '../../fs/confined.js';
import type { KubernetesOptions } from '../../options/index.js';
import { serviceAccountDir } from './environment.js';

/** A token or CA file (re-read for every request) is never larger than a Secret; and never a FIFO that could block. */
const maxCredentialBytes = 1024 * 1024;

async function readCredentialFile(path: string): Promise<Buffer> {
  try {
    return await readRegularFile(path, maxCredentialBytes);
  } catch (err) {
    throw new Error(`${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** What each request needs: the TLS trust and client identity, and the Authorization header. */
export interface RequestCredentials {
  applyToHTTPSOptions(options: RequestOptions): Promise<void>;
}

/** How pgim reaches the API server, and as whom. */
export interface ApiConnection {
  /** client-node's KubeConfig for a kubeconfig file; pgim's own reader of the ServiceAccount volume in a pod. */
  readonly credentials: RequestCredentials;
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
    const token = (await readCredentialFile(path)).toString('utf8').trim();
    opts.headers = { ...opts.headers, Authorization: `Bearer ${token}` };
  },
};

function tokenFileUser(name: string, path: string): User {
  return { name, authProvider: { name: tokenFileProvider, config: { path } } };
}

/**
 * The pod's own identity: the ServiceAccount token and the cluster CA from the projected volume, both read for
 * every request (the kubelet rotates them with an atomic `..data` swap). pgim reads them itself here: loading
 * client-node, whose generated API models pgim never uses, costs ~65 MB of RSS and ~0.4 s, and in a pod nothing
 * else of it is needed. Kubeconfig files (exec plugins, OIDC, client certificates) still go through client-node.
 */
class ServiceAccountCredentials implements RequestCredentials {
  constructor(private readonly dir: string) {}

  async applyToHTTPSOptions(options: RequestOptions): Promise<void> {
    const [ca, token] = await Promise.all([readCredentialFile(join(this.dir, 'ca.crt')), readCredentialFile(join(this.dir, 'token'))]);
    options.ca = ca;
    // KubeClient always passes its headers as an object.
    options.headers = { ...(options.headers as OutgoingHttpHeaders | undefined), Authorization: `Bearer ${token.toString('utf8').trim()}` };
  }
}

function inClusterConfig(): { credentials: RequestCredentials; server: string; namespaceFromFile: string | undefined } {
  const dir = serviceAccountDir();
  const host = process.env.KUBERNETES_SERVICE_HOST ?? '';
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '';
  if (host === '' || port === '') throw new Error('in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set');
  let namespaceFromFile: string | undefined;
  try {
    assertRegularFileSync(join(dir, 'namespace'));
    namespaceFromFile = readFileSync(join(dir, 'namespace'), 'utf8').trim() || undefined;
  } catch {
    namespaceFromFile = undefined;
  }
  return { credentials: new ServiceAccountCredentials(dir), server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`, namespaceFromFile };
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

async function kubeconfigFileConfig(path: string): Promise<KubeConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kubeConfig = new KubeConfig();
  kubeConfig.addAuthenticator(tokenFileAuthenticator);
  try {
    // client-node reads the file synchronously: a FIFO would block the event loop for ever.
    assertRegularFileSync(path);
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
export async function loadConnection(options: KubernetesOptions): Promise<ApiConnection> {
  let credentials: RequestCredentials;
  let server: string | undefined;
  let fallbackNamespace: string | undefined;
  let source: string;
  if (options.kubeconfig === undefined) {
    const inCluster = inClusterConfig();
    credentials = inCluster.credentials;
    server = inCluster.server;
    fallbackNamespace = inCluster.namespaceFromFile;
    source = `in-cluster (${serviceAccountDir()})`;
  } else {
    const kubeConfig = await kubeconfigFileConfig(options.kubeconfig);
    credentials = kubeConfig;
    server = kubeConfig.getCurrentCluster()?.server;
    fallbackNamespace = kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace;
    source = `kubeconfig ${options.kubeconfig}`;
  }
  if (server === undefined || server === '') throw new Error(`${source}: no current cluster (server) is set`);
  const namespace = options.namespace ?? fallbackNamespace;
  if (namespace === undefined || namespace === '') {
    throw new Error(`${source}: no namespace: set --namespace (NAMESPACE) or a namespace in the kubeconfig context`);
  }
  return { credentials, server: server.replace(/\/+$/, ''), namespace, source };
}
