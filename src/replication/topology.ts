import type { Cluster } from '../cluster/schema.js';
import type { ControlPlane } from '../controlplane/index.js';
import { ConfigError } from '../errors/index.js';

export interface Address {
  host: string;
  port: number;
}

/** Who is who in the cluster, from this instance's point of view. */
export interface Topology {
  self: string;
  /** `status.targetPrimary`, or `<cluster>-1` before anyone set it (CNPG's first bootstrap). */
  primary: string;
  isPrimary: boolean;
  /** `<cluster>-1` .. `<cluster>-<instances>`. */
  instances: string[];
  addresses: ReadonlyMap<string, Address>;
  /**
   * Where an instance's status server (:8000) listens when the `<cluster>-hosts` ConfigMap says so (key
   * `<instance>.status`, `host:port`: a one-machine cluster); otherwise its pod IP or host on this instance's status port.
   */
  statusAddresses: ReadonlyMap<string, Address>;
}

/** The optional files-mode ConfigMap that maps instance names to `host:port` (a one-machine cluster). */
export const hostsConfigMap = (cluster: string): string => `${cluster}-hosts`;

/** `host`, `host:port` or `[v6]:port`, split without a backtracking regular expression. */
function parseAddress(text: string, source: string, key: string, defaultPort: number): Address {
  const value = text.trim();
  const bracketed = value.startsWith('[');
  const end = bracketed ? value.indexOf(']') : -1;
  const colon = bracketed ? (value[end + 1] === ':' ? end + 1 : -1) : value.indexOf(':');
  const host = bracketed ? value.slice(1, end) : colon === -1 ? value : value.slice(0, colon);
  const portText = colon === -1 ? '' : value.slice(colon + 1);
  const validHost = bracketed ? /^[0-9a-fA-F:]+$/.test(host) : /^[A-Za-z0-9.-]+$/.test(host);
  if (!validHost || (portText !== '' && !/^\d{1,5}$/.test(portText))) throw new ConfigError(source, key, 'must be host or host:port');
  const port = portText === '' ? defaultPort : Number(portText);
  if (port < 1 || port > 65535) throw new ConfigError(source, key, 'port out of range');
  return { host, port };
}

/**
 * Instance names come from the Cluster; each instance is reached at its own name on port 5432 (Compose service
 * names, headless-service pod names), unless the `<cluster>-hosts` ConfigMap gives `host:port` for it; in Kubernetes
 * mode the primary is reached through the `<cluster>-rw` Service (see ControlPlane.primaryServiceHost).
 */
export async function resolveTopology(cluster: Cluster, self: string, controlPlane: ControlPlane): Promise<Topology> {
  const instances = Array.from({ length: cluster.instances }, (_, i) => `${cluster.name}-${i + 1}`);
  const name = hostsConfigMap(cluster.name);
  // A single instance never needs peer addresses (nor read access to this ConfigMap).
  const hosts = cluster.instances > 1 ? await controlPlane.readConfigMap(name, { optional: true }) : undefined;
  const addresses = new Map<string, Address>();
  const statusAddresses = new Map<string, Address>();
  for (const instance of new Set([...instances, self])) {
    const entry = hosts?.get(instance);
    addresses.set(instance, entry ? parseAddress(entry.toString('utf8'), `configmap ${name}`, instance, 5432) : { host: instance, port: 5432 });
    const status = hosts?.get(`${instance}.status`);
    if (status !== undefined) statusAddresses.set(instance, parseAddress(status.toString('utf8'), `configmap ${name}`, `${instance}.status`, 8000));
  }
  const primary = cluster.targetPrimary ?? `${cluster.name}-1`;
  const primaryService = hosts?.get(primary) === undefined ? controlPlane.primaryServiceHost?.(cluster.name) : undefined;
  if (primaryService !== undefined) addresses.set(primary, { host: primaryService, port: 5432 });
  else if (!addresses.has(primary)) addresses.set(primary, { host: primary, port: 5432 });
  return { self, primary, isPrimary: primary === self, instances, addresses, statusAddresses };
}

/** CNPG's default `replicationSlots.highAvailability.slotPrefix` (the only one pgim accepts). */
export const haSlotPrefix = '_cnpg_';

/** CNPG's HA slot name for an instance: `_cnpg_` + the name with every non-[a-z0-9_] character as `_`. */
export function haSlotName(instance: string): string {
  return `${haSlotPrefix}${instance.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
}
