import { z } from 'zod';

/**
 * `spec.replicationSlots.synchronizeReplicas` and `updateInterval`: CloudNativePG's slot replicator
 * (internal/management/controller/slots/runner). On every replica, the primary's user-defined physical slots (not
 * the HA slots, not excluded by a pattern) are created, advanced and dropped to follow the primary's every
 * `updateInterval` seconds, so a consumer's slot survives a failover. pgim applies CNPG's defaults (its webhook writes
 * `enabled: true` and `updateInterval: 30` into every Cluster; `GetEnabled()` of an absent block is true too).
 */
export interface SlotSynchronization {
  readonly enabled: boolean;
  /** `excludePatterns`, compiled: a slot whose name one of them matches (anywhere, as Go's MatchString) is left alone. */
  readonly excludePatterns: readonly RegExp[];
  readonly updateIntervalSeconds: number;
}

/** CNPG's `DefaultReplicationSlotsUpdateInterval`. */
export const defaultSlotUpdateIntervalSeconds = 30;

/**
 * Compiles one of CNPG's patterns (Go RE2 syntax) as a JavaScript regular expression. The two agree on what slot
 * names need (anchors, classes, alternation, repetition); RE2's leading `(?i)` becomes the `i` flag. Undefined: not a
 * valid expression.
 */
export function compileSlotPattern(pattern: string): RegExp | undefined {
  const caseless = pattern.startsWith('(?i)');
  try {
    // eslint-disable-next-line security/detect-non-literal-regexp -- the Cluster's own patterns, matched against slot names (at most 63 bytes)
    return new RegExp(caseless ? pattern.slice(4) : pattern, caseless ? 'ui' : 'u');
  } catch {
    return undefined;
  }
}

export const replicationSlotsSchema = z
  .object({
    updateInterval: z.number().int('must be a whole number of seconds').min(1, 'must be at least 1').optional(),
    synchronizeReplicas: z
      .object({
        enabled: z.boolean().optional(),
        excludePatterns: z.array(z.string().refine((p) => compileSlotPattern(p) !== undefined, 'must be a valid regular expression')).optional(),
      })
      .loose()
      .optional(),
  })
  .loose();

export function resolveSlotSynchronization(spec: z.infer<typeof replicationSlotsSchema> | undefined): SlotSynchronization {
  const sync = spec?.synchronizeReplicas;
  return {
    enabled: sync?.enabled ?? true,
    excludePatterns: (sync?.excludePatterns ?? []).map((p) => compileSlotPattern(p)).filter((re): re is RegExp => re !== undefined),
    updateIntervalSeconds: spec?.updateInterval ?? defaultSlotUpdateIntervalSeconds,
  };
}

/** CNPG's `IsExcludedByUser`. */
export function isExcludedSlot(config: SlotSynchronization, name: string): boolean {
  return config.excludePatterns.some((re) => re.test(name));
}
