import { archiveCommand, loadBackupState, type BackupState } from '../backup/runtime.js';
import { restoreCommand } from '../backup/restore-runtime.js';
import type { Cluster } from '../cluster/schema.js';
import type { ControlPlane } from '../controlplane/index.js';
import { resolveCredentials, type Credentials } from '../credentials/index.js';
import { readLdapBindPassword } from '../credentials/ldap.js';
import type { InstanceOptions, RuntimeLayout } from '../options/index.js';
import { podNameFor, runtimeLayout } from '../options/index.js';
import { ConfigError } from '../errors/index.js';
import { conninfoValue, replicationConninfo } from '../replication/conninfo.js';
import { loadExternalConnection, type ExternalConnection } from '../replication/external.js';
import { haSlotName, resolveTopology, type Topology } from '../replication/topology.js';
import { formatSynchronousStandbyNames, synchronousStandbyNamesConfig, type StandbyNamesConfig } from '../replication/synchronous.js';
import { certificatePaths } from '../tls/files.js';
import { loadTlsMaterial, type TlsMaterial } from '../tls/material.js';
import { certificateCovers } from '../tls/validate.js';
import { renderConfiguration, type RenderedConfiguration } from '../render/index.js';
import { currentOsUserName, isRoot, lookupUser } from '../process/privileges.js';

/** Everything read and validated before pgim touches the disk. */
export interface DesiredState {
  controlPlane: ControlPlane;
  cluster: Cluster;
  credentials: Credentials;
  rendered: RenderedConfiguration;
  layout: RuntimeLayout;
  osUser: string;
  port: number;
  tls: TlsMaterial | undefined;
  topology: Topology;
  /** spec.backup's credentials, read from their Secrets. */
  backup: BackupState;
  /** A replica cluster's designated primary (this instance): how it reaches `spec.replica.source`. */
  replicaSource: ExternalConnection | undefined;
  /** The rendered `synchronous_standby_names` (undefined: asynchronous standbys). */
  synchronous: StandbyNamesConfig | undefined;
  /** The standbys this primary saw streaming when it rendered (empty on a replica). */
  streamingStandbys: readonly string[];
}

/** Promise.all, except that the error reported is the first one in the array's order, not the first to happen. */
async function allInOrder<T extends readonly unknown[]>(promises: { readonly [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((result) => result.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  return settled.map((result) => (result as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

/**
 * Reads the Cluster (unless the caller just read it) and its Secrets and renders every file, all in memory. Any
 * ConfigError surfaces here, before a folder is created or a byte written. `streaming`: the standbys a primary sees
 * streaming (they order, and under `dataDurability: preferred` make, `synchronous_standby_names`).
 */
export async function loadDesiredState(options: InstanceOptions, controlPlane: ControlPlane, read?: Cluster, streaming: readonly string[] = []): Promise<DesiredState> {
  const cluster = read ?? (await controlPlane.readCluster());
  const osUser = isRoot() ? lookupUser(options.user).name : currentOsUserName();
  const layout = runtimeLayout(options.runtimeDir);
  // The Secrets and ConfigMaps are read at once (a failover waits for this load); the first error in this order wins.
  const [credentials, tls, topology, backup, ldapBindPassword] = await allInOrder([
    resolveCredentials(controlPlane, cluster),
    loadTlsMaterial(controlPlane, cluster.certificates),
    resolveTopology(cluster, podNameFor(options, cluster.name), controlPlane),
    loadBackupState(controlPlane, cluster),
    readLdapBindPassword(controlPlane, cluster),
  ] as const);
  const replica = cluster.external.replica;
  const replicaSource = replica !== undefined && topology.isPrimary ? await loadExternalConnection(controlPlane, replica.source, layout.root) : undefined;
  // Every instance renders it (a replica as its primary would), so a promoted replica already waits for its standbys.
  const synchronous = synchronousStandbyNamesConfig(cluster.synchronous, {
    clusterName: cluster.name,
    primary: topology.primary,
    instances: topology.instances,
    streaming: topology.isPrimary ? streaming : [],
  });
  const rendered = renderConfiguration({
    cluster,
    source: controlPlane.clusterSource,
    osUser,
    port: options.pgPort,
    listenAddresses: options.listenAddress,
    socketDirectory: layout.socketDir,
    logDirectory: layout.logDir,
    ...(tls === undefined ? {} : { tls: { certificatesDirectory: layout.certificatesDir, fingerprint: tls.fingerprint } }),
    ...(replicaSource !== undefined
      ? { replication: designatedPrimarySettings(replicaSource, topology.self) }
      : topology.isPrimary
        ? {}
        : {
            replication: {
              ...replicaSettings(topology, tls, layout, controlPlane.clusterSource),
              ...(cluster.backup.barmanObjectStore === undefined ? {} : { restoreCommand: restoreCommand(layout.root) }),
            },
          }),
    // Archiving only with an object store: CNPG turns archive_mode on for every cluster, but without a store each
    // segment would cost a process start for nothing. Adding a store later needs a restart (done in place when
    // primaryUpdateStrategy is unsupervised).
    ...(cluster.backup.barmanObjectStore === undefined ? {} : { archiveCommand: archiveCommand(layout.root) }),
    synchronousStandbyNames: formatSynchronousStandbyNames(synchronous),
    ...(ldapBindPassword === undefined ? {} : { ldapBindPassword }),
  });
  return { controlPlane, cluster, credentials, rendered, layout, osUser, port: options.pgPort, tls, topology, backup, replicaSource, synchronous, streamingStandbys: topology.isPrimary ? streaming : [] };
}

/**
 * A replica cluster's designated primary streams from the source cluster with the externalClusters entry's
 * conninfo (no slot there, CNPG's UpdateReplicaConfiguration), named after itself unless the entry names it.
 */
function designatedPrimarySettings(source: ExternalConnection, self: string): { primaryConninfo: string; slotName: undefined } {
  const named = /(^|\s)application_name=/.test(source.conninfo);
  return { primaryConninfo: named ? source.conninfo : `${source.conninfo} application_name=${conninfoValue(self)}`, slotName: undefined };
}

/** How a replica reaches its primary: by certificate, verify-full when the primary's name is in its certificate. */
function replicaSettings(topology: Topology, tls: TlsMaterial | undefined, layout: RuntimeLayout, source: string): { primaryConninfo: string; slotName: string } {
  if (!tls) throw new ConfigError(source, 'spec.instances', `${topology.self} is a replica: replication needs the TLS Secrets (pgim certs creates them)`);
  return { primaryConninfo: primaryConninfo(topology, tls, layout, topology.self), slotName: haSlotName(topology.self) };
}

export function primaryConninfo(topology: Topology, tls: TlsMaterial, layout: RuntimeLayout, applicationName: string): string {
  const address = topology.addresses.get(topology.primary) ?? { host: topology.primary, port: 5432 };
  const paths = certificatePaths(layout.certificatesDir);
  return replicationConninfo({
    host: address.host,
    port: address.port,
    applicationName,
    certificate: paths.replicationCert,
    key: paths.replicationKey,
    rootCertificate: paths.serverCa,
    sslmode: certificateCovers(tls.serverCert, address.host) ? 'verify-full' : 'verify-ca',
  });
}
