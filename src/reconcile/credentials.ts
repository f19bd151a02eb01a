import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { Credentials } from '../credentials/index.js';
import { setRolePassword } from '../postgres/roles.js';

/**
 * Applies each version of a password once per pgim lifetime (CNPG caches Secret versions the same way). A version
 * is a digest of the Secret's values, kept in memory only, so a rotation is noticed without keeping the password.
 */
export class CredentialsApplier {
  private readonly applied = new Map<string, string>();

  private static version(value: string | null): string {
    return value === null ? 'null' : createHash('sha256').update(value).digest('hex');
  }

  /** Records what a bootstrap already set, so the first start does not set it again. */
  markApplied(credentials: Credentials): void {
    this.applied.set(credentials.owner.username, CredentialsApplier.version(credentials.owner.password));
    this.applied.set('postgres', CredentialsApplier.version(credentials.superuser?.password ?? null));
  }

  /** Returns the roles whose password was (re)applied. */
  async apply(client: pg.Client, credentials: Credentials): Promise<string[]> {
    const wanted: [string, string | null][] = [
      [credentials.owner.username, credentials.owner.password],
      ['postgres', credentials.superuser?.password ?? null],
    ];
    const changed: string[] = [];
    for (const [role, password] of wanted) {
      const version = CredentialsApplier.version(password);
      if (this.applied.get(role) === version) continue;
      await setRolePassword(client, role, password);
      this.applied.set(role, version);
      changed.push(role);
    }
    return changed;
  }
}
