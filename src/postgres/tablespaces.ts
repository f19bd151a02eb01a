import { access, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type pg from 'pg';
import { tablespaceLocation, type TablespaceSpec, type TablespaceState } from '../cluster/tablespaces.js';
import { quoteIdent, quoteLiteral } from './sql.js';

/**
 * Where this instance keeps its tablespaces, and whether pgim may create the folder of each (files mode) or must
 * find it mounted (Kubernetes mode: the operator's volume at `<root>/<name>`; pgim creates only `data` inside, as
 * CNPG's ReconcileTablespaces does, so nothing lands on the container's own filesystem).
 */
export interface TablespaceStorage {
  readonly root: string;
  readonly createMountPoints: boolean;
}

/**
 * Makes `<root>/<name>/data` (0700) for each tablespace: on every instance, before each start and at each pass, so
 * a replica replaying a CREATE TABLESPACE finds its folder. Returns the names whose folder is not there yet (the
 * mount point is missing, or cannot be created) with why.
 */
export async function ensureTablespaceFolders(storage: TablespaceStorage, tablespaces: readonly TablespaceSpec[]): Promise<Map<string, string>> {
  const missing = new Map<string, string>();
  for (const { name } of tablespaces) {
    const location = tablespaceLocation(storage.root, name);
    try {
      if (!storage.createMountPoints) await access(dirname(location));
      await mkdir(location, { recursive: true, mode: 0o700 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      missing.set(name, code === 'ENOENT' && !storage.createMountPoints ? `deferred until the mount point ${dirname(location)} is created` : `cannot create ${location}: ${code ?? String(err)}`);
    }
  }
  return missing;
}

interface DatabaseTablespace {
  name: string;
  owner: string;
}

/** User tablespaces (CNPG's infrastructure.List: not `pg_*`) and their owners. */
async function listTablespaces(client: pg.Client): Promise<Map<string, DatabaseTablespace>> {
  const { rows } = await client.query<DatabaseTablespace>(
    "SELECT t.spcname AS name, COALESCE(r.rolname, '') AS owner FROM pg_catalog.pg_tablespace t LEFT JOIN pg_catalog.pg_roles r ON t.spcowner = r.oid WHERE t.spcname NOT LIKE 'pg\\_%'",
  );
  return new Map(rows.map((row) => [row.name, row]));
}

/**
 * The primary's pass (CNPG's tablespace reconciler): each tablespace of the spec is created in its folder with its
 * owner, or given the owner the spec names; one that fails stays `pending` with PostgreSQL's reason, and the others
 * go on. Tablespaces are never dropped (CNPG refuses removing one from the spec).
 */
export async function reconcileTablespaces(client: pg.Client, storage: TablespaceStorage, tablespaces: readonly TablespaceSpec[]): Promise<TablespaceState[]> {
  if (tablespaces.length === 0) return [];
  const missing = await ensureTablespaceFolders(storage, tablespaces);
  const existing = await listTablespaces(client);
  const states: TablespaceState[] = [];
  for (const tablespace of tablespaces) {
    const { name, owner } = tablespace;
    const found = existing.get(name);
    const pending = (error: string): TablespaceState => ({ name, owner, state: 'pending', error });
    if (found === undefined && missing.has(name)) {
      states.push(pending(missing.get(name) ?? ''));
      continue;
    }
    try {
      if (found === undefined) {
        await client.query(`CREATE TABLESPACE ${quoteIdent(name)} OWNER ${quoteIdent(owner)} LOCATION ${quoteLiteral(tablespaceLocation(storage.root, name))}`);
      } else if (found.owner !== owner) {
        await client.query(`ALTER TABLESPACE ${quoteIdent(name)} OWNER TO ${quoteIdent(owner)}`);
      }
      states.push({ name, owner, state: 'reconciled' });
    } catch (err) {
      states.push(pending(`while ${found === undefined ? 'creating' : 'updating'} tablespace ${name}: ${(err as Error).message}`));
    }
  }
  return states;
}
