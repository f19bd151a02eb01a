import { z } from 'zod';
import { isObjectName } from './names.js';

/**
 * `spec.postgresql.ldap` of a CloudNativePG Cluster (`api/v1/cluster_types.go` LDAPConfig): the LDAP server
 * PostgreSQL authenticates passwords against, in simple bind (`bindAsAuth`) or search+bind (`bindSearchAuth`) mode.
 * CNPG's admission webhook refuses an empty server and both modes at once; pgim refuses the same, plus what CNPG
 * would render and PostgreSQL then rejects (a line break in a value, which cannot live in a pg_hba line, and
 * `searchAttribute` together with `searchFilter`, which PostgreSQL 15 refuses).
 */

/** One pg_hba option value: any text on one line (pgim quotes it). */
const hbaValue = z.string().refine((s) => !/[\r\n\0]/.test(s), 'must not contain a line break or NUL');

export const ldapSchema = z
  .strictObject({
    server: hbaValue.optional(),
    port: z.number().int('must be a whole number').min(0, 'must be a TCP port (1-65535; 0 means the default)').max(65_535, 'must be a TCP port (1-65535)').optional(),
    scheme: z.enum(['ldap', 'ldaps'], { error: 'must be ldap or ldaps' }).optional(),
    tls: z.boolean().optional(),
    bindAsAuth: z.strictObject({ prefix: hbaValue.optional(), suffix: hbaValue.optional() }).optional(),
    bindSearchAuth: z
      .strictObject({
        baseDN: hbaValue.optional(),
        bindDN: hbaValue.optional(),
        bindPassword: z
          .strictObject({
            name: z.string().refine(isObjectName, 'must be a Kubernetes object name'),
            key: z.string().min(1, 'must name a key'),
          })
          .optional(),
        searchAttribute: hbaValue.optional(),
        searchFilter: hbaValue.optional(),
      })
      .refine((v) => !(nonEmpty(v.searchAttribute) && nonEmpty(v.searchFilter)), 'searchAttribute and searchFilter cannot be used together (PostgreSQL refuses the rule)')
      .optional(),
  })
  .refine((v) => !(v.bindAsAuth !== undefined && v.bindSearchAuth !== undefined), 'bindAsAuth and bindSearchAuth cannot be used together')
  .refine((v) => (v.bindAsAuth === undefined && v.bindSearchAuth === undefined) || nonEmpty(v.server), 'server must be set when bindAsAuth or bindSearchAuth is');

function nonEmpty(s: string | undefined): s is string {
  return s !== undefined && s !== '';
}

export type LdapSpec = z.infer<typeof ldapSchema>;

/** The LDAP authentication pgim renders: only when a mode is set (CNPG's GetEnableLDAPAuth). */
export interface LdapConfiguration {
  readonly server: string;
  readonly port: number | undefined;
  readonly scheme: 'ldap' | 'ldaps' | undefined;
  readonly tls: boolean;
  readonly bindAsAuth: { readonly prefix: string; readonly suffix: string } | undefined;
  readonly bindSearchAuth:
    | {
        readonly baseDN: string;
        readonly bindDN: string;
        /** The Secret key holding the bind password; absent renders an empty password, as CNPG does. */
        readonly bindPassword: { readonly name: string; readonly key: string } | undefined;
        readonly searchAttribute: string;
        readonly searchFilter: string;
      }
    | undefined;
}

export function resolveLdap(spec: LdapSpec | undefined): LdapConfiguration | undefined {
  if (spec === undefined || (spec.bindAsAuth === undefined && spec.bindSearchAuth === undefined)) return undefined;
  const search = spec.bindSearchAuth;
  return {
    server: spec.server ?? '',
    // CNPG renders no ldapport for 0 (its zero value).
    port: spec.port === 0 ? undefined : spec.port,
    scheme: spec.scheme,
    tls: spec.tls ?? false,
    bindAsAuth: spec.bindAsAuth === undefined ? undefined : { prefix: spec.bindAsAuth.prefix ?? '', suffix: spec.bindAsAuth.suffix ?? '' },
    bindSearchAuth:
      search === undefined
        ? undefined
        : {
            baseDN: search.baseDN ?? '',
            bindDN: search.bindDN ?? '',
            bindPassword: search.bindPassword,
            searchAttribute: search.searchAttribute ?? '',
            searchFilter: search.searchFilter ?? '',
          },
  };
}
