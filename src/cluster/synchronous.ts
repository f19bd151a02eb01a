import { z } from 'zod';
import { ConfigError } from '../errors/index.js';

/**
 * Synchronous replication of a CloudNativePG Cluster: `spec.postgresql.synchronous` (CNPG's
 * SynchronousReplicaConfiguration) and the legacy `spec.minSyncReplicas`/`spec.maxSyncReplicas`, validated with the
 * rules of CNPG's admission webhook (`internal/webhook/v1/cluster_webhook.go`), so a manifest CNPG refuses is refused
 * here too, naming the field.
 */

/** An application name as PostgreSQL keeps it: NAMEDATALEN-1 bytes; a longer one would never match a standby. */
const standbyName = z
  .string({ error: 'must be a string' })
  .min(1, 'must not be empty')
  .refine((s) => !s.includes('\0'), 'must not contain NUL')
  .refine((s) => Buffer.byteLength(s) <= 63, 'must be at most 63 bytes (PostgreSQL truncates longer application names)');

export const synchronousSchema = z.strictObject({
  method: z.enum(['any', 'first'], { error: 'must be any or first' }),
  number: z.number().int('must be a whole number').min(1, 'must be greater than zero'),
  maxStandbyNamesFromCluster: z.number().int('must be a whole number').min(0, 'must not be negative').optional(),
  standbyNamesPre: z.array(standbyName).default([]),
  standbyNamesPost: z.array(standbyName).default([]),
  dataDurability: z.enum(['required', 'preferred'], { error: 'must be required or preferred' }).default('required'),
  // Refused (unless false / empty) by field-support.ts, which names the field.
  failoverQuorum: z.boolean().optional(),
  nodeFailureDomainKeys: z.array(z.string()).optional(),
  podFailureDomainKeys: z.array(z.string()).optional(),
});

export type SynchronousManifest = z.infer<typeof synchronousSchema>;

export const syncReplicasSchema = z.number().int('must be a whole number').min(0, 'must not be negative');

/** `spec.postgresql.synchronous`, defaults resolved. */
export interface ExplicitSynchronous {
  readonly kind: 'explicit';
  readonly method: 'any' | 'first';
  readonly number: number;
  readonly maxStandbyNamesFromCluster: number | undefined;
  readonly standbyNamesPre: readonly string[];
  readonly standbyNamesPost: readonly string[];
  readonly dataDurability: 'required' | 'preferred';
}

/** The legacy fields: a quorum (`ANY`) over the streaming standbys, between min and max. */
export interface LegacySynchronous {
  readonly kind: 'legacy';
  readonly minSyncReplicas: number;
  readonly maxSyncReplicas: number;
}

/** Undefined: every standby is asynchronous. */
export type SynchronousReplication = ExplicitSynchronous | LegacySynchronous | undefined;

export function resolveSynchronous(
  input: { instances: number; synchronous: SynchronousManifest | undefined; minSyncReplicas: number | undefined; maxSyncReplicas: number | undefined },
  source: string,
): SynchronousReplication {
  const { instances, synchronous } = input;
  const min = input.minSyncReplicas ?? 0;
  const max = input.maxSyncReplicas ?? 0;
  if (synchronous !== undefined) {
    if (min > 0 || max > 0) throw new ConfigError(source, 'spec.postgresql.synchronous', "can't have both legacy synchronous replica configuration (minSyncReplicas/maxSyncReplicas) and this one");
    const { standbyNamesPre: pre, standbyNamesPost: post } = synchronous;
    if (synchronous.number >= instances + pre.length + post.length) {
      throw new ConfigError(source, 'spec.postgresql.synchronous.number', 'must be less than the total number of instances and the provided standby names');
    }
    if (synchronous.dataDurability === 'preferred' && (pre.length > 0 || post.length > 0)) {
      throw new ConfigError(source, 'spec.postgresql.synchronous.dataDurability', "set to 'preferred' requires empty 'standbyNamesPre' and empty 'standbyNamesPost'");
    }
    return {
      kind: 'explicit',
      method: synchronous.method,
      number: synchronous.number,
      maxStandbyNamesFromCluster: synchronous.maxStandbyNamesFromCluster,
      standbyNamesPre: pre,
      standbyNamesPost: post,
      dataDurability: synchronous.dataDurability,
    };
  }
  if (min > max) throw new ConfigError(source, 'spec.minSyncReplicas', 'cannot be greater than maxSyncReplicas');
  if (max > 0 && max >= instances) throw new ConfigError(source, 'spec.maxSyncReplicas', 'must be lower than the number of instances');
  return max > 0 ? { kind: 'legacy', minSyncReplicas: min, maxSyncReplicas: max } : undefined;
}
