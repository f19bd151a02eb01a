import { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import { isObjectName } from './names.js';

/**
 * `spec.managed.roles` of a CloudNativePG Cluster (api/v1 RoleConfiguration), with CNPG's defaults and the checks of
 * CNPG's validating webhook (`validateManagedRoles`): unique names, no reserved role, a connection limit of -1 or
 * more, not both a password Secret and `disablePassword`.
 */

/** CNPG's `IsRoleReserved`: the operator's roles, its `cnpg_` prefix and PostgreSQL's `pg_` prefix. */
export function isReservedRole(name: string): boolean {
  return name === 'postgres' || name === 'streaming_replica' || name.startsWith('cnpg_') || name.startsWith('pg_');
}

/** CNPG's webhook message for a reserved role. */
export const reservedRoleReason = 'This role is reserved for operator use';

const roleName = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => !s.includes('\0'), 'must not contain NUL')
  .refine((s) => Buffer.byteLength(s) <= 63, 'must be at most 63 bytes');

/** RFC 3339, as metav1.Time decodes it. */
const rfc3339 = z.iso.datetime({ offset: true, error: 'must be an RFC 3339 time, e.g. 2030-01-01T00:00:00Z' });

const roleConfiguration = z
  .strictObject({
    name: roleName,
    comment: z.string().refine((s) => !s.includes('\0'), 'must not contain NUL').default(''),
    ensure: z.enum(['present', 'absent'], { error: 'must be present or absent' }).default('present'),
    passwordSecret: z.strictObject({ name: z.string().refine(isObjectName, 'must be a Kubernetes object name') }).optional(),
    disablePassword: z.boolean().default(false),
    superuser: z.boolean().default(false),
    createdb: z.boolean().default(false),
    createrole: z.boolean().default(false),
    inherit: z.boolean().default(true),
    login: z.boolean().default(false),
    replication: z.boolean().default(false),
    bypassrls: z.boolean().default(false),
    connectionLimit: z.number().int('must be a whole number').min(-1, 'Connection limit should be positive, unless defaulting to -1').max(2_147_483_647).default(-1),
    validUntil: rfc3339.optional(),
    inRoles: z.array(roleName).default([]),
  })
  .refine((r) => !(r.disablePassword && r.passwordSecret !== undefined), { error: 'This role both sets and disables a password', path: ['disablePassword'] });

export const managedSchema = z
  .object({
    roles: z.array(roleConfiguration).default([]),
  })
  .loose();

/** One managed role, every default resolved. */
export interface ManagedRole {
  readonly name: string;
  readonly comment: string;
  readonly ensure: 'present' | 'absent';
  readonly passwordSecret: string | undefined;
  readonly disablePassword: boolean;
  readonly superuser: boolean;
  readonly createdb: boolean;
  readonly createrole: boolean;
  readonly inherit: boolean;
  readonly login: boolean;
  readonly replication: boolean;
  readonly bypassrls: boolean;
  readonly connectionLimit: number;
  /** Milliseconds since the epoch; undefined: no expiry (`infinity` when the role had one). */
  readonly validUntil: number | undefined;
  readonly inRoles: readonly string[];
}

/**
 * Resolves `spec.managed.roles`, refusing (ConfigError naming the role's path) what CNPG's webhook refuses, and the
 * application owner, whose password and existence pgim already manages from `bootstrap.initdb`.
 */
export function resolveManagedRoles(managed: z.infer<typeof managedSchema> | undefined, applicationOwner: string, source: string): ManagedRole[] {
  const seen = new Set<string>();
  return (managed?.roles ?? []).map((role, index) => {
    const path = `spec.managed.roles[${index}].name`;
    if (seen.has(role.name)) throw new ConfigError(source, path, `Role name is duplicate of another: ${role.name}`);
    seen.add(role.name);
    if (isReservedRole(role.name)) throw new ConfigError(source, path, `${reservedRoleReason}: ${role.name}`);
    if (role.name === applicationOwner) {
      throw new ConfigError(source, path, `${role.name} is the application owner (bootstrap.initdb.owner), which pgim manages from its Secret`);
    }
    return {
      name: role.name,
      comment: role.comment,
      ensure: role.ensure,
      passwordSecret: role.passwordSecret?.name,
      disablePassword: role.disablePassword,
      superuser: role.superuser,
      createdb: role.createdb,
      createrole: role.createrole,
      inherit: role.inherit,
      login: role.login,
      replication: role.replication,
      bypassrls: role.bypassrls,
      connectionLimit: role.connectionLimit,
      validUntil: role.validUntil === undefined ? undefined : Date.parse(role.validUntil),
      inRoles: role.inRoles,
    };
  });
}
