import { z } from 'zod';
import { isReplicaCluster } from './external-clusters.js';
import { certificatesSchema, resolveCertificateSecrets } from './certificates.js';
import { isObjectName } from './names.js';
import { parseGoDuration, parseQuantity } from './units.js';

/**
 * The Cluster fields the status and metrics servers read: `spec.monitoring`, `spec.probes`,
 * `status.operatorCertificateFingerprint` and the server certificate's Secret, with CNPG's defaults resolved.
 */
export interface ObservabilitySpec {
  readonly monitoring: MonitoringSpec;
  readonly probes: ProbesSpec;
  /** Hex SHA-256 of the operator client certificate's SubjectPublicKeyInfo; undefined until the operator registers. */
  readonly operatorCertificateFingerprint: string | undefined;
  /** `status.certificates.serverTLSSecret`, default `<cluster>-server` (keys `tls.crt`, `tls.key`). */
  readonly serverTlsSecretName: string;
  /** What CNPG's metrics exporter reads from the cached Cluster (`reconcileMetrics`, `collectNodesUsed`, backups). */
  readonly clusterFacts: ClusterMetricFacts;
}

/** The Cluster fields behind CNPG's cluster-level `cnpg_collector_*` gauges. */
export interface ClusterMetricFacts {
  /** CNPG's `IsReplica` (`spec.replica.enabled`, or `primary` naming another cluster): `cnpg_collector_replica_mode`. */
  readonly replicaMode: boolean;
  readonly minSyncReplicas: number;
  readonly maxSyncReplicas: number;
  /** `spec.postgresql.synchronous.number` (CNPG's expected synchronous replicas), when set. */
  readonly synchronousNumber?: number;
  /** `status.phase` and `status.currentPrimary` (`cnpg_collector_manual_switchover_required`). */
  readonly phase: string | undefined;
  readonly currentPrimary: string | undefined;
  /** `status.topology.nodesUsed` when `successfullyExtracted`, else -1 (`cnpg_collector_nodes_used`). */
  readonly nodesUsed: number;
  /** RFC 3339 times from the status, written by backups (CNPG's deprecated backup gauges); undefined: none yet. */
  readonly firstRecoverabilityPoint: string | undefined;
  readonly lastSuccessfulBackup: string | undefined;
  readonly lastFailedBackup: string | undefined;
}

export interface QueriesSource {
  readonly kind: 'configmap' | 'secret';
  readonly name: string;
  readonly key: string;
}

export interface MonitoringSpec {
  /** `customQueriesConfigMap[]` then `customQueriesSecret[]`, in that order (a later query with the same name wins). */
  readonly customQueries: readonly QueriesSource[];
  readonly disableDefaultQueries: boolean;
  /** `metricsQueriesTTL` in seconds, default 30; 0 means "collect on every scrape" (coalesced). */
  readonly queriesTtlSeconds: number;
  /** `tls.enabled`: the operator would pass `--metrics-port-tls`. */
  readonly tlsEnabled: boolean;
}

export type ProbeType = 'pg_isready' | 'query' | 'streaming';

export interface ProbeStrategy {
  readonly type: ProbeType;
  /** Bytes; only for `streaming`. */
  readonly maximumLag: number | undefined;
}

export interface ProbesSpec {
  readonly startup: ProbeStrategy;
  readonly readiness: ProbeStrategy;
  /** `liveness.isolationCheck` when enabled (CNPG's pinger; see src/webserver/isolation-check.ts); undefined: off. */
  readonly isolationCheck: IsolationCheck | undefined;
}

/** `spec.probes.liveness.isolationCheck`, CNPG's defaults applied (1000 ms each, as its CRD writes them). */
export interface IsolationCheck {
  readonly requestTimeoutMs: number;
  readonly connectionTimeoutMs: number;
}

const keySelector = z
  .object({
    name: z.string().refine(isObjectName, 'must be a Kubernetes object name'),
    key: z.string().min(1, 'must not be empty'),
  })
  .loose();

const probe = z
  .object({
    type: z.enum(['pg_isready', 'query', 'streaming']).default('pg_isready'),
    maximumLag: z
      .union([z.number(), z.string()])
      .refine((v) => parseQuantity(v) !== undefined, 'must be a quantity of bytes, e.g. 64Mi')
      .optional(),
  })
  .loose();

/** `spec.monitoring` and `spec.probes` of the Cluster schema (src/cluster/schema.ts). */
export const monitoringSchema = z
  .object({
    customQueriesConfigMap: z.array(keySelector).default([]),
    customQueriesSecret: z.array(keySelector).default([]),
    disableDefaultQueries: z.boolean().default(false),
    metricsQueriesTTL: z
      .string()
      .refine((v) => parseGoDuration(v) !== undefined, 'must be a duration such as 30s or 1m')
      .optional(),
    tls: z.object({ enabled: z.boolean().default(false) }).loose().optional(),
  })
  .loose();

/** 0 is Go's omitted value: the CRD's default (1000 ms) applies. */
const milliseconds = z.number().int('must be a whole number of milliseconds').min(0, 'must not be negative').max(3_600_000);

const liveness = z
  .object({
    isolationCheck: z
      .object({ enabled: z.boolean().optional(), requestTimeout: milliseconds.optional(), connectionTimeout: milliseconds.optional() })
      .loose()
      .optional(),
  })
  .loose();

