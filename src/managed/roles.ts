import type pg from 'pg';
import type { ManagedRole } from '../cluster/managed-roles.js';
import { objectVersion, type ControlPlane, type ManagedRolesStatus } from '../controlplane/index.js';
import { errorMessage } from '../errors/index.js';
import { execWithSuppressedLogging } from '../postgres/roles.js';
import { scramSha256Verifier } from '../postgres/scram.js';
import {
  alterRoleStatement,
  commentStatement,
  createRoleStatements,
  dropRoleStatement,
  evaluateRoleActions,
  hasPendingActions,
  membershipDiff,
  membershipStatements,
  passwordSource,
  rolesByStatus,
  type DatabaseRole,
  type PasswordClause,
  type PasswordState,
  type RoleActions,
} from './role-actions.js';

/** CNPG's `List`: every role but PostgreSQL's `pg_*`, with its comment, xmin and memberships. */
const listRolesSql = `SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolconnlimit,
    (extract(epoch FROM rolvaliduntil) * 1000)::text AS validuntil, rolbypassrls,
    pg_catalog.shobj_description(auth.oid, 'pg_authid') AS comment, auth.xmin::text AS xmin, mem.inroles
  FROM pg_catalog.pg_authid AS auth
  LEFT JOIN (SELECT pg_catalog.array_agg(pg_catalog.pg_get_userbyid(roleid))::text[] AS inroles, member FROM pg_catalog.pg_auth_members GROUP BY member) mem
    ON member = oid
  WHERE rolname NOT LIKE 'pg\\_%'`;

interface RoleRow {
  rolname: string;
  rolsuper: boolean;
  rolinherit: boolean;
  rolcreaterole: boolean;
  rolcreatedb: boolean;
  rolcanlogin: boolean;
  rolreplication: boolean;
  rolconnlimit: number;
  validuntil: string | null;
  rolbypassrls: boolean;
  comment: string | null;
  xmin: string;
  inroles: string[] | null;
}

export async function listDatabaseRoles(client: pg.Client): Promise<DatabaseRole[]> {
  const { rows } = await client.query<RoleRow>(listRolesSql);
  return rows.map((row) => ({
    name: row.rolname,
    superuser: row.rolsuper,
    inherit: row.rolinherit,
    createrole: row.rolcreaterole,
    createdb: row.rolcreatedb,
    login: row.rolcanlogin,
    replication: row.rolreplication,
    bypassrls: row.rolbypassrls,
    connectionLimit: row.rolconnlimit,
    validUntil: row.validuntil === null ? undefined : row.validuntil === 'Infinity' ? Infinity : Number(row.validuntil),
    comment: row.comment ?? '',
    transactionID: Number(row.xmin),
    inRoles: row.inroles ?? [],
  }));
}

/** A password Secret as CNPG reads it (`getPassword`): `username` must name the role; both trimmed. */
interface PasswordSecret {
  readonly password: string;
  readonly version: string;
}

/** What went wrong reading a password Secret; safe to log and to show (never the value). */
class PasswordSecretError extends Error {}

async function readPasswordSecret(controlPlane: Pick<ControlPlane, 'readSecret'>, role: ManagedRole, secretName: string): Promise<PasswordSecret> {
  let data;
  try {
    data = await controlPlane.readSecret(secretName);
  } catch (err) {
    throw new PasswordSecretError(`failed to get password secret ${secretName}: ${errorMessage(err)}`);
  }
  if (data === undefined) throw new PasswordSecretError(`failed to get password secret ${secretName}: not found`);
  const username = data.get('username')?.toString('utf8').trim();
  const password = data.get('password')?.toString('utf8').trim();
  if (username === undefined || password === undefined) throw new PasswordSecretError(`secret ${secretName} must have the keys username and password`);
  if (username !== role.name.trim()) throw new PasswordSecretError(`the username in secret "${secretName}" does not match role "${role.name}"`);
  return { password, version: objectVersion(data) };
}

/** PostgreSQL keeps an md5 or SCRAM verifier as it is (CNPG's `EnsureEncryptedPassword`); anything else is hashed here. */
function verifierOf(password: string): string {
  if (/^md5[0-9a-f]{32}$/.test(password) || /^SCRAM-SHA-256\$\d+:[^$]+\$[^:]+:.+$/.test(password)) return password;
  return scramSha256Verifier(password);
}

