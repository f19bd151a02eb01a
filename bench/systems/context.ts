import type { ProcessRegistry } from '../proc.js';
import type { KubernetesPlane } from './cnpg-plane.js';

/** What every system needs from the harness. */
export interface SystemContext {
  processes: ProcessRegistry;
  /** A folder of this run; each system instance makes its own subfolder in it. */
  workDir: string;
  /** etcd's client address (host:port) for Patroni's DCS, when Patroni is part of the run. */
  etcdHost?: string;
  /** The session's kube-apiserver for the `cnpg` and `pgim-k8s` systems, when one of them is part of the run. */
  kubernetes?: KubernetesPlane;
}

let sequence = 0;

/** A short unique name for a system instance's folder (and Patroni scope). */
export function instanceName(prefix: string): string {
  sequence += 1;
  return `${prefix}-${sequence}`;
}
