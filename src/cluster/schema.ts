import { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import { backupSchema, resolveBackup, type BackupConfiguration } from './backup.js';
import { certificatesSchema, resolveCertificateSecrets, type CertificateSecrets } from './certificates.js';
import { cloneSource, externalClusterSchema, replicaSchema, resolveExternalSources, type ExternalSources } from './external-clusters.js';
import { refuseUnsupportedFields } from './field-support.js';
import { recoverySchema, resolveRecovery, type RecoveryConfiguration } from './recovery.js';
import { managedSchema, resolveManagedRoles, type ManagedRole } from './managed-roles.js';
import { checkLocaleProviders, initdbOptionsShape, resolveInitdb, type InitdbSpec } from './initdb.js';
import { ldapSchema, resolveLdap, type LdapConfiguration } from './ldap.js';
import { isDnsLabel, isObjectName } from './names.js';
import { resolveTablespaces, tablespacesSchema, type TablespaceSpec } from './tablespaces.js';
import { monitoringSchema, probesSchema, resolveObservability, type ObservabilitySpec } from './observability.js';
import { replicationSlotsSchema, resolveSlotSynchronization, type SlotSynchronization } from './replication-slots.js';
import { resolveSynchronous, synchronousSchema, syncReplicasSchema, type SynchronousReplication } from './synchronous.js';

/**
 * The fields of a `postgresql.cnpg.io/v1` Cluster that pgim reads, with CloudNativePG's defaults. The other fields
 * are classified in ./field-support.ts: the operator's are accepted, the ones pgim does not implement are refused.
 */

const reservedDatabases = new Set(['postgres', 'template0', 'template1']);
const reservedOwners = new Set(['postgres', 'streaming_replica', 'cnpg_metrics_exporter', 'cnpg_pooler_pgbouncer']);

/** A PostgreSQL identifier pgim will quote: any text but NUL, at most NAMEDATALEN-1 bytes. */
const identifier = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => !s.includes('\0'), 'must not contain NUL')
  .refine((s) => Buffer.byteLength(s) <= 63, 'must be at most 63 bytes');

const secretRef = z.object({ name: z.string().refine(isObjectName, 'must be a Kubernetes object name') }).loose();

const seconds = z.number().int('must be a whole number of seconds').min(0, 'must not be negative').max(2_147_483_647);

const initdb = z
  .object({
    database: identifier.refine((s) => !reservedDatabases.has(s), 'is reserved by PostgreSQL').optional(),
    owner: identifier.refine((s) => !reservedOwners.has(s), 'is reserved for a role pgim manages').optional(),
    secret: secretRef.optional(),
    ...initdbOptionsShape,
  })
  .loose()
  .superRefine(checkLocaleProviders);

