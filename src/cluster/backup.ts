import { z } from 'zod';

/**
 * `spec.backup` of a CloudNativePG Cluster: CNPG's in-tree Barman Cloud fields, names and defaults
 * (`api/v1/cluster_types.go` BackupConfiguration, `barman-cloud` BarmanObjectStoreConfiguration). pgim drives the
 * Debian `barman-cli-cloud` 3.4 tools with them, so the values those tools do not accept are refused here, naming
 * the field, instead of failing on every archive.
 */

/** A reference to one key of a Secret in the Cluster's namespace (CNPG's SecretKeySelector). */
const secretKeySelector = z.strictObject({
  name: z.string().min(1, 'must name a Secret'),
  key: z.string().min(1, 'must name a key'),
});

const notImplemented = (what: string): z.ZodType<undefined> =>
  z.undefined({ error: `is not implemented by pgim (${what}); use s3Credentials` });

/** Compression the installed barman-cli-cloud 3.4 accepts (the CRD also lists lz4, xz and zstd, which 3.4 lacks). */
const walCompression = z.enum(['gzip', 'bzip2', 'snappy'], { error: 'must be gzip, bzip2 or snappy (barman-cli-cloud 3.4 has no lz4, xz or zstd)' });
const dataCompression = z.enum(['gzip', 'bzip2', 'snappy'], { error: 'must be gzip, bzip2 or snappy (barman-cli-cloud 3.4 has no lz4)' });
const encryption = z.enum(['AES256', 'aws:kms'], { error: 'must be AES256 or aws:kms' });
const argList = z.array(z.string().min(1, 'must not be empty').refine((s) => !s.includes('\0'), 'must not contain NUL'));
const tagMap = z.record(
  z.string().min(1).refine((s) => !s.includes(','), 'must not contain a comma'),
  z.string().refine((s) => !s.includes(','), 'must not contain a comma'),
);

export const barmanObjectStoreSchema = z
  .object({
    destinationPath: z
      .string({ error: 'is required' })
      .refine((s) => s.startsWith('s3://') && s.length > 5 && !s.startsWith('s3:///') && !/\s/.test(s), 'must be an s3:// URL (s3://bucket/path): pgim supports S3-compatible stores'),
    endpointURL: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
    endpointCA: secretKeySelector.optional(),
    serverName: z.string().min(1).regex(/^[A-Za-z0-9._-]+$/, 'must be letters, digits, ".", "_" or "-"').optional(),
    s3Credentials: z
      .strictObject({
        accessKeyId: secretKeySelector.optional(),
        secretAccessKey: secretKeySelector.optional(),
        region: secretKeySelector.optional(),
        sessionToken: secretKeySelector.optional(),
        inheritFromIAMRole: z.boolean().optional(),
      })
      .refine((c) => c.inheritFromIAMRole === true || (c.accessKeyId !== undefined && c.secretAccessKey !== undefined), {
        error: 'needs accessKeyId and secretAccessKey, or inheritFromIAMRole: true',
      })
      .optional(),
    azureCredentials: notImplemented('Azure Blob Storage').optional(),
    googleCredentials: notImplemented('Google Cloud Storage').optional(),
    wal: z
      .strictObject({
        compression: walCompression.optional(),
        encryption: encryption.optional(),
        maxParallel: z.number().int('must be a whole number').min(1, 'must be at least 1').default(1),
        archiveAdditionalCommandArgs: argList.default([]),
        restoreAdditionalCommandArgs: argList.default([]),
      })
      .default({ maxParallel: 1, archiveAdditionalCommandArgs: [], restoreAdditionalCommandArgs: [] }),
    data: z
      .strictObject({
        compression: dataCompression.optional(),
        encryption: encryption.optional(),
        jobs: z.number().int('must be a whole number').min(1, 'must be at least 1').optional(),
        immediateCheckpoint: z.boolean().default(false),
        additionalCommandArgs: argList.default([]),
      })
      .default({ immediateCheckpoint: false, additionalCommandArgs: [] }),
    tags: tagMap.default({}),
    historyTags: tagMap.default({}),
  })
  .loose()
  .refine((store) => store.s3Credentials !== undefined, { error: 'no credentials defined: set s3Credentials', path: ['s3Credentials'] });

