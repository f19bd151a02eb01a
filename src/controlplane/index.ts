import type { Logger } from 'pino';
import type { KubernetesOptions } from '../options/index.js';
import { FilesControlPlane } from './files.js';
import type { ControlPlane } from './types.js';

export type { BackupObject, ClusterCondition, ControlPlane, InstanceStatusReport, ManagedRolesStatus, ObjectData, PoolerObject, ReadOptions } from './types.js';
export { objectVersion } from './types.js';
export { phases, PrimaryLeaseError } from './types.js';

export interface ControlPlaneOptions {
  /** Files mode's config folder (ignored in Kubernetes mode). */
  configDir: string;
  /** Kubernetes mode when set. */
  kubernetes?: KubernetesOptions | undefined;
  podName?: string | undefined;
  logger: Logger;
  /** Aborts the wait for the API server (a stop requested before it answered). */
  signal?: AbortSignal | undefined;
}

/**
 * Picks the control plane for this process: the config folder, or the Kubernetes API (which this waits for, with
 * backoff, so nothing starts on a desired state that could not be read). Nothing else knows which one it got.
 */
export async function openControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  if (options.kubernetes === undefined) return new FilesControlPlane(options.configDir);
  // Loaded only in Kubernetes mode: the client library costs files mode nothing.
  const { openKubernetesControlPlane } = await import('./kubernetes.js');
  return openKubernetesControlPlane({ kubernetes: options.kubernetes, podName: options.podName, logger: options.logger }, options.signal);
}
