import { FilesControlPlane } from './files.js';
import type { ControlPlane } from './types.js';

export type { ControlPlane, InstanceStatusReport, ObjectData } from './types.js';

export interface ControlPlaneOptions {
  configDir: string;
}

/** Picks the control plane for this process. Kubernetes mode joins here, behind the same interface. */
export function openControlPlane(options: ControlPlaneOptions): ControlPlane {
  return new FilesControlPlane(options.configDir);
}
