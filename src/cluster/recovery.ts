import { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import { barmanObjectStoreSchema, resolveStore, type BarmanObjectStore, type BackupConfiguration } from './backup.js';
import { isObjectName } from './names.js';

/**
 * `spec.bootstrap.recovery` and the `spec.externalClusters[]` it restores from (CNPG's BootstrapRecovery,
 * RecoveryTarget and ExternalCluster, `api/v1/cluster_types.go`), with the checks of CNPG's webhook
 * (`validateRecoveryTarget`, `validateBootstrapRecoverySource`): a recovery that cannot work is refused here, naming
 * the field, before anything is written.
 */

const recoveryTargetSchema = z
  .strictObject({
    backupID: z.string().optional(),
    targetTLI: z.string().optional(),
    targetXID: z.string().optional(),
    targetName: z.string().optional(),
    targetLSN: z.string().optional(),
    targetTime: z.string().optional(),
    targetImmediate: z.boolean().optional(),
    exclusive: z.boolean().optional(),
  });

export const recoverySchema = z
  .object({
    source: z.string().optional(),
    backup: z.object({ name: z.string().refine(isObjectName, 'must be a Kubernetes object name') }).loose().optional(),
    database: z.string().optional(),
    owner: z.string().optional(),
    secret: z.object({ name: z.string() }).loose().optional(),
    recoveryTarget: recoveryTargetSchema.optional(),
  })
  .loose();

export type RecoveryManifest = z.infer<typeof recoverySchema>;
/** An `externalClusters[]` entry as the schema leaves it (its barmanObjectStore is parsed here). */
export interface ExternalClusterManifest {
  readonly name: string;
  readonly barmanObjectStore?: unknown;
}

/** Where the base backup and the WAL come from. */
export type RecoveryOrigin =
  /** `recovery.source`: an external cluster's object store; pgim picks the backup from its catalog. */
  | { readonly kind: 'externalCluster'; readonly name: string; readonly field: string; readonly store: BarmanObjectStore }
  /** `recovery.backup.name`: a Backup object of this namespace; its status names the store and the backup id. */
  | { readonly kind: 'backup'; readonly name: string };

/** CNPG's RecoveryTarget with the options PostgreSQL is given (`BuildPostgresOptions`). */
export interface RecoveryTarget {
  readonly backupID: string | undefined;
  readonly targetTLI: string | undefined;
  readonly targetXID: string | undefined;
  readonly targetName: string | undefined;
  readonly targetLSN: string | undefined;
  /** As written in the manifest (RFC 3339 or PostgreSQL's timestamp syntax). */
  readonly targetTime: string | undefined;
  /** targetTime parsed, for picking the backup. */
  readonly targetTimeParsed: Date | undefined;
  readonly targetImmediate: boolean;
  readonly exclusive: boolean;
}

export interface RecoveryConfiguration {
  readonly origin: RecoveryOrigin;
  readonly target: RecoveryTarget;
}

const field = 'spec.bootstrap.recovery';

/** `0/3000060`: CNPG's LSN syntax (two hexadecimal halves). */
export function parseLsn(text: string): bigint | undefined {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!match) return undefined;
  return (BigInt(`0x${match[1] ?? '0'}`) << 32n) + BigInt(`0x${match[2] ?? '0'}`);
}

/**
 * CNPG's ParseTargetTime: RFC 3339 (`2026-12-05T04:00:00Z`, `...+02:00`) or PostgreSQL's own layout
 * (`2026-12-05 04:00:00.123456+00`); a time without a zone is UTC.
 */
export function parseTargetTime(text: string): Date | undefined {
  // eslint-disable-next-line security/detect-unsafe-regex -- anchored, bounded quantifiers: linear on any input
  const match = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d(?:\.\d{1,9})?)\s*(Z|[+-]\d\d(?::?\d\d)?)?$/.exec(text.trim());
  if (!match) return undefined;
  const [, date = '', time = '', zone] = match;
  const ms = time.replace(/(\.\d{3})\d+$/, '$1');
  let offset = zone ?? 'Z';
  if (/^[+-]\d\d$/.test(offset)) offset = `${offset}:00`;
  else if (/^[+-]\d{4}$/.test(offset)) offset = `${offset.slice(0, 3)}:${offset.slice(3)}`;
  const parsed = new Date(`${date}T${ms}${offset}`);
  return Number.isNaN(parsed.getTime()) ? undefined : parsed;
}

