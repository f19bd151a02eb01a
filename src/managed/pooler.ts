import type pg from 'pg';
import type { PoolerObject } from '../controlplane/index.js';

/**
 * What CNPG's instance manager owns of a PgBouncer Pooler (internal/management/controller/instance_controller.go,
 * `reconcilePgbouncerAuthUser`): the `cnpg_pooler_pgbouncer` role, which PgBouncer logs in as with its client
 * certificate (pg_hba's fixed `hostssl all cnpg_pooler_pgbouncer all cert map=cnpg_pooler_pgbouncer` rule), and the
 * `public.user_search` function its `auth_query` calls to read a user's verifier from pg_shadow.
 */

export const poolerRole = 'cnpg_pooler_pgbouncer';
/** CNPG's `PoolerAuthDBName`: the database PgBouncer runs `auth_query` in. */
export const poolerAuthDatabase = 'postgres';
/** CNPG's `userSearchFunction`, byte for byte: the existing function is compared with it. */
export const userSearchFunctionBody = 'SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename=$1;';

/**
 * The PgBouncer Poolers of `cluster` whose authentication the instance manager provides (CNPG's
 * `getPgbouncerIntegrationStatus`): a Pooler with its own `authQuerySecret` manages its own auth user.
 */
export function integratedPoolers(poolers: readonly PoolerObject[], cluster: string): string[] {
  return poolers
    .filter((p) => p.spec.cluster?.name === cluster && p.spec.pgbouncer !== undefined && p.spec.pgbouncer.authQuerySecret === undefined)
    .map((p) => p.name)
    .sort();
}

/**
 * Creates the role and the function when missing, in one transaction, with CNPG's statements: the role with LOGIN
 * and CONNECT on `postgres`; the function SECURITY DEFINER with a pinned search_path, EXECUTE for the role only.
 * Returns what it created.
 */
export async function ensurePoolerIntegration(client: pg.Client): Promise<string[]> {
  const created: string[] = [];
  await client.query('BEGIN');
  try {
    const role = await client.query('SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1', [poolerRole]);
    if (role.rowCount === 0) {
      await client.query(`CREATE ROLE ${poolerRole} WITH LOGIN`);
      await client.query(`GRANT CONNECT ON DATABASE ${poolerAuthDatabase} TO ${poolerRole}`);
      created.push(`role ${poolerRole}`);
    }
    const fn = await client.query("SELECT 1 FROM pg_catalog.pg_proc WHERE proname = 'user_search' AND prosrc = $1 AND proconfig IS NOT NULL", [userSearchFunctionBody]);
    if (fn.rowCount === 0) {
      await client.query(
        `CREATE OR REPLACE FUNCTION public.user_search(uname TEXT) RETURNS TABLE (usename name, passwd text) as '${userSearchFunctionBody.replaceAll("'", "''")}' ` +
          'LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp',
      );
      await client.query('REVOKE ALL ON FUNCTION public.user_search(text) FROM public');
      await client.query(`GRANT EXECUTE ON FUNCTION public.user_search(text) TO ${poolerRole}`);
      created.push('function public.user_search');
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  return created;
}
