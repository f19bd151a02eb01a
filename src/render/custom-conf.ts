import { createHash } from 'node:crypto';
import { confLine } from './escape.js';
import { defaultParameters } from './parameters.js';

/** pgim's own GUC namespace; PostgreSQL accepts any dotted name as a placeholder variable. */
export const configHashParameter = 'pgim.config_sha256';

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
  /** pgim's `wal-archive` command line (archive_mode on, as CNPG); undefined leaves archiving off. */
  archiveCommand?: string;
  /** Synchronous standbys (`ANY 1 ("a","b")`); absent: none, PostgreSQL's default. */
  synchronousStandbyNames?: string;
}

export interface RenderedCustomConf {
  text: string;
  /** sha256 of the render (every file; the hash line excluded); PostgreSQL reports it back once loaded. */
  hash: string;
}

/** The values pgim must control, applied last so no default or user value can displace them. */
function mandatoryParameters(input: CustomConfInput): Record<string, string> {
  return {
    ...(input.archiveCommand === undefined ? { archive_mode: 'off' } : { archive_mode: 'on', archive_command: input.archiveCommand }),
    cluster_name: input.clusterName,
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

  const body = [...settings.keys()]
    .sort()
    .map((key) => confLine(key, settings.get(key) ?? ''))
    .join('\n')
    .concat('\n');
  const digest = createHash('sha256').update(body);
  for (const companion of input.companions ?? []) digest.update('\0').update(companion);
  const hash = digest.digest('hex');
  return { text: `${body}${confLine(configHashParameter, hash)}\n`, hash };
}