function resolveTarget(manifest: RecoveryManifest['recoveryTarget'], source: string, fromCatalog: boolean): RecoveryTarget {
  const t = manifest ?? {};
  const path = `${field}.recoveryTarget`;
  const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);
  const chosen = (['targetXID', 'targetName', 'targetLSN', 'targetTime'] as const).filter((k) => nonEmpty(t[k]) !== undefined);
  if (t.targetImmediate === true) chosen.push('targetImmediate' as never);
  if (chosen.length > 1) throw new ConfigError(source, path, `sets ${chosen.join(' and ')}: only one recovery target may be set`);
  const targetTime = nonEmpty(t.targetTime);
  const targetTimeParsed = targetTime === undefined ? undefined : parseTargetTime(targetTime);
  if (targetTime !== undefined && targetTimeParsed === undefined) {
    throw new ConfigError(source, `${path}.targetTime`, 'the format of targetTime is invalid (RFC 3339, e.g. 2026-12-05T04:00:00Z)');
  }
  const targetLSN = nonEmpty(t.targetLSN);
  if (targetLSN !== undefined && parseLsn(targetLSN) === undefined) throw new ConfigError(source, `${path}.targetLSN`, 'is not an LSN (e.g. 0/3000060)');
  const targetXID = nonEmpty(t.targetXID);
  if (targetXID !== undefined && (!/^\d+$/.test(targetXID) || Number(targetXID) > 0xffffffff)) {
    throw new ConfigError(source, `${path}.targetXID`, 'recovery target xid must be a non-negative 32-bit integer');
  }
  const targetName = nonEmpty(t.targetName);
  if (targetName !== undefined && Buffer.byteLength(targetName) >= 64) throw new ConfigError(source, `${path}.targetName`, 'recovery target name must be shorter than 64 bytes');
  // eslint-disable-next-line no-control-regex
  if (targetName !== undefined && /[\x00-\x1f\x7f]/.test(targetName)) {
    throw new ConfigError(source, `${path}.targetName`, 'recovery target name must not contain ASCII control characters');
  }
  const targetTLI = nonEmpty(t.targetTLI);
  if (targetTLI !== undefined && targetTLI !== 'latest' && targetTLI !== 'current' && !/^[1-9]\d*$/.test(targetTLI)) {
    throw new ConfigError(source, `${path}.targetTLI`, 'must be latest, current or a positive timeline number');
  }
  const backupID = nonEmpty(t.backupID);
  // CNPG: a catalog can be searched by time or LSN only; a name, an xid or "immediate" needs the backup named.
  if (fromCatalog && backupID === undefined && (targetName !== undefined || targetXID !== undefined || t.targetImmediate !== undefined)) {
    throw new ConfigError(source, `${path}.backupID`, 'is required with targetName, targetXID or targetImmediate (BackupID is missing)');
  }
  return {
    backupID,
    targetTLI,
    targetXID,
    targetName,
    targetLSN,
    targetTime,
    targetTimeParsed,
    targetImmediate: t.targetImmediate === true,
    exclusive: t.exclusive === true,
  };
}

/**
 * The recovery to bootstrap from, or undefined without `spec.bootstrap.recovery`. Throws ConfigError naming the field
 * when the source is missing, has no object store, or is the very folder this cluster would archive into.
 */
export function resolveRecovery(
  recovery: RecoveryManifest | undefined,
  externalClusters: readonly ExternalClusterManifest[] | undefined,
  backup: BackupConfiguration,
  source: string,
): RecoveryConfiguration | undefined {
  if (recovery === undefined) return undefined;
  const sourceName = recovery.source === '' ? undefined : recovery.source;
  const backupName = recovery.backup?.name;
  if (sourceName !== undefined && backupName !== undefined) {
    throw new ConfigError(source, field, 'sets both source and backup: restore from one of them');
  }
  if (backupName !== undefined) {
    return { origin: { kind: 'backup', name: backupName }, target: resolveTarget(recovery.recoveryTarget, source, false) };
  }
  if (sourceName === undefined) throw new ConfigError(source, `${field}.source`, 'is required: name an entry of spec.externalClusters (or set backup.name)');
  const index = (externalClusters ?? []).findIndex((c) => c.name === sourceName);
  const external = externalClusters?.[index];
  if (external === undefined) throw new ConfigError(source, `${field}.source`, `names "${sourceName}", which is not in spec.externalClusters`);
  const storeField = `spec.externalClusters[${index}].barmanObjectStore`;
  if (external.barmanObjectStore === undefined) {
    throw new ConfigError(source, storeField, `is required: pgim restores "${sourceName}" from its object store`);
  }
  const parsed = barmanObjectStoreSchema.safeParse(external.barmanObjectStore);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = (issue?.path ?? []).map(String).join('.');
    throw new ConfigError(source, at === '' ? storeField : `${storeField}.${at}`, issue?.message ?? 'is invalid');
  }
  // CNPG's ExternalCluster.GetServerName: the store's serverName, else the entry's name.
  const store = resolveStore(parsed.data, external.name);
  const own = backup.barmanObjectStore;
  if (own !== undefined && own.destinationPath.replace(/\/+$/, '') === store.destinationPath.replace(/\/+$/, '') && own.serverName === store.serverName) {
    throw new ConfigError(
      source,
      'spec.backup.barmanObjectStore.serverName',
      `the restored cluster would archive into the folder it restores from (${store.destinationPath}, server ${store.serverName}, ${storeField}): set a different serverName or destinationPath`,
    );
  }
  return {
    origin: { kind: 'externalCluster', name: sourceName, field: storeField, store },
    target: resolveTarget(recovery.recoveryTarget, source, true),
  };
}
