import type { Cluster } from '../cluster/schema.js';
import type { ControlPlane } from '../controlplane/index.js';
import { ConfigError } from '../errors/index.js';
import { textKey } from './index.js';

/**
 * The LDAP bind password of `spec.postgresql.ldap.bindSearchAuth.bindPassword`, read from its Secret as CNPG's
 * refreshPGHBA does: "" when no Secret is named, a ConfigError (naming the Secret and key, never the value) when the
 * Secret or key is missing or the value cannot sit in a pg_hba line. Undefined when LDAP is off.
 */
export async function readLdapBindPassword(controlPlane: ControlPlane, cluster: Cluster): Promise<string | undefined> {
  const ldap = cluster.ldap;
  if (ldap === undefined) return undefined;
  const ref = ldap.bindSearchAuth?.bindPassword;
  if (ref === undefined) return '';
  const source = `secret ${ref.name}`;
  const data = await controlPlane.readSecret(ref.name);
  if (data === undefined) throw new ConfigError(source, '', 'not found (named by spec.postgresql.ldap.bindSearchAuth.bindPassword)');
  return textKey(data, source, ref.key);
}