export const backupSchema = z
  .object({
    barmanObjectStore: barmanObjectStoreSchema.optional(),
    retentionPolicy: z.string().regex(/^[1-9][0-9]*[dwm]$/, 'must be a number followed by d, w or m (e.g. 30d)').optional(),
    target: z.enum(['primary', 'prefer-standby'], { error: 'must be primary or prefer-standby' }).default('prefer-standby'),
  })
  .loose();

export type BarmanObjectStoreManifest = z.infer<typeof barmanObjectStoreSchema>;
export type BackupManifest = z.infer<typeof backupSchema>;

export interface SecretKeyRef {
  readonly name: string;
  readonly key: string;
}

/** The object store with every default resolved (`serverName` defaults to the Cluster's name). */
export interface BarmanObjectStore {
  readonly destinationPath: string;
  readonly endpointURL: string | undefined;
  readonly endpointCA: SecretKeyRef | undefined;
  readonly serverName: string;
  readonly s3Credentials: {
    readonly accessKeyId: SecretKeyRef | undefined;
    readonly secretAccessKey: SecretKeyRef | undefined;
    readonly region: SecretKeyRef | undefined;
    readonly sessionToken: SecretKeyRef | undefined;
    readonly inheritFromIAMRole: boolean;
  };
  readonly wal: {
    readonly compression: string | undefined;
    readonly encryption: string | undefined;
    readonly maxParallel: number;
    readonly archiveAdditionalCommandArgs: readonly string[];
    readonly restoreAdditionalCommandArgs: readonly string[];
  };
  readonly data: {
    readonly compression: string | undefined;
    readonly encryption: string | undefined;
    readonly jobs: number | undefined;
    readonly immediateCheckpoint: boolean;
    readonly additionalCommandArgs: readonly string[];
  };
  readonly tags: Readonly<Record<string, string>>;
  readonly historyTags: Readonly<Record<string, string>>;
}

export interface BackupConfiguration {
  /** Undefined: `spec.backup` names no object store (nothing is archived, as in CNPG). */
  readonly barmanObjectStore: BarmanObjectStore | undefined;
  /** CNPG's `30d` etc.; undefined keeps every backup. */
  readonly retentionPolicy: string | undefined;
  readonly target: 'primary' | 'prefer-standby';
}

export function resolveBackup(manifest: BackupManifest | undefined, clusterName: string): BackupConfiguration {
  const store = manifest?.barmanObjectStore;
  return {
    retentionPolicy: manifest?.retentionPolicy,
    target: manifest?.target ?? 'prefer-standby',
    barmanObjectStore: store === undefined ? undefined : resolveStore(store, clusterName),
  };
}

/** An object store with every default resolved; `serverName` defaults to `defaultServerName`. */
export function resolveStore(store: BarmanObjectStoreManifest, defaultServerName: string): BarmanObjectStore {
  return {
    destinationPath: store.destinationPath,
    endpointURL: store.endpointURL,
    endpointCA: store.endpointCA,
    serverName: store.serverName ?? defaultServerName,
    s3Credentials: {
      accessKeyId: store.s3Credentials?.accessKeyId,
      secretAccessKey: store.s3Credentials?.secretAccessKey,
      region: store.s3Credentials?.region,
      sessionToken: store.s3Credentials?.sessionToken,
      inheritFromIAMRole: store.s3Credentials?.inheritFromIAMRole === true,
    },
    wal: { ...store.wal, compression: store.wal.compression, encryption: store.wal.encryption },
    data: { ...store.data, compression: store.data.compression, encryption: store.data.encryption, jobs: store.data.jobs },
    tags: store.tags,
    historyTags: store.historyTags,
  };
}

/** CNPG's `ParsePolicy`: `30d` -> `RECOVERY WINDOW OF 30 DAYS` (w: WEEKS, m: MONTHS). */
export function barmanRetentionPolicy(policy: string): string {
  const unit = { d: 'DAYS', w: 'WEEKS', m: 'MONTHS' }[policy.slice(-1)];
  return `RECOVERY WINDOW OF ${policy.slice(0, -1)} ${unit ?? 'DAYS'}`;
}
