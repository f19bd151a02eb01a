import type pg from 'pg';
import type { Credentials } from '../credentials/index.js';
import { scramSha256Verifier } from './scram.js';
import { quoteIdent, quoteLiteral } from './sql.js';

/**
 * Runs statements in one transaction with statement logging off for it, so a password or verifier in them never
 * reaches PostgreSQL's log, even with `log_statement = 'all'` (CNPG's `ExecWithSuppressedLogging`).
 */
export async function execWithSuppressedLogging(client: pg.Client, statements: readonly string[]): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query("SET LOCAL log_statement = 'none'");
    await client.query("SET LOCAL log_min_error_statement = 'panic'");
    await client.query("SET LOCAL log_min_duration_statement = '-1'");
    for (const statement of statements) await client.query(statement);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Sets a role's password from a verifier computed here, so the cleartext never reaches the server. */
export async function setRolePassword(client: pg.Client, role: string, password: string | null): Promise<void> {
  const literal = password === null ? 'NULL' : quoteLiteral(scramSha256Verifier(password));
  try {
    await execWithSuppressedLogging(client, [`ALTER ROLE ${quoteIdent(role)} WITH PASSWORD ${literal}`]);
  } catch (err) {
    // pg's error carries no statement text, but drop everything but the message to be sure nothing echoes back.
    throw new Error(`could not set the password of role ${role}: ${(err as Error).message}`);
  }
}

/**
 * The roles every primary must have, enforced at each start (CNPG `configureInstancePermissions`), plus one thing
 * CNPG misses: `streaming_replica` must have no password, or it could log in without a certificate.
 */
export async function ensureSystemRoles(client: pg.Client): Promise<void> {
  await client.query(`DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'streaming_replica') THEN
    CREATE ROLE streaming_replica LOGIN REPLICATION;
    COMMENT ON ROLE streaming_replica IS 'Special user for streaming replication created by pgim';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cnpg_metrics_exporter') THEN
    CREATE ROLE cnpg_metrics_exporter LOGIN;
  END IF;
END $$`);
  await client.query('ALTER ROLE streaming_replica WITH LOGIN REPLICATION NOSUPERUSER PASSWORD NULL');
  // What pg_rewind needs from its source, so a former primary can rewind as streaming_replica (CNPG grants the same).
  await client.query(`GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean), pg_catalog.pg_stat_file(text, boolean),
    pg_catalog.pg_read_binary_file(text), pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO streaming_replica`);
  await client.query(
    'ALTER ROLE cnpg_metrics_exporter WITH NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT LOGIN PASSWORD NULL',
  );
  await client.query('GRANT pg_monitor TO cnpg_metrics_exporter');
}

/** The application owner and database from `bootstrap.initdb`, created when missing. */
export async function ensureApplicationDatabase(client: pg.Client, owner: string, database: string): Promise<void> {
  const role = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [owner]);
  if (role.rowCount === 0) await client.query(`CREATE ROLE ${quoteIdent(owner)} LOGIN`);
  const db = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
  if (db.rowCount === 0) await client.query(`CREATE DATABASE ${quoteIdent(database)} OWNER ${quoteIdent(owner)}`);
}

/** Owner password from its Secret; superuser password from its Secret only while superuser access is enabled. */
export async function applyCredentials(client: pg.Client, credentials: Credentials): Promise<void> {
  await setRolePassword(client, credentials.owner.username, credentials.owner.password);
  await setRolePassword(client, 'postgres', credentials.superuser?.password ?? null);
}
