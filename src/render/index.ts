import type { Cluster } from '../cluster/schema.js';
import { ConfigError } from '../errors/index.js';
import { renderCustomConf } from './custom-conf.js';
import { renderPgHba, renderPgIdent } from './hba.js';
import { checkHbaLine, checkIdentLine } from './hba-rules.js';
import { renderLdapRule } from './ldap.js';
import { validateUserParameters } from './parameters.js';
import { checkTransportParameters, hbaTrustWarning, identMapsEveryoneToSuperuser, identSuperuserWarning, type SecurityWarning } from './security-warnings.js';
import { renderOverrideConf } from './override-conf.js';

export { ensureIncludes } from './postgresql-conf.js';
export { clusterConfigHashParameter, configHashParameter } from './custom-conf.js';

export interface RenderInput {
  cluster: Cluster;
  /** Names the manifest in errors (a file path or `cluster <name>`). */
  source: string;
  osUser: string;
  port: number;
  listenAddresses: string;
  socketDirectory: string;
  logDirectory: string;
  /** TLS material is present: where it is written, and its fingerprint (a rotation changes the render hash). */
  tls?: { certificatesDirectory: string; fingerprint: string };
  /** This instance is a replica: how it reaches the primary. */
  replication?: { primaryConninfo: string; slotName: string | undefined; restoreCommand?: string | undefined };
  /** pgim's `wal-archive` command line: archive_mode on with it as archive_command. */
  archiveCommand?: string;
  /** The value of `synchronous_standby_names` (replication/synchronous.ts); absent or '' leaves it unset. */
  synchronousStandbyNames?: string;
  /** The LDAP bind password from its Secret, when `spec.postgresql.ldap` asks for LDAP authentication. */
  ldapBindPassword?: string;
}

/** Everything pgim writes into PGDATA, as bytes-to-be. Pure: the same input gives the same output. */
export interface RenderedConfiguration {
  customConf: string;
  overrideConf: string;
  pgHba: string;
  pgIdent: string;
  configHash: string;
  /** Settings that weaken transport or authentication security (security-warnings.ts); reported in status and metrics. */
  securityWarnings: SecurityWarning[];
  /** A replica: PGDATA must hold standby.signal. */
  standby: boolean;
}

/**
 * The Cluster annotation that turns the default `host all all all scram-sha-256` rule off (pgim's answer to CNPG
 * issue #10371), so `spec.postgresql.pg_hba` can be a real allow-list.
 */
export const hbaDefaultRuleAnnotation = 'pgim.io/hbaDefaultRule';

function checkEach(lines: readonly string[], source: string, field: string, check: (line: string, index: number) => void): void {
  lines.forEach((line, index) => {
    try {
      check(line, index);
    } catch (err) {
      throw new ConfigError(source, `${field}[${index}]`, (err as Error).message);
    }
  });
}

/** Whether to append the default rule: not when disabled, nor when the user's own last rule already matches all. */
function wantsDefaultRule(cluster: Cluster, source: string, warnings: SecurityWarning[]): boolean {
  const setting = cluster.annotations[hbaDefaultRuleAnnotation];
  if (setting !== undefined && setting !== 'enabled' && setting !== 'disabled') {
    throw new ConfigError(source, `metadata.annotations[${JSON.stringify(hbaDefaultRuleAnnotation)}]`, 'must be enabled or disabled');
  }
  let lastIsCatchAll = false;
  checkEach(cluster.pgHba, source, 'spec.postgresql.pg_hba', (line, index) => {
    const { trust, catchAll } = checkHbaLine(line);
    if (trust) warnings.push(hbaTrustWarning(index, line));
    lastIsCatchAll = catchAll;
  });
  return setting !== 'disabled' && !lastIsCatchAll;
}

export function renderConfiguration(input: RenderInput): RenderedConfiguration {
  const { cluster, source } = input;
  const warnings: SecurityWarning[] = [];
  const defaultRule = wantsDefaultRule(cluster, source, warnings);
  checkEach(cluster.pgIdent, source, 'spec.postgresql.pg_ident', (line, index) => {
    checkIdentLine(line);
    if (identMapsEveryoneToSuperuser(line)) warnings.push(identSuperuserWarning(index, line));
  });
  const userParameters = validateUserParameters(cluster.parameters, source);
  warnings.push(...checkTransportParameters(userParameters, source));
  const overrideConf = renderOverrideConf(input.replication);
  const ldapRule = cluster.ldap === undefined ? undefined : renderLdapRule(cluster.ldap, input.ldapBindPassword ?? '');
  const pgHba = renderPgHba(cluster.pgHba, defaultRule, undefined, ldapRule);
  const pgIdent = renderPgIdent(input.osUser, cluster.pgIdent);
  const custom = renderCustomConf({
    clusterName: cluster.name,
    userParameters,
    port: input.port,
    listenAddresses: input.listenAddresses,
    socketDirectory: input.socketDirectory,
    logDirectory: input.logDirectory,
    ...(input.tls === undefined ? {} : { certificatesDirectory: input.tls.certificatesDirectory }),
    ...(input.archiveCommand === undefined ? {} : { archiveCommand: input.archiveCommand }),
    temporaryTablespaces: cluster.tablespaces.filter((t) => t.temporary).map((t) => t.name),
    ...(input.synchronousStandbyNames ? { synchronousStandbyNames: input.synchronousStandbyNames } : {}),
    companions: [pgHba, pgIdent, input.tls?.fingerprint ?? ''],
    instanceCompanions: [overrideConf],
  });
  return {
    customConf: custom.text,
    overrideConf,
    pgHba,
    pgIdent,
    configHash: custom.hash,
    securityWarnings: warnings,
    standby: input.replication !== undefined,
  };
}
