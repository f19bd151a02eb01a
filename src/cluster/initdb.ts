import { z } from 'zod';
import { initdbOptionValue, normalizeInitdbOptions } from '../options/initdb-options.js';
import { isObjectName } from './names.js';

/**
 * `spec.bootstrap.initdb`'s initdb options and post-init SQL, as CloudNativePG defines them (api/v1
 * BootstrapInitDB, pkg/specs/jobs.go buildInitDBFlags, pkg/management/postgres/initdb.go ConfigureNewInstance).
 */

const keyRef = z.object({
  name: z.string().refine(isObjectName, 'must be a Kubernetes object name'),
  key: z.string().min(1, 'must name a key'),
});

const sqlRefs = z.object({ secretRefs: z.array(keyRef).optional(), configMapRefs: z.array(keyRef).optional() }).strict();
const sqlList = z.array(z.string({ error: 'must be a string' })).optional();
const isPowerOfTwo = (n: number): boolean => (n & (n - 1)) === 0;

/** The initdb fields; merged into the `bootstrap.initdb` object of the Cluster schema. */
export const initdbOptionsShape = {
  dataChecksums: z.boolean().optional(),
  encoding: z.string().min(1).optional(),
  localeCollate: z.string().min(1).optional(),
  localeCType: z.string().min(1).optional(),
  locale: z.string().min(1).optional(),
  localeProvider: z.enum(['libc', 'icu', 'builtin'], { error: 'must be libc, icu or builtin' }).optional(),
  icuLocale: z.string().min(1).optional(),
  icuRules: z.string().min(1).optional(),
  builtinLocale: z.string().min(1).optional(),
  walSegmentSize: z.number().int().min(1).max(1024).refine(isPowerOfTwo, 'WAL segment size must be a power of 2').optional(),
  options: z.array(z.string({ error: 'must be a string' })).optional(),
  postInitSQL: sqlList,
  postInitApplicationSQL: sqlList,
  postInitTemplateSQL: sqlList,
  postInitSQLRefs: sqlRefs.optional(),
  postInitApplicationSQLRefs: sqlRefs.optional(),
  postInitTemplateSQLRefs: sqlRefs.optional(),
};

type InitdbFields = { [K in keyof typeof initdbOptionsShape]?: z.infer<(typeof initdbOptionsShape)[K]> };

/** CNPG's CEL rules on BootstrapInitDB: each provider's locale only with that provider. */
export function checkLocaleProviders(spec: InitdbFields, ctx: z.RefinementCtx): void {
  const needs = [['builtinLocale', 'builtin'], ['icuLocale', 'icu'], ['icuRules', 'icu']] as const;
  for (const [field, provider] of needs) {
    if (spec[field] !== undefined && spec.localeProvider !== provider) {
      ctx.addIssue({ code: 'custom', path: [field], message: `is only available when localeProvider is set to \`${provider}\`` });
    }
  }
  if (spec.options !== undefined) {
    try {
      normalizeInitdbOptions(spec.options);
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['options'], message: (err as Error).message });
    }
  }
}

export interface SqlRef {
  readonly kind: 'Secret' | 'ConfigMap';
  readonly name: string;
  readonly key: string;
  /** The field it comes from, e.g. `spec.bootstrap.initdb.postInitSQLRefs.secretRefs[0]`. */
  readonly field: string;
}

/** One database's post-init SQL: the inline queries, then the referenced files (Secrets first, then ConfigMaps). */
export interface PostInitSql {
  readonly field: string;
  readonly queries: readonly string[];
  readonly refs: readonly SqlRef[];
}

export interface InitdbSpec {
  /** initdb options (long form), pgim's defaults first: UTF8 and the C locale, as CNPG documents them. */
  readonly options: readonly string[];
  /** Fields the deprecated `options` list overrides (CNPG then ignores the explicit fields). */
  readonly overridden: readonly string[];
  /** A field and the PostgreSQL major version it needs. */
  readonly requires: readonly { readonly field: string; readonly major: number }[];
  /** CNPG's order: postgres, then template1, then the application database (once it exists). */
  readonly postInit: { readonly postgres: PostInitSql; readonly template: PostInitSql; readonly application: PostInitSql };
}

