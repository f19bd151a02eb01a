/**
 * pg_hba.conf after CNPG's template: fixed rules, then the user's, then the LDAP rule (`spec.postgresql.ldap`), then
 * the default password rule. Beyond CNPG (its issue #10371): `defaultRule: false` leaves the default rule out, so a
 * CIDR allow-list is really one.
 */
export function renderPgHba(userRules: readonly string[], defaultRule = true, defaultMethod = 'scram-sha-256', ldapRule?: string): string {
  const defaults = defaultRule
    ? `host all all all ${defaultMethod}\n`
    : '# default rule disabled: connections matching no rule above are rejected\n';
  return `
#
# FIXED RULES
#

# Grant local access ('local' user map)
local all cnpg_metrics_exporter peer map=cnpg_metrics_exporter
local all all peer map=local

# Require client certificate authentication for the streaming_replica user
hostssl postgres streaming_replica all cert map=cnpg_streaming_replica
hostssl replication streaming_replica all cert map=cnpg_streaming_replica
hostssl all cnpg_pooler_pgbouncer all cert map=cnpg_pooler_pgbouncer

#
# USER-DEFINED RULES
#

${userRules.map((rule) => `${rule}\n`).join('')}
${ldapRule === undefined ? '' : `\n#\n# LDAP CONFIGURATION (optional)\n#\n${ldapRule}\n`}
#
# DEFAULT RULES
#
${defaults}`;
}

/**
 * pg_ident.conf after CNPG's template. `osUser` is the real name of the OS user postgres runs as: the `local` map
 * lets exactly that user in as `postgres` over the socket, never everyone.
 */
export function renderPgIdent(osUser: string, userMappings: readonly string[]): string {
  return `
#
# FIXED RULES
#

# Grant local access ('local' user map)
local ${osUser} postgres

# Grant streaming_replica access ('cnpg_streaming_replica' user map)
cnpg_streaming_replica streaming_replica streaming_replica

# Grant cnpg_pooler_pgbouncer access ('cnpg_pooler_pgbouncer' user map)
cnpg_pooler_pgbouncer cnpg_pooler_pgbouncer cnpg_pooler_pgbouncer

# Grant cnpg_metrics_exporter access via peer authentication on the Unix socket
cnpg_metrics_exporter ${osUser} cnpg_metrics_exporter

#
# USER-DEFINED RULES
#

${userMappings.map((rule) => `${rule}\n`).join('')}`;
}
