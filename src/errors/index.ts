/**
 * Errors a user can act on. Each names where the problem is (file, field path, Secret and key) and never carries
 * a secret's value, so its message is always safe to log and to show in status.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    /** Where the bad input lives: a file path, or `secret <name>` / `configmap <name>`. */
    readonly source: string,
    /** The field path or key inside the source, e.g. `spec.instances`; empty for the whole source. */
    readonly field: string,
    readonly problem: string,
  ) {
    super(field === '' ? `${source}: ${problem}` : `${source}: ${field}: ${problem}`);
  }
}

/** Exit codes, CNPG-compatible where CNPG defines one. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 3,
  noWalSpace: 4,
  /** PGDATA cannot be used as it is: another major version, not the postgres user's, or not a cluster. */
  unusableDataDirectory: 5,
  /** The PostgreSQL port is held by another program. */
  portInUse: 6,
  /** The PostgreSQL server binaries are missing. */
  missingBinaries: 7,
} as const;

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