export const clusterManifestSchema = z
  .object({
    apiVersion: z.literal('postgresql.cnpg.io/v1', { error: 'must be postgresql.cnpg.io/v1' }),
    kind: z.literal('Cluster', { error: 'must be Cluster' }),
    metadata: z
      .object({
        name: z.string().max(50, 'must be at most 50 characters').refine(isDnsLabel, 'must be a DNS label (lowercase letters, digits, -)'),
        namespace: z.string().optional(),
        annotations: z.record(z.string(), z.string()).optional(),
      })
      .loose(),
    spec: z
      .object({
        instances: z.number().int('must be a whole number').min(1, 'must be at least 1').default(1),
        postgresql: z
          .object({
            parameters: z.record(z.string(), z.string({ error: 'must be a string (quote the value in YAML)' })).default({}),
            pg_hba: z.array(z.string({ error: 'must be a string' })).default([]),
            pg_ident: z.array(z.string({ error: 'must be a string' })).default([]),
            synchronous: synchronousSchema.optional(),
            ldap: ldapSchema.optional(),
          })
          .loose()
          .default({ parameters: {}, pg_hba: [], pg_ident: [] }),
        bootstrap: z.object({ initdb: initdb.optional(), pg_basebackup: initdb.extend({ source: cloneSource }).optional(), recovery: recoverySchema.optional() }).loose().optional(),
        externalClusters: z.array(externalClusterSchema).optional(),
        replica: replicaSchema.optional(),
        enableSuperuserAccess: z.boolean().default(false),
        superuserSecret: secretRef.optional(),
        smartShutdownTimeout: seconds.default(180),
        stopDelay: seconds.default(1800),
        switchoverDelay: seconds.default(3600),
        primaryUpdateStrategy: z.enum(['unsupervised', 'supervised']).default('unsupervised'),
        monitoring: monitoringSchema.optional(),
        probes: probesSchema.optional(),
        backup: backupSchema.optional(),
        managed: managedSchema.optional(),
        tablespaces: tablespacesSchema.optional(),
        minSyncReplicas: syncReplicasSchema.optional(),
        maxSyncReplicas: syncReplicasSchema.optional(),
        certificates: certificatesSchema.optional(),
        replicationSlots: replicationSlotsSchema.optional(),
      })
      .loose(),
    status: z
      .object({
        targetPrimary: z.string().optional(),
        currentPrimary: z.string().optional(),
        operatorCertificateFingerprint: z.string().optional(),
        certificates: certificatesSchema.optional(),
        managedRolesStatus: z
          .object({ passwordStatus: z.record(z.string(), z.object({ transactionID: z.number().optional(), resourceVersion: z.string().optional() }).loose()).optional() })
          .loose()
          .optional(),
        poolerIntegrations: z.object({ pgBouncerIntegration: z.object({ secrets: z.array(z.string()).optional() }).loose().optional() }).loose().optional(),
      })
      .loose()
      .optional(),
  })
  .loose();

export type ClusterManifest = z.infer<typeof clusterManifestSchema>;

/** What pgim works from: the manifest with every default resolved, so no consumer re-derives one. */
export interface Cluster {
  readonly name: string;
  readonly namespace: string | undefined;
  readonly annotations: Readonly<Record<string, string>>;
  readonly instances: number;
  readonly parameters: Readonly<Record<string, string>>;
  readonly pgHba: readonly string[];
  readonly pgIdent: readonly string[];
  /** spec.postgresql.ldap, when it asks for LDAP authentication (a pg_hba rule before the default one). */
  readonly ldap: LdapConfiguration | undefined;
  /** spec.certificates (else status.certificates, else CNPG's defaults): the Secrets the TLS material comes from. */
  readonly certificates: CertificateSecrets;
  readonly bootstrap: {
    readonly database: string;
    readonly owner: string;
    /** Secret holding the owner's `username` and `password`. */
    readonly secretName: string;
    /** initdb's options and the post-init SQL (bootstrap.initdb). */
    readonly initdb: InitdbSpec;
    /** spec.bootstrap.recovery: restore a backup instead of initdb (src/backup/restore.ts). */
    readonly recovery: RecoveryConfiguration | undefined;
  };
  readonly enableSuperuserAccess: boolean;
  readonly superuserSecretName: string;
  readonly smartShutdownTimeoutSeconds: number;
  readonly stopDelaySeconds: number;
  readonly switchoverDelaySeconds: number;
  readonly primaryUpdateStrategy: 'unsupervised' | 'supervised';
  readonly targetPrimary: string | undefined;
  readonly currentPrimary: string | undefined;
  /** spec.monitoring, spec.probes, status.operatorCertificateFingerprint, the server certificate Secret. */
  readonly observability: ObservabilitySpec;
  /** spec.backup: the object store WAL and base backups go to, retention, the backup target. */
  readonly backup: BackupConfiguration;
  /** spec.managed.roles, checked as CNPG's webhook does. */
  readonly managedRoles: readonly ManagedRole[];
  /** status.managedRolesStatus.passwordStatus: which Secret version and transaction each managed role last got. */
  readonly managedRolesPasswordStatus: Readonly<Record<string, { transactionID: number; resourceVersion: string }>>;
  /** status.poolerIntegrations.pgBouncerIntegration.secrets: CNPG's operator lists the PgBouncer Poolers it integrates. */
  readonly pgBouncerIntegrationSecrets: readonly string[];
  /** spec.externalClusters, the clone source of bootstrap.pg_basebackup, spec.replica (a replica cluster). */
  readonly external: ExternalSources;
  /** spec.tablespaces: created by the primary, each in its own folder. */
  readonly tablespaces: readonly TablespaceSpec[];
  /** spec.postgresql.synchronous or the legacy min/maxSyncReplicas; undefined: asynchronous standbys. */
  readonly synchronous: SynchronousReplication;
  /** spec.replicationSlots.synchronizeReplicas and updateInterval: replicas follow the primary's user slots. */
  readonly slotSynchronization: SlotSynchronization;
  /** Fields pgim does not implement that the `pgim.io/ignoreUnsupportedFields` annotation accepts ignoring. */
  readonly ignoredFields: readonly string[];
}

