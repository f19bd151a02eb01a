import type pg from 'pg';
import { ConfigError } from '../errors/index.js';

/** One piece of post-init SQL and where it comes from (a field, or a Secret's or ConfigMap's key). */
export interface SqlScript {
  /** e.g. `spec.bootstrap.initdb.postInitSQL[1]` or `...postInitSQLRefs.secretRefs[0]`. */
  readonly field: string;
  /** Where the text lives: the Cluster's source, or `secret <name>` / `configmap <name>` with the key. */
  readonly source: string;
  readonly sql: string;
  /** SQL from a Secret may hold a secret: PostgreSQL's message about it is not repeated (it can quote the text). */
  readonly secret: boolean;
}

/** The post-init SQL of a bootstrap, per database, each in CNPG's order (inline queries, Secrets, ConfigMaps). */
export interface PostInitScripts {
  readonly postgres: readonly SqlScript[];
  readonly template: readonly SqlScript[];
  readonly application: readonly SqlScript[];
}

export const noPostInitScripts: PostInitScripts = { postgres: [], template: [], application: [] };

/** PostgreSQL would log a failing statement's text (and its error, which can quote it): off for a Secret's SQL. */
const quiet = { log_statement: "'none'", log_min_duration_statement: '-1', log_min_error_statement: 'panic', log_min_messages: 'panic' } as const;
const quietLogging = Object.keys(quiet) as (keyof typeof quiet)[];

/**
 * Runs one database's scripts in one session, as CNPG's executeQueries does: `search_path` set to `"$user", public`
 * first (pgim's sessions pin it to pg_catalog), each script sent as one simple-protocol query (several statements
 * allowed), the first failure stops everything. The error names the field; a Secret's SQL error keeps only the
 * SQLSTATE, and
 * PostgreSQL's own log keeps neither its text nor its error.
 */
export async function runPostInitScripts(client: pg.Client, scripts: readonly SqlScript[]): Promise<void> {
  if (scripts.length === 0) return;
  await client.query('SET search_path TO "$user", public');
  for (const script of scripts) {
    try {
      if (script.secret) await client.query(quietLogging.map((name) => `SET ${name} = ${quiet[name]}`).join('; '));
      await client.query(script.sql);
      if (script.secret) await client.query(quietLogging.map((name) => `RESET ${name}`).join('; '));
    } catch (err) {
      const e = err as Error & { code?: string };
      const detail = script.secret ? `SQLSTATE ${e.code ?? 'unknown'} (the message is not shown: the SQL comes from a Secret)` : `${e.message}${e.code === undefined ? '' : ` (SQLSTATE ${e.code})`}`;
      throw new ConfigError(script.source, script.field, `post-init SQL failed: ${detail}`);
    }
  }
}
