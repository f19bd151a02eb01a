import { isReservedRole, type ManagedRole } from '../cluster/managed-roles.js';
import { quoteIdent as quoteIdentifier, quoteLiteral } from '../postgres/sql.js';

/**
 * The decision half of CNPG's role reconciler (internal/management/controller/roles: `evaluateNextRoleActions`,
 * `isEquivalentTo`, `passwordNeedsUpdating`, the membership diff and `convertToRolesByStatus`), as pure functions:
 * the roles asked for and the roles in pg_authid in, the actions and the SQL out. No I/O, no clock.
 */

/** One row of pg_authid (CNPG's `List`), `pg_*` roles excluded. */
export interface DatabaseRole {
  readonly name: string;
  readonly superuser: boolean;
  readonly inherit: boolean;
  readonly createrole: boolean;
  readonly createdb: boolean;
  readonly login: boolean;
  readonly replication: boolean;
  readonly bypassrls: boolean;
  readonly connectionLimit: number;
  /** Milliseconds since the epoch, `Infinity` for `infinity`, undefined for NULL. */
  readonly validUntil: number | undefined;
  readonly comment: string;
  /** pg_authid's xmin: the last transaction that changed the row (a password set by hand changes it). */
  readonly transactionID: number;
  readonly inRoles: readonly string[];
}

/** CNPG's PasswordState: the Secret version and the pg_authid transaction a managed role last got from pgim. */
export interface PasswordState {
  readonly transactionID: number;
  readonly resourceVersion: string;
}

export type RoleStatus = 'reconciled' | 'not-managed' | 'pending-reconciliation' | 'reserved';

export interface RoleUpdate {
  readonly role: ManagedRole;
  /** The role had a VALID UNTIL and the spec has none: CNPG sets `infinity` rather than leave the old expiry. */
  readonly validUntilInfinity: boolean;
}

export interface RoleActions {
  readonly create: readonly ManagedRole[];
  readonly update: readonly RoleUpdate[];
  readonly setComment: readonly ManagedRole[];
  readonly updateMemberships: readonly ManagedRole[];
  readonly drop: readonly string[];
  readonly reserved: readonly string[];
  readonly notManaged: readonly string[];
  readonly reconciled: readonly string[];
}

function hasSameValidUntil(db: DatabaseRole, spec: ManagedRole): boolean {
  if (spec.validUntil === undefined) return db.validUntil === undefined || db.validUntil === Infinity;
  return db.validUntil === spec.validUntil;
}

/** CNPG's `isEquivalentTo`: the attributes ALTER ROLE sets (comment, membership and password are compared apart). */
export function isEquivalent(db: DatabaseRole, spec: ManagedRole): boolean {
  return (
    db.superuser === spec.superuser &&
    db.createdb === spec.createdb &&
    db.createrole === spec.createrole &&
    db.inherit === spec.inherit &&
    db.login === spec.login &&
    db.replication === spec.replication &&
    db.bypassrls === spec.bypassrls &&
    db.connectionLimit === spec.connectionLimit &&
    hasSameValidUntil(db, spec)
  );
}

function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join('\0') === [...b].sort().join('\0');
}

/**
 * CNPG's `passwordNeedsUpdating` and `passwordSecretIsRequiredButMissing`: a new Secret version, a row changed by
 * someone else since pgim last wrote it (a password set by hand), or a Secret that cannot be read yet.
 */
function passwordNeedsUpdating(db: DatabaseRole, spec: ManagedRole, stored: ReadonlyMap<string, PasswordState>, latest: ReadonlyMap<string, string>): boolean {
  const state = stored.get(db.name);
  if ((state?.resourceVersion ?? '') !== (latest.get(db.name) ?? '') || (state?.transactionID ?? 0) !== db.transactionID) return true;
  return spec.passwordSecret !== undefined && !spec.disablePassword && !latest.has(spec.name);
}

/**
 * CNPG's `evaluateNextRoleActions`. `latestSecretVersions` holds the version of each password Secret that could be
 * read (roles with `passwordSecret` and without `disablePassword`).
 */
export function evaluateRoleActions(
  spec: readonly ManagedRole[],
  inDatabase: readonly DatabaseRole[],
  stored: ReadonlyMap<string, PasswordState>,
  latestSecretVersions: ReadonlyMap<string, string>,
): RoleActions {
  const specByName = new Map(spec.map((r) => [r.name, r]));
  const actions = { create: [], update: [], setComment: [], updateMemberships: [], drop: [], reserved: [], notManaged: [], reconciled: [] } as {
    -readonly [K in keyof RoleActions]: RoleActions[K] extends readonly (infer T)[] ? T[] : never;
  };
  const inDatabaseNames = new Set<string>();
  for (const db of inDatabase) {
    inDatabaseNames.add(db.name);
    const wanted = specByName.get(db.name);
    if (isReservedRole(db.name)) actions.reserved.push(db.name);
    else if (wanted === undefined) actions.notManaged.push(db.name);
    else if (wanted.ensure === 'absent') actions.drop.push(db.name);
    else if (!isEquivalent(db, wanted) || passwordNeedsUpdating(db, wanted, stored, latestSecretVersions)) {
      actions.update.push({ role: wanted, validUntilInfinity: wanted.validUntil === undefined && db.validUntil !== undefined });
    } else if (db.comment !== wanted.comment) actions.setComment.push(wanted);
    else if (!sameMembers(db.inRoles, wanted.inRoles)) actions.updateMemberships.push(wanted);
    else actions.reconciled.push(db.name);
  }
  for (const wanted of spec) {
    if (inDatabaseNames.has(wanted.name)) continue;
    if (wanted.ensure === 'present') actions.create.push(wanted);
    else actions.reconciled.push(wanted.name);
  }
  return actions;
}

