import { ConfigError } from '../errors/index.js';
import { tokenizeHbaLine } from './hba-rules.js';

/**
 * Settings that lower the transport or authentication security pgim ships with. What is merely weaker is accepted
 * and reported (log line, `/pg/status` `securityWarnings`, the `pgim_security_warnings` metric); what is broken is
 * refused like any invalid configuration.
 *
 * - `ssl_min_protocol_version`: TLSv1.3 (the default) or TLSv1.2, with a warning; TLSv1 and TLSv1.1 are refused.
 * - `ssl_max_protocol_version`: empty (no limit) or TLSv1.3; TLSv1.2 is accepted with a warning (no TLS 1.3 at
 *   all); anything lower is refused.
 * - `ssl_ciphers` (TLS 1.2 only: TLS 1.3 suites are not affected by it): a list that adds NULL (no encryption),
 *   anonymous (no authentication), export, LOW, DES, 3DES, RC4 or MD5 suites is refused; exclusions (`!aNULL`,
 *   `-RC4`) and reordering (`+3DES`) are fine.
 * - pg_hba `trust` over TCP, and a pg_ident regex that maps every OS user to the superuser: accepted, warned.
 */
export type SecurityWarningKind = 'tls_protocol' | 'hba_trust' | 'ident_superuser';

export const securityWarningKinds: readonly SecurityWarningKind[] = ['tls_protocol', 'hba_trust', 'ident_superuser'];

export interface SecurityWarning {
  readonly kind: SecurityWarningKind;
  /** The field path in the Cluster, e.g. `spec.postgresql.parameters["ssl_min_protocol_version"]`. */
  readonly field: string;
  readonly message: string;
}

const protocolRank: Readonly<Record<string, number>> = { tlsv1: 0, 'tlsv1.1': 1, 'tlsv1.2': 2, 'tlsv1.3': 3 };

/** OpenSSL cipher-string words (and suite-name parts) that select suites without encryption, authentication or strength. */
const brokenCipherWords = new Set(['NULL', 'ENULL', 'ANULL', 'COMPLEMENTOFALL', 'COMPLEMENTOFDEFAULT', 'EXPORT', 'EXP', 'LOW', 'DES', '3DES', 'CBC3', 'RC4', 'MD5', 'ADH', 'AECDH']);

/**
 * The first broken word a cipher string adds, or undefined. Entries starting with `!` or `-` remove suites and
 * `+` only reorders (PostgreSQL's own default is `HIGH:MEDIUM:+3DES:!aNULL`), so those never count.
 */
export function brokenCipher(ciphers: string): string | undefined {
  for (const entry of ciphers.split(/[:, ]+/)) {
    if (entry === '' || /^[!+-]/.test(entry)) continue;
    // A word (`aNULL`), a combination (`aNULL+SHA`), or a suite name (`NULL-SHA256`, `EXP-RC4-MD5`, `DES-CBC3-SHA`).
    if (entry.split(/[+-]/).some((part) => brokenCipherWords.has(part.toUpperCase()))) return entry;
  }
  return undefined;
}

const parameterField = (name: string): string => `spec.postgresql.parameters[${JSON.stringify(name)}]`;

/** Checks the TLS parameters (lowercased names, as validateUserParameters returns them). Throws ConfigError. */
export function checkTransportParameters(parameters: ReadonlyMap<string, string>, source: string): SecurityWarning[] {
  const warnings: SecurityWarning[] = [];
  const min = parameters.get('ssl_min_protocol_version');
  if (min !== undefined) {
    const rank = protocolRank[min.trim().toLowerCase()];
    if (rank === undefined) throw new ConfigError(source, parameterField('ssl_min_protocol_version'), 'must be TLSv1.3 or TLSv1.2');
    if (rank < 2) throw new ConfigError(source, parameterField('ssl_min_protocol_version'), 'must be TLSv1.3 or TLSv1.2: TLS 1.0 and 1.1 are broken');
    if (rank === 2) {
      warnings.push({ kind: 'tls_protocol', field: parameterField('ssl_min_protocol_version'), message: 'TLS 1.2 clients are accepted (the default is TLS 1.3 only)' });
    }
  }
  const max = parameters.get('ssl_max_protocol_version');
  if (max !== undefined && max.trim() !== '') {
    const rank = protocolRank[max.trim().toLowerCase()];
    if (rank === undefined || rank < 2) throw new ConfigError(source, parameterField('ssl_max_protocol_version'), 'must be TLSv1.3, TLSv1.2 or empty');
    if (rank === 2) {
      warnings.push({ kind: 'tls_protocol', field: parameterField('ssl_max_protocol_version'), message: 'TLS 1.3 is turned off: clients use TLS 1.2 at best' });
    }
  }
  const ciphers = parameters.get('ssl_ciphers');
  if (ciphers !== undefined) {
    const broken = brokenCipher(ciphers);
    if (broken !== undefined) {
      throw new ConfigError(source, parameterField('ssl_ciphers'), `"${broken}" selects cipher suites without encryption, authentication or strength`);
    }
  }
  return warnings;
}

/** The superuser pgim bootstraps (initdb --username=postgres). */
const superuser = 'postgres';

/** OS user names a regex must match to count as "every OS user". */
const probeUsers = ['root', 'nobody', 'postgres', 'www-data', 'a', 'Z9', 'user.name', 'x_y-z', 'attacker1000'];

/**
 * A pg_ident line whose system-user regex matches every OS user and whose database user is the superuser: anyone
 * who can reach a peer/ident/cert rule that uses the map becomes the superuser. Worth the same warning as `trust`.
 * The regex is tried with JavaScript's engine on a spread of names; PostgreSQL's ARE agrees on these simple forms.
 */
export function identMapsEveryoneToSuperuser(line: string): boolean {
  const [, system, role] = tokenizeHbaLine(line).map((t) => t.text);
  if (system?.startsWith('/') !== true || role !== superuser) return false;
  let regex: RegExp;
  try {
    // eslint-disable-next-line security/detect-non-literal-regexp -- the user's own pattern, only tested on fixed names
    regex = new RegExp(system.slice(1), 'u');
  } catch {
    return false;
  }
  return probeUsers.every((name) => regex.test(name));
}

export function hbaTrustWarning(index: number, line: string): SecurityWarning {
  return { kind: 'hba_trust', field: `spec.postgresql.pg_hba[${index}]`, message: `a trust rule lets clients in without a password: ${line}` };
}

export function identSuperuserWarning(index: number, line: string): SecurityWarning {
  return {
    kind: 'ident_superuser',
    field: `spec.postgresql.pg_ident[${index}]`,
    message: `maps every OS user to the superuser ${superuser}, as good as a trust rule for any rule that uses the map: ${line}`,
  };
}