const base = 'spec.bootstrap.initdb';
const explicitFields = ['dataChecksums', 'encoding', 'localeCollate', 'localeCType', 'locale', 'localeProvider', 'icuLocale', 'icuRules', 'builtinLocale', 'walSegmentSize'] as const;

/** The options CNPG's operator would generate from the explicit fields (buildInitDBFlags), in its order. */
function explicitOptions(spec: InitdbFields): string[] {
  const options: string[] = [];
  if (spec.dataChecksums === true) options.push('--data-checksums');
  const valued: readonly [Exclude<keyof InitdbFields, 'dataChecksums' | 'options' | `postInit${string}`>, string][] = [
    ['encoding', '--encoding'], ['localeCollate', '--lc-collate'], ['localeCType', '--lc-ctype'], ['locale', '--locale'],
    ['localeProvider', '--locale-provider'], ['icuLocale', '--icu-locale'], ['icuRules', '--icu-rules'], ['builtinLocale', '--builtin-locale'],
    ['walSegmentSize', '--wal-segsize'],
  ];
  for (const [field, option] of valued) {
    const value = spec[field];
    if (value !== undefined) options.push(`${option}=${typeof value === 'number' ? String(value) : value}`);
  }
  return options;
}

function postInit(spec: InitdbFields, queries: 'postInitSQL' | 'postInitTemplateSQL' | 'postInitApplicationSQL'): PostInitSql {
  const refsField = `${queries}Refs` as const;
  const refs = spec[refsField];
  const list = (kind: SqlRef['kind'], group: 'secretRefs' | 'configMapRefs'): SqlRef[] =>
    (refs?.[group] ?? []).map((ref, i) => ({ kind, name: ref.name, key: ref.key, field: `${base}.${refsField}.${group}[${String(i)}]` }));
  return { field: `${base}.${queries}`, queries: spec[queries] ?? [], refs: [...list('Secret', 'secretRefs'), ...list('ConfigMap', 'configMapRefs')] };
}

export function resolveInitdb(spec: InitdbFields | undefined): InitdbSpec {
  const s = spec ?? {};
  const user = s.options !== undefined && s.options.length > 0 ? normalizeInitdbOptions(s.options) : explicitOptions(s);
  const overridden = s.options !== undefined && s.options.length > 0 ? explicitFields.filter((f) => s[f] !== undefined).map((f) => `${base}.${f}`) : [];
  // pgim's defaults (CNPG's documented ones), unless the user's options say otherwise: a --locale would lose to a
  // default --lc-collate, whatever the order, so the defaults step aside for it.
  const defaults: string[] = [];
  const locale = initdbOptionValue(user, '--locale') !== undefined || user.includes('--no-locale');
  if (initdbOptionValue(user, '--encoding') === undefined) defaults.push('--encoding=UTF8');
  if (!locale && initdbOptionValue(user, '--lc-collate') === undefined) defaults.push('--lc-collate=C');
  if (!locale && initdbOptionValue(user, '--lc-ctype') === undefined) defaults.push('--lc-ctype=C');
  const options = [...defaults, ...user];
  const requires: { field: string; major: number }[] = [];
  const from = (option: string, field: string): string => (s.options !== undefined && s.options.length > 0 ? `${base}.options (${option})` : `${base}.${field}`);
  if (initdbOptionValue(options, '--builtin-locale') !== undefined) requires.push({ field: from('--builtin-locale', 'builtinLocale'), major: 17 });
  if (initdbOptionValue(options, '--locale-provider') === 'builtin') requires.push({ field: from('--locale-provider', 'localeProvider'), major: 17 });
  if (initdbOptionValue(options, '--icu-rules') !== undefined) requires.push({ field: from('--icu-rules', 'icuRules'), major: 16 });
  return {
    options,
    overridden,
    requires,
    postInit: { postgres: postInit(s, 'postInitSQL'), template: postInit(s, 'postInitTemplateSQL'), application: postInit(s, 'postInitApplicationSQL') },
  };
}

/** The first field the server's major version cannot do, with why; undefined when all can. */
export function unsupportedByServer(spec: InitdbSpec, major: number): { field: string; message: string } | undefined {
  const missing = spec.requires.find((r) => major < r.major);
  return missing && { field: missing.field, message: `needs PostgreSQL ${String(missing.major)} or later; the server binaries are PostgreSQL ${String(major)}` };
}