/** One transaction; `quiet` turns statement logging off for it (a statement carries a password verifier). */
async function inTransaction(client: pg.Client, statements: readonly string[], quiet: boolean): Promise<void> {
  if (quiet) {
    await execWithSuppressedLogging(client, statements);
    return;
  }
  await client.query('BEGIN');
  try {
    for (const statement of statements) await client.query(statement);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

type ActionName = 'CREATE' | 'UPDATE' | 'SET_COMMENT' | 'UPDATE_MEMBERSHIPS' | 'DELETE';

/** CNPG's `parseRoleError`: known PostgreSQL causes as `could not perform ACTION on role NAME: cause`. */
function roleError(err: unknown, role: string, action: ActionName): string {
  if (err instanceof PasswordSecretError) return err.message;
  const pgError = err as { code?: string; detail?: string; message?: string };
  const cause = pgError.code === '2BP01' ? pgError.detail : pgError.code === '42704' || pgError.code === '0LP01' ? pgError.message : undefined;
  if (cause !== undefined) return `could not perform ${action} on role ${role}: ${cause}`;
  return `while trying to ${action}: ${errorMessage(err)}`;
}

export interface RoleReconcileResult {
  readonly status: ManagedRolesStatus;
  /** Roles a statement changed in this pass, for the log. */
  readonly changed: readonly string[];
}

/**
 * CNPG's RoleSynchronizer on the primary: reads pg_authid and the password Secrets, applies what differs (create,
 * update, comment, memberships, drop, in CNPG's order) and returns CNPG's ManagedRoles status. A role that fails is
 * listed in `cannotReconcile` and the others still proceed. Password versions applied (a Secret's version and the
 * pg_authid transaction that wrote it) are kept in `passwords`, which the caller persists in the Cluster's status.
 */
export async function reconcileManagedRoles(
  client: pg.Client,
  controlPlane: Pick<ControlPlane, 'readSecret'>,
  spec: readonly ManagedRole[],
  passwords: Map<string, PasswordState>,
): Promise<RoleReconcileResult> {
  const cannotReconcile = new Map<string, string[]>();
  const fail = (role: string, reason: string): void => {
    cannotReconcile.set(role, [...(cannotReconcile.get(role) ?? []), reason]);
  };
  const changed = new Set<string>();
  const secrets = new Map<string, PasswordSecret>();
  const latestVersions = new Map<string, string>();
  const secretErrors = new Map<string, PasswordSecretError>();
  for (const role of spec) {
    if (role.passwordSecret === undefined || role.disablePassword) continue;
    try {
      const secret = await readPasswordSecret(controlPlane, role, role.passwordSecret);
      secrets.set(role.name, secret);
      latestVersions.set(role.name, secret.version);
    } catch (err) {
      // Flagged for an update, which reports why (CNPG's `passwordSecretIsRequiredButMissing`).
      secretErrors.set(role.name, err as PasswordSecretError);
    }
  }

  const passwordFor = (role: ManagedRole): PasswordClause & { version: string } => {
    const source = passwordSource(role);
    if (source === 'keep') return { kind: 'keep', version: '' };
    if (source === 'null') return { kind: 'null', version: '' };
    const read = secrets.get(role.name);
    if (read === undefined) throw secretErrors.get(role.name) ?? new PasswordSecretError(`failed to get password secret ${role.passwordSecret ?? ''}`);
    return { kind: 'verifier', verifier: verifierOf(read.password), version: read.version };
  };
  const xminOf = async (role: string): Promise<number> => {
    const { rows } = await client.query<{ xmin: string }>('SELECT xmin::text AS xmin FROM pg_catalog.pg_authid WHERE rolname = $1', [role]);
    return Number(rows[0]?.xmin ?? 0);
  };

  // Up to three rounds: an update leaves the comment and memberships to the next evaluation, as CNPG's next trigger
  // would; here they converge in the same pass.
  let actions: RoleActions = evaluateRoleActions(spec, await listDatabaseRoles(client), passwords, latestVersions);
  for (let round = 0; round < 3 && hasPendingActions(actions); round++) {
    const attempt = async (role: string, action: ActionName, run: () => Promise<void>): Promise<void> => {
      if (cannotReconcile.has(role)) return;
      try {
        await run();
        changed.add(role);
      } catch (err) {
        fail(role, roleError(err, role, action));
      }
    };
    for (const role of actions.create) {
      await attempt(role.name, 'CREATE', async () => {
        const password = passwordFor(role);
        const [create = '', ...comment] = createRoleStatements(role, password);
        await inTransaction(client, [create], password.kind === 'verifier');
        for (const statement of comment) await client.query(statement);
        passwords.set(role.name, { transactionID: await xminOf(role.name), resourceVersion: password.version });
      });
    }
    for (const update of actions.update) {
      await attempt(update.role.name, 'UPDATE', async () => {
        const password = passwordFor(update.role);
        await inTransaction(client, [alterRoleStatement(update, password)], password.kind === 'verifier');
        passwords.set(update.role.name, { transactionID: await xminOf(update.role.name), resourceVersion: password.version });
      });
    }
    for (const role of actions.setComment) await attempt(role.name, 'SET_COMMENT', async () => {
      await client.query(commentStatement(role));
    });
    for (const role of actions.updateMemberships) {
      await attempt(role.name, 'UPDATE_MEMBERSHIPS', async () => {
        const current = (await listDatabaseRoles(client)).find((r) => r.name === role.name)?.inRoles ?? [];
        await inTransaction(client, membershipStatements(role.name, membershipDiff(current, role.inRoles)), false);
      });
    }
    for (const name of actions.drop) await attempt(name, 'DELETE', async () => {
      await client.query(dropRoleStatement(name));
    });
    actions = evaluateRoleActions(spec, await listDatabaseRoles(client), passwords, latestVersions);
  }

  const status: ManagedRolesStatus = {
    byStatus: rolesByStatus(actions),
    ...(cannotReconcile.size === 0 ? {} : { cannotReconcile: Object.fromEntries([...cannotReconcile].sort(([a], [b]) => (a < b ? -1 : 1))) }),
    ...(passwords.size === 0 ? {} : { passwordStatus: Object.fromEntries([...passwords].sort(([a], [b]) => (a < b ? -1 : 1)).map(([role, state]) => [role, passwordStateJson(state)])) }),
  };
  return { status, changed: [...changed].sort() };
}

/** CNPG's PasswordState JSON: both fields `omitempty`. */
function passwordStateJson(state: PasswordState): { transactionID?: number; resourceVersion?: string } {
  return { ...(state.transactionID === 0 ? {} : { transactionID: state.transactionID }), ...(state.resourceVersion === '' ? {} : { resourceVersion: state.resourceVersion }) };
}