/** Throws ConfigError (naming `source`) when the manifest sets a field pgim does not implement. */
export function resolveCluster(manifest: ClusterManifest, source: string): Cluster {
  const { metadata, spec, status } = manifest;
  const ignoredFields = refuseUnsupportedFields(spec, metadata.annotations ?? {}, source);
  if (spec.bootstrap?.initdb !== undefined && spec.bootstrap.recovery !== undefined) {
    throw new ConfigError(source, 'spec.bootstrap', 'sets both initdb and recovery: only one bootstrap method is allowed');
  }
  // pg_basebackup's and recovery's application database, owner and Secret are the ones pgim creates or sets after
  // the clone or the restore.
  const appSpec = spec.bootstrap?.initdb ?? spec.bootstrap?.pg_basebackup ?? spec.bootstrap?.recovery;
  const database = appSpec?.database ?? 'app';
  const backup = resolveBackup(spec.backup, metadata.name);
  return {
    name: metadata.name,
    namespace: metadata.namespace,
    annotations: metadata.annotations ?? {},
    instances: spec.instances,
    parameters: spec.postgresql.parameters,
    pgHba: spec.postgresql.pg_hba,
    pgIdent: spec.postgresql.pg_ident,
    ldap: resolveLdap(spec.postgresql.ldap),
    certificates: resolveCertificateSecrets(spec.certificates, status?.certificates, metadata.name),
    bootstrap: {
      database,
      owner: appSpec?.owner ?? database,
      secretName: appSpec?.secret?.name ?? `${metadata.name}-app`,
      initdb: resolveInitdb(spec.bootstrap?.initdb),
      recovery: resolveRecovery(spec.bootstrap?.recovery, spec.externalClusters, backup, source),
    },
    enableSuperuserAccess: spec.enableSuperuserAccess,
    superuserSecretName: spec.superuserSecret?.name ?? `${metadata.name}-superuser`,
    smartShutdownTimeoutSeconds: spec.smartShutdownTimeout,
    stopDelaySeconds: spec.stopDelay,
    switchoverDelaySeconds: spec.switchoverDelay,
    primaryUpdateStrategy: spec.primaryUpdateStrategy,
    targetPrimary: status?.targetPrimary,
    currentPrimary: status?.currentPrimary,
    observability: resolveObservability(manifest, metadata.name),
    backup,
    managedRoles: resolveManagedRoles(spec.managed, spec.bootstrap?.initdb?.owner ?? database, source),
    managedRolesPasswordStatus: Object.fromEntries(
      Object.entries(status?.managedRolesStatus?.passwordStatus ?? {}).map(([role, state]) => [role, { transactionID: state.transactionID ?? 0, resourceVersion: state.resourceVersion ?? '' }]),
    ),
    pgBouncerIntegrationSecrets: status?.poolerIntegrations?.pgBouncerIntegration?.secrets ?? [],
    external: resolveExternalSources(spec, metadata.name, source),
    tablespaces: resolveTablespaces(spec.tablespaces),
    synchronous: resolveSynchronous(
      { instances: spec.instances, synchronous: spec.postgresql.synchronous, minSyncReplicas: spec.minSyncReplicas, maxSyncReplicas: spec.maxSyncReplicas },
      source,
    ),
    slotSynchronization: resolveSlotSynchronization(spec.replicationSlots),
    ignoredFields,
  };
}
