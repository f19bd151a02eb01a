import { z } from 'zod';

/**
 * `spec.tablespaces` (CNPG api/v1 TablespaceConfiguration): each one a folder of its own, `<root>/<name>/data`
 * (CNPG's mount `/var/lib/postgresql/tablespaces/<name>` in Kubernetes mode), created by the primary with
 * `CREATE TABLESPACE ... OWNER ... LOCATION` and owned as the spec says (internal/management/controller/tablespaces).
 */

/** CNPG's postgres.IsTablespaceNameValid. */
const tablespaceName = z
  .string()
  .refine((s) => !s.startsWith('pg_'), "tablespace names beginning 'pg_' are reserved for Postgres")
  .refine((s) => /^[a-zA-Z_][a-zA-Z0-9_$]*$/.test(s), "tablespace names must be valid Postgres identifiers: alphanumeric characters, '_', '$', and must start with a letter or an underscore")
  .refine((s) => s.length <= 63, 'the maximum length of an identifier is 63 characters');

export const tablespacesSchema = z
  .array(
    z
      .object({
        name: tablespaceName,
        owner: z.object({ name: z.string().max(63, 'must be at most 63 bytes').optional() }).loose().optional(),
        temporary: z.boolean().default(false),
        // The volume: the operator's (a PVC mounted at the folder); pgim uses the folder.
        storage: z.unknown().optional(),
      })
      .loose(),
  )
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((tablespace, i) => {
      // PostgreSQL folds unquoted names: CNPG refuses names that differ only by case.
      const key = tablespace.name.toLowerCase();
      if (seen.has(key)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: 'duplicate tablespace name' });
      seen.add(key);
    });
  });

export interface TablespaceSpec {
  readonly name: string;
  /** The owning role; CNPG leaves an empty owner to fail in PostgreSQL, pgim gives it to the superuser. */
  readonly owner: string;
  readonly temporary: boolean;
}

export function resolveTablespaces(list: z.infer<typeof tablespacesSchema> | undefined): TablespaceSpec[] {
  return (list ?? []).map((t) => ({ name: t.name, owner: t.owner?.name === undefined || t.owner.name === '' ? 'postgres' : t.owner.name, temporary: t.temporary }));
}

/** CNPG's `specs.LocationForTablespace`, under this instance's root: `<root>/<name>/data`. */
export function tablespaceLocation(root: string, name: string): string {
  return `${root.replace(/\/+$/, '')}/${name}/data`;
}

/** CNPG's TablespaceState, as `status.tablespacesStatus` lists it. */
export interface TablespaceState {
  readonly name: string;
  readonly owner?: string;
  readonly state: 'reconciled' | 'pending';
  readonly error?: string;
}
