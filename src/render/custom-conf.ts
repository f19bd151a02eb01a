import { createHash } from 'node:crypto';
import { confLine } from './escape.js';
import { defaultParameters } from './parameters.js';

/** pgim's own GUC namespace; PostgreSQL accepts any dotted name as a placeholder variable. */
export const configHashParameter = 'pgim.config_sha256';

/**
 * CNPG's `loadedConfigurationHash`: the hash of what the Cluster asks of every instance, the same on all of them
 * (CNPG's operator waits "for all Pods to have the same PostgreSQL configuration" before it calls a Cluster healthy).
 * It leaves out what differs per instance: the listen address, the archive command, override.conf (a replica's
 * primary_conninfo and slot). Reported from PostgreSQL's loaded settings, so it also proves the render is loaded.
 */
export const clusterConfigHashParameter = 'pgim.cluster_config_sha256';

/** Settings that differ between the instances of one Cluster (kept out of the cluster-wide hash). */
const perInstanceSettings: ReadonlySet<string> = new Set(['listen_addresses', 'archive_command']);

export interface CustomConfInput {
  clusterName: string;
  /** Already validated, keys lowercased (see validateUserParameters). */
  userParameters: ReadonlyMap<string, string>;
  port: number;
  listenAddresses: string;
  socketDirectory: string;
  /** Where the logging collector writes: pgim's FIFOs `postgres.csv` and `postgres` live there. */
  logDirectory: string;
  /** Present when the cluster has TLS material: `ssl = on` with CNPG's file names under this folder. */
  certificatesDirectory?: string;
  /**
   * The other files of the same render (override.conf, pg_hba.conf, pg_ident.conf). The hash covers them too, so a
   * change to any file changes custom.conf, and a confirmed hash means PostgreSQL reloaded the whole render.
   */
  companions?: readonly string[];
  /** spec.tablespaces marked temporary: `temp_tablespaces`, sorted, as CNPG sets it. */
  temporaryTablespaces?: readonly string[];
  /** Files of the render that differ per instance (override.conf): in the reload hash, not the cluster-wide one. */
  instanceCompanions?: readonly string[];
  /** pgim's `wal-archive` command line (archive_mode on, as CNPG); undefined leaves archiving off. */
  archiveCommand?: string;
  /** Synchronous standbys (`ANY 1 ("a","b")`); absent: none, PostgreSQL's default. */
  synchronousStandbyNames?: string;
}

export interface RenderedCustomConf {
  text: string;
  /** sha256 of the render (every file; the hash lines excluded); PostgreSQL reports it back once loaded. */
  hash: string;
  /** The cluster-wide part's sha256 (see clusterConfigHashParameter). */
  clusterHash: string;
}

/** The values pgim must control, applied last so no default or user value can displace them. */
function mandatoryParameters(input: CustomConfInput): Record<string, string> {
  return {
    ...(input.archiveCommand === undefined ? { archive_mode: 'off' } : { archive_mode: 'on', archive_command: input.archiveCommand }),
    cluster_name: input.clusterName,
    ...(input.temporaryTablespaces === undefined || input.temporaryTablespaces.length === 0 ? {} : { temp_tablespaces: input.temporaryTablespaces.toSorted().join(',') }),
    hot_standby: 'true',
    listen_addresses: input.listenAddresses,
    log_destination: 'csvlog',
    log_directory: input.logDirectory,
    log_filename: 'postgres',
    log_rotation_age: '0',
    log_rotation_size: '0',
    log_truncate_on_rotation: 'false',
    logging_collector: 'on',
    port: String(input.port),
    restart_after_crash: 'false',
    ...(input.synchronousStandbyNames === undefined ? {} : { synchronous_standby_names: input.synchronousStandbyNames }),
    unix_socket_directories: input.socketDirectory,
    ...(input.certificatesDirectory === undefined
      ? { ssl: 'off' }
      : {
          ssl: 'on',
          ssl_cert_file: `${input.certificatesDirectory}/server.crt`,
          ssl_key_file: `${input.certificatesDirectory}/server.key`,
          ssl_ca_file: `${input.certificatesDirectory}/client-ca.crt`,
        }),
  };
}

/** custom.conf: defaults, then user parameters, then mandatory values; one sorted line per key; hash last. */
export function renderCustomConf(input: CustomConfInput): RenderedCustomConf {
  const settings = new Map<string, string>(Object.entries(defaultParameters));
  for (const [key, value] of input.userParameters) settings.set(key, value);
  for (const [key, value] of Object.entries(mandatoryParameters(input))) settings.set(key, value);
  settings.delete(configHashParameter);
  settings.delete(clusterConfigHashParameter);

  const lines = (keep: (key: string) => boolean): string =>
    [...settings.keys()]
      .filter(keep)
      .sort()
      .map((key) => confLine(key, settings.get(key) ?? ''))
      .join('\n')
      .concat('\n');
  const body = lines(() => true);
  const cluster = createHash('sha256').update(lines((key) => !perInstanceSettings.has(key)));
  for (const companion of input.companions ?? []) cluster.update('\0').update(companion);
  const clusterHash = cluster.digest('hex');
  const digest = createHash('sha256').update(body);
  for (const companion of [...(input.companions ?? []), ...(input.instanceCompanions ?? [])]) digest.update('\0').update(companion);
  const hash = digest.digest('hex');
  return { text: `${body}${confLine(clusterConfigHashParameter, clusterHash)}\n${confLine(configHashParameter, hash)}\n`, hash, clusterHash };
}