export const probesSchema = z.object({ startup: probe.optional(), readiness: probe.optional(), liveness: liveness.optional() }).loose();

export const observabilityManifestSchema = z
  .object({
    spec: z.object({ monitoring: monitoringSchema.optional(), probes: probesSchema.optional(), certificates: certificatesSchema.optional() }).loose(),
    status: z
      .object({
        operatorCertificateFingerprint: z.string().optional(),
        certificates: certificatesSchema.optional(),
      })
      .loose()
      .optional(),
  })
  .loose();

/** Read leniently: a field of the wrong type only makes its gauge read "unknown", it never refuses the Cluster. */
const lenient = <T extends z.ZodType>(schema: T) => schema.optional().catch(undefined);

const clusterFactsSchema = z
  .object({
    spec: z
      .object({
        replica: lenient(z.object({ enabled: lenient(z.boolean()), source: z.string().catch(''), primary: lenient(z.string()), self: lenient(z.string()) }).loose()),
        minSyncReplicas: lenient(z.number().int().min(0)),
        maxSyncReplicas: lenient(z.number().int().min(0)),
        postgresql: lenient(z.object({ synchronous: lenient(z.object({ number: lenient(z.number().int()) }).loose()) }).loose()),
      })
      .loose()
      .catch({}),
    status: lenient(
      z
        .object({
          phase: lenient(z.string()),
          currentPrimary: lenient(z.string()),
          topology: lenient(z.object({ successfullyExtracted: lenient(z.boolean()), nodesUsed: lenient(z.number().int()) }).loose()),
          firstRecoverabilityPoint: lenient(z.string()),
          lastSuccessfulBackup: lenient(z.string()),
          lastFailedBackup: lenient(z.string()),
        })
        .loose(),
    ),
  })
  .loose();

function clusterFacts(manifest: unknown, name: string): ClusterMetricFacts {
  const parsed = clusterFactsSchema.safeParse(manifest);
  const spec = parsed.success ? parsed.data.spec : {};
  const status = parsed.success ? parsed.data.status : undefined;
  return {
    replicaMode: isReplicaCluster(spec.replica, name),
    minSyncReplicas: spec.minSyncReplicas ?? 0,
    maxSyncReplicas: spec.maxSyncReplicas ?? 0,
    ...(spec.postgresql?.synchronous?.number === undefined ? {} : { synchronousNumber: spec.postgresql.synchronous.number }),
    phase: status?.phase,
    currentPrimary: status?.currentPrimary,
    nodesUsed: status?.topology?.successfullyExtracted === true ? (status.topology.nodesUsed ?? -1) : -1,
    firstRecoverabilityPoint: status?.firstRecoverabilityPoint,
    lastSuccessfulBackup: status?.lastSuccessfulBackup,
    lastFailedBackup: status?.lastFailedBackup,
  };
}

export type ObservabilityManifest = z.infer<typeof observabilityManifestSchema>;

const defaultProbe: ProbeStrategy = { type: 'pg_isready', maximumLag: undefined };

/** Absent: no check (CNPG's instance manager checks nothing without it; its webhook writes `enabled: true`). */
function resolveIsolationCheck(p: z.infer<typeof liveness> | undefined): IsolationCheck | undefined {
  const check = p?.isolationCheck;
  if (check === undefined || check.enabled === false) return undefined;
  const orDefault = (ms: number | undefined): number => (ms === undefined || ms === 0 ? 1000 : ms);
  return { requestTimeoutMs: orDefault(check.requestTimeout), connectionTimeoutMs: orDefault(check.connectionTimeout) };
}

function resolveProbe(p: z.infer<typeof probe> | undefined): ProbeStrategy {
  if (!p) return defaultProbe;
  return { type: p.type, maximumLag: p.maximumLag === undefined ? undefined : parseQuantity(p.maximumLag) };
}

export function resolveObservability(manifest: ObservabilityManifest, clusterName: string): ObservabilitySpec {
  const monitoring = manifest.spec.monitoring;
  const probes = manifest.spec.probes;
  const status = manifest.status;
  const fingerprint = status?.operatorCertificateFingerprint?.trim().toLowerCase();
  return {
    monitoring: {
      customQueries: [
        ...(monitoring?.customQueriesConfigMap ?? []).map((r) => ({ kind: 'configmap' as const, name: r.name, key: r.key })),
        ...(monitoring?.customQueriesSecret ?? []).map((r) => ({ kind: 'secret' as const, name: r.name, key: r.key })),
      ],
      disableDefaultQueries: monitoring?.disableDefaultQueries ?? false,
      queriesTtlSeconds: monitoring?.metricsQueriesTTL === undefined ? 30 : (parseGoDuration(monitoring.metricsQueriesTTL) ?? 30),
      tlsEnabled: monitoring?.tls?.enabled ?? false,
    },
    probes: { startup: resolveProbe(probes?.startup), readiness: resolveProbe(probes?.readiness), isolationCheck: resolveIsolationCheck(probes?.liveness) },
    operatorCertificateFingerprint: fingerprint === '' ? undefined : fingerprint,
    serverTlsSecretName: resolveCertificateSecrets(manifest.spec.certificates, status?.certificates, clusterName).serverTLS,
    clusterFacts: clusterFacts(manifest, clusterName),
  };
}
