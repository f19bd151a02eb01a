import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Where a pod finds its ServiceAccount token, CA and namespace. `PGIM_SERVICE_ACCOUNT_DIR` moves it (a custom
 * projected-volume mount path; the tests use it to run the real in-cluster code path outside a pod).
 * This module has no client library import, so the CLI can ask "am I in a pod?" without loading it.
 */
export function serviceAccountDir(env: NodeJS.ProcessEnv = process.env): string {
  const custom = env.PGIM_SERVICE_ACCOUNT_DIR;
  return custom !== undefined && custom !== '' ? custom : '/var/run/secrets/kubernetes.io/serviceaccount';
}

/** In a pod: the kubelet sets KUBERNETES_SERVICE_HOST/PORT, and the (projected) token volume is mounted. */
export function inClusterAvailable(env: NodeJS.ProcessEnv = process.env): boolean {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  return host !== undefined && host !== '' && port !== undefined && port !== '' && existsSync(join(serviceAccountDir(env), 'token'));
}

/** `KUBECONFIG` may list several files like PATH; pgim reads one, the first, as client-go would for a write. */
export function ambientKubeconfig(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const first = env.KUBECONFIG?.split(':').find((part) => part !== '');
  return first;
}
