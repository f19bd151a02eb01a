import { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import type { SecretKeyRef } from './backup.js';

/**
 * `spec.externalClusters`, `spec.bootstrap.pg_basebackup` and `spec.replica` of a CloudNativePG Cluster (CNPG's
 * `ExternalCluster`, `BootstrapPgBaseBackup` and `ReplicaClusterConfiguration`): the other PostgreSQL servers this
 * cluster clones (a new cluster from a running one) or follows (a replica cluster).
 */

const secretKeySelector = z.object({ name: z.string().min(1, 'must name a Secret'), key: z.string().min(1, 'must name a key') }).loose();

/** libpq keywords pgim sets itself from the Secrets (or must not come from a manifest). */
const reservedParameters: Readonly<Record<string, string>> = {
  password: 'a password never goes into a manifest: use the `password` Secret reference',
  passfile: 'pgim writes the passfile from the `password` Secret reference',
  sslkey: 'use the `sslKey` Secret reference',
  sslcert: 'use the `sslCert` Secret reference',
  sslrootcert: 'use the `sslRootCert` Secret reference',
  replication: 'pgim chooses the replication mode',
};

export const externalClusterSchema = z
  .object({
    name: z.string().min(1, 'must not be empty'),
    connectionParameters: z
      .record(
        z.string().regex(/^[a-z_]+$/, 'must be a libpq keyword (lowercase letters and _)'),
        z.string({ error: 'must be a string' }).refine((s) => !s.includes('\0'), 'must not contain NUL'),
      )
      .optional(),
    sslCert: secretKeySelector.optional(),
    sslKey: secretKeySelector.optional(),
    sslRootCert: secretKeySelector.optional(),
    password: secretKeySelector.optional(),
    barmanObjectStore: z.record(z.string(), z.unknown()).optional(),
  })
  .loose();

/** `bootstrap.pg_basebackup.source`; its database, owner and secret are initdb's (checked the same way). */
export const cloneSource = z.string().min(1, 'must name an entry of spec.externalClusters');

export const replicaSchema = z
  .object({
    enabled: z.boolean().optional(),
    source: z.string().min(1, 'must name an entry of spec.externalClusters'),
    primary: z.string().optional(),
    self: z.string().optional(),
    promotionToken: z.string().optional(),
    minApplyDelay: z.string().optional(),
  })
  .loose();

/** An `externalClusters` entry as pgim connects to it. */
export interface ExternalCluster {
  readonly name: string;
  /** Where it sits in the manifest (`spec.externalClusters[2]`), for errors. */
  readonly field: string;
  readonly connectionParameters: Readonly<Record<string, string>>;
  readonly sslCert: SecretKeyRef | undefined;
  readonly sslKey: SecretKeyRef | undefined;
  readonly sslRootCert: SecretKeyRef | undefined;
  readonly password: SecretKeyRef | undefined;
  readonly hasObjectStore: boolean;
}

export interface ReplicaCluster {
  /** `spec.replica.source`: the cluster the designated primary streams from. */
  readonly source: ExternalCluster;
  /**
   * The source has only a barmanObjectStore (no connectionParameters): the designated primary follows it from the
   * archive with restore_command, bootstrapped by `bootstrap.recovery` from the same entry (CNPG's replica cluster
   * from an object store).
   */
  readonly archiveOnly: boolean;
}

export interface ExternalSources {
  readonly externalClusters: readonly ExternalCluster[];
  /** `bootstrap.pg_basebackup.source`: the server an empty PGDATA is cloned from. */
  readonly clone: ExternalCluster | undefined;
  /** `spec.replica` when this cluster is a replica cluster (CNPG's `IsReplica`); undefined otherwise. */
  readonly replica: ReplicaCluster | undefined;
}

interface SpecFields {
  externalClusters?: z.infer<typeof externalClusterSchema>[] | undefined;
  bootstrap?: { pg_basebackup?: { source: string } | undefined; recovery?: { source?: string | undefined } | undefined } | undefined;
  replica?: z.infer<typeof replicaSchema> | undefined;
}

/**
 * CNPG's `Cluster.IsReplica`: `enabled` when set; otherwise a replica unless `primary` names this cluster (`self`,
 * defaulting to the Cluster's name). The `primary`/`self` form lets one manifest serve every cluster of a
 * distributed topology; changing `primary` promotes one and would demote another.
 */
export function isReplicaCluster(replica: z.infer<typeof replicaSchema> | undefined, clusterName: string): boolean {
  if (replica === undefined) return false;
  if (replica.enabled !== undefined) return replica.enabled;
  return (replica.self ?? clusterName) !== replica.primary;
}

function resolveEntry(entry: z.infer<typeof externalClusterSchema>, index: number, source: string): ExternalCluster {
  const field = `spec.externalClusters[${index}]`;
  for (const key of Object.keys(entry.connectionParameters ?? {})) {
    const why = reservedParameters[key];
    if (why !== undefined) throw new ConfigError(source, `${field}.connectionParameters.${key}`, `is not accepted: ${why}`);
  }
  if (entry.sslKey !== undefined && entry.sslCert === undefined) throw new ConfigError(source, `${field}.sslCert`, 'is required with sslKey');
  if (entry.sslCert !== undefined && entry.sslKey === undefined) throw new ConfigError(source, `${field}.sslKey`, 'is required with sslCert');
  const ref = (r: { name: string; key: string } | undefined): SecretKeyRef | undefined => (r === undefined ? undefined : { name: r.name, key: r.key });
  return {
    name: entry.name,
    field,
    connectionParameters: entry.connectionParameters ?? {},
    sslCert: ref(entry.sslCert),
    sslKey: ref(entry.sslKey),
    sslRootCert: ref(entry.sslRootCert),
    password: ref(entry.password),
    hasObjectStore: entry.barmanObjectStore !== undefined,
  };
}

/** The entry a field names, which pgim must reach over the PostgreSQL protocol. */
function streamingSource(entries: readonly ExternalCluster[], name: string, field: string, source: string, purpose: string): ExternalCluster {
  const entry = entries.find((e) => e.name === name);
  if (entry === undefined) throw new ConfigError(source, field, `names "${name}", which is not an entry of spec.externalClusters`);
  if (Object.keys(entry.connectionParameters).length === 0) {
    const why = entry.hasObjectStore
      ? `${entry.field} has only a barmanObjectStore: ${purpose} from an object store is not implemented by pgim; give it connectionParameters`
      : `${entry.field} has no connectionParameters`;
    throw new ConfigError(source, field, why);
  }
  return entry;
}

export function resolveExternalSources(spec: SpecFields, clusterName: string, source: string): ExternalSources {
  const externalClusters = (spec.externalClusters ?? []).map((entry, index) => resolveEntry(entry, index, source));
  const names = new Set<string>();
  externalClusters.forEach((entry) => {
    if (names.has(entry.name)) throw new ConfigError(source, `${entry.field}.name`, `"${entry.name}" is listed twice`);
    names.add(entry.name);
  });
  const basebackup = spec.bootstrap?.pg_basebackup;
  const clone = basebackup === undefined ? undefined : streamingSource(externalClusters, basebackup.source, 'spec.bootstrap.pg_basebackup.source', source, 'cloning');
  const replica = spec.replica;
  if (replica?.promotionToken !== undefined && replica.promotionToken !== '') {
    throw new ConfigError(source, 'spec.replica.promotionToken', 'is not implemented by pgim: a demoted cluster cannot be promoted with a token; promote with enabled: false');
  }
  if (replica?.minApplyDelay !== undefined) throw new ConfigError(source, 'spec.replica.minApplyDelay', 'is not implemented by pgim');
  if (!isReplicaCluster(replica, clusterName) || replica === undefined) {
    // Still checked: a manifest that names an unknown source is wrong even while the cluster is not a replica.
    if (replica !== undefined && !names.has(replica.source)) throw new ConfigError(source, 'spec.replica.source', `names "${replica.source}", which is not an entry of spec.externalClusters`);
    return { externalClusters, clone, replica: undefined };
  }
  const entry = externalClusters.find((e) => e.name === replica.source);
  if (entry !== undefined && Object.keys(entry.connectionParameters).length === 0 && entry.hasObjectStore) {
    // CNPG: a replica cluster bootstraps with recovery or pg_basebackup from its source; from an object store only
    // a recovery can, and the designated primary then keeps following that store.
    if (spec.bootstrap?.recovery?.source !== replica.source) {
      throw new ConfigError(source, 'spec.bootstrap.recovery.source', `must name "${replica.source}": ${entry.field} has only a barmanObjectStore, so the replica cluster bootstraps by restoring from it (spec.replica.source)`);
    }
    return { externalClusters, clone, replica: { source: entry, archiveOnly: true } };
  }
  return { externalClusters, clone, replica: { source: streamingSource(externalClusters, replica.source, 'spec.replica.source', source, 'following a cluster'), archiveOnly: false } };
}
