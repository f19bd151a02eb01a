import type { LdapConfiguration } from '../cluster/ldap.js';

/**
 * A pg_hba option value quoted as CNPG's quoteHbaLiteral does: inside double quotes, a `"` doubled. (CNPG turns a
 * line break into a backslash continuation; pgim's schema and Secret reader refuse line breaks instead, so none
 * reaches here.)
 */
function quoteHbaLiteral(literal: string): string {
  return `"${literal.replaceAll('"', '""')}"`;
}

/**
 * The pg_hba rule CNPG's buildLDAPConfigString renders for `spec.postgresql.ldap` (pkg/management/postgres/
 * configuration.go, v1.30.0), option for option and in the same order. `bindPassword` is the value of the
 * `bindSearchAuth.bindPassword` Secret key ("" when no Secret is named, as in CNPG).
 */
export function renderLdapRule(ldap: LdapConfiguration, bindPassword: string): string {
  let rule = `host all all 0.0.0.0/0 ldap ldapserver=${quoteHbaLiteral(ldap.server)}`;
  if (ldap.port !== undefined) rule += ` ldapport=${String(ldap.port)}`;
  if (ldap.scheme !== undefined) rule += ` ldapscheme=${quoteHbaLiteral(ldap.scheme)}`;
  if (ldap.tls) rule += ' ldaptls=1';
  if (ldap.bindAsAuth !== undefined) {
    rule += ` ldapprefix=${quoteHbaLiteral(ldap.bindAsAuth.prefix)} ldapsuffix=${quoteHbaLiteral(ldap.bindAsAuth.suffix)}`;
  }
  const search = ldap.bindSearchAuth;
  if (search !== undefined) {
    rule += ` ldapbasedn=${quoteHbaLiteral(search.baseDN)} ldapbinddn=${quoteHbaLiteral(search.bindDN)} ldapbindpasswd=${quoteHbaLiteral(bindPassword)}`;
    if (search.searchFilter !== '') rule += ` ldapsearchfilter=${quoteHbaLiteral(search.searchFilter)}`;
    if (search.searchAttribute !== '') rule += ` ldapsearchattribute=${quoteHbaLiteral(search.searchAttribute)}`;
  }
  return rule;
}