/** CNPG's `convertToRolesByStatus`, names sorted; empty lists left out as `omitempty` does. */
export function rolesByStatus(actions: RoleActions): Partial<Record<RoleStatus, string[]>> {
  const pending = [...actions.create.map((r) => r.name), ...actions.update.map((u) => u.role.name), ...actions.setComment.map((r) => r.name), ...actions.updateMemberships.map((r) => r.name), ...actions.drop];
  const byStatus: Partial<Record<RoleStatus, string[]>> = {};
  const put = (status: RoleStatus, names: readonly string[]): void => {
    if (names.length > 0) byStatus[status] = [...names].sort();
  };
  put('reconciled', actions.reconciled);
  put('not-managed', actions.notManaged);
  put('pending-reconciliation', pending);
  put('reserved', actions.reserved);
  return byStatus;
}

export function hasPendingActions(actions: RoleActions): boolean {
  return actions.create.length + actions.update.length + actions.setComment.length + actions.updateMemberships.length + actions.drop.length > 0;
}

/** CNPG's `getRolesToGrant` / `getRolesToRevoke`. */
export function membershipDiff(inDatabase: readonly string[], wanted: readonly string[]): { grant: string[]; revoke: string[] } {
  return { grant: wanted.filter((r) => !inDatabase.includes(r)), revoke: inDatabase.filter((r) => !wanted.includes(r)) };
}

// ---- SQL (CNPG's Create, Update, UpdateComment, UpdateMembership, Delete) ----

/** What the password clause says: leave it, NULL, or this SCRAM verifier. */
export type PasswordClause = { readonly kind: 'keep' } | { readonly kind: 'null' } | { readonly kind: 'verifier'; readonly verifier: string };

/** CNPG's `DatabaseRoleFromConfiguration` + `ApplyPassword` without the Secret: keep, NULL, or a Secret to read. */
export function passwordSource(role: ManagedRole): 'keep' | 'null' | 'secret' {
  if (role.passwordSecret !== undefined) return 'secret';
  return role.disablePassword ? 'null' : 'keep';
}

function roleOptions(role: ManagedRole): string {
  return [
    role.bypassrls ? 'BYPASSRLS' : 'NOBYPASSRLS',
    role.createdb ? 'CREATEDB' : 'NOCREATEDB',
    role.createrole ? 'CREATEROLE' : 'NOCREATEROLE',
    role.inherit ? 'INHERIT' : 'NOINHERIT',
    role.login ? 'LOGIN' : 'NOLOGIN',
    role.replication ? 'REPLICATION' : 'NOREPLICATION',
    role.superuser ? 'SUPERUSER' : 'NOSUPERUSER',
    `CONNECTION LIMIT ${role.connectionLimit}`,
  ].join(' ');
}

function passwordAndExpiry(password: PasswordClause, validUntil: number | undefined, infinity: boolean): string {
  let sql = '';
  if (password.kind === 'null') sql += ' PASSWORD NULL';
  else if (password.kind === 'verifier') sql += ` PASSWORD ${quoteLiteral(password.verifier)}`;
  if (validUntil !== undefined) sql += ` VALID UNTIL ${quoteLiteral(new Date(validUntil).toISOString())}`;
  else if (infinity) sql += " VALID UNTIL 'infinity'";
  return sql;
}

/** CREATE ROLE with its options, IN ROLE, password and expiry; then its comment (CNPG's `Create`). */
export function createRoleStatements(role: ManagedRole, password: PasswordClause): string[] {
  const inRoles = role.inRoles.length > 0 ? ` IN ROLE ${role.inRoles.map(quoteIdentifier).join(',')}` : '';
  const statements = [`CREATE ROLE ${quoteIdentifier(role.name)} ${roleOptions(role)}${inRoles}${passwordAndExpiry(password, role.validUntil, false)}`];
  if (role.comment !== '') statements.push(commentStatement(role));
  return statements;
}

/** ALTER ROLE with every option, the password and the expiry (CNPG's `Update`). */
export function alterRoleStatement(update: RoleUpdate, password: PasswordClause): string {
  return `ALTER ROLE ${quoteIdentifier(update.role.name)} ${roleOptions(update.role)}${passwordAndExpiry(password, update.role.validUntil, update.validUntilInfinity)}`;
}

export function commentStatement(role: ManagedRole): string {
  return `COMMENT ON ROLE ${quoteIdentifier(role.name)} IS ${quoteLiteral(role.comment)}`;
}

/** GRANTs then REVOKEs, to run in one transaction (CNPG's `UpdateMembership`). */
export function membershipStatements(role: string, diff: { grant: readonly string[]; revoke: readonly string[] }): string[] {
  return [
    ...diff.grant.map((r) => `GRANT ${quoteIdentifier(r)} TO ${quoteIdentifier(role)}`),
    ...diff.revoke.map((r) => `REVOKE ${quoteIdentifier(r)} FROM ${quoteIdentifier(role)}`),
  ];
}

export function dropRoleStatement(role: string): string {
  return `DROP ROLE IF EXISTS ${quoteIdentifier(role)}`;
}
