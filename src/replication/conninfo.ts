/** libpq conninfo value quoting: single quotes, with `\` and `'` backslash-escaped. */
export function conninfoValue(value: string): string {
  return /^[A-Za-z0-9_./:-]+$/.test(value) ? value : `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

export interface ReplicationConnection {
  host: string;
  port: number;
  applicationName: string;
  certificate: string;
  key: string;
  rootCertificate: string;
  /** verify-full when the primary's name is in its certificate, else verify-ca (CNPG's choice). */
  sslmode: 'verify-full' | 'verify-ca';
  extra?: Readonly<Record<string, string>>;
}

/** CNPG's replica conninfo: certificate auth as streaming_replica, no password, in CNPG's key order. */
export function replicationConninfo(c: ReplicationConnection): string {
  const pairs: [string, string][] = [
    ['host', c.host],
    ['user', 'streaming_replica'],
    ['port', String(c.port)],
    ['sslkey', c.key],
    ['sslcert', c.certificate],
    ['sslrootcert', c.rootCertificate],
    ['application_name', c.applicationName],
    ['sslmode', c.sslmode],
    ['dbname', 'postgres'],
    ['tcp_user_timeout', '5000'],
    ...Object.entries(c.extra ?? {}),
  ];
  return pairs.map(([k, v]) => `${k}=${conninfoValue(v)}`).join(' ');
}
